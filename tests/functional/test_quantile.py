"""Property tests of exact and estimated reward quantiles (ALGORITHMS.md §2–§3)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from rlhf_zoo.functional.quantile import (
    exact_quantiles,
    quantile_estimate,
    quantile_estimate_strict,
)
from tests.functional.functional_helpers import (
    F64,
    distinct_rewards,
    prob_vectors,
    py_quantiles,
    t64,
    tied_rewards,
)

FAST = settings(max_examples=60, deadline=None)


@st.composite
def reference_cases(draw):
    """(rewards to query [M], reference rewards [K], reference probabilities [K]), ties frequent."""
    k = draw(st.integers(1, 6))
    m = draw(st.integers(1, 6))
    probs = draw(prob_vectors(k))
    ref_rewards = draw(tied_rewards(k))
    queries = draw(st.lists(st.integers(-1, 4).map(float), min_size=m, max_size=m))
    return queries, ref_rewards, probs


@FAST
@given(reference_cases())
def test_exact_quantiles_against_loop_and_ordering(case):
    queries, ref_rewards, probs = case
    p_le, p_lt = exact_quantiles(t64(queries), t64(ref_rewards), t64(probs))
    assert p_le.shape == p_lt.shape == (len(queries),)
    expected = [py_quantiles(probs, ref_rewards, r) for r in queries]
    torch.testing.assert_close(p_le, t64([e[0] for e in expected]), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(p_lt, t64([e[1] for e in expected]), rtol=1e-12, atol=1e-14)
    assert (p_lt <= p_le).all()
    assert (p_lt >= 0).all() and (p_le <= 1 + 1e-12).all()
    # p_≤ − p_< is the reference mass of the query's own reward value
    for i, r in enumerate(queries):
        tie_mass = sum(p for p, rr in zip(probs, ref_rewards, strict=True) if rr == r)
        assert float(p_le[i] - p_lt[i]) == pytest.approx(tie_mass, abs=1e-12)


@FAST
@given(reference_cases())
def test_exact_quantiles_monotone_in_reward(case):
    queries, ref_rewards, probs = case
    q = t64(sorted(queries))
    p_le, p_lt = exact_quantiles(q, t64(ref_rewards), t64(probs))
    assert (p_le[1:] >= p_le[:-1]).all()
    assert (p_lt[1:] >= p_lt[:-1]).all()
    # strictly larger reward: its p_< is at least the smaller one's p_≤
    for i in range(len(q) - 1):
        if q[i + 1] > q[i]:
            assert p_lt[i + 1] >= p_le[i] - 1e-12


@FAST
@given(reference_cases())
def test_p_le_of_the_maximum_is_one(case):
    _, ref_rewards, probs = case
    top = max(ref_rewards)
    p_le, p_lt = exact_quantiles(t64([top, top + 1.0]), t64(ref_rewards), t64(probs))
    torch.testing.assert_close(p_le, t64([1.0, 1.0]), rtol=0, atol=1e-12)
    torch.testing.assert_close(p_lt[1], t64(1.0), rtol=0, atol=1e-12)
    p_le_min, p_lt_min = exact_quantiles(t64([min(ref_rewards) - 1.0]), t64(ref_rewards), t64(probs))
    assert float(p_le_min) == 0.0 and float(p_lt_min) == 0.0


@FAST
@given(st.integers(1, 3), st.integers(1, 5), st.integers(1, 6), st.data())
def test_exact_quantiles_batched(b, m, k, data):
    queries = [data.draw(st.lists(st.integers(0, 3).map(float), min_size=m, max_size=m)) for _ in range(b)]
    refs = [data.draw(tied_rewards(k)) for _ in range(b)]
    probs = [data.draw(prob_vectors(k)) for _ in range(b)]
    p_le, p_lt = exact_quantiles(t64(queries), t64(refs), t64(probs))
    assert p_le.shape == (b, m)
    for i in range(b):
        row_le, row_lt = exact_quantiles(t64(queries[i]), t64(refs[i]), t64(probs[i]))
        torch.testing.assert_close(p_le[i], row_le, rtol=0, atol=1e-15)
        torch.testing.assert_close(p_lt[i], row_lt, rtol=0, atol=1e-15)


@st.composite
def estimate_cases(draw, ties: bool = True):
    """Batched (rewards [B, M], reference rewards [B, k])."""
    b = draw(st.integers(1, 3))
    m = draw(st.integers(1, 5))
    k = draw(st.integers(1, 8))
    make = tied_rewards if ties else distinct_rewards
    rewards = [draw(make(m)) for _ in range(b)]
    refs = [draw(make(k)) for _ in range(b)]
    return rewards, refs


@FAST
@given(estimate_cases())
def test_quantile_estimate_matches_loop_and_range(case):
    rewards, refs = case
    k = len(refs[0])
    est = quantile_estimate(t64(rewards), t64(refs))
    assert est.dtype == F64 and est.shape == (len(rewards), len(rewards[0]))
    expected = []
    for row_r, row_ref in zip(rewards, refs, strict=True):
        out_row = []
        for r in row_r:
            count = 0
            for rr in row_ref:
                if rr <= r:
                    count += 1
            out_row.append((1 + count) / (k + 1))
        expected.append(out_row)
    torch.testing.assert_close(est, t64(expected), rtol=0, atol=1e-15)
    assert (est >= 1 / (k + 1) - 1e-15).all() and (est <= 1 + 1e-15).all()
    strict = quantile_estimate_strict(t64(rewards), t64(refs))
    assert (strict <= est).all()
    assert (strict >= 1 / (k + 1) - 1e-15).all()


@FAST
@given(estimate_cases(ties=False))
def test_strict_equals_non_strict_without_ties(case):
    rewards, refs = case
    flat_refs = {x for row in refs for x in row}
    assume(not any(r in flat_refs for row in rewards for r in row))
    r, ref = t64(rewards), t64(refs)
    assert torch.equal(quantile_estimate_strict(r, ref), quantile_estimate(r, ref))


def test_quantile_estimate_extremes():
    ref = t64([[0.0, 1.0, 2.0, 3.0]])
    est = quantile_estimate(t64([[-5.0, 3.0, 1.0]]), ref)
    torch.testing.assert_close(est, t64([[1 / 5, 1.0, 3 / 5]]))
    strict = quantile_estimate_strict(t64([[-5.0, 3.0, 1.0]]), ref)
    torch.testing.assert_close(strict, t64([[1 / 5, 4 / 5, 2 / 5]]))


def test_exact_quantiles_of_a_reference_without_mass_are_zero_not_nan():
    """A batched reference row whose probabilities are all 0 (a padded row) has nothing at or below any reward:
    p_≤ = p_< = 0 there, finite, and the other rows are as if it were absent."""
    ref_rewards = t64([[0.0, 1.0], [0.0, 1.0]])
    ref_probs = t64([[0.0, 0.0], [0.25, 0.75]])
    p_le, p_lt = exact_quantiles(t64([[0.5, 1.0], [0.5, 1.0]]), ref_rewards, ref_probs)
    assert torch.equal(p_le, t64([[0.0, 0.0], [0.25, 1.0]]))
    assert torch.equal(p_lt, t64([[0.0, 0.0], [0.25, 0.25]]))
