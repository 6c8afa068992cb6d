"""(c1) J-BOND's EMA anchor gives the same reward at lower KL than hard anchor swaps.

Each swap period M of sweep ``jbond_swap`` is paired with the EMA rate η of sweep ``jbond_eta``
closest to 1/M (within a factor 1.5, 1.5 itself included; an unpaired one is left out). For each pair, the proxy reward
where each seed's training path first reaches the matched KL (the smallest final KL(π‖π_ref) of the
two) must be higher with the EMA anchor, significantly where there is an interval.
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
    TrainingPath,
    at,
    draw_path,
    significance_note,
)
from rlhf_zoo.bench.plots import colours, legend
from rlhf_zoo.bench.records import Group
from rlhf_zoo.bench.stats import diff_ci, finite

PAIRING = 1.5  # η pairs with M when η·M lies within a factor 1.5 of 1, the bound included


@dataclass(frozen=True)
class Pair:
    """One EMA rate against the swap period it pairs with.

    Attributes:
        eta, period: the EMA rate η and the swap period M.
        kl: the matched KL(π‖π_ref): the smallest final KL of the two.
        ema, swap: the proxy reward at ``kl`` along each seed's training path.
        diff: mean(ema) − mean(swap).
        ema_final_kl, swap_final_kl: the final KL(π‖π_ref) over seeds.
        ema_path, swap_path: the seed-mean training paths (step, KL, reward).
    """

    eta: float
    period: float
    kl: float
    ema: Estimate
    swap: Estimate
    diff: float
    ema_final_kl: Estimate
    swap_final_kl: Estimate
    ema_path: TrainingPath
    swap_path: TrainingPath


@dataclass(frozen=True)
class Evidence:
    pairs: tuple[Pair, ...]


def pairs(groups: Groups) -> list[tuple[float, Group, float, Group]]:
    """(η, EMA group, M, swap group) with η closest to 1/M (within a factor :data:`PAIRING`)."""
    out = []
    for m, swap in groups.get("jbond_swap", {}).items():
        best = None
        for eta, ema in groups.get("jbond_eta", {}).items():
            dist = abs(math.log(float(eta) * float(m)))
            # the bound included, with room for rounding: 0.03·50 and 1/75·50 lie exactly a factor 1.5 from 1
            if dist <= math.log(PAIRING) + 1e-9 and (best is None or dist < best[0]):
                best = (dist, float(eta), ema)
        if best is not None:
            out.append((best[1], best[2], float(m), swap))
    return out


class EmaAnchor(Claim):
    key = "c1"
    statement = "J-BOND's EMA anchor gives the same reward at lower KL than hard swaps"
    metric = "proxy reward at matched KL(π‖π_ref), EMA η vs swap period ≈ 1/η"
    sweeps = ("jbond_eta", "jbond_swap")
    title = "J-BOND: EMA anchor vs hard swaps"
    xlabel, ylabel = "KL(π‖π_ref)", "proxy reward"

    def check(self, groups: Groups, exact: bool) -> Check:
        matched = pairs(groups)
        if not matched:
            return Check(
                NOT_RUN,
                "needs J-BOND with an EMA rate η (sweep jbond_eta) and hard swaps every M ≈ 1/η steps "
                "(sweep jbond_swap)",
            )
        ok, flags, parts, found = True, [], [], []
        for eta, ema, m, swap in matched:
            # finite values only: min() over a list that starts with NaN returns NaN (a seed's NaN final KL
            # would otherwise make the matched KL NaN or not, depending on which seed has it)
            finals = finite([*ema.finals("kl/exact"), *swap.finals("kl/exact")])
            if not finals:
                ok = False
                parts.append(f"η={eta:g} vs swap every {int(m)}: no finite final KL")
                continue
            k_star = min(finals)
            r_ema = Estimate.of(at(path, k_star) for path in ema.paths("kl/exact", "reward/proxy"))
            r_swap = Estimate.of(at(path, k_star) for path in swap.paths("kl/exact", "reward/proxy"))
            d, h = diff_ci(r_ema.values, r_swap.values)
            sig = None if h is None else abs(d) > h  # significant either way; the verdict needs d > 0 too
            flags.append(sig)
            ok = ok and d > 0 and sig is not False
            kl_ema, kl_swap = Estimate.of(ema.finals("kl/exact")), Estimate.of(swap.finals("kl/exact"))
            path_ema, path_swap = ema.mean_path("kl/exact", "reward/proxy"), swap.mean_path("kl/exact", "reward/proxy")
            found.append(Pair(eta, m, k_star, r_ema, r_swap, d, kl_ema, kl_swap, path_ema, path_swap))
            parts.append(
                f"η={eta:g} vs swap every {int(m)}: reward at KL {k_star:.2f}: EMA {r_ema.text()}, swaps "
                f"{r_swap.text()} (final KL {kl_ema.text()} vs {kl_swap.text()})"
            )
        status = REPRODUCED if ok else NOT_REPRODUCED
        return Check(status, "; ".join(parts) + f" ({significance_note(flags)})", Evidence(tuple(found)))

    def draw(self, ax: Any, evidence: Evidence) -> None:
        """Each pair in one colour: the training paths (EMA solid, swaps dashed) and, at the matched KL,
        the rewards the verdict compares with their 95 % intervals."""
        for j, p in enumerate(evidence.pairs):
            c = colours(j)
            draw_path(ax, p.ema_path, "-", color=c, label=f"EMA η={p.eta:g}")
            draw_path(ax, p.swap_path, "--", color=c, label=f"hard swap every {int(p.period)}")
            for est, marker in ((p.ema, "o"), (p.swap, "s")):
                ax.errorbar([p.kl], [est.mean], yerr=[est.error], fmt=marker, ms=4, color=c, capsize=2)
        legend(ax)


__all__ = ["PAIRING", "EmaAnchor", "Evidence", "Pair", "pairs"]
