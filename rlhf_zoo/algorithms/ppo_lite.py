"""PPO-lite: PPO's clipped surrogate without a critic (Schulman et al., 2017), GRPO as a config.

Per rollout batch (ALGORITHMS.md §7): k samples per prompt, a sequence-level advantage from a group
baseline, then ``epochs`` passes of ``minibatches`` updates each on

    S(y) = A + Σ_t min((ρ_t − 1)·A, (clip(ρ_t, 1−ε, 1+ε) − 1)·A),   ρ_t = π(y_t|·)/π_old(y_t|·),
    L    = −E[S(y)],

where R = r − β_RL·(log π_old(y) − log π_ref(y)) (KL in the reward, the default) and A = R − b.

Deviations and choices:
- No value network: the baseline is leave-one-out (default) or group-normalised
  (``baseline=group_norm``, as in GRPO, Shao et al. 2024).
- S is the first-order expansion of the sequence ratio Π_t ρ_t, clipped per token. With one epoch
  (ρ ≡ 1) it equals REINFORCE's ratio-form loss in value and gradient (a property test checks it).
- Returns and advantages use π_old (the sampling-time log-probs), so they stay fixed across the
  epochs of one rollout batch, as in PPO.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
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
from rlhf_zoo.functional.surrogate import clipped_surrogate_loss
from rlhf_zoo.shard import Shard


@dataclass(frozen=True)
class PPOLiteConfig:
    """Attributes:
    name: registry name.
    samples: k, completions per prompt.
    baseline: loo (default) | group_norm (GRPO) | mean | none. ``loo`` and ``group_norm`` are per prompt;
        ``mean`` (and ``loo`` with ``samples=1``) averages over the rows of the minibatch being updated,
        which is the step's batch only with ``minibatches=1``.
    beta: β_RL, the KL coefficient.
    kl_in: ``reward`` (default: the gradient of E[r] − β·KL(π‖π_ref)) or ``loss`` (β·KL estimate added to
        the loss and differentiated in place; with k3 that differentiates KL(π_ref‖π) in expectation,
        see :func:`rlhf_zoo.algorithms.common.kl_loss`).
    kl_estimator: ``k3`` or ``exact`` (exact-token) for ``kl_in=loss``.
    clip_eps: ε of the clip range.
    epochs: passes over each rollout batch.
    minibatches: minibatches per pass, split by prompt: at most ``train.batch_prompts`` (a value set above
        it takes one prompt per minibatch, and the run says so in a warning line).
    """

    name: str = "ppo_lite"
    samples: int = 4
    baseline: str = "loo"
    beta: float = 0.05
    kl_in: str = "reward"
    kl_estimator: str = "k3"
    clip_eps: float = 0.2
    epochs: int = 2
    minibatches: int = 2


class PPOLite(Algorithm):
    name = "ppo_lite"
    Config = PPOLiteConfig

    def validate(self) -> None:
        c = self.cfg
        check_kl_regularised(c)
        if c.epochs < 1 or c.minibatches < 1:
            raise ValueError("epochs and minibatches must be >= 1")
        if c.clip_eps <= 0:
            raise ValueError("clip_eps must be > 0")

    def needs(self) -> Needs:
        c = self.cfg
        return Needs(
            samples=c.samples,
            ref_logp=True,
            full_logprobs=c.kl_in == "loss" and c.kl_estimator == "exact",
            epochs=c.epochs,
            minibatches=c.minibatches,
        )

    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        c = self.cfg
        returns = kl_penalised_returns(batch, c.beta, c.kl_in)
        adv = grouped_advantages(returns, batch.group_size, c.baseline, batch.shard)
        pg, clip_frac = clipped_surrogate_loss(
            batch.logp, batch.old_logp, adv, batch.response_mask, c.clip_eps, batch.weights
        )
        if batch.shard is not None and batch.shard.world > 1:
            clip_frac = _global_fraction(clip_frac, batch.response_mask, batch.shard)
        metrics = {
            "loss/pg": pg.detach(),
            "train/return": mean_metric(returns, batch.weights),
            "ppo/clip_fraction": clip_frac,
        }
        return add_kl_loss(pg, batch, c, metrics), metrics

    def unused_settings(self) -> list[str]:
        return kl_estimator_unused(self.cfg)

    def exact_targets(self) -> dict[str, float]:
        if self.cfg.kl_in == "reward" and self.cfg.beta > 0:
            return {"optimal_beta": self.cfg.beta}
        return {}


def _global_fraction(local: Tensor, response_mask: Tensor, shard: Shard) -> Tensor:
    """The clipped fraction of the global minibatch's tokens from each process's fraction: its clipped
    count is recovered exactly (fraction × tokens, rounded: both are integers below 2^24), and the
    counts are summed over processes, so the result equals one process's fraction bit for bit."""
    tokens = response_mask.sum().clamp_min(1).to(local.dtype)
    counts = torch.stack([(local * tokens).round(), tokens])[None]
    clipped, total = shard.gather(counts).sum(0)
    return clipped / total
