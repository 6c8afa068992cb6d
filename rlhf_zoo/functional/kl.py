"""KL estimators between a policy π and a reference π_ref (ALGORITHMS.md §1).

Shapes: ``N`` sequences, ``T`` completion positions, ``V`` vocabulary entries.
``logp`` and ``ref_logp`` are per-token log-probabilities of the *sampled* tokens, shape
``[N, T]``; ``response_mask`` is ``[N, T]`` with 1 on completion tokens and 0 on padding.
All estimators return one value per sequence (shape ``[N]``), in nats. They are estimators of
the sequence-level KL(π ‖ π_ref) when the sequences are drawn from π:

- k1 = log π(y) − log π_ref(y): unbiased, can be negative for one sample;
- k2 = ½ (log π(y) − log π_ref(y))²: biased, ≥ 0;
- k3 = ρ − 1 − log ρ, ρ = π_ref/π: unbiased, ≥ 0; per token by default (summed over tokens);
- exact-token: Σ_t KL(π(·|x, y<t) ‖ π_ref(·|x, y<t)), from full-vocabulary log-probs: unbiased,
  lowest variance, and the KL every rlhf_zoo table reports.

Nothing here clamps: a negative k1 mean is reported as it is.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _check_pair(a: Tensor, b: Tensor, mask: Tensor) -> None:
    if a.shape != b.shape or a.shape != mask.shape:
        raise ValueError(f"shape mismatch: {tuple(a.shape)}, {tuple(b.shape)}, mask {tuple(mask.shape)}")


def masked_sum(x: Tensor, mask: Tensor, dim: int = -1) -> Tensor:
    """Σ over ``dim`` of ``x`` where ``mask`` is set; masked entries may hold anything (even inf)."""
    return torch.where(mask.bool(), x, torch.zeros((), dtype=x.dtype, device=x.device)).sum(dim)


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``x`` over the entries where ``mask`` is set (all dims when ``dim`` is None)."""
    m = mask.to(x.dtype)
    x = torch.where(mask.bool(), x, torch.zeros((), dtype=x.dtype, device=x.device))
    if dim is None:
        return x.sum() / m.sum().clamp_min(1)
    return x.sum(dim) / m.sum(dim).clamp_min(1)


def expectation(x: Tensor, weights: Tensor | None = None) -> Tensor:
    """E[x] over the rows of ``x`` [N]: the sample mean, or Σ w·x under expectation weights [N] (the
    testbed enumerates completions with weights π(y) instead of sampling). The weights carry no
    gradient: they are the distribution the expectation is taken under, not a function of π here."""
    if weights is None:
        return x.mean()
    if weights.shape != x.shape:
        raise ValueError(f"weights {tuple(weights.shape)} vs values {tuple(x.shape)}")
    return (weights.detach() * x).sum()


def chosen_logprobs(logprobs: Tensor, ids: Tensor) -> Tensor:
    """The log-prob of each chosen token from full-vocabulary log-probs: [..., V] and ids [...] → [...].
    Padding ids outside [0, V) are clamped (their positions are masked by the caller)."""
    return logprobs.gather(-1, ids.clamp(0, logprobs.shape[-1] - 1)[..., None]).squeeze(-1)


def sequence_logp(token_logp: Tensor, response_mask: Tensor) -> Tensor:
    """log π(y) = Σ_t log π(y_t | x, y<t) over the completion's tokens. [N, T] → [N]."""
    return masked_sum(token_logp, response_mask)


def k1(logp: Tensor, ref_logp: Tensor, response_mask: Tensor) -> Tensor:
    """k1 = log π(y) − log π_ref(y), summed over the completion. [N, T] ×2 → [N]."""
    _check_pair(logp, ref_logp, response_mask)
    return masked_sum(logp - ref_logp, response_mask)


def k2(logp: Tensor, ref_logp: Tensor, response_mask: Tensor) -> Tensor:
    """k2 = ½ (log π(y) − log π_ref(y))² at sequence level. [N, T] ×2 → [N]."""
    return 0.5 * k1(logp, ref_logp, response_mask) ** 2


def k3(logp: Tensor, ref_logp: Tensor, response_mask: Tensor, per_token: bool = True) -> Tensor:
    """k3 = ρ − 1 − log ρ with ρ = π_ref/π. [N, T] ×2 → [N].

    ``per_token=True`` (the usual choice) sums the per-token values
    ρ_t − 1 − log ρ_t, ρ_t = π_ref(y_t|·)/π(y_t|·); each has expectation KL_t under π, so the sum
    is unbiased for the sequence KL. ``per_token=False`` applies the formula once to the
    sequence ratio π_ref(y)/π(y) (also unbiased, higher variance).

    As a *value* it estimates KL(π ‖ π_ref). As a *loss* (differentiated through log π with y ~ π held
    fixed) its gradient is (1 − ρ)·∇log π, whose expectation is ∇KL(π_ref ‖ π), the reverse direction
    (ALGORITHMS.md §1; Tang & Munos 2025, arXiv 2506.09477).
    """
    _check_pair(logp, ref_logp, response_mask)
    if per_token:
        log_ratio = ref_logp - logp
        return masked_sum(torch.expm1(log_ratio) - log_ratio, response_mask)
    log_ratio = -k1(logp, ref_logp, response_mask)
    return torch.expm1(log_ratio) - log_ratio


def exact_token_kl(logprobs: Tensor, ref_logprobs: Tensor, response_mask: Tensor) -> Tensor:
    """Σ_t KL(π(·|x,y<t) ‖ π_ref(·|x,y<t)) over the visited prefixes. [N, T, V] ×2 → [N].

    ``logprobs``/``ref_logprobs`` are full-vocabulary log-softmax outputs at each completion
    position. Entries where π has zero mass contribute 0 (0·log 0 = 0).
    """
    if logprobs.shape != ref_logprobs.shape or logprobs.shape[:-1] != response_mask.shape:
        raise ValueError(
            f"shape mismatch: {tuple(logprobs.shape)}, {tuple(ref_logprobs.shape)}, mask {tuple(response_mask.shape)}"
        )
    p = logprobs.exp()
    per_pos = torch.where(p > 0, p * (logprobs - ref_logprobs), torch.zeros_like(p)).sum(-1)
    return masked_sum(per_pos, response_mask)


def categorical_kl(p: Tensor, q: Tensor) -> Tensor:
    """KL(p ‖ q) = Σ p log(p/q) over the last dimension of two probability tensors [..., K] → [...].

    Terms with p = 0 are 0; a p > 0 where q = 0 gives +inf (the KL is infinite, not clamped).
    """
    if p.shape != q.shape:
        raise ValueError(f"shape mismatch: {tuple(p.shape)} vs {tuple(q.shape)}")
    terms = torch.where(p > 0, p * (torch.log(p) - torch.log(q)), torch.zeros_like(p))
    return terms.sum(-1)
