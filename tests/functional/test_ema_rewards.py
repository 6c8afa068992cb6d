"""Property tests of the weight EMA (ALGORITHMS.md §6.5) and the BOND / J-BOND rewards (§4, §6)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlhf_zoo.functional.ema import ema, ema_
from rlhf_zoo.functional.rewards import JBOND_PENALTY, bond_return, jbond_reward
from tests.functional.functional_helpers import F64, brute_force_bon, prob_vectors, py_quantiles, t64, tied_rewards

FAST = settings(max_examples=60, deadline=None)

weights_values = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=64)
LOG16 = math.log(16.0)


@st.composite
def weight_pairs(draw):
    shape = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    size = math.prod(shape)
    a = t64(draw(st.lists(weights_values, min_size=size, max_size=size))).reshape(shape)
    o = t64(draw(st.lists(weights_values, min_size=size, max_size=size))).reshape(shape)
    return a, o


# --------------------------------------------------------------------------- ema


@FAST
@given(weight_pairs())
def test_ema_endpoints(pair):
    a, o = pair
    assert torch.equal(ema(a, o, 0.0), a)
    assert torch.equal(ema(a, o, 1.0), o)  # η = 1 is a hard swap: exactly the online weights


def test_ema_of_mixed_precisions_is_in_the_wider_one():
    """A float32 anchor and float64 online weights: the result is float64, so η = 1 (a hard swap) returns the online
    weights exactly, digits beyond float32 included, and η = ½ is the float64 midpoint."""
    anchor = torch.zeros(2, dtype=torch.float32)
    online = t64([1.0 + 2**-40, -3.0 - 2**-45])  # not representable in float32
    swapped = ema(anchor, online, 1.0)
    assert swapped.dtype == F64 and torch.equal(swapped, online)
    assert torch.equal(ema(anchor, online, 0.5), online / 2)


@FAST
@given(weight_pairs(), st.floats(0.0, 1.0))
def test_ema_is_convex_combination(pair, eta):
    a, o = pair
    out = ema(a, o, eta)
    scale = 1e-12 * (1.0 + float(torch.maximum(a.abs(), o.abs()).max()))
    torch.testing.assert_close(out, (1 - eta) * a + eta * o, rtol=0, atol=scale)
    assert (out >= torch.minimum(a, o) - scale).all() and (out <= torch.maximum(a, o) + scale).all()


@FAST
@given(st.lists(weight_pairs(), min_size=1, max_size=3), st.floats(0.0, 1.0))
def test_ema_inplace_matches_pure(pairs, eta):
    anchors = [a.clone() for a, _ in pairs]
    online = [o.clone().requires_grad_(True) for _, o in pairs]
    ema_(anchors, online, eta)
    for new, (a, o) in zip(anchors, pairs, strict=True):
        assert torch.equal(new, ema(a, o, eta))
    # online tensors are untouched
    for o_new, (_, o) in zip(online, pairs, strict=True):
        assert torch.equal(o_new.detach(), o)


@pytest.mark.parametrize("eta", [-0.1, 1.0001, 2.0, math.nan])
def test_eta_outside_unit_interval_raises(eta):
    a, o = torch.zeros(3, dtype=F64), torch.ones(3, dtype=F64)
    with pytest.raises(ValueError):
        ema(a, o, eta)
    with pytest.raises(ValueError):
        ema_([a], [o], eta)
    assert torch.equal(a, torch.zeros(3, dtype=F64))


def test_ema_inplace_moves_anchors_that_are_parameters_without_recording_a_graph():
    """Anchor weights may be parameters (requires_grad, as a model's are): the in-place EMA still applies, and the
    anchor stays a leaf with no history, so no gradient ever flows into the anchor through it."""
    anchor = torch.nn.Parameter(torch.zeros(3, dtype=F64))
    online = torch.nn.Parameter(torch.full((3,), 4.0, dtype=F64))
    ema_([anchor], [online], 0.25)
    assert torch.equal(anchor.detach(), torch.ones(3, dtype=F64))  # 0.75·0 + 0.25·4
    assert anchor.is_leaf and anchor.grad_fn is None


def test_ema_inplace_length_mismatch_raises():
    with pytest.raises(ValueError):
        ema_([torch.zeros(2, dtype=F64)], [torch.zeros(2, dtype=F64), torch.zeros(2, dtype=F64)], 0.5)


# --------------------------------------------------------------------------- J-BOND reward


@FAST
@given(st.integers(1, 6), st.data())
def test_jbond_reward_is_penalty_exactly_on_strict_losses(m, data):
    rewards = data.draw(tied_rewards(m))
    anchors = [data.draw(tied_rewards(2)) for _ in range(m)]
    out = jbond_reward(t64(rewards), t64(anchors))
    assert out.shape == (m,) and out.dtype == F64
    for r, (a1, a2), value in zip(rewards, anchors, out.tolist(), strict=True):
        if r < min(a1, a2):
            assert value == -LOG16
        else:  # including r == min(a1, a2): ties are not penalised
            assert value == 0.0
    assert JBOND_PENALTY == LOG16


def test_jbond_reward_ties_are_not_penalised():
    out = jbond_reward(t64([1.0, 1.0, 0.5, 2.0]), t64([[1.0, 1.0], [1.0, 3.0], [1.0, 3.0], [1.0, 3.0]]))
    assert out.tolist() == [0.0, 0.0, -LOG16, 0.0]


def test_jbond_reward_shape_checks():
    with pytest.raises(ValueError):
        jbond_reward(torch.zeros(3, dtype=F64), torch.zeros(3, 3, dtype=F64))
    with pytest.raises(ValueError):
        jbond_reward(torch.zeros(3, dtype=F64), torch.zeros(4, 2, dtype=F64))


@FAST
@given(st.integers(1, 6), st.data())
def test_jbond_mean_by_enumeration(k, data):
    """Anchor rewards from a discrete distribution: E[r_J(r)] = −log 16·(1 − p_≤(r))², exactly,
    for every fixed policy reward r (p_≤ computed with ties counted as ≤)."""
    probs = data.draw(prob_vectors(k))
    values = data.draw(tied_rewards(k))
    for r in (-1.0, 0.0, 1.0, 1.5, 2.0, 3.0, 4.0):
        mean = 0.0
        for i, j in itertools.product(range(k), repeat=2):
            out = jbond_reward(t64([r]), t64([[values[i], values[j]]]))
            mean += probs[i] * probs[j] * float(out[0])
        p_le = sum(p for p, v in zip(probs, values, strict=True) if v <= r)
        assert mean == pytest.approx(-LOG16 * (1.0 - p_le) ** 2, rel=1e-12, abs=1e-12)


def test_jbond_mean_is_log16_over_3_when_policy_is_anchor():
    g = torch.Generator().manual_seed(0)
    samples = torch.rand(200_000, 3, generator=g, dtype=F64)  # one policy and two anchor rewards
    out = jbond_reward(samples[:, 0], samples[:, 1:])
    assert abs(float(out.mean()) - (-0.924)) < 0.01  # ALGORITHMS.md §6.2: −log 16 / 3 ≈ −0.924


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_jbond_mean_matches_quantile_formula(p):
    """P(anchor ≤ r) = p: anchors U − p with U uniform, r = 0 → mean −log 16·(1 − p)²."""
    g = torch.Generator().manual_seed(7)
    anchors = torch.rand(200_000, 2, generator=g, dtype=F64) - p
    out = jbond_reward(torch.zeros(200_000, dtype=F64), anchors)
    assert abs(float(out.mean()) - (-LOG16 * (1 - p) ** 2)) < 0.01


@pytest.mark.parametrize(("values", "probs", "p_le"), [([0.0, 2.0], [0.5, 0.5], 0.5), ([0.0, 0.5], [0.3, 0.7], 1.0)])
def test_jbond_mean_reward_matches_log_quantile_at_half_and_one(values, probs, p_le):
    """A policy reward r = 1 with P(anchor ≤ r) = ½ or 1: the mean J-BOND reward over both anchor draws
    equals log p_≤ (ALGORITHMS.md §6.2: −log 16·(1 − p_≤)² meets log p_≤ there)."""
    pairs = [(i, j) for i in range(len(values)) for j in range(len(values))]
    anchors = t64([[values[i], values[j]] for i, j in pairs])
    weights = t64([probs[i] * probs[j] for i, j in pairs])
    mean = float((weights * jbond_reward(torch.ones(len(pairs), dtype=F64), anchors)).sum())
    assert mean == pytest.approx(math.log(p_le), abs=1e-12)


# --------------------------------------------------------------------------- BOND return


values = st.floats(-20.0, 0.0, allow_nan=False, allow_infinity=False, width=64)


@FAST
@given(st.integers(1, 6), st.integers(2, 32), st.data())
def test_bond_return_formula(m, n, data):
    lq = t64(data.draw(st.lists(values, min_size=m, max_size=m)))
    logp = t64(data.draw(st.lists(values, min_size=m, max_size=m)))
    ref_logp = t64(data.draw(st.lists(values, min_size=m, max_size=m)))
    out = bond_return(lq, logp, ref_logp, n)
    torch.testing.assert_close(out, (n - 1) * lq - (logp - ref_logp), rtol=1e-13, atol=1e-12)
    # (N−1)·[log p_≤ − β_BOND·(log π − log π_ref)], β_BOND = 1/(N−1)
    torch.testing.assert_close(out, (n - 1) * (lq - (logp - ref_logp) / (n - 1)), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("n", [1, 0, -3])
def test_bond_return_needs_n_at_least_2(n):
    z = torch.zeros(2, dtype=F64)
    with pytest.raises(ValueError):
        bond_return(z, z, z, n)


@FAST
@given(st.integers(2, 4), st.data())
def test_bond_return_with_log_b_is_log_pi_bon_minus_log_pi(n, data):
    """With ``log_b`` the return is exactly log π_BoN(y) − log π(y) (ALGORITHMS.md §2: log π_BoN = log π_ref +
    (N−1)·log p_≤ + log B, B = Σ_{i=1..N} (p_</p_≤)^(i−1)), here against best-of-n by enumeration, with ties."""
    k = 4
    ref = data.draw(prob_vectors(k, allow_zero=False))
    pi = data.draw(prob_vectors(k, allow_zero=False))
    rewards = data.draw(tied_rewards(k))
    bon = brute_force_bon(ref, rewards, n)
    log_q, log_b = [], []
    for r in rewards:
        p_le, p_lt = py_quantiles(ref, rewards, r)
        log_q.append(math.log(p_le))
        log_b.append(math.log(sum((p_lt / p_le) ** i for i in range(n))))
    out = bond_return(t64(log_q), t64([math.log(p) for p in pi]), t64([math.log(p) for p in ref]), n, t64(log_b))
    expected = t64([math.log(b) - math.log(p) for b, p in zip(bon, pi, strict=True)])
    torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-9)
