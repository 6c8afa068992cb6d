"""BOND: Best-of-N Distillation (Sessa et al., 2024, arXiv 2407.14622, §3–§4; ALGORITHMS.md §4–§5).

Distil the Best-of-N distribution π_BoN(y) = π_ref(y)·p_≤(y)^(N−1)·B(y) (Theorem 1) into π by
minimising the Jeffreys divergence (paper eq. 11)

    J_β(π ‖ π_BoN) = (1 − β)·KL(π_BoN ‖ π) + β·KL(π ‖ π_BoN).

- Forward term (mode covering): −E_{y~π_BoN}[∇log π(y)]: draw N reference completions, keep the
  best, take a likelihood step on it.
- Backward term (mode seeking): log π_BoN = log π_ref + (N−1)·log p_≤ + log B, so
  KL(π ‖ π_BoN) is RL with reward log p_≤ and β_BOND = 1/(N−1) (paper eq. 8). The gradient is

      −E_{y~π}[∇log π(y)·((N−1)·log p̂_≤(y) − (log π(y) − log π_ref(y)) − b)],

  with a leave-one-out baseline b over the other samples of the same prompt.

Variants as configs: ``beta=1`` is vBoN (backward term only), ``beta=0`` is SFT on Best-of-N
samples (RAFT), ``anchor_period=M > 0`` is iterative BOND (§4.3, Algorithm 1): π_anchor starts at
π_ref, is hard-swapped to π every M steps, and quantiles, targets and the KL term refer to
π_anchor (so after t swaps the target is Best-of-N^t of π_ref).

Deviations and choices:
- The (N−1) factor is *kept* in the backward term, not folded into the learning rate, so that with
  exact quantiles its gradient equals ∇KL(π ‖ π_BoN) exactly (a property test checks this).
- log B(y) is dropped by default, as in the paper. B ∈ [1, N] is constant (= N) only for a continuous
  reward; on a discrete one (the testbed) it varies, and ``log_b=true`` adds log B̂(y), from p_≤ and
  p_<, back into the return: with exact quantiles the gradient is then ∇KL(π ‖ π_BoN) exactly.
- Quantiles: ``exact`` (the testbed's oracle) or ``mc``, the estimator p̂_≤ = (1 + #{r_i ≤ r})/(k+1)
  against k base samples per prompt, drawn once and cached (per anchor version; ALGORITHMS.md §3).
- Forward targets: with ``mc`` quantiles the best of N draws (with replacement) from the same
  cache; with ``exact`` quantiles, the best of N fresh base samples (an exact π_BoN draw).
- The KL term −(log π(y) − log π_ref(y)) is part of the return, sampling-time and without gradient:
  KL in the reward, with its coefficient fixed at 1 = (N−1)·β_BOND. There is no ``kl_in=loss``
  (ALGORITHMS.md §1): a k3 or exact-token KL in the loss would not give ∇KL(π ‖ π_BoN).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from rlhf_zoo.algorithms.base import Algorithm, Batch, Needs
from rlhf_zoo.algorithms.common import (
    add_forward_term,
    check_baseline,
    check_choice,
    grouped_advantages,
    mean_metric,
    set_but_unused,
)
from rlhf_zoo.functional.best_of_n import bon_B
from rlhf_zoo.functional.rewards import bond_return
from rlhf_zoo.functional.surrogate import score_function_loss


@dataclass(frozen=True)
class BondConfig:
    """Attributes:
    name: registry name.
    n: N of Best-of-N (n >= 2).
    beta: Jeffreys weight β ∈ [0, 1] (paper: 0.5; 1 = vBoN, 0 = Best-of-N SFT).
    samples: completions per prompt from π for the backward term.
    baseline: loo (default) | mean | none | group_norm.
    quantiles: auto (exact on a task with an oracle, else mc) | exact | mc.
    k: cached base completions per prompt for ``mc`` quantiles (paper: 16 for training).
    anchor_period: M; 0 = plain BOND against π_ref, M > 0 = iterative BOND with a swap every M steps.
    log_b: add log B(y) of Theorem 1 to the return (the paper drops it; exact gradient when on).
    """

    name: str = "bond"
    n: int = 4
    beta: float = 0.5
    samples: int = 2
    baseline: str = "loo"
    quantiles: str = "auto"
    k: int = 16
    anchor_period: int = 0
    log_b: bool = False


class Bond(Algorithm):
    name = "bond"
    Config = BondConfig

    def validate(self) -> None:
        c = self.cfg
        if c.n < 2:
            raise ValueError("n must be >= 2 for BOND")
        if not 0.0 <= c.beta <= 1.0:
            raise ValueError("beta must lie in [0, 1]")
        for name in ("samples", "k"):
            if getattr(c, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if c.anchor_period < 0:
            raise ValueError("anchor_period must be >= 0")
        check_baseline(c.baseline, c.samples)
        check_choice("quantiles", c.quantiles, ("auto", "exact", "mc"))

    @property
    def iterative(self) -> bool:
        return self.cfg.anchor_period > 0

    def needs(self) -> Needs:
        c = self.cfg
        if c.quantiles == "auto":
            raise ValueError("quantiles=auto must be resolved against the task before training")
        exact = c.quantiles == "exact"
        return Needs(
            samples=c.samples,
            ref_logp=not self.iterative,
            anchor_logp=self.iterative,
            base="anchor" if self.iterative else "ref",
            quantiles="exact" if exact else "mc",
            cache_size=0 if exact else c.k,
            base_samples=c.n if exact else 0,
            target="fresh" if exact else "cache",
            target_n=c.n,
        )

    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        c = self.cfg
        batch.require("quantiles")
        base_seq = batch.seq("anchor_logp" if self.iterative else "ref_logp")
        log_q = torch.log(batch.quantiles)
        log_b = None
        if c.log_b:
            batch.require("quantiles_lt")
            log_b = torch.log(bon_B(batch.quantiles, batch.quantiles_lt, c.n))
        returns = bond_return(log_q, batch.seq("old_logp"), base_seq, c.n, log_b)
        adv = grouped_advantages(returns, batch.group_size, c.baseline, batch.shard)
        backward = score_function_loss(batch.seq("logp"), adv, batch.weights)
        metrics = {
            "loss/pg": backward.detach(),
            "bond/log_quantile": mean_metric(log_q, batch.weights),
            "train/return": mean_metric(returns, batch.weights),
        }
        total = add_forward_term(c.beta * backward, c.beta, batch, metrics)
        return total, metrics

    def unused_settings(self) -> list[str]:
        if self.cfg.quantiles != "exact":
            return []
        return set_but_unused(self.cfg, "k", "with algo.quantiles=exact: no base completions are kept to estimate p_≤")

    def after_step(self, policy, step: int) -> None:
        if self.iterative and step % self.cfg.anchor_period == 0:
            policy.update_anchor(1.0)

    def exact_targets(self) -> dict[str, float]:
        return {} if self.iterative else {"bon_n": self.cfg.n}
