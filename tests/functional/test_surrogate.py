"""Property tests of the policy-gradient surrogates (ALGORITHMS.md §4, §7)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlhf_zoo.functional.kl import masked_sum
from rlhf_zoo.functional.surrogate import clipped_surrogate_loss, score_function_loss
from tests.functional.functional_helpers import F64, t64

FAST = settings(max_examples=50, deadline=None)

adv_values = st.floats(-5.0, 5.0, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def policy_batches(draw):
    """A tiny position-wise categorical policy with shared logits θ [T, V], N sampled sequences
    (right-padded to T), advantages [N] and optional expectation weights [N]."""
    n = draw(st.integers(1, 5))
    t = draw(st.integers(1, 4))
    v = draw(st.integers(2, 4))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(t, v, generator=g, dtype=F64)
    tokens = torch.randint(0, v, (n, t), generator=g)
    lengths = draw(st.lists(st.integers(1, t), min_size=n, max_size=n))
    mask = t64([[1.0 if j < length else 0.0 for j in range(t)] for length in lengths])
    adv = t64(draw(st.lists(adv_values, min_size=n, max_size=n)))
    weights = None
    if draw(st.booleans()):
        w = t64(draw(st.lists(st.floats(0.0, 1.0, width=64), min_size=n, max_size=n)))
        weights = w
    return theta, tokens, mask, adv, weights


def token_logp(theta: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """[T, V] logits shared by all sequences → [N, T] log π(y_t) of the sampled tokens."""
    lp = torch.log_softmax(theta, -1)  # [T, V]
    return lp.unsqueeze(0).expand(tokens.shape[0], -1, -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def expected_score_gradient(theta, tokens, mask, adv, weights):
    """−E[A·∇log π(y)] from per-sample gradients (mean, or weighted sum)."""
    n = tokens.shape[0]
    coef = adv / n if weights is None else adv * weights
    total = torch.zeros_like(theta)
    for i in range(n):
        th = theta.detach().clone().requires_grad_(True)
        seq_i = masked_sum(token_logp(th, tokens), mask)[i]
        (g,) = torch.autograd.grad(seq_i, th)
        total -= coef[i] * g
    return total


def _expect(x, weights):
    return x.mean() if weights is None else (weights * x).sum()


@FAST
@given(policy_batches())
def test_score_function_value_and_gradient(batch):
    theta, tokens, mask, adv, weights = batch
    th = theta.clone().requires_grad_(True)
    seq_logp = masked_sum(token_logp(th, tokens), mask)
    loss = score_function_loss(seq_logp, adv, weights)
    torch.testing.assert_close(loss.detach(), -_expect(adv, weights), rtol=1e-12, atol=1e-12)
    loss.backward()
    expected = expected_score_gradient(theta, tokens, mask, adv, weights)
    torch.testing.assert_close(th.grad, expected, rtol=1e-10, atol=1e-12)


@FAST
@given(policy_batches(), st.floats(0.05, 0.5))
def test_clipped_on_policy_equals_score_function(batch, eps):
    """One epoch, ρ ≡ 1: PPO's clipped surrogate equals REINFORCE in value and gradient."""
    theta, tokens, mask, adv, weights = batch
    th1 = theta.clone().requires_grad_(True)
    logp = token_logp(th1, tokens)
    loss_clip, clip_fraction = clipped_surrogate_loss(logp, logp.detach(), adv, mask, eps, weights)
    loss_clip.backward()

    th2 = theta.clone().requires_grad_(True)
    loss_sf = score_function_loss(masked_sum(token_logp(th2, tokens), mask), adv, weights)
    loss_sf.backward()

    torch.testing.assert_close(loss_clip.detach(), loss_sf.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(th1.grad, th2.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(
        th1.grad, expected_score_gradient(theta, tokens, mask, adv, weights), rtol=1e-10, atol=1e-12
    )
    assert float(clip_fraction) == 0.0


@st.composite
def ratio_batches(draw, binding: bool):
    """Per-token log π (leaf) and log π_old with every ratio outside [1−ε, 1+ε]:
    binding=True: A>0 with ρ>1+ε or A<0 with ρ<1−ε (the clip binds, PPO's min takes the clip);
    binding=False: A>0 with ρ<1−ε or A<0 with ρ>1+ε (the min keeps the unclipped term)."""
    n = draw(st.integers(1, 4))
    t = draw(st.integers(1, 4))
    eps = draw(st.floats(0.05, 0.3))
    signs = draw(st.lists(st.sampled_from([-1.0, 1.0]), min_size=n, max_size=n))
    mags = draw(st.lists(st.floats(0.01, 5.0), min_size=n, max_size=n))
    adv = t64([s * m for s, m in zip(signs, mags, strict=True)])
    high = st.floats(1.0 + eps + 1e-3, 4.0)
    low = st.floats(0.05, 1.0 - eps - 1e-3)
    ratios = []
    for s in signs:
        up = (s > 0) == binding
        ratios.append(draw(st.lists(high if up else low, min_size=t, max_size=t)))
    logp = t64(draw(st.lists(st.lists(st.floats(-6.0, 0.0), min_size=t, max_size=t), min_size=n, max_size=n)))
    old_logp = logp - t64(ratios).log()
    lengths = draw(st.lists(st.integers(1, t), min_size=n, max_size=n))
    mask = t64([[1.0 if j < length else 0.0 for j in range(t)] for length in lengths])
    weights = t64(draw(st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n))) if draw(st.booleans()) else None
    return logp, old_logp, adv, mask, eps, weights


@FAST
@given(ratio_batches(binding=True))
def test_binding_clip_kills_the_gradient(batch):
    logp, old_logp, adv, mask, eps, weights = batch
    leaf = logp.clone().requires_grad_(True)
    loss, clip_fraction = clipped_surrogate_loss(leaf, old_logp, adv, mask, eps, weights)
    loss.backward()
    assert torch.equal(leaf.grad, torch.zeros_like(leaf))
    assert float(clip_fraction) == 1.0
    # value: each completion token contributes the clipped ε·|A|
    expected = adv + eps * adv.abs() * mask.sum(-1)
    torch.testing.assert_close(loss.detach(), -_expect(expected, weights), rtol=1e-10, atol=1e-10)


@FAST
@given(ratio_batches(binding=False))
def test_non_binding_side_keeps_the_gradient(batch):
    """A>0 with ρ<1−ε (or A<0 with ρ>1+ε): min keeps ρ·A, so ∂L/∂log π_t = −w·A·ρ_t ≠ 0."""
    logp, old_logp, adv, mask, eps, weights = batch
    leaf = logp.clone().requires_grad_(True)
    loss, clip_fraction = clipped_surrogate_loss(leaf, old_logp, adv, mask, eps, weights)
    loss.backward()
    n = adv.shape[0]
    w = torch.full_like(adv, 1.0 / n) if weights is None else weights
    rho = (logp - old_logp).exp()
    expected = -(w * adv).unsqueeze(-1) * rho * mask
    torch.testing.assert_close(leaf.grad, expected, rtol=1e-10, atol=1e-12)
    active = mask.bool() & (w > 1e-100).unsqueeze(-1)
    assert (leaf.grad[active] != 0).all()
    assert float(clip_fraction) == 0.0


@FAST
@given(st.integers(1, 4), st.integers(1, 4), st.floats(0.05, 0.3), st.data())
def test_clipped_value_matches_formula(n, t, eps, data):
    ratios = [[data.draw(st.floats(0.2, 3.0)) for _ in range(t)] for _ in range(n)]
    adv = [data.draw(adv_values) for _ in range(n)]
    lengths = [data.draw(st.integers(1, t)) for _ in range(n)]
    mask = [[1.0 if j < length else 0.0 for j in range(t)] for length in lengths]
    old = t64([[-1.0] * t for _ in range(n)])
    logp = old + t64(ratios).log()
    loss, clip_fraction = clipped_surrogate_loss(logp, old, t64(adv), t64(mask), eps)
    rho = (logp - old).exp().tolist()
    total, clipped, tokens = 0.0, 0, 0
    for i in range(n):
        s = adv[i]
        for j in range(t):
            if not mask[i][j]:
                continue
            unclipped = (rho[i][j] - 1.0) * adv[i]
            c = (min(max(rho[i][j], 1.0 - eps), 1.0 + eps) - 1.0) * adv[i]
            s += min(unclipped, c)
            clipped += c < unclipped
            tokens += 1
        total += s
    assert float(loss) == pytest.approx(-total / n, rel=1e-10, abs=1e-12)
    assert float(clip_fraction) == pytest.approx(clipped / tokens, abs=1e-12)


@settings(max_examples=25, deadline=None)  # every example tests all four stop-gradients
@given(policy_batches(), st.floats(0.02, 0.1), st.sampled_from([-1.0, 1.0]))
def test_advantages_and_weights_are_constants_of_the_surrogates(batch, shift, sign):
    """The sg[·] of ALGORITHMS.md §4 and §6.4: the advantage (which holds log π(y) through the KL term) and
    the expectation weights (π(y) itself on the testbed) are constants of the surrogate. Computing them
    from θ, with the same values, must change neither the loss nor its gradient. Off-policy ratios
    (ρ = e^{∓shift}, inside the clip range) so that the per-token terms (ρ_t − 1)·A do not vanish."""
    theta, tokens, mask, adv, weights = batch
    if weights is None:
        weights = torch.full_like(adv, 1.0 / adv.shape[0])

    def losses(track: bool):
        th = theta.clone().requires_grad_(True)
        logp = token_logp(th, tokens)
        seq = masked_sum(logp, mask)
        live = seq - seq.detach()  # value 0, gradient ∇log π(y)
        a = adv + live if track else adv
        w = weights * live.exp() if track else weights
        sf = score_function_loss(seq, a, w)
        clipped, _ = clipped_surrogate_loss(logp, logp.detach() + sign * shift, a, mask, 0.3, w)
        out = []
        for loss in (sf, clipped):
            (g,) = torch.autograd.grad(loss, th, retain_graph=True)
            out.append((loss.detach(), g))
        return out

    for (v_held, g_held), (v_live, g_live) in zip(losses(False), losses(True), strict=True):
        torch.testing.assert_close(v_live, v_held, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(g_live, g_held, rtol=1e-10, atol=1e-12)


def test_shape_errors():
    z = torch.zeros(2, 3, dtype=F64)
    with pytest.raises(ValueError):
        score_function_loss(torch.zeros(2, dtype=F64), torch.zeros(3, dtype=F64))
    with pytest.raises(ValueError):
        clipped_surrogate_loss(z, z, torch.zeros(3, dtype=F64), torch.ones_like(z))
    with pytest.raises(ValueError):
        clipped_surrogate_loss(z, torch.zeros(2, 4, dtype=F64), torch.zeros(2, dtype=F64), torch.ones_like(z))
    with pytest.raises(ValueError):
        score_function_loss(torch.zeros(2, dtype=F64), torch.zeros(2, dtype=F64), torch.ones(3, dtype=F64))
    assert math.isfinite(float(score_function_loss(torch.zeros(2, dtype=F64), torch.ones(2, dtype=F64))))


@settings(max_examples=25, deadline=None)
@given(policy_batches(), st.floats(0.02, 0.1), st.sampled_from([-1.0, 1.0]))
def test_old_logp_is_a_constant_of_the_clipped_surrogate(batch, shift, sign):
    """ρ_t = π(y_t|·)/π_old(y_t|·) (ALGORITHMS.md §7): π_old is the sampling-time policy, fixed during the update.
    Passing log π_old with a live graph (same values, gradient ∇log π) must change neither the loss nor its
    gradient, which is then −w·A·ρ_t per unclipped token (ratios e^{∓shift}, inside the clip range)."""
    theta, tokens, mask, adv, weights = batch
    w = torch.full_like(adv, 1.0 / adv.shape[0]) if weights is None else weights

    def grad(track: bool):
        th = theta.clone().requires_grad_(True)
        logp = token_logp(th, tokens)
        old = logp.detach() + sign * shift
        if track:
            old = old + (logp - logp.detach())  # value unchanged, gradient ∇log π
        loss, _ = clipped_surrogate_loss(logp, old, adv, mask, 0.3, weights)
        (g,) = torch.autograd.grad(loss, th)
        return loss.detach(), g

    v_held, g_held = grad(False)
    v_live, g_live = grad(True)
    torch.testing.assert_close(v_live, v_held, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g_live, g_held, rtol=1e-10, atol=1e-12)
    # and the held gradient is the PPO one: Σ_{i,t} −w_i·A_i·ρ_t·∇log π(y_t), ρ_t = e^{−sign·shift}
    rho = math.exp(-sign * shift)
    th = theta.clone().requires_grad_(True)
    surrogate = -((w * adv).unsqueeze(-1) * rho * token_logp(th, tokens) * mask).sum()
    (g_ref,) = torch.autograd.grad(surrogate, th)
    torch.testing.assert_close(g_held, g_ref, rtol=1e-10, atol=1e-12)
