"""Shared hypothesis strategies and exact-enumeration helpers for the functional-layer tests.

Test code only. Everything is float64. Imported as
``from tests.functional.functional_helpers import ...``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
from hypothesis import strategies as st

F64 = torch.float64


def t64(x) -> torch.Tensor:
    """A float64 tensor from nested python numbers."""
    return torch.tensor(x, dtype=F64)


# --------------------------------------------------------------------------- strategies


@st.composite
def prob_vectors(draw, k: int, allow_zero: bool = True) -> list[float]:
    """A probability vector of length ``k`` from small integer weights (zeros allowed)."""
    lo = 0 if allow_zero else 1
    w = draw(st.lists(st.integers(lo, 20), min_size=k, max_size=k).filter(lambda v: sum(v) > 0))
    s = sum(w)
    return [x / s for x in w]


def tied_rewards(k: int) -> st.SearchStrategy[list[float]]:
    """Rewards from a small integer set, so that ties are frequent."""
    return st.lists(st.integers(0, 3).map(float), min_size=k, max_size=k)


def distinct_rewards(k: int) -> st.SearchStrategy[list[float]]:
    """Pairwise distinct finite rewards."""
    return st.lists(
        st.floats(-10.0, 10.0, allow_nan=False, allow_infinity=False, width=64),
        min_size=k,
        max_size=k,
        unique=True,
    )


finite_logps = st.floats(-8.0, 0.0, allow_nan=False, allow_infinity=False, width=64)
junk_values = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=64)


# ------------------------------------------------------------------ plain-python references


def py_quantiles(ref_probs: list[float], ref_rewards: list[float], r: float) -> tuple[float, float]:
    """(p_≤, p_<) of reward ``r`` under the discrete reference distribution, by a plain loop."""
    p_le = 0.0
    p_lt = 0.0
    for p, rr in zip(ref_probs, ref_rewards, strict=True):
        if rr <= r:
            p_le += p
        if rr < r:
            p_lt += p
    return p_le, p_lt


def brute_force_bon(ref_probs: list[float], rewards: list[float], n: int) -> list[float]:
    """Best-of-n by enumerating all K^n draw tuples; ties among the maximal *draw positions* are
    broken uniformly at random (each tied position wins with probability 1/#tied)."""
    k = len(ref_probs)
    out = [0.0] * k
    for draws in itertools.product(range(k), repeat=n):
        p = math.prod(ref_probs[j] for j in draws)
        if p == 0.0:
            continue
        best = max(rewards[j] for j in draws)
        winners = [j for j in draws if rewards[j] == best]
        for j in winners:
            out[j] += p / len(winners)
    return out


def py_categorical_kl(p: list[float], q: list[float]) -> float:
    return sum(a * math.log(a / b) for a, b in zip(p, q, strict=True) if a > 0)


# ------------------------------------------------------------------ a tiny autoregressive model


@dataclass
class Enumerated:
    """All completions of a tabular autoregressive model, right-padded, with their probabilities."""

    seqs: list[tuple[int, ...]]
    tokens: torch.Tensor  # [S, T] long, padding = 0
    mask: torch.Tensor  # [S, T] float64, 1 on completion tokens
    logp: torch.Tensor  # [S, T] per-token log π of the sampled token (junk on padding)
    ref_logp: torch.Tensor  # [S, T]
    logprobs: torch.Tensor  # [S, T, V] full-vocabulary log π (junk on padding)
    ref_logprobs: torch.Tensor  # [S, T, V]
    seq_p: torch.Tensor  # [S] π(y)
    seq_q: torch.Tensor  # [S] π_ref(y)


def all_completions(n_regular: int, max_len: int) -> list[tuple[int, ...]]:
    """Every completion over tokens 0..n_regular−1 plus EOS (= n_regular), ending at EOS or at
    the length cap."""
    eos = n_regular
    out: list[tuple[int, ...]] = []

    def rec(prefix: tuple[int, ...]) -> None:
        if len(prefix) == max_len:
            out.append(prefix)
            return
        for tok in range(n_regular + 1):
            if tok == eos:
                out.append(prefix + (tok,))
            else:
                rec(prefix + (tok,))

    rec(())
    return out


def all_prefixes(n_regular: int, max_len: int) -> list[tuple[int, ...]]:
    """Every prefix at which the model emits a token: EOS-free, length 0..max_len−1."""
    return [p for length in range(max_len) for p in itertools.product(range(n_regular), repeat=length)]


def enumerate_tabular_lm(
    seed: int, scale: float, n_regular: int = 3, max_len: int = 3, junk: float = 7.25
) -> Enumerated:
    """Random tabular π and π_ref (one logit row per prefix), every completion enumerated.

    Padding positions are filled with ``junk`` (finite, not a log-probability) so that tests also
    check that masked positions do not matter.
    """
    g = torch.Generator().manual_seed(seed)
    prefixes = all_prefixes(n_regular, max_len)
    index = {p: i for i, p in enumerate(prefixes)}
    v = n_regular + 1
    table_pi = torch.log_softmax(scale * torch.randn(len(prefixes), v, generator=g, dtype=F64), -1)
    table_ref = torch.log_softmax(scale * torch.randn(len(prefixes), v, generator=g, dtype=F64), -1)

    seqs = all_completions(n_regular, max_len)
    s = len(seqs)
    tokens = torch.zeros(s, max_len, dtype=torch.long)
    mask = torch.zeros(s, max_len, dtype=F64)
    logp = torch.full((s, max_len), junk, dtype=F64)
    ref_logp = torch.full((s, max_len), -junk, dtype=F64)
    logprobs = torch.full((s, max_len, v), junk, dtype=F64)
    ref_logprobs = torch.full((s, max_len, v), -junk, dtype=F64)
    for i, seq in enumerate(seqs):
        for pos, tok in enumerate(seq):
            row = index[seq[:pos]]
            tokens[i, pos] = tok
            mask[i, pos] = 1.0
            logprobs[i, pos] = table_pi[row]
            ref_logprobs[i, pos] = table_ref[row]
            logp[i, pos] = table_pi[row, tok]
            ref_logp[i, pos] = table_ref[row, tok]
    seq_p = torch.where(mask.bool(), logp, torch.zeros((), dtype=F64)).sum(-1).exp()
    seq_q = torch.where(mask.bool(), ref_logp, torch.zeros((), dtype=F64)).sum(-1).exp()
    return Enumerated(seqs, tokens, mask, logp, ref_logp, logprobs, ref_logprobs, seq_p, seq_q)
