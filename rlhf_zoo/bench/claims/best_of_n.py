"""(e1) Under π_BoN, E[log p_≤] = −1/n; (e2) Best-of-N's KL stays below log n − (n−1)/n.

Both read sweep ``best_of_n`` at every n ≥ 2. (e1) is exact only for a continuous reward: a
discrete one makes p_≤ ≥ U, so E[log p_≤] > −1/n; the deviation is reported and allowed up to
:data:`LOG_QUANTILE_TOLERANCE`. On an exact suite p_≤ and KL(π_BoN‖π_ref) are exact; elsewhere they
are the quantile estimates against the evaluation's reference samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rlhf_zoo.bench.claims.base import NOT_REPRODUCED, NOT_RUN, REPRODUCED, Check, Claim, Estimate, Groups, fmt
from rlhf_zoo.bench.plots import legend
from rlhf_zoo.bench.records import Group

LOG_QUANTILE_TOLERANCE = 0.05  # |E[log p_≤] + 1/n| allowed (a discrete reward shifts it up)


def _bon(groups: Groups) -> list[tuple[int, Group]]:
    return [(int(n), g) for n, g in groups.get("best_of_n", {}).items() if int(n) >= 2]


def _from_pool(bon: list[tuple[int, Group]]) -> bool:
    """Whether the Best-of-N evaluations come from one pool per seed (:mod:`rlhf_zoo.evaluate_pool`)."""
    return any(r.get("summary", {}).get("kl/estimator") == "bon_pool" for _, g in bon for r in g.records)


def kl_bound(n: float) -> float:
    """The bound log n − (n−1)/n on KL(π_BoN‖π_ref)."""
    return math.log(n) - (n - 1) / n


def _fine_ns(ns: list[int]) -> list[float]:
    """n on a fine log grid from 1 to the largest n, for the theory curves."""
    return [2 ** (k / 4) for k in range(0, 4 * int(math.log2(max(ns))) + 1)]


@dataclass(frozen=True)
class LogQuantileEvidence:
    """n → the measured E[log p_≤] under π_BoN over seeds."""

    log_mean: dict[int, Estimate]


class LogQuantile(Claim):
    key = "e1"
    statement = "Best-of-N: E[log p_≤] under π_BoN is −1/n"
    metric = "quantile/log_mean vs −1/n"
    sweeps = ("best_of_n",)
    title = "Best-of-N: E[log p_≤] under π_BoN"
    xlabel, ylabel = "n", "E[log p_≤]"

    def check(self, groups: Groups, exact: bool) -> Check:
        bon = _bon(groups)
        if not bon:
            return Check(NOT_RUN, "needs Best-of-N at n ≥ 2 (sweep best_of_n)")
        parts, ok, measured = [], True, {}
        for n, g in bon:
            est = Estimate.of(g.finals("quantile/log_mean"))
            if math.isnan(est.mean):  # a pool's n = M: no member outside the draws to compare with (−∞ is measured)
                parts.append(f"n={n}: not measured")
                continue
            dev = est.mean + 1.0 / n
            ok = ok and abs(dev) <= LOG_QUANTILE_TOLERANCE
            measured[n] = est
            parts.append(f"n={n}: {fmt(est.mean)} vs {-1 / n:.3f} ({dev:+.3f})")
        if exact:
            how = "exact p_≤"
        elif _from_pool(bon):
            how = (
                "p̂_≤ of each Best-of-n against the members of a pool of reference samples per prompt outside its "
                "n draws, every n below the pool's size from the pool"
            )
        else:
            how = "p̂_≤ against the evaluation's reference samples"
        return Check(
            REPRODUCED if ok else NOT_REPRODUCED,
            "; ".join(parts) + f" ({how}; tolerance ±{LOG_QUANTILE_TOLERANCE}: a discrete reward makes p_≤ ≥ U, "
            "so E[log p_≤] > −1/n)",
            LogQuantileEvidence(measured),
        )

    def draw(self, ax: Any, evidence: LogQuantileEvidence) -> None:
        ns = sorted(evidence.log_mean)
        ax.plot(ns, [evidence.log_mean[n].mean for n in ns], "o-", label="measured E[log p_≤]")
        fine = _fine_ns(ns)
        ax.plot(fine, [-1 / n for n in fine], "--", color="black", label="−1/n (continuous reward)")
        ax.set_xscale("log", base=2)
        legend(ax)


@dataclass(frozen=True)
class KlBoundEvidence:
    """n → Best-of-N's KL(π_BoN‖π_ref) (exact, or the quantile estimate) over seeds."""

    kl: dict[int, Estimate]
    exact: bool


class KlBound(Claim):
    key = "e2"
    statement = "Best-of-N: its KL estimate stays below log n − (n−1)/n"
    metric = "Best-of-N kl/exact (its quantile estimate) vs bon/kl_bound"
    sweeps = ("best_of_n",)
    title = "Best-of-N: KL(π_BoN‖π_ref) and its bound"
    xlabel, ylabel = "n", "nats"

    def check(self, groups: Groups, exact: bool) -> Check:
        bon = _bon(groups)
        if not bon:
            return Check(NOT_RUN, "needs Best-of-N at n ≥ 2 (sweep best_of_n)")
        parts, ok, measured = [], True, {}
        for n, g in bon:
            kl = Estimate.of(g.finals("kl/exact"))
            est, bound = kl.mean, kl_bound(n)
            below = est <= bound + 1e-9
            ok = ok and below
            measured[n] = kl
            parts.append(f"n={n}: {fmt(est)} {'≤' if below else '>'} {bound:.3f}")
        if exact:
            what = "exact KL(π_BoN‖π_ref)"
        elif _from_pool(bon):
            what = "plug-in KL of Best-of-n of a pool of reference samples per prompt"
        else:
            what = "quantile estimate E[(n−1)·log p̂_≤ + log B̂]"
        return Check(
            REPRODUCED if ok else NOT_REPRODUCED,
            "; ".join(parts) + f" ({what} vs bound)",
            KlBoundEvidence(measured, exact),
        )

    def draw(self, ax: Any, evidence: KlBoundEvidence) -> None:
        ns = sorted(evidence.kl)
        label = "KL (exact)" if evidence.exact else "KL estimate"
        ax.plot(ns, [evidence.kl[n].mean for n in ns], "o-", label=label)
        fine = _fine_ns(ns)
        ax.plot(fine, [kl_bound(n) for n in fine], "--", color="black", label="log n − (n−1)/n")
        ax.set_xscale("log", base=2)
        legend(ax)


__all__ = ["LOG_QUANTILE_TOLERANCE", "KlBound", "KlBoundEvidence", "LogQuantile", "LogQuantileEvidence", "kl_bound"]
