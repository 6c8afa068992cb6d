"""The Best-of-N distribution (ALGORITHMS.md §2; paper §3.1, Theorem 1).

Best-of-N draws y_1..y_N i.i.d. from π_ref and returns the one with the highest reward. With
p_≤(y) = P[r(y') ≤ r(y)] and p_<(y) = P[r(y') < r(y)] under π_ref (Theorem 1):

    π_BoN(y) = π_ref(y) · p_≤(y)^(N−1) · B(y),   B(y) = Σ_{i=1..N} (p_<(y)/p_≤(y))^(i−1).

**Decision** (ties): several distinct outcomes with one reward value form a tie group G; ties are
broken uniformly at random among the drawn maxima, so G receives p_≤^N − p_<^N, shared among its
members in proportion to π_ref. Theorem 1 gives exactly that sharing, because
π_ref·p_≤^(N−1)·B = π_ref·(p_≤^N − p_<^N)/(p_≤ − p_<) and p_≤ − p_< = π_ref(G); the geometric
sum is used instead of the ratio so that nothing divides by a vanishing difference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from rlhf_zoo.functional.quantile import exact_quantiles


def _check_n(n: int) -> None:
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")


def bon_B(p_le: Tensor, p_lt: Tensor, n: int) -> Tensor:
    """B(y) = Σ_{i=1..n} (p_</p_≤)^(i−1) ∈ [1, n] (Theorem 1); 1 where p_≤ = 0.

    Summed in closed form, (1 − rⁿ) / (1 − r) for the ratio r = p_</p_≤ < 1 and n where r = 1, so time and
    memory do not grow with n; as expm1(n·log r) / expm1(log r), which keeps full precision where r is close
    to 1 (there 1 − rⁿ cancels). Clamped to [1, n], the range of the sum, against the last bit of rounding."""
    _check_n(n)
    ratio = torch.where(p_le > 0, p_lt / torch.where(p_le > 0, p_le, torch.ones_like(p_le)), torch.zeros_like(p_le))
    log_r = torch.log(ratio)  # −inf where r = 0: expm1 gives −1 / −1 = 1
    geometric = torch.expm1(n * log_r) / torch.expm1(log_r)
    return torch.where(ratio < 1, geometric, torch.full_like(ratio, n)).clamp(1, n)


def bon_probs(ref_probs: Tensor, rewards: Tensor, n: int) -> Tensor:
    """π_BoN over the last dimension of ``ref_probs`` (shape [..., K], batched).

    Args:
        ref_probs: [..., K] π_ref over K distinct outcomes (rows sum to 1).
        rewards: [..., K] the reward of each outcome; equal values are ties, broken uniformly
            at random (mass shared in proportion to π_ref).
        n: the number of draws N ≥ 1.
    Returns:
        [..., K] the exact Best-of-N distribution. N = 1 returns ``ref_probs``.
    """
    _check_n(n)
    if ref_probs.shape != rewards.shape:
        raise ValueError(f"ref_probs {tuple(ref_probs.shape)} vs rewards {tuple(rewards.shape)}")
    p_le, p_lt = exact_quantiles(rewards, rewards, ref_probs)
    return ref_probs * p_le ** (n - 1) * bon_B(p_le, p_lt, n)


def bon_closed_form(p_le: Tensor, p_lt: Tensor, n: int) -> Tensor:
    """Mass that Best-of-N gives to a whole tie group: p_≤^N − p_<^N (the closed form of §2)."""
    _check_n(n)
    return p_le**n - p_lt**n


def bon_kl_bound(n: int) -> float:
    """log N − (N−1)/N: the upper bound on KL(π_BoN ‖ π_ref), attained for a continuous reward."""
    _check_n(n)
    return math.log(n) - (n - 1) / n


def bon_log_ratio(p_le: Tensor, p_lt: Tensor, n: int) -> Tensor:
    """log π_BoN(y) − log π_ref(y) = (N−1)·log p_≤(y) + log B(y).

    Its mean over y ~ π_BoN is KL(π_BoN ‖ π_ref); with estimated quantiles it is the
    Best-of-N KL estimate of ALGORITHMS.md §7.
    """
    return (n - 1) * torch.log(p_le) + torch.log(bon_B(p_le, p_lt, n))


def best_of_n_select(rewards: Tensor, generator: torch.Generator | Sequence[torch.Generator] | None = None) -> Tensor:
    """Index of the best of N candidates along the last dim, ties broken uniformly at random.

    Args:
        rewards: [..., N] rewards of N candidates.
        generator: optional torch.Generator for the tie-breaking noise, or, for rewards [B, N], one
            generator per row (row i's noise is then drawn from generator i alone).
    Returns:
        [...] long indices into the last dimension.
    """
    best = rewards.max(-1, keepdim=True).values
    is_best = rewards == best
    if generator is None or isinstance(generator, torch.Generator):
        noise = torch.rand(rewards.shape, generator=generator, device=rewards.device if generator is None else None)
    else:
        gens = list(generator)
        if rewards.dim() != 2 or len(gens) != rewards.shape[0]:
            raise ValueError(f"one generator per row needs rewards [B, N] with B = {len(gens)}")
        rows = [torch.rand(rewards.shape[1], generator=g) for g in gens]
        noise = torch.stack(rows) if rows else torch.zeros(rewards.shape)
    noise = noise.to(rewards.device)
    return torch.where(is_best, noise, torch.full_like(noise, -1.0)).argmax(-1)


def bon_pool_weights(m: int, n: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """Weights of the ranks of a pool of m samples in the Best-of-n estimate (ALGORITHMS.md §7).

    w_i = C(i−1, n−1) / C(m, n), i = 1..m (rank 1 the lowest reward): the probability that the best of
    n draws *without replacement* from the pool is the sample ranked i (Nakano et al. 2021, App. I;
    Gao et al. 2022). [m], summing to 1; zero below rank n.
    """
    _check_n(n)
    if n > m:
        raise ValueError(f"Best-of-{n} needs a pool of at least {n} samples, got {m}")
    i = torch.arange(1, m + 1, dtype=torch.float64)
    log_w = torch.full((m,), -math.inf, dtype=torch.float64)
    ok = i >= n
    # log C(i−1, n−1) − log C(m, n), in log space so that m = 64 does not overflow
    log_w[ok] = (torch.lgamma(i[ok]) - math.lgamma(n) - torch.lgamma(i[ok] - n + 1)) - (
        math.lgamma(m + 1) - math.lgamma(n + 1) - math.lgamma(m - n + 1)
    )
    return log_w.exp().to(dtype)


def bon_pool_mean(rewards: Tensor, values: Tensor, n: int) -> Tensor:
    """E[value of the Best-of-n] from one pool of m samples per prompt, for any n ≤ m (ALGORITHMS.md §7).

    Args:
        rewards: [..., m] the proxy rewards that select (the pool of one prompt per row).
        values: [..., m] what is averaged: the gold reward, the proxy reward itself, the length.
        n: draws per Best-of-n output.
    Returns:
        [...] Σ_i w_i · v_(i) with :func:`bon_pool_weights`, the samples sorted by reward and tied
        rewards sharing their tie group's mean value (uniform tie-breaking). Unbiased for Best-of-n of
        the distribution the pool was drawn from: the mean of the best of n draws without replacement
        from an i.i.d. pool is distributed as the best of n i.i.d. draws.
    """
    if rewards.shape != values.shape:
        raise ValueError(f"rewards {tuple(rewards.shape)} vs values {tuple(values.shape)}")
    m = rewards.shape[-1]
    w = bon_pool_weights(m, n, torch.float64).to(rewards.device)
    order = torch.sort(rewards, dim=-1, stable=True).indices
    r = rewards.gather(-1, order).to(torch.float64)
    v = values.gather(-1, order).to(torch.float64)
    tie = r[..., :, None] == r[..., None, :]  # [..., m, m]: same reward
    v_shared = (tie.to(torch.float64) * v[..., None, :]).sum(-1) / tie.sum(-1)  # each its group's mean
    return (w * v_shared).sum(-1)


def bon_pool_kl(rewards: Tensor, n: int) -> Tensor:
    """KL(π_BoN ‖ π_ref) estimated from one pool of m reference samples per prompt: [..., m] → [...].

    The plug-in value: the exact KL of Best-of-n of the pool's empirical distribution (each sample
    1/m; equal rewards tie) to that distribution. It is a KL between discrete distributions, so it
    never exceeds the bound log n − (n−1)/n (ALGORITHMS.md §2), which it approaches as the pool grows
    for a continuous reward; with few samples or ties it is lower. Unlike averaging (n−1)·log p̂_≤ +
    log B̂ with p̂ from a few reference samples, its bias is downward, never above the bound.
    """
    _check_n(n)
    m = rewards.shape[-1]
    base = torch.full(rewards.shape, 1.0 / m, dtype=torch.float64, device=rewards.device)
    q = bon_probs(base, rewards.to(torch.float64), n)
    return torch.where(q > 0, q * torch.log(q * m), torch.zeros_like(q)).sum(-1)
