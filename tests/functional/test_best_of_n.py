"""Property tests of the Best-of-N distribution (ALGORITHMS.md §2; paper Theorem 1)."""

from __future__ import annotations

import math
from itertools import combinations, product

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlhf_zoo.functional.best_of_n import (
    best_of_n_select,
    bon_B,
    bon_closed_form,
    bon_kl_bound,
    bon_log_ratio,
    bon_pool_kl,
    bon_pool_mean,
    bon_pool_weights,
    bon_probs,
)
from rlhf_zoo.functional.kl import categorical_kl
from rlhf_zoo.functional.quantile import exact_quantiles
from tests.functional.functional_helpers import (
    F64,
    brute_force_bon,
    distinct_rewards,
    prob_vectors,
    py_categorical_kl,
    py_quantiles,
    t64,
    tied_rewards,
)

FAST = settings(max_examples=60, deadline=None)


@st.composite
def bon_cases(draw, max_k: int = 6, max_n: int = 5, ties: bool = True):
    k = draw(st.integers(1, max_k))
    probs = draw(prob_vectors(k))
    rewards = draw(tied_rewards(k) if ties else distinct_rewards(k))
    n = draw(st.integers(1, max_n))
    return probs, rewards, n


@FAST
@given(bon_cases())
def test_sums_to_one_and_nonnegative(case):
    probs, rewards, n = case
    out = bon_probs(t64(probs), t64(rewards), n)
    assert out.dtype == F64
    assert (out >= 0).all()
    assert abs(float(out.sum()) - 1.0) <= 1e-12
    # outcomes that π_ref never produces are never produced by Best-of-N
    assert (out[t64(probs) == 0] == 0).all()


@FAST
@given(bon_cases())
def test_n1_is_identity(case):
    probs, rewards, _ = case
    p = t64(probs)
    assert torch.equal(bon_probs(p, t64(rewards), 1), p)


@FAST
@given(
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(1, 5),
    st.integers(1, 4),
    st.data(),
)
def test_batched_over_leading_dims(b1, b2, k, n, data):
    probs = [[data.draw(prob_vectors(k)) for _ in range(b2)] for _ in range(b1)]
    rewards = [[data.draw(tied_rewards(k)) for _ in range(b2)] for _ in range(b1)]
    out = bon_probs(t64(probs), t64(rewards), n)
    assert out.shape == (b1, b2, k)
    for i in range(b1):
        for j in range(b2):
            row = bon_probs(t64(probs[i][j]), t64(rewards[i][j]), n)
            torch.testing.assert_close(out[i, j], row, rtol=0, atol=1e-14)


@FAST
@given(bon_cases())
def test_equals_theorem1_form(case):
    """π_BoN(y) = π_ref(y)·p_≤(y)^(N−1)·Σ_{i=1..N}(p_</p_≤)^(i−1), p_≤/p_< by a plain loop."""
    probs, rewards, n = case
    expected = []
    for p, r in zip(probs, rewards, strict=True):
        p_le, p_lt = py_quantiles(probs, rewards, r)
        if p_le == 0.0:
            expected.append(0.0)
            continue
        b = sum((p_lt / p_le) ** (i - 1) for i in range(1, n + 1))
        expected.append(p * p_le ** (n - 1) * b)
    torch.testing.assert_close(bon_probs(t64(probs), t64(rewards), n), t64(expected), rtol=1e-12, atol=1e-14)


@FAST
@given(bon_cases(ties=False))
def test_equals_closed_form_for_distinct_rewards(case):
    """π_BoN(y) = p_≤(y)^N − p_<(y)^N when every reward value belongs to one outcome."""
    probs, rewards, n = case
    expected = []
    for r in rewards:
        p_le, p_lt = py_quantiles(probs, rewards, r)
        expected.append(p_le**n - p_lt**n)
    out = bon_probs(t64(probs), t64(rewards), n)
    torch.testing.assert_close(out, t64(expected), rtol=1e-12, atol=1e-14)
    p_le, p_lt = exact_quantiles(t64(rewards), t64(rewards), t64(probs))
    torch.testing.assert_close(bon_closed_form(p_le, p_lt, n), out, rtol=1e-12, atol=1e-14)


