"""(a) Jeffreys β = 0.5 lowers both KL(π‖π_BoN) and KL(π_BoN‖π) relative to β = 0 and β = 1.

BOND n = 4 at each Jeffreys β ∈ {0, 0.5, 1}, at equal steps (sweep ``bond_beta``): β = 0.5 must have
the lower final divergence than each of β = 0 and β = 1, significantly where there is an interval.
On an exact suite both divergences are exact. On a task without an oracle only the backward
divergence has an estimate from the records, KL(π‖π_ref) − (n−1)·E_π[log p̂_≤] − log n (the
continuous-reward B = n).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rlhf_zoo.bench.claims.base import (
    NOT_REPRODUCED,
    NOT_RUN,
    REPRODUCED,
    Check,
    Claim,
    Estimate,
    Groups,
    find,
    lower,
    significance_note,
)
from rlhf_zoo.bench.plots import colours, legend
from rlhf_zoo.bench.records import Group, record_settings

BETAS = (0.0, 0.5, 1.0)
BOND_N = 4  # BOND's default algo.n: the n of a format-1 record (its arguments only) that does not name one
TO_BON, FROM_BON = "KL(π‖π_BoN)", "KL(π_BoN‖π)"


@dataclass(frozen=True)
class Evidence:
    """Divergence name → Jeffreys β → its final value over seeds."""

    divergences: dict[str, dict[float, Estimate]]


def _backward_estimate(grp: Group) -> list[float]:
    """Per seed, KL(π‖π_BoN) ≈ KL(π‖π_ref) − (n−1)·E_π[log p̂_≤] − log n.

    The metrics are read with :meth:`Group.finals` (NaN where missing): a compact record stores a NaN
    metric as null, and that seed's estimate is then NaN (left out of the mean), not a TypeError."""
    out = []
    kls, log_means = grp.finals("kl/exact"), grp.finals("quantile/log_mean")
    for r, kl, log_mean in zip(grp.records, kls, log_means, strict=True):
        n = float(record_settings(r).get("algo.n") or BOND_N)  # the resolved n: a preset's or a file's too
        out.append(kl - (n - 1) * log_mean - math.log(n))
    return out


class Jeffreys(Claim):
    key = "a"
    statement = "Jeffreys β=0.5 lowers both KL(π‖π_BoN) and KL(π_BoN‖π) relative to β=0 and β=1 (equal steps)"
    metric = "final KL(π‖π_BoN), KL(π_BoN‖π) of BOND n=4"
    sweeps = ("bond_beta",)
    title = "BOND n=4: Jeffreys β"

    def check(self, groups: Groups, exact: bool) -> Check:
        g = {b: find(groups, "bond_beta", b) for b in BETAS}
        if any(v is None for v in g.values()):
            return Check(NOT_RUN, "needs BOND n=4 at Jeffreys β = 0, 0.5 and 1 (sweep bond_beta)")
        if exact:
            divs = {TO_BON: lambda grp: grp.finals("kl/to_bon"), FROM_BON: lambda grp: grp.finals("kl/from_bon")}
            note = ""
        else:
            divs = {f"{TO_BON} estimate": _backward_estimate}
            note = "; KL(π_BoN‖π) not measurable from the records (needs log π on Best-of-N samples)"
        parts, ok, flags, evidence = [], True, [], {}
        for name, fn in divs.items():
            est = {b: Estimate.of(fn(grp)) for b, grp in g.items()}
            evidence[name] = est
            for other in (0.0, 1.0):
                is_lower, sig = lower(est[0.5].values, est[other].values)
                flags.append(sig)
                ok = ok and is_lower and sig is not False
            parts.append(f"{name}: β=0 {est[0.0].text()}, β=0.5 {est[0.5].text()}, β=1 {est[1.0].text()}")
        status = REPRODUCED if ok else NOT_REPRODUCED
        return Check(status, "; ".join(parts) + f" ({significance_note(flags)}){note}", Evidence(evidence))

    def draw(self, ax: Any, evidence: Evidence) -> None:
        names = list(evidence.divergences)
        for j, beta in enumerate(BETAS):
            ests = [evidence.divergences[name][beta] for name in names]
            xs = [i + 0.27 * (j - 1) for i in range(len(names))]
            means, errors = [e.mean for e in ests], [e.error for e in ests]
            ax.bar(xs, means, 0.25, yerr=errors, capsize=2, color=colours(j), label=f"β={beta:g}")
        ax.set_xticks(range(len(names)), names)
        legend(ax)

    def panel_title(self, check: Check) -> str:
        title = super().panel_title(check)
        if check.data is not None and FROM_BON not in check.data.divergences:
            title += " (KL(π_BoN‖π) not measured)"
        return title


__all__ = ["BETAS", "Evidence", "Jeffreys"]
