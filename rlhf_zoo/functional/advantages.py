"""Baselines and advantages for score-function estimators (ALGORITHMS.md §4, §7).

Returns are grouped by prompt: ``returns`` has shape [B, k] (B prompts, k samples each).

- ``none``: b = 0.
- ``mean``: b = mean of the whole batch.
- ``loo`` (leave-one-out, RLOO): b_i = mean of the *other* k−1 samples of the same prompt
  (Kool et al., 2019; Ahmadian et al., 2024). With k = 1 there is no other sample of the
  prompt, so b_i is the mean of the other prompts' returns in the batch (still independent of
  y_i, hence unbiased). Leave-one-out advantages sum to zero within each group.
- ``group_norm`` (GRPO, Shao et al., 2024): (R − mean_group) / (std_group + eps); biased, scale-free.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

BaselineKind = Literal["none", "mean", "loo", "group_norm"]
BASELINES: tuple[str, ...] = ("none", "mean", "loo", "group_norm")


def leave_one_out_baseline(returns: Tensor) -> Tensor:
    """b_i = (Σ_j R_j − R_i)/(k − 1) within each row of ``returns`` [B, k]; k = 1 → across rows."""
    if returns.dim() != 2:
        raise ValueError(f"returns must be [B, k], got {tuple(returns.shape)}")
    b, k = returns.shape
    if k >= 2:
        return (returns.sum(-1, keepdim=True) - returns) / (k - 1)
    if b < 2:
        return torch.zeros_like(returns)
    return (returns.sum() - returns) / (b - 1)


def advantages(returns: Tensor, kind: BaselineKind = "loo", eps: float = 1e-6) -> Tensor:
    """A = R − b (or the group-normalised form) for ``returns`` of shape [B, k] → [B, k]."""
    if returns.dim() != 2:
        raise ValueError(f"returns must be [B, k], got {tuple(returns.shape)}")
    if kind == "none":
        return returns
    if kind == "mean":
        return returns - returns.mean()
    if kind == "loo":
        return returns - leave_one_out_baseline(returns)
    if kind == "group_norm":
        if returns.shape[-1] < 2:
            raise ValueError("group_norm needs at least 2 samples per prompt")
        mean = returns.mean(-1, keepdim=True)
        std = returns.std(-1, keepdim=True, unbiased=True)
        return (returns - mean) / (std + eps)
    raise ValueError(f"unknown baseline {kind!r}; known: {', '.join(BASELINES)}")