@FAST
@given(bon_cases())
def test_tie_group_gets_closed_form_mass_shared_by_ref_probs(case):
    """A tie group G gets p_≤^N − p_<^N, split among its members in proportion to π_ref."""
    probs, rewards, n = case
    out = bon_probs(t64(probs), t64(rewards), n).tolist()
    for value in set(rewards):
        members = [i for i, r in enumerate(rewards) if r == value]
        p_le, p_lt = py_quantiles(probs, rewards, value)
        group_mass = p_le**n - p_lt**n
        assert sum(out[i] for i in members) == pytest.approx(group_mass, rel=1e-12, abs=1e-14)
        group_ref = sum(probs[i] for i in members)
        for i in members:
            share = probs[i] / group_ref if group_ref > 0 else 0.0
            assert out[i] == pytest.approx(group_mass * share, rel=1e-12, abs=1e-14)


@settings(max_examples=80, deadline=None)
@given(bon_cases(max_k=5, max_n=4))
def test_equals_brute_force_enumeration_with_ties(case):
    """Enumerate all K^N draw tuples; ties among maximal draw positions broken uniformly."""
    probs, rewards, n = case
    expected = brute_force_bon(probs, rewards, n)
    torch.testing.assert_close(bon_probs(t64(probs), t64(rewards), n), t64(expected), rtol=1e-12, atol=1e-14)


@FAST
@given(bon_cases())
def test_B_lies_in_1_to_n(case):
    probs, rewards, n = case
    p_le, p_lt = exact_quantiles(t64(rewards), t64(rewards), t64(probs))
    b = bon_B(p_le, p_lt, n)
    assert (b >= 1).all() and (b <= n).all()
    # the two ends: B = 1 when p_< = 0, B = N when p_< = p_≤ > 0
    assert torch.equal(bon_B(p_le, torch.zeros_like(p_le), n), torch.ones_like(p_le))
    assert torch.equal(bon_B(p_le[p_le > 0], p_le[p_le > 0], n), torch.full_like(p_le[p_le > 0], n))


@FAST
@given(
    st.lists(st.tuples(st.floats(0, 1, width=64), st.floats(0, 1, width=64)), min_size=1, max_size=8),
    st.integers(1, 8),
)
def test_B_in_range_for_arbitrary_quantiles(pairs, n):
    p_le = t64([max(a, b) for a, b in pairs])
    p_lt = t64([min(a, b) for a, b in pairs])
    b = bon_B(p_le, p_lt, n)
    assert (b >= 1).all() and (b <= n).all()


@FAST
@given(st.lists(st.floats(0, 1, width=64), min_size=1, max_size=8), st.integers(1, 200))
def test_B_is_the_sum_of_its_powers(ratios, n):
    """The closed form equals Σ_{i<n} rⁱ summed term by term (in float64, exactly rational for r = k/2^m too)."""
    r = t64(ratios)
    summed = torch.stack([r**i for i in range(n)]).sum(0)
    torch.testing.assert_close(bon_B(torch.ones_like(r), r, n), summed, rtol=1e-12, atol=0)


def test_B_of_a_huge_n_costs_no_memory_and_tends_to_1_over_1_minus_r():
    """Σ_{i<n} rⁱ → 1 / (1 − r) as n grows; a term-by-term sum of n = 10^10 powers would need 80 GB."""
    r = t64([0.0, 0.5, 0.9, 1 - 1e-6])
    b = bon_B(torch.ones_like(r), r, 10**10)  # r^n < e^-10^4 for each: the tail is far below rounding
    torch.testing.assert_close(b, 1 / (1 - r), rtol=1e-9, atol=0)


