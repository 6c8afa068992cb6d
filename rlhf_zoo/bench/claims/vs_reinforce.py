"""(d) J-BOND's reward-vs-KL curve lies above REINFORCE's at every β_RL (Sessa et al. 2024, Fig. 6).

The default J-BOND (sweep ``jbond_gamma``, γ = 0) against REINFORCE with 2 samples and the
leave-one-out baseline (sweep ``reinforce``) at each β_RL the suite ran (the paper's are
{0.001, 0.01, 0.1, 1}; a suite on another model picks its own, since the KL a β_RL allows depends on
the model and the budget). At 20 KL(π‖π_ref) values spread over the range both seed-mean training
paths reach:

- along the seed-mean paths, J-BOND's proxy reward may fall below REINFORCE's by at most
  :data:`CURVE_TOLERANCE` anywhere;
- per seed (J-BOND's and REINFORCE's runs of the same seed paired), the mean reward difference over
  those KL values that the seed's own two paths reach (a seed's paths may stop short of the seed-mean
  range: the text then says how many each reaches); with two or more seeds, the 95 % Student-t interval
  of its mean must lie above 0.
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
    find,
)
from rlhf_zoo.bench.plots import colours, legend
from rlhf_zoo.bench.records import Group
from rlhf_zoo.bench.stats import finite

PAPER_BETAS_RL = (0.001, 0.01, 0.1, 1.0)
CURVE_TOLERANCE = 0.01  # J-BOND may fall below REINFORCE by at most this much reward anywhere


def _other_reinforce(groups: Any) -> str:
    """The settings of the sweep ``reinforce``'s records that are not the claim's REINFORCE (2 samples, leave-one-out),
    as ``algo.samples=4, algo.baseline=mean`` ("": none; records without settings are taken as the claim's). A suite
    file may reuse the tag with other fixed settings: its page judged them under the claim's name."""
    wanted = {"algo.samples": 2, "algo.baseline": "loo"}
    for g in groups:
        for rec in g.records:
            settings = rec.get("settings") or {}
            other = {k: settings[k] for k, v in wanted.items() if k in settings and settings[k] != v}
            if other:
                return ", ".join(f"{k}={v}" for k, v in other.items())
    return ""


@dataclass(frozen=True)
class Comparison:
    """J-BOND against REINFORCE at one β_RL.

    Attributes:
        path: REINFORCE's seed-mean training path (step, KL, reward).
        kl_max: the end of the KL range both paths reach.
        min_diff, mean_diff: J-BOND − REINFORCE reward over that range (None: no common range).
        paired: over the seeds both ran, each seed's mean J-BOND − REINFORCE reward over that range
            (None: no seed with a common range).
        reached: per paired seed, how many of the KL values of :func:`grid` its two paths both reach
            (the values its mean in ``paired`` is taken over).
    """

    path: TrainingPath
    kl_max: float
    min_diff: float | None
    mean_diff: float | None
    paired: Estimate | None = None
    reached: tuple[int, ...] = ()


@dataclass(frozen=True)
class Evidence:
    """J-BOND's seed-mean training path, and β_RL → :class:`Comparison` for each β_RL that was run."""

    jbond_path: TrainingPath
    reinforce: dict[float, Comparison]


def grid(kl_max: float) -> list[float]:
    """The 20 KL values at which the curves are compared: from 0.145 to 1 times ``kl_max``."""
    return [kl_max * (0.1 + 0.9 * i / 20) for i in range(1, 21)]


def differences(a: TrainingPath, b: TrainingPath, kl_max: float) -> list[float]:
    """a's reward − b's at each KL value of :func:`grid` that both paths reach."""
    return [x - y for k in grid(kl_max) if math.isfinite(x := at(a, k)) and math.isfinite(y := at(b, k))]


def seed_differences(jbond: Group, reinforce: Group, kl_max: float) -> list[list[float]]:
    """Per seed both groups ran (and whose paths share a KL value of :func:`grid`), :func:`differences`
    of its two training paths."""
    out = []
    for s in sorted(set(jbond.by_seed) & set(reinforce.by_seed)):
        j, r = (_path(g.by_seed[s]) for g in (jbond, reinforce))
        if diffs := differences(j, r, kl_max):
            out.append(diffs)
    return out


def paired(per_seed: list[list[float]]) -> Estimate | None:
    """Each seed's mean of its :func:`seed_differences`; their mean and 95 % interval (None: no seed)."""
    means = [sum(d) / len(d) for d in per_seed]
    return Estimate.of(means) if means else None


def _span(counts: tuple[int, ...]) -> str:
    """``12–20`` (or ``12`` when every seed reaches as many)."""
    return f"{min(counts)}" if min(counts) == max(counts) else f"{min(counts)}–{max(counts)}"


def _kl_reached(path: TrainingPath) -> float:
    """The largest finite KL on a path (NaN if none): a plain max() returns NaN when the first is NaN."""
    kls = finite(p[1] for p in path)
    return max(kls) if kls else math.nan


def _path(record: dict[str, Any]) -> TrainingPath:
    out = []
    for m in record.get("metrics", []):
        kl, reward = m.get("kl/exact"), m.get("reward/proxy")
        if isinstance(kl, (int, float)) and isinstance(reward, (int, float)):
            out.append((float(m["step"]), float(kl), float(reward)))
    return out


class JBondAboveReinforce(Claim):
    key = "d"
    statement = (
        "J-BOND's reward-vs-KL curve lies above REINFORCE (2 samples, leave-one-out) at every "
        "β_RL (the paper's: 0.001, 0.01, 0.1, 1)"
    )
    metric = "proxy reward at matched KL along training"
    sweeps = ("jbond_gamma", "reinforce")
    title = "J-BOND vs REINFORCE (training paths)"
    xlabel, ylabel = "KL(π‖π_ref)", "proxy reward"

    def check(self, groups: Groups, exact: bool) -> Check:
        jb = find(groups, "jbond_gamma", 0.0)
        if jb is None or not groups.get("reinforce"):
            return Check(NOT_RUN, "needs the default J-BOND (sweep jbond_gamma, γ=0) and REINFORCE (sweep reinforce)")
        if other := _other_reinforce(groups["reinforce"].values()):  # a suite file's own "reinforce" sweep
            needs = "needs REINFORCE with 2 samples and the leave-one-out baseline"
            return Check(NOT_RUN, f"{needs}; sweep reinforce ran {other}")
        j_path = jb.mean_path("kl/exact", "reward/proxy")
        if not j_path:
            return Check(NOT_RUN, "J-BOND records have no metrics")
        ok, parts, compared = True, [], {}
        betas = sorted(float(b) for b in groups["reinforce"])
        missing = [f"{b:g}" for b in PAPER_BETAS_RL if not any(math.isclose(b, x) for x in betas)]
        for beta in betas:
            rf = find(groups, "reinforce", beta)
            r_path = rf.mean_path("kl/exact", "reward/proxy") if rf is not None else []
            if rf is None or not r_path:
                continue
            k_max = min(_kl_reached(j_path), _kl_reached(r_path))
            diffs = differences(j_path, r_path, k_max) if math.isfinite(k_max) else []
            if not diffs:
                ok = False
                compared[beta] = Comparison(r_path, k_max, None, None)
                parts.append(f"β_RL={beta:g}: no common KL range")
                continue
            seed_diffs = seed_differences(jb, rf, k_max)
            pair, reached = paired(seed_diffs), tuple(len(d) for d in seed_diffs)
            sig = None if pair is None or pair.half is None else pair.mean - pair.half > 0
            above = min(diffs) >= -CURVE_TOLERANCE
            ok = ok and above and sig is not False
            avg = sum(diffs) / len(diffs)
            compared[beta] = Comparison(r_path, k_max, min(diffs), avg, pair, reached)
            # a seed's mean is over the KL values its own paths reach: say so when that is not all of them
            short = (
                ""
                if min(reached, default=len(diffs)) >= len(diffs)
                else f"; a seed's paths reach {_span(reached)} of these {len(diffs)} KL values"
            )
            per_seed = (
                "no paired seeds"
                if pair is None
                else f"per seed {pair.text()} ({len(pair.values)} seed{'s' * (len(pair.values) != 1)}; "
                + ("no interval" if sig is None else "interval above 0" if sig else "interval not above 0")
                + short
                + ")"
            )
            parts.append(
                f"β_RL={beta:g}: J-BOND − REINFORCE over KL ≤ {k_max:.2f}: mean {avg:+.3f}, "
                f"min {min(diffs):+.3f} ({'above' if above else 'not above'}), {per_seed}"
            )
        if not compared:
            return Check(NOT_RUN, "REINFORCE (sweep reinforce) has no metrics")
        text = "; ".join(parts) + (f"; the paper's β_RL ∈ {{{', '.join(missing)}}} not run" if missing else "")
        text += (
            f" (reward at matched KL on seed-mean training paths, tolerance {CURVE_TOLERANCE}; per seed: the mean "
            "difference over those of the same KL values that the seed's two paths reach, 95 % interval over seeds)"
        )
        return Check(REPRODUCED if ok else NOT_REPRODUCED, text, Evidence(j_path, compared))

    def draw(self, ax: Any, evidence: Evidence) -> None:
        draw_path(ax, evidence.jbond_path, color="black", lw=2, label="J-BOND (γ=0, η=0.02)")
        for j, beta in enumerate(sorted(evidence.reinforce)):
            draw_path(ax, evidence.reinforce[beta].path, color=colours(j + 1), label=f"REINFORCE β_RL={beta:g}")
        legend(ax)


__all__ = [
    "CURVE_TOLERANCE",
    "PAPER_BETAS_RL",
    "Comparison",
    "Evidence",
    "JBondAboveReinforce",
    "differences",
    "grid",
    "paired",
    "seed_differences",
]
