"""Reward quantiles p_≤(y) = P_{y'~π_ref}[r(y') ≤ r(y)] (ALGORITHMS.md §2–§3, paper §4.1).

Two forms:

- :func:`exact_quantiles` computes p_≤ and p_< from a reference distribution given as
  probabilities over an enumerable set of outcomes (the exact testbed);
- :func:`quantile_estimate` is the Monte-Carlo estimator of §3 from k reference rewards:
  p̂_≤(y) = (1 + #{i : r(y_i) ≤ r(y)}) / (k + 1).

**Decision** (ALGORITHMS.md §3): the "+1" counts y itself, so p̂ ∈ [1/(k+1), 1] and log p̂ is
finite; the paper's plain average can be 0.
"""

from __future__ import annotations

import torch
from torch import Tensor


def exact_quantiles(rewards: Tensor, ref_rewards: Tensor, ref_probs: Tensor) -> tuple[Tensor, Tensor]:
    """Exact (p_≤, p_<) of each reward against a discrete reference distribution.

    Args:
        rewards: [..., M] rewards whose quantiles are wanted.
        ref_rewards: [..., K] the reward of each reference outcome.
        ref_probs: [..., K] π_ref of each outcome (sums to 1 over K).
    Returns:
        (p_le, p_lt), each [..., M]: Σ_j π_ref(j)·1[r_j ≤ r] and Σ_j π_ref(j)·1[r_j < r], divided by Σ_j π_ref(j)
        and clamped to [0, 1]. A distribution computed in floating point sums to 1 only to its last bits
        (1 + 1e-7 in float32): the best outcome's p_≤ is then above 1, and p_≤^(N−1) of Best-of-N (Theorem 1)
        grows without bound for large N (N = 10⁷ gave a win rate of 1.7).
    """
    if ref_rewards.shape != ref_probs.shape:
        raise ValueError(f"ref_rewards {tuple(ref_rewards.shape)} vs ref_probs {tuple(ref_probs.shape)}")
    r = rewards.unsqueeze(-1)  # [..., M, 1]
    rr = ref_rewards.unsqueeze(-2)  # [..., 1, K]
    w = ref_probs.unsqueeze(-2)
    total = ref_probs.sum(-1, keepdim=True)
    total = torch.where(total > 0, total, torch.ones_like(total))
    p_le = (torch.where(rr <= r, w, torch.zeros_like(w)).sum(-1) / total).clamp(0, 1)
    p_lt = (torch.where(rr < r, w, torch.zeros_like(w)).sum(-1) / total).clamp(0, 1)
    return p_le, p_lt


def quantile_estimate(rewards: Tensor, ref_rewards: Tensor) -> Tensor:
    """p̂_≤(y) = (1 + #{i : r(y_i) ≤ r(y)}) / (k + 1). [..., M], [..., k] → [..., M]."""
    k = ref_rewards.shape[-1]
    count = (ref_rewards.unsqueeze(-2) <= rewards.unsqueeze(-1)).sum(-1)
    return (1 + count).to(rewards.dtype if rewards.is_floating_point() else torch.float32) / (k + 1)


def quantile_estimate_strict(rewards: Tensor, ref_rewards: Tensor) -> Tensor:
    """p̂_<(y) = (1 + #{i : r(y_i) < r(y)}) / (k + 1), the companion of :func:`quantile_estimate`.

    **Decision**: y itself is counted here too, so that p̂_< = p̂_≤ when no reference reward ties
    with r(y). That is the continuous case, where y's own mass is 0 and Theorem 1's B(y) equals N
    (π_BoN = N·p^(N−1)·π_ref, the density of the maximum); ties lower B̂ towards 1.
    """
    k = ref_rewards.shape[-1]
    count = (ref_rewards.unsqueeze(-2) < rewards.unsqueeze(-1)).sum(-1)
    return (1 + count).to(rewards.dtype if rewards.is_floating_point() else torch.float32) / (k + 1)