@FAST
@given(bon_cases(max_n=3), st.integers(1, 3))
def test_composition(case, m):
    """Best-of-a applied to Best-of-b of π_ref is Best-of-(a·b); in particular BoN2∘BoN2 = BoN4."""
    probs, rewards, a = case
    p, r = t64(probs), t64(rewards)
    twice = bon_probs(bon_probs(p, r, a), r, m)
    torch.testing.assert_close(twice, bon_probs(p, r, a * m), rtol=1e-10, atol=1e-13)


@FAST
@given(bon_cases())
def test_best_of_2_twice_is_best_of_4(case):
    probs, rewards, _ = case
    p, r = t64(probs), t64(rewards)
    torch.testing.assert_close(bon_probs(bon_probs(p, r, 2), r, 2), bon_probs(p, r, 4), rtol=1e-10, atol=1e-13)


@FAST
@given(bon_cases(max_k=8, max_n=16))
def test_kl_below_bound(case):
    probs, rewards, n = case
    p = t64(probs)
    out = bon_probs(p, t64(rewards), n)
    kl = float(categorical_kl(out, p))
    assert kl == pytest.approx(py_categorical_kl(out.tolist(), probs), rel=1e-9, abs=1e-12)
    assert -1e-12 <= kl <= bon_kl_bound(n) + 1e-12


@FAST
@given(bon_cases())
def test_log_ratio_is_log_bon_over_ref_and_averages_to_kl(case):
    probs, rewards, n = case
    p, r = t64(probs), t64(rewards)
    out = bon_probs(p, r, n)
    p_le, p_lt = exact_quantiles(r, r, p)
    support = p > 0
    lr = bon_log_ratio(p_le, p_lt, n)[support]
    torch.testing.assert_close(lr, out[support].log() - p[support].log(), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close((out[support] * lr).sum(), categorical_kl(out, p), rtol=1e-9, atol=1e-12)


def test_worked_example():
    p = t64([0.5, 0.3, 0.2])
    r = t64([0.0, 1.0, 2.0])
    out = bon_probs(p, r, 2)
    torch.testing.assert_close(out, t64([0.25, 0.39, 0.36]), rtol=0, atol=1e-12)
    p_le, p_lt = exact_quantiles(r, r, p)
    torch.testing.assert_close(bon_B(p_le, p_lt, 2), t64([1.0, 1.625, 1.8]), rtol=0, atol=1e-12)
    assert round(float(categorical_kl(out, p)), 4) == 0.1406


def test_kl_bound_values():
    got = [round(bon_kl_bound(n), 3) for n in (2, 4, 8, 16)]
    assert got == [0.193, 0.636, 1.204, 1.835]
    assert bon_kl_bound(1) == 0.0


@pytest.mark.parametrize("bad", [0, -1, 1.5])
def test_bad_n_raises(bad):
    with pytest.raises(ValueError):
        bon_probs(t64([0.5, 0.5]), t64([0.0, 1.0]), bad)


@pytest.mark.parametrize("n", [2, 4, 8, 16])
def test_continuous_limit(n):
    """A fine discretisation of a continuous reward: K outcomes, distinct rewards in random order,
    near-uniform π_ref. Then KL(π_BoN‖π_ref) → log N − (N−1)/N, KL(π_ref‖π_BoN) → (N−1) − log N,
    and U = p_≤(y) is Beta(N, 1) under π_BoN (uniform under π_ref)."""
    k = 2000
    g = torch.Generator().manual_seed(1234 + n)
    w = 1.0 + 0.2 * torch.rand(k, generator=g, dtype=F64)
    p = w / w.sum()
    r = torch.randperm(k, generator=g).to(F64)
    out = bon_probs(p, r, n)
    p_le, _ = exact_quantiles(r, r, p)

    fwd = float(categorical_kl(out, p))
    assert fwd < bon_kl_bound(n)  # discrete: strictly below the bound
    assert fwd == pytest.approx(bon_kl_bound(n), abs=1e-3)
    assert float(categorical_kl(p, out)) == pytest.approx((n - 1) - math.log(n), abs=0.02)
    assert float((out * p_le.log()).sum()) == pytest.approx(-1.0 / n, abs=5e-3)
    assert float((out * p_le).sum()) == pytest.approx(n / (n + 1), abs=5e-3)
    assert float((p * p_le.log()).sum()) == pytest.approx(-1.0, abs=5e-3)


@FAST
@given(st.integers(1, 5), st.integers(1, 6), st.data())
def test_select_picks_a_maximum(b, n, data):
    rewards = t64([data.draw(tied_rewards(n)) for _ in range(b)])
    g = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31 - 1)))
    idx = best_of_n_select(rewards, generator=g)
    assert idx.shape == (b,) and idx.dtype == torch.long
    picked = rewards.gather(-1, idx.unsqueeze(-1)).squeeze(-1)
    assert torch.equal(picked, rewards.max(-1).values)


