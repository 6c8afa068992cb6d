"""Property tests of baselines and advantages (ALGORITHMS.md §4, §7)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from rlhf_zoo.functional.advantages import BASELINES, advantages, leave_one_out_baseline
from tests.functional.functional_helpers import F64, t64

FAST = settings(max_examples=60, deadline=None)

returns_values = st.floats(-100.0, 100.0, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def returns_grids(draw, min_k: int = 1, min_b: int = 1):
    b = draw(st.integers(min_b, 4))
    k = draw(st.integers(min_k, 6))
    return t64([draw(st.lists(returns_values, min_size=k, max_size=k)) for _ in range(b)])


def _tol(x: torch.Tensor) -> float:
    return 1e-12 * (1.0 + float(x.abs().max()))


@FAST
@given(returns_grids(min_k=2))
def test_loo_advantages_sum_to_zero_per_group(r):
    a = advantages(r, "loo")
    assert a.shape == r.shape and a.dtype == F64
    assert float(a.sum(-1).abs().max()) <= 10 * _tol(r)
    # and equal k/(k−1)·(R − group mean)
    k = r.shape[-1]
    torch.testing.assert_close(a, k / (k - 1) * (r - r.mean(-1, keepdim=True)), rtol=1e-9, atol=10 * _tol(r))


@FAST
@given(returns_grids(), st.floats(-50.0, 50.0, width=64))
def test_invariant_to_a_constant_shift(r, c):
    # (a lone return, B = k = 1, has no other return to compare with: its loo baseline is 0)
    for kind in ("loo", "mean") if r.numel() > 1 else ("mean",):
        torch.testing.assert_close(advantages(r + c, kind), advantages(r, kind), rtol=0, atol=20 * _tol(r + c))
    if r.shape[-1] >= 2:
        assume(float(r.std(-1).min()) > 1e-3)
        torch.testing.assert_close(advantages(r + c, "group_norm"), advantages(r, "group_norm"), rtol=1e-7, atol=1e-7)


@FAST
@given(returns_grids(), st.data())
def test_loo_baseline_of_i_does_not_depend_on_R_i(r, data):
    b, k = r.shape
    i = data.draw(st.integers(0, b - 1))
    j = data.draw(st.integers(0, k - 1))
    delta = data.draw(st.floats(-100.0, 100.0, width=64))
    base = leave_one_out_baseline(r)
    r2 = r.clone()
    r2[i, j] += delta
    base2 = leave_one_out_baseline(r2)
    assert float(base2[i, j]) == pytest.approx(float(base[i, j]), rel=1e-12, abs=20 * _tol(r2))
    if k >= 2:
        # other prompts' baselines are untouched, same prompt's other samples do move
        others = torch.ones(b, dtype=torch.bool)
        others[i] = False
        assert torch.equal(base2[others], base[others])


@FAST
@given(returns_grids(min_k=2))
def test_loo_baseline_is_mean_of_the_others(r):
    b, k = r.shape
    expected = [[(sum(row) - row[j]) / (k - 1) for j in range(k)] for row in r.tolist()]
    torch.testing.assert_close(leave_one_out_baseline(r), t64(expected), rtol=1e-12, atol=10 * _tol(r))


@FAST
@given(st.lists(returns_values, min_size=2, max_size=8))
def test_k1_falls_back_across_rows(values):
    b = len(values)
    r = t64([[v] for v in values])
    base = leave_one_out_baseline(r)
    flat = r[:, 0].tolist()
    expected = [[(sum(flat) - flat[i]) / (b - 1)] for i in range(b)]
    torch.testing.assert_close(base, t64(expected), rtol=1e-12, atol=10 * _tol(r))
    torch.testing.assert_close(advantages(r, "loo"), r - base)
    # a single prompt with a single sample has no other return: baseline 0
    assert torch.equal(leave_one_out_baseline(r[:1]), torch.zeros(1, 1, dtype=F64))


@FAST
@given(returns_grids(min_k=2))
def test_group_norm_zero_mean_unit_std(r):
    assume(float(r.std(-1, unbiased=True).min()) > 1e-3)
    a = advantages(r, "group_norm", eps=0.0)
    torch.testing.assert_close(a.mean(-1), torch.zeros(r.shape[0], dtype=F64), rtol=0, atol=1e-10)
    torch.testing.assert_close(a.std(-1, unbiased=True), torch.ones(r.shape[0], dtype=F64), rtol=1e-10, atol=0)
    # with the default eps the std is std/(std + eps), just below 1
    a_eps = advantages(r, "group_norm")
    s = a_eps.std(-1, unbiased=True)
    assert (s <= 1.0).all() and (s >= 1.0 - 1e-3).all()


def test_group_norm_needs_two_samples():
    with pytest.raises(ValueError):
        advantages(torch.zeros(3, 1, dtype=F64), "group_norm")


@FAST
@given(returns_grids())
def test_mean_baseline_zero_mean_and_none_is_identity(r):
    a = advantages(r, "mean")
    assert abs(float(a.mean())) <= 10 * _tol(r)
    torch.testing.assert_close(a, r - r.mean())
    assert torch.equal(advantages(r, "none"), r)


def test_unknown_kind_raises_naming_known_ones():
    with pytest.raises(ValueError) as info:
        advantages(torch.zeros(2, 2, dtype=F64), "median")  # type: ignore[arg-type]
    message = str(info.value)
    assert "median" in message
    for known in BASELINES:
        assert known in message
    assert set(BASELINES) == {"none", "mean", "loo", "group_norm"}


def test_wrong_rank_raises():
    with pytest.raises(ValueError):
        advantages(torch.zeros(4, dtype=F64), "loo")
    with pytest.raises(ValueError):
        leave_one_out_baseline(torch.zeros(2, 2, 2, dtype=F64))
