"""(d) J-BOND's reward-vs-KL curve lies above REINFORCE's at every β_RL of the paper.

The default J-BOND (sweep ``jbond_gamma``, γ = 0) against REINFORCE with 2 samples and the
leave-one-out baseline (sweep ``reinforce``) at each β_RL ∈ {0.001, 0.01, 0.1, 1}: along the two
seed-mean training paths, at 20 KL(π‖π_ref) values spread over the range both reach, J-BOND's proxy
reward may fall below REINFORCE's by at most :data:`CURVE_TOLERANCE` anywhere.
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
    Groups,
    TrainingPath,
    at,
    draw_path,
    find,
)
from rlhf_zoo.bench.plots import colours, legend

PAPER_BETAS_RL = (0.001, 0.01, 0.1, 1.0)
CURVE_TOLERANCE = 0.01  # J-BOND may fall below REINFORCE by at most this much reward anywhere


@dataclass(frozen=True)
class Comparison:
    """J-BOND against REINFORCE at one β_RL.

    Attributes:
        path: REINFORCE's seed-mean training path (step, KL, reward).
        kl_max: the end of the KL range both paths reach.
        min_diff, mean_diff: J-BOND − REINFORCE reward over that range (None: no common range).
    """

    path: TrainingPath
    kl_max: float
    min_diff: float | None
    mean_diff: float | None


@dataclass(frozen=True)
class Evidence:
    """J-BOND's seed-mean training path, and β_RL → :class:`Comparison` for each β_RL that was run."""

    jbond_path: TrainingPath
    reinforce: dict[float, Comparison]


class JBondAboveReinforce(Claim):
    key = "d"
    statement = (
        "J-BOND's reward-vs-KL curve lies above REINFORCE (2 samples, leave-one-out) at every "
        "β_RL ∈ {0.001, 0.01, 0.1, 1}"
    )
    metric = "proxy reward at matched KL along training"
    sweeps = ("jbond_gamma", "reinforce")
    title = "J-BOND vs REINFORCE (training paths)"
    xlabel, ylabel = "KL(π‖π_ref)", "proxy reward"

    def check(self, groups: Groups, exact: bool) -> Check:
        jb = find(groups, "jbond_gamma", 0.0)
        if jb is None or not groups.get("reinforce"):
            return Check(NOT_RUN, "needs the default J-BOND (sweep jbond_gamma, γ=0) and REINFORCE (sweep reinforce)")
        j_path = jb.mean_path("kl/exact", "reward/proxy")
        if not j_path:
            return Check(NOT_RUN, "J-BOND records have no metrics")
        ok, parts, missing, compared = True, [], [], {}
        for beta in PAPER_BETAS_RL:
            rf = find(groups, "reinforce", beta)
            r_path = rf.mean_path("kl/exact", "reward/proxy") if rf is not None else []
            if not r_path:
                missing.append(f"{beta:g}")
                continue
            k_max = min(max(p[1] for p in j_path), max(p[1] for p in r_path))
            diffs = []
            for i in range(1, 21):
                k = k_max * (0.1 + 0.9 * i / 20)
                a, b = at(j_path, k), at(r_path, k)
                if math.isfinite(a) and math.isfinite(b):
                    diffs.append(a - b)
            if not diffs:
                ok = False
                compared[beta] = Comparison(r_path, k_max, None, None)
                parts.append(f"β_RL={beta:g}: no common KL range")
                continue
            above = min(diffs) >= -CURVE_TOLERANCE
            ok = ok and above
            compared[beta] = Comparison(r_path, k_max, min(diffs), sum(diffs) / len(diffs))
            parts.append(
                f"β_RL={beta:g}: J-BOND − REINFORCE over KL ≤ {k_max:.2f}: mean {sum(diffs) / len(diffs):+.3f}, "
                f"min {min(diffs):+.3f} ({'above' if above else 'not above'})"
            )
        if not compared:
            return Check(NOT_RUN, f"REINFORCE not run at β_RL ∈ {{{', '.join(missing)}}}")
        text = "; ".join(parts) + (f"; β_RL ∈ {{{', '.join(missing)}}} not run" if missing else "")
        text += f" (reward at matched KL on seed-mean training paths; tolerance {CURVE_TOLERANCE})"
        return Check(REPRODUCED if ok else NOT_REPRODUCED, text, Evidence(j_path, compared))

    def draw(self, ax: Any, evidence: Evidence) -> None:
        draw_path(ax, evidence.jbond_path, color="black", lw=2, label="J-BOND (γ=0, η=0.02)")
        for j, beta in enumerate(PAPER_BETAS_RL):  # a β_RL keeps its colour whichever others ran
            if beta in evidence.reinforce:
                draw_path(ax, evidence.reinforce[beta].path, color=colours(j + 1), label=f"REINFORCE β_RL={beta:g}")
        legend(ax)


__all__ = ["CURVE_TOLERANCE", "PAPER_BETAS_RL", "Comparison", "Evidence", "JBondAboveReinforce"]
