"""(b) Iterative BOND keeps improving where fixed-n BOND saturates.

The proxy-reward gain over the second half of training (from the evaluation nearest the middle to
the last one), per seed: fixed-n BOND n = 2 (sweep ``bond``) must saturate (its second-half gain is
under :data:`SATURATION` of its total gain, and its total gain above 0, by its 95 % interval where there is
one: a run that learned nothing has nothing to saturate at), and iterative BOND at every swap period (sweep
``iterative``) must gain more than it over the second half, significantly where there is an interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rlhf_zoo.bench.claims.base import (
    NOT_REPRODUCED,
    NOT_RUN,
    REPRODUCED,
    Band,
    Check,
    Claim,
    Estimate,
    Groups,
    draw_band,
    find,
    fmt,
    significance_note,
)
from rlhf_zoo.bench.plots import colours, legend
from rlhf_zoo.bench.stats import diff_ci

SATURATION = 0.1  # fixed-n BOND saturates if its second-half gain is < 10 % of its total gain
KEY = "reward/proxy"


@dataclass(frozen=True)
class Evidence:
    """The second-half gains the verdict compares, and the reward curves they come from.

    Attributes:
        fixed_late: BOND n = 2's second-half gain over seeds.
        fixed_total: its mean total gain (first to last evaluation).
        saturated: whether fixed-n BOND saturates.
        iterative_late: swap period → iterative BOND's second-half gain over seeds.
        fixed_curve, iterative_curves: the proxy reward over training (swap period → curve).
    """

    fixed_late: Estimate
    fixed_total: float
    saturated: bool
    iterative_late: dict[Any, Estimate]
    fixed_curve: Band
    iterative_curves: dict[Any, Band]


def late_gain(rec: dict[str, Any], key: str = KEY) -> tuple[float, float]:
    """(gain over the second half of training, total gain) of one run's evaluated ``key``."""
    pts = [(float(m["step"]), float(m[key])) for m in rec.get("metrics", []) if isinstance(m.get(key), (int, float))]
    if len(pts) < 2:
        return math.nan, math.nan
    last = pts[-1][0]
    mid = min(pts, key=lambda p: (abs(p[0] - last / 2), -p[0]))  # ties: the later evaluation
    return pts[-1][1] - mid[1], pts[-1][1] - pts[0][1]


class IterativeBond(Claim):
    key = "b"
    statement = "iterative BOND keeps improving where fixed-n BOND saturates"
    metric = "proxy-reward gain over the second half of training"
    sweeps = ("bond", "iterative")
    title = "iterative vs fixed-n BOND"
    xlabel, ylabel = "step", "proxy reward"

    def check(self, groups: Groups, exact: bool) -> Check:
        fixed = find(groups, "bond", 2)
        iters = groups.get("iterative", {})
        if fixed is None or not iters:
            return Check(NOT_RUN, "needs BOND n=2 (sweep bond) and iterative BOND (sweep iterative)")
        fixed_late = Estimate.of(late_gain(r)[0] for r in fixed.records)
        total = Estimate.of(late_gain(r)[1] for r in fixed.records)
        m_late, m_total = fixed_late.mean, total.mean
        learned = m_total > 0 and (total.half is None or m_total > total.half)
        saturated = math.isfinite(m_late) and learned and m_late < SATURATION * m_total
        parts = [f"second-half gain of proxy reward: BOND n=2 {fixed_late.text()} (of {fmt(m_total)} in total)"]
        ok, flags, late_by_period = saturated, [], {}
        for period, grp in iters.items():
            late = Estimate.of(late_gain(r)[0] for r in grp.records)
            d, h = diff_ci(late.values, fixed_late.values)
            sig = None if h is None else abs(d) > h  # significant either way; the verdict needs d > 0 too
            flags.append(sig)
            ok = ok and d > 0 and sig is not False
            late_by_period[period] = late
            parts.append(f"iterative (swap every {period}) {late.text()}")
        if learned:
            verb = "saturates" if saturated else "does not saturate"
            sat = f"{verb} (< {SATURATION:.0%} of its gain in the second half)"
        else:
            sat = "does not learn (its total gain is not above 0), so it cannot saturate"
        evidence = Evidence(
            fixed_late,
            m_total,
            saturated,
            late_by_period,
            Band.of(fixed, KEY),
            {period: Band.of(grp, KEY) for period, grp in iters.items()},
        )
        return Check(
            REPRODUCED if ok else NOT_REPRODUCED,
            ", ".join(parts) + f"; fixed n=2 {sat} ({significance_note(flags)})",
            evidence,
        )

    def draw(self, ax: Any, evidence: Evidence) -> None:
        draw_band(ax, evidence.fixed_curve, "black", "BOND n=2 (fixed)")
        for j, (period, band) in enumerate(evidence.iterative_curves.items()):
            draw_band(ax, band, colours(j + 1), f"iterative, swap every {period}")
        legend(ax)


__all__ = ["SATURATION", "Evidence", "IterativeBond", "late_gain"]
