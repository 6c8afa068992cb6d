"""The BOND paper's claims, each one unit: its statement, its check on a suite's records (the verdict
with its numbers and 95 % intervals) and its plot panel, drawn from the check's own evidence.

=====  =======================  ============================================================================
key    module                   claim
=====  =======================  ============================================================================
a      :mod:`.jeffreys`          Jeffreys β = 0.5 lowers both KL(π‖π_BoN) and KL(π_BoN‖π) vs β = 0 and β = 1
b      :mod:`.iterative`         iterative BOND keeps improving where fixed-n BOND saturates
c1     :mod:`.ema_anchor`        J-BOND's EMA anchor gives the same reward at lower KL than hard swaps
c2     :mod:`.gamma`             larger γ slows J-BOND's KL growth
d      :mod:`.vs_reinforce`      J-BOND's reward-vs-KL curve lies above REINFORCE's at every β_RL
e1     :mod:`.best_of_n`         under π_BoN, E[log p_≤] = −1/n
e2     :mod:`.best_of_n`         Best-of-N's KL stays below log n − (n−1)/n
=====  =======================  ============================================================================

Exact suites check exact quantities, the others estimates from their records. A difference between
two groups of runs counts only when its Welch 95 % confidence interval over seeds excludes 0; (d)
pairs each seed's J-BOND and REINFORCE runs and reads the Student-t interval of the per-seed
differences; (e1) and (e2) compare seed means with the theory. With one seed there is no interval
and the direction of the means decides (the text says so). The verdict table
(:func:`rlhf_zoo.bench.render.verdict_table`) and the claims figure (:func:`figure`) iterate over
:data:`CLAIMS`; to add a claim, write its module and list it there.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rlhf_zoo.bench.claims.base import NOT_REPRODUCED, NOT_RUN, REPRODUCED, Check, Claim, Groups
from rlhf_zoo.bench.claims.best_of_n import KlBound, LogQuantile
from rlhf_zoo.bench.claims.ema_anchor import EmaAnchor
from rlhf_zoo.bench.claims.gamma import GammaSlowsKl
from rlhf_zoo.bench.claims.iterative import IterativeBond
from rlhf_zoo.bench.claims.jeffreys import Jeffreys
from rlhf_zoo.bench.claims.vs_reinforce import JBondAboveReinforce
from rlhf_zoo.bench.plots import pyplot, save

CLAIMS: tuple[Claim, ...] = (
    Jeffreys(),
    IterativeBond(),
    EmaAnchor(),
    GammaSlowsKl(),
    JBondAboveReinforce(),
    LogQuantile(),
    KlBound(),
)
if len({c.key for c in CLAIMS}) != len(CLAIMS):
    raise ValueError(f"two claims share a key: {[c.key for c in CLAIMS]}")


def check_all(groups: Groups | None, exact: bool) -> dict[str, Check]:
    """Claim key → its check on one suite's groups (None: the suite has no records → "not run")."""
    if not groups:
        return {c.key: Check(NOT_RUN, "no records") for c in CLAIMS}
    return {c.key: c.check(groups, exact) for c in CLAIMS}


def figure(checks: dict[str, Check], path: Path, ncols: int = 4) -> Path:
    """``claims.png``: one panel per claim, each drawn from its check's evidence."""
    plt = pyplot()
    nrows = math.ceil(len(CLAIMS) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.25 * ncols, 3.7 * nrows), squeeze=False)
    flat: list[Any] = [a for row in axes for a in row]
    for ax, claim in zip(flat, CLAIMS, strict=False):
        claim.plot(ax, checks[claim.key])
    for ax in flat[len(CLAIMS) :]:
        ax.axis("off")
    fig.tight_layout()
    return save(fig, path)


__all__ = [
    "CLAIMS",
    "NOT_REPRODUCED",
    "NOT_RUN",
    "REPRODUCED",
    "Check",
    "Claim",
    "check_all",
    "figure",
]
