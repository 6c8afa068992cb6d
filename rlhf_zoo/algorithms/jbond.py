"""J-BOND (Sessa et al., 2024, arXiv 2407.14622, §5, Algorithm 2; ALGORITHMS.md §6).

Per prompt and step: policy samples y ~ π (one in the paper), two anchor samples y'_1, y'_2 ~ π_anchor.

1. Forward term: a likelihood step on the better anchor sample, an exact Best-of-2(π_anchor) draw.
2. Reward: r_J(y) = −log 16 if r(y) < min(r(y'_1), r(y'_2)) else 0 (strict: ties not penalised).
3. Return: R = r_J(y) − (log π(y) − log π_anchor(y)) (coefficient 1 = β_BOND for n = 2); baseline b
   leave-one-out over the prompt's other samples, or over the batch with one sample per prompt.
4. Loss, with an extra KL to the anchor of weight γ ≥ 0:

       L = (1 − β)·[−log π(y'_best)] − log π(y)·sg[β·(R − b) − γ·(log π(y) − log π_anchor(y))]

5. After every optimiser step: θ_anchor ← (1 − η)·θ_anchor + η·θ (EMA; paper η = 0.02).

Deviations and choices:
- **Sign of the γ term** (ALGORITHMS.md §6.4): Algorithm 2 as printed makes the extra KL term push
  π *away* from the anchor; eq. 19 and Fig. 6 (larger γ, slower drift) need it to pull π *towards*
  the anchor, which is what the loss above does. A test shows that raising γ lowers KL(π ‖ π_anchor).
- log π(y) in R and in the γ term is the sampling-time value (no gradient): both KL terms are in the
  reward, as the loss above has them, and there is no ``kl_in=loss`` (ALGORITHMS.md §1).
- ``eta=1`` makes the anchor a hard swap every step; ``swap_period=M > 0`` replaces the EMA by a
  hard swap every M steps (to compare EMA against hard swaps, paper Fig. 5).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from rlhf_zoo.algorithms.base import Algorithm, Batch, Needs
from rlhf_zoo.algorithms.common import (
    add_forward_term,
    check_baseline,
    grouped_advantages,
    mean_metric,
    set_but_unused,
)
from rlhf_zoo.functional.rewards import jbond_reward
from rlhf_zoo.functional.surrogate import score_function_loss


@dataclass(frozen=True)
class JBondConfig:
    """Attributes:
    name: registry name.
    beta: weight β of the backward (policy-gradient) term; 1 − β on the forward SFT term (paper 0.5).
    gamma: γ ≥ 0, extra KL pull towards the anchor (paper sweep 0, 0.5, 1, 2).
    eta: EMA rate η of the anchor (paper 0.02).
    swap_period: 0 = EMA every step; M > 0 = hard swap every M steps instead.
    samples: policy samples per prompt (paper: 1).
    baseline: loo (default) | mean | none | group_norm.
    """

    name: str = "jbond"
    beta: float = 0.5
    gamma: float = 0.0
    eta: float = 0.02
    swap_period: int = 0
    samples: int = 1
    baseline: str = "loo"


class JBond(Algorithm):
    name = "jbond"
    Config = JBondConfig

    def validate(self) -> None:
        c = self.cfg
        if not 0.0 <= c.beta <= 1.0:
            raise ValueError("beta must lie in [0, 1]")
        if c.gamma < 0:
            raise ValueError("gamma must be >= 0")
        if not 0.0 <= c.eta <= 1.0:
            raise ValueError("eta must lie in [0, 1]")
        if c.samples < 1:
            raise ValueError("samples must be >= 1")
        if c.swap_period < 0:
            raise ValueError("swap_period must be >= 0")
        check_baseline(c.baseline, c.samples)

    def needs(self) -> Needs:
        return Needs(
            samples=self.cfg.samples,
            anchor_logp=True,
            base="anchor",
            base_samples=2,
            target="fresh",
        )

    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        c = self.cfg
        batch.require("base_rewards")
        anchor_rewards = batch.base_rewards.repeat_interleave(batch.group_size, dim=0)  # [N, 2]
        r_j = jbond_reward(batch.rewards, anchor_rewards)
        log_ratio = batch.seq("old_logp") - batch.seq("anchor_logp")
        returns = r_j - log_ratio
        adv = grouped_advantages(returns, batch.group_size, c.baseline, batch.shard)
        coef = c.beta * adv - c.gamma * log_ratio
        pg = score_function_loss(batch.seq("logp"), coef, batch.weights)
        metrics = {
            "loss/pg": pg.detach(),
            "jbond/reward": mean_metric(r_j, batch.weights),
            "jbond/kl_anchor_k1": mean_metric(log_ratio, batch.weights),
            "train/return": mean_metric(returns, batch.weights),
        }
        total = add_forward_term(pg, c.beta, batch, metrics)
        return total, metrics

    def unused_settings(self) -> list[str]:
        c = self.cfg
        if c.swap_period == 0:
            return []
        return set_but_unused(
            c,
            "eta",
            f"with algo.swap_period={c.swap_period}: the anchor is set to π every "
            f"{c.swap_period} steps, not moved towards it by η",
        )

    def after_step(self, policy, step: int) -> None:
        if self.cfg.swap_period > 0:
            if step % self.cfg.swap_period == 0:
                policy.update_anchor(1.0)
        else:
            policy.update_anchor(self.cfg.eta)
