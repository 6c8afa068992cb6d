"""REINFORCE with a KL-regularised reward (Williams, 1992), and RLOO as a config.

Objective (ALGORITHMS.md §7): maximise E_{y~π}[r(y)] − β_RL·KL(π ‖ π_ref). Per prompt, k samples;

    R(y) = r(y) − β_RL·(log π(y) − log π_ref(y))      (KL in the reward: sequence-level k1, no grad)
    L    = −E[(R(y) − b)·∇log π(y)]                    (score-function estimator)

Its fixed point is π*_β(y) ∝ π_ref(y)·exp(r(y)/β_RL), and with KL in the reward the estimator is
the exact gradient of the regularised objective (the testbed checks convergence to π*_β).

Variants are configs, not copies: ``samples >= 2, baseline=loo`` is RLOO (Kool et al. 2019;
Ahmadian et al. 2024, "Back to Basics"), the BOND paper's REINFORCE baseline with k = 2.

Deviations and choices:
- The surrogate is written in ratio form, −E[A·π(y)/sg(π(y))], whose value is −E[A]; this makes
  PPO-lite with one epoch equal to REINFORCE in value as well as gradient.
- ``kl_in=loss`` adds β·E[k3] or β·E[exact-token KL] to the loss instead, differentiated in place.
  This is not the gradient of the regularised objective: with k3 it differentiates, in expectation,
  KL(π_ref ‖ π) (the reverse direction), and the exact-token KL drops the term that flows through
  which prefixes are visited (:func:`rlhf_zoo.algorithms.common.kl_loss`, ALGORITHMS.md §1).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from rlhf_zoo.algorithms.base import Algorithm, Batch, Needs
from rlhf_zoo.algorithms.common import (
    add_kl_loss,
    check_kl_regularised,
    grouped_advantages,
    kl_estimator_unused,
    kl_penalised_returns,
    mean_metric,
)
from rlhf_zoo.functional.surrogate import score_function_loss


@dataclass(frozen=True)
class ReinforceConfig:
    """Attributes:
    name: registry name.
    samples: k, completions per prompt (k >= 2 with ``baseline=loo`` is RLOO).
    baseline: none | mean | loo | group_norm (ALGORITHMS.md §4, §7).
    beta: β_RL, the KL coefficient (paper sweep: 0.001, 0.01, 0.1, 1).
    kl_in: ``reward`` (default; the exact gradient of E[r] − β·KL(π‖π_ref)) or ``loss`` (not that
        gradient: with k3 it differentiates KL(π_ref‖π) in expectation; see ``kl_loss``).
    kl_estimator: for ``kl_in=loss``: ``k3`` or ``exact`` (exact-token).
    """

    name: str = "reinforce"
    samples: int = 2
    baseline: str = "loo"
    beta: float = 0.05
    kl_in: str = "reward"
    kl_estimator: str = "k3"


class Reinforce(Algorithm):
    name = "reinforce"
    Config = ReinforceConfig

    def validate(self) -> None:
        check_kl_regularised(self.cfg)

    def needs(self) -> Needs:
        c = self.cfg
        return Needs(
            samples=c.samples,
            ref_logp=True,
            full_logprobs=c.kl_in == "loss" and c.kl_estimator == "exact",
        )

    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        c = self.cfg
        returns = kl_penalised_returns(batch, c.beta, c.kl_in)
        adv = grouped_advantages(returns, batch.group_size, c.baseline, batch.shard)
        pg = score_function_loss(batch.seq("logp"), adv, batch.weights)
        metrics = {"loss/pg": pg.detach(), "train/return": mean_metric(returns, batch.weights)}
        return add_kl_loss(pg, batch, c, metrics), metrics

    def unused_settings(self) -> list[str]:
        return kl_estimator_unused(self.cfg)

    def exact_targets(self) -> dict[str, float]:
        if self.cfg.kl_in == "reward" and self.cfg.beta > 0:
            return {"optimal_beta": self.cfg.beta}
        return {}
