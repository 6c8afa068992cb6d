"""Policy-gradient surrogate losses (ALGORITHMS.md §4, §7).

Both losses are written in *ratio form* so that their values agree as well as their gradients:

- :func:`score_function_loss`: L = −E[A · π(y)/sg(π(y))]. Its value is −E[A] and its gradient
  −E[A·∇log π(y)] (the REINFORCE / score-function estimator, Williams 1992).
- :func:`clipped_surrogate_loss` (PPO, Schulman et al. 2017, without a critic): per token
  ρ_t = π(y_t|·)/π_old(y_t|·); a sequence's objective is the first-order expansion of its
  sequence ratio Π_t ρ_t ≈ 1 + Σ_t (ρ_t − 1), clipped per token as in PPO:

      S(y) = A + Σ_t min((ρ_t − 1)·A, (clip(ρ_t, 1−ε, 1+ε) − 1)·A),   L = −E[S].

  With ρ ≡ 1 (one epoch, on-policy) S = A and ∇S = A·Σ_t ∇log π(y_t|·) = A·∇log π(y): equal to the
  score-function loss in value and gradient. Where a token's clip is active its gradient is 0.

The stop-gradient is explicit (``detach``). ``weights`` ([N], optional) turn the sample mean into a
weighted sum; the exact testbed uses them to replace sampling by enumeration (weights = π(y)).
"""

from __future__ import annotations

import torch
from torch import Tensor

from rlhf_zoo.functional.kl import expectation as _expect
from rlhf_zoo.functional.kl import masked_sum


def score_function_loss(seq_logp: Tensor, adv: Tensor, weights: Tensor | None = None) -> Tensor:
    """−E[A · exp(log π(y) − sg(log π(y)))]. ``seq_logp`` [N] (with grad), ``adv`` [N] (no grad)."""
    if seq_logp.shape != adv.shape:
        raise ValueError(f"seq_logp {tuple(seq_logp.shape)} vs adv {tuple(adv.shape)}")
    ratio = torch.exp(seq_logp - seq_logp.detach())
    return -_expect(ratio * adv.detach(), weights)


def clipped_surrogate_loss(
    logp: Tensor,
    old_logp: Tensor,
    adv: Tensor,
    response_mask: Tensor,
    clip_eps: float = 0.2,
    weights: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """PPO's clipped surrogate with per-token ratios and a sequence-level advantage.

    Args:
        logp: [N, T] per-token log π (with grad).
        old_logp: [N, T] per-token log π_old at sampling time (no grad).
        adv: [N] sequence-level advantages (no grad).
        response_mask: [N, T].
        clip_eps: ε of the clip range [1 − ε, 1 + ε].
        weights: optional [N] expectation weights.
    Returns:
        (loss, clip_fraction): the scalar loss and the fraction of completion tokens clipped.
    """
    if logp.shape != old_logp.shape or logp.shape != response_mask.shape:
        raise ValueError("logp, old_logp and response_mask must have the same [N, T] shape")
    if adv.shape != logp.shape[:1]:
        raise ValueError(f"adv must be [N], got {tuple(adv.shape)}")
    a = adv.detach().unsqueeze(-1)
    ratio = torch.exp(logp - old_logp.detach())
    clipped = ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps)
    unclipped_term = (ratio - 1.0) * a
    clipped_term = (clipped - 1.0) * a
    per_token = torch.minimum(unclipped_term, clipped_term)
    seq = adv.detach() + masked_sum(per_token, response_mask)
    is_clipped = (clipped_term < unclipped_term) & response_mask.bool()
    clip_fraction = is_clipped.sum() / response_mask.sum().clamp_min(1)
    return -_expect(seq, weights), clip_fraction.detach()
