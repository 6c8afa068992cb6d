"""Rewards that BOND and J-BOND derive from the proxy reward (ALGORITHMS.md §4, §6).

- BOND's backward term is KL-regularised RL with reward r_BOND(y) = log p_≤(y) and coefficient
  β_BOND = 1/(N−1) (paper eq. 8).
- J-BOND (paper §5, eq. 17): r_J(y) = −log 16 if r(y) < min(r(y'_1), r(y'_2)), else 0, with y'_1,
  y'_2 two anchor samples; strict "<", so ties are not penalised. Its mean is
  −log 16·(1 − p_≤)², which matches log p_≤ at p_≤ = ½ and p_≤ = 1.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

JBOND_PENALTY = math.log(16.0)


def bond_return(log_quantile: Tensor, logp: Tensor, ref_logp: Tensor, n: int, log_b: Tensor | None = None) -> Tensor:
    """(N−1)·[log p_≤(y) − β_BOND·(log π(y) − log π_ref(y))] with β_BOND = 1/(N−1).

    All inputs are sequence-level [N]. This is (N−1) times the paper's regularised reward, i.e.
    log π_BoN(y) − log π(y) up to log B(y): the (N−1) factor is kept, not folded into the
    learning rate. ``log_b`` (optional, [N]) adds log B(y) back: then the score-function gradient
    equals ∇KL(π ‖ π_BoN) exactly; without it (the paper's choice) it differs by the gradient of
    E_π[log B], which vanishes when B is constant (a continuous reward, where B = N).
    """
    if n < 2:
        raise ValueError("BOND's backward term needs n >= 2 (β_BOND = 1/(n−1))")
    out = (n - 1) * log_quantile - (logp - ref_logp)
    return out if log_b is None else out + log_b


def jbond_reward(rewards: Tensor, anchor_rewards: Tensor) -> Tensor:
    """r_J = −log 16 where r(y) < min of its two anchor rewards, else 0. [..., ], [..., 2] → [...]."""
    if anchor_rewards.shape[-1] != 2 or anchor_rewards.shape[:-1] != rewards.shape:
        raise ValueError(
            f"anchor_rewards must be [..., 2] matching rewards {tuple(rewards.shape)}, "
            f"got {tuple(anchor_rewards.shape)}"
        )
    lost = rewards < anchor_rewards.min(-1).values
    return torch.where(lost, torch.full_like(rewards, -JBOND_PENALTY), torch.zeros_like(rewards))
