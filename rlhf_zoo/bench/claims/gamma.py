"""(c2) Larger γ slows J-BOND's KL growth.

The final KL(π‖π_ref) over the γ of sweep ``jbond_gamma`` must decrease in γ (seed means), and the
largest γ's must be lower than the smallest's, significantly where there is an interval.
"""

from __future__ import annotations

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
    fmt_value,
    lower,
)
from rlhf_zoo.bench.plots import legend, shades


@dataclass(frozen=True)
class Evidence:
    """γ (ascending) → the final KL(π‖π_ref) over seeds, and → KL over training."""

    final_kl: dict[Any, Estimate]
    decreasing: bool
    curves: dict[Any, Band]


class GammaSlowsKl(Claim):
    key = "c2"
    statement = "larger γ slows J-BOND's KL growth"
    metric = "final KL(π‖π_ref) over γ"
    sweeps = ("jbond_gamma",)
    title = "J-BOND: KL growth over γ"
    xlabel, ylabel = "step", "KL(π‖π_ref)"

    def check(self, groups: Groups, exact: bool) -> Check:
        gs = groups.get("jbond_gamma", {})
        if len(gs) < 2:
            return Check(NOT_RUN, "needs J-BOND at two or more γ (sweep jbond_gamma)")
        order = sorted(gs, key=float)
        finals = {g: Estimate.of(gs[g].finals("kl/exact")) for g in order}
        means = [finals[g].mean for g in order]
        decreasing = all(b < a for a, b in zip(means, means[1:], strict=False))
        is_lower, sig = lower(finals[order[-1]].values, finals[order[0]].values)
        ok = decreasing and is_lower and sig is not False
        text = ", ".join(f"γ={float(g):g}: {finals[g].text()}" for g in order)
        ends = f"γ={float(order[0]):g} vs γ={float(order[-1]):g}"
        note = "no confidence interval" if sig is None else ("significant" if sig else "not significant")
        trend = "decreasing" if decreasing else "not decreasing"
        evidence = Evidence(finals, decreasing, {g: Band.of(gs[g], "kl/exact") for g in order})
        return Check(
            REPRODUCED if ok else NOT_REPRODUCED,
            f"final KL(π‖π_ref) {text}; {trend} in γ ({ends}: {note} at 95 %)",
            evidence,
        )

    def draw(self, ax: Any, evidence: Evidence) -> None:
        n = len(evidence.curves)
        for j, (gamma, band) in enumerate(evidence.curves.items()):
            draw_band(ax, band, shades(0.9 * j / max(1, n - 1)), f"γ={fmt_value(gamma)}")
        legend(ax)


__all__ = ["Evidence", "GammaSlowsKl"]