def test_select_breaks_ties_uniformly():
    rows = 30_000
    rewards = t64([1.0, 3.0, 3.0, 0.0, 3.0, 2.0]).expand(rows, 6)
    g = torch.Generator().manual_seed(0)
    idx = best_of_n_select(rewards, generator=g)
    freq = torch.bincount(idx, minlength=6).to(F64) / rows
    assert freq[[0, 3, 5]].sum() == 0
    for i in (1, 2, 4):
        assert abs(float(freq[i]) - 1 / 3) < 0.015  # std ≈ 0.0027
    # leading dims: [2, rows/2, N] gives the same kind of answer
    idx2 = best_of_n_select(rewards.reshape(2, rows // 2, 6), generator=g)
    assert idx2.shape == (2, rows // 2)
    assert set(idx2.unique().tolist()) == {1, 2, 4}


def test_select_with_one_generator_per_row_uses_row_i_generator_alone():
    """Per-row generators: row i's tie-break depends on generator i alone, so each row's pick equals the
    pick of that row by itself with a fresh copy of its generator, whatever rows sit around it."""
    rewards = torch.zeros(5, 8, dtype=F64)  # every row one tie of 8: the pick is decided by the noise alone
    rewards[:, ::2] = 1.0  # ... or among the 4 maxima
    seeds = [11, 23, 5, 42, 7]
    together = best_of_n_select(rewards, generator=[torch.Generator().manual_seed(s) for s in seeds])
    alone = [
        int(best_of_n_select(rewards[i : i + 1], generator=[torch.Generator().manual_seed(s)])[0])
        for i, s in enumerate(seeds)
    ]
    assert together.tolist() == alone
    assert all(j % 2 == 0 for j in alone)
    assert len(set(alone)) > 1  # the seeds do differ, so a mix-up of generators would show


# -- Best-of-n from one pool (ALGORITHMS.md §7) ------------------------------------------------------


def _best_of_subsets(rewards, values, n):
    """The mean value of the best of every n-subset of the pool (ties: the tied members' mean value)."""
    total, count = 0.0, 0
    for subset in combinations(range(len(rewards)), n):
        top = max(rewards[i] for i in subset)
        winners = [values[i] for i in subset if rewards[i] == top]
        total += sum(winners) / len(winners)
        count += 1
    return total / count


@settings(max_examples=60, deadline=None)
@given(
    m=st.integers(1, 7),
    data=st.data(),
)
def test_pool_estimate_is_the_mean_best_of_every_subset(m, data):
    rewards = data.draw(st.lists(st.integers(0, 3), min_size=m, max_size=m))  # small ints: many ties
    values = data.draw(st.lists(st.floats(-5, 5), min_size=m, max_size=m))
    n = data.draw(st.integers(1, m))
    got = bon_pool_mean(torch.tensor(rewards, dtype=F64)[None], torch.tensor(values, dtype=F64)[None], n)
    assert float(got[0]) == pytest.approx(_best_of_subsets(rewards, values, n), abs=1e-9)


def test_pool_weights_sum_to_one_and_end_at_the_extremes():
    for m, n in [(1, 1), (5, 1), (5, 5), (64, 7), (64, 64)]:
        w = bon_pool_weights(m, n)
        assert float(w.sum()) == pytest.approx(1.0, abs=1e-12)
    assert torch.allclose(bon_pool_weights(6, 1), torch.full((6,), 1 / 6, dtype=F64))
    assert torch.allclose(bon_pool_weights(6, 6), torch.tensor([0, 0, 0, 0, 0, 1.0], dtype=F64), atol=1e-12)
    with pytest.raises(ValueError):
        bon_pool_weights(3, 4)


def test_pool_estimate_is_unbiased_for_best_of_n_of_the_sampling_distribution():
    """Every ordered pool of m i.i.d. draws from a small discrete π_ref, weighted by its probability:
    the expected estimate equals E_{π_BoN}[value] exactly (with a tie between two outcomes)."""
    probs = torch.tensor([0.5, 0.2, 0.2, 0.1], dtype=F64)
    reward = torch.tensor([0.0, 1.0, 1.0, 2.0], dtype=F64)  # outcomes 1 and 2 tie
    value = torch.tensor([3.0, -1.0, 4.0, 0.5], dtype=F64)
    m = 4
    for n in (1, 2, 3, 4):
        expected = float((bon_probs(probs, reward, n) * value).sum())
        total = 0.0
        for pool in product(range(4), repeat=m):
            p = float(torch.prod(probs[list(pool)]))
            total += p * float(bon_pool_mean(reward[list(pool)][None], value[list(pool)][None], n)[0])
        assert total == pytest.approx(expected, abs=1e-12), n


def test_pool_kl_stays_below_the_bound_and_approaches_it():
    g = torch.Generator().manual_seed(0)
    for n in (2, 4, 8, 16):
        bound = math.log(n) - (n - 1) / n
        few = bon_pool_kl(torch.randn(200, 16, generator=g, dtype=F64), n)
        many = bon_pool_kl(torch.randn(4, 4096, generator=g, dtype=F64), n)
        tied = bon_pool_kl(torch.randint(0, 3, (200, 16), generator=g).to(F64), n)
        assert float(few.max()) <= bound + 1e-12 and float(tied.max()) <= bound + 1e-12
        assert float(tied.mean()) < float(few.mean())  # ties lower it
        assert float(many.mean()) == pytest.approx(bound, abs=0.01 + 0.002 * n)
    assert torch.allclose(bon_pool_kl(torch.randn(3, 8, generator=g, dtype=F64), 1), torch.zeros(3, dtype=F64))


@pytest.mark.parametrize("seed", range(20))
def test_a_distribution_off_by_float32_rounding_stays_a_distribution_for_a_huge_n(seed):
    """The testbed's oracle works in float64 on the policy's float32 probabilities, which sum to 1 only to
    float32's last bits; where they summed above 1, the best outcome's p_≤ was above 1 and p_≤^(N−1) grew
    without bound (N = 10⁷: the task's win rate read 1.7, N = 10¹⁰: inf). Best-of-N of a huge N keeps the mass
    it was given (1 to float32's rounding) and follows the closed form p_≤ᴺ − p_<ᴺ of the normalised reference."""
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn(64, generator=g) * 3, dim=-1).double()
    rewards = torch.randn(64, generator=g, dtype=F64)
    mass = float(probs.sum())  # 1 ± 1e-7
    order = rewards.argsort()
    cdf = torch.empty_like(probs)
    cdf[order] = probs[order].cumsum(0) / mass  # P(r' ≤ r) of the normalised reference, independently
    for n in (10**7, 10**10):
        out = bon_probs(probs, rewards, n)
        assert out.isfinite().all() and (out >= 0).all()
        assert float(out.sum()) == pytest.approx(mass, rel=1e-9, abs=0), (mass - 1, n)
        closed = mass * (cdf**n - (cdf - probs / mass).clamp(min=0) ** n)  # §2's closed form, no ties
        torch.testing.assert_close(out, closed, rtol=0, atol=1e-5)
    p_le, p_lt = exact_quantiles(rewards, rewards, probs)
    assert float(p_le.max()) == 1.0 and float(p_lt.min()) == 0.0
