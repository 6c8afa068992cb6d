"""Each term's weight in the losses, checked against values worked out by hand from ALGORITHMS.md.

Tiny hand-made batches: rows are prompt-major, T = 3 positions of which the last is padding (a junk
value that the mask must drop). The score-function surrogate is written in ratio form, so its value
is −mean(A) and its gradient with respect to a row's sequence log-prob is −A_i/N, whatever log π is:
both are compared with the hand-computed per-row coefficient A_i. β = 0.25 and γ = 0.5 are chosen so
that β, 1 − β and 1 all differ; log π ≠ old log π everywhere, as on a later PPO epoch.
"""

import math

import pytest
import torch

from rlhf_zoo.algorithms.base import Batch
from rlhf_zoo.algorithms.bond import Bond, BondConfig
from rlhf_zoo.algorithms.jbond import JBond, JBondConfig
from rlhf_zoo.algorithms.ppo_lite import PPOLite, PPOLiteConfig
from rlhf_zoo.algorithms.reinforce import Reinforce, ReinforceConfig
from tests.algorithms.helpers import sampled_batch

LOG2 = math.log(2.0)
JUNK = 7.0  # value at the padded position: never part of a sequence sum


def _tok(sums, grad=False):
    """Per-token [N, 3] tensor whose masked row sums are ``sums`` (two halves, then padding)."""
    s = torch.tensor(sums, dtype=torch.float64)[:, None]
    t = torch.cat([s / 2, s / 2, torch.full_like(s, JUNK)], dim=1)
    return t.requires_grad_(grad)


def _mask(n):
    return torch.tensor([[1.0, 1.0, 0.0]] * n, dtype=torch.float64)


def _row_grad(logp):
    """d loss / d(sequence log-prob) of each row: every unmasked token of a row carries it."""
    g = logp.grad
    assert torch.equal(g[:, 0], g[:, 1]) and torch.all(g[:, 2] == 0)
    return g[:, 0]


def _close(actual, expected):
    torch.testing.assert_close(
        torch.as_tensor(actual, dtype=torch.float64), torch.as_tensor(expected, dtype=torch.float64)
    )


# Shared rows: B = 2 prompts × 2 samples. Sequence-level sums:
OLD = [-1.0, -2.0, -1.0, -3.0]  # log π at sampling time
NOW = [-0.5, -3.0, -2.0, -1.0]  # log π now (≠ OLD)
REF = [-1.5, -1.0, -2.0, -2.0]  # log π_ref (or log π_anchor)
# OLD − REF = [0.5, −1, 1, −1];  NOW − REF = [1, −2, 0, 1]


@pytest.mark.parametrize("baseline", ["none", "loo"])
def test_reinforce_kl_in_reward_uses_sampling_time_logp(baseline):
    """§7: R = r − β·(Σ old log π − Σ log π_ref) at β = 0.25, by hand; loss = −mean(A), ∂loss/∂log π_i = −A_i/N."""
    algo = Reinforce(ReinforceConfig(samples=2, baseline=baseline, beta=0.25, kl_in="reward"))
    logp = _tok(NOW, grad=True)
    batch = Batch(
        group_size=2,
        response_mask=_mask(4),
        logp=logp,
        old_logp=_tok(OLD),
        rewards=torch.tensor([1.0, 0.0, 2.0, -1.0], dtype=torch.float64),
        ref_logp=_tok(REF),
    )
    # R = [1 − 0.25·0.5, 0 + 0.25·1, 2 − 0.25·1, −1 + 0.25·1] = [0.875, 0.25, 1.75, −0.75]
    returns = [0.875, 0.25, 1.75, -0.75]
    # none: A = R; loo with 2 samples: A = R_i − R_other = [0.625, −0.625, 2.5, −2.5]
    adv = returns if baseline == "none" else [0.625, -0.625, 2.5, -2.5]
    loss, metrics = algo.loss(batch)
    _close(metrics["train/return"], 2.125 / 4)  # mean R
    _close(loss, -sum(adv) / 4)
    loss.backward()
    _close(_row_grad(logp), [-a / 4 for a in adv])


def _k3_batch(weights: torch.Tensor | None = None) -> tuple[Reinforce, torch.Tensor, Batch]:
    """REINFORCE with β = 0.3 and k3 in the loss, and a batch of two completions of one prompt with rewards 1, 0:
    row 0's log π − log π_ref is log 2 per token (ρ = π_ref/π = 1/2), row 1's −log 2 (ρ = 2); padding is junk."""
    algo = Reinforce(ReinforceConfig(samples=2, baseline="none", beta=0.3, kl_in="loss", kl_estimator="k3"))
    ref = torch.tensor([[-1.0, -2.0, 0.0], [-1.5, -0.5, 0.0]], dtype=torch.float64)
    shift = torch.tensor([[LOG2, LOG2, JUNK], [-LOG2, -LOG2, JUNK]], dtype=torch.float64)
    logp = (ref + shift).requires_grad_(True)
    batch = Batch(
        group_size=2,
        response_mask=_mask(2),
        logp=logp,
        old_logp=(ref + 0.5).detach(),
        rewards=torch.tensor([1.0, 0.0], dtype=torch.float64),
        ref_logp=ref,
        weights=weights,
    )
    return algo, logp, batch


def test_reinforce_kl_in_loss_adds_beta_times_k3():
    """§1: kl_in=loss, β = 0.3: loss = −mean(r) + 0.3·mean Σ_t k3, k3 = ρ − 1 − log ρ, ρ = π_ref/π per token."""
    algo, logp, batch = _k3_batch()
    # k3 row 0: 2·(1/2 − 1 + log 2) = 2 log 2 − 1; row 1: 2·(2 − 1 − log 2) = 2 − 2 log 2; mean = 0.5
    loss, metrics = algo.loss(batch)
    _close(metrics["loss/kl"], 0.5)
    _close(metrics["loss/pg"], -0.5)  # −mean(r), R = r with the KL in the loss
    _close(loss, -0.5 + 0.3 * 0.5)
    loss.backward()
    # ∂/∂log π_t: −r_i/N from the surrogate, + β·(1 − ρ_t)/N from k3
    expected = torch.tensor([[-0.5 + 0.3 * 0.5 / 2] * 2 + [0.0], [0.0 + 0.3 * (1 - 2) / 2] * 2 + [0.0]])
    _close(logp.grad, expected)


def test_reinforce_targets_the_optimal_policy_only_with_kl_in_reward():
    """§7/§8: π*_β ∝ π_ref·exp(r/β) is the fixed point only of the KL-in-reward gradient (and needs β > 0)."""
    assert Reinforce(ReinforceConfig(beta=0.3, kl_in="reward")).exact_targets() == {"optimal_beta": 0.3}
    assert Reinforce(ReinforceConfig(beta=0.3, kl_in="loss")).exact_targets() == {}
    assert Reinforce(ReinforceConfig(beta=0.3, kl_in="loss", kl_estimator="exact")).exact_targets() == {}
    assert Reinforce(ReinforceConfig(beta=0.0, kl_in="reward")).exact_targets() == {}


def test_ppo_lite_targets_the_optimal_policy_only_with_kl_in_reward():
    """§7: with one epoch PPO-lite is REINFORCE, so, like it, only the KL-in-reward form (β > 0) has π*_β as its
    fixed point."""
    assert PPOLite(PPOLiteConfig(beta=0.3, kl_in="reward")).exact_targets() == {"optimal_beta": 0.3}
    assert PPOLite(PPOLiteConfig(beta=0.3, kl_in="loss")).exact_targets() == {}
    assert PPOLite(PPOLiteConfig(beta=0.0, kl_in="reward")).exact_targets() == {}


@pytest.mark.parametrize("cls", [Reinforce, PPOLite])
def test_full_vocabulary_logprobs_are_collected_only_for_the_exact_kl_in_the_loss(cls):
    """[N, T, V] log-probs of π and π_ref are read by one option alone, the exact-token KL in the loss (§1); k3 in the
    loss and the KL in the reward need only the chosen tokens' log-probs."""
    cfg = cls.Config
    assert cls(cfg(kl_in="loss", kl_estimator="exact")).needs().full_logprobs
    assert not cls(cfg(kl_in="loss", kl_estimator="k3")).needs().full_logprobs
    assert not cls(cfg(kl_in="reward", kl_estimator="exact")).needs().full_logprobs
    assert not cls(cfg(kl_in="reward", kl_estimator="k3")).needs().full_logprobs


def test_only_plain_bond_targets_best_of_n_of_the_reference():
    """§4/§8: plain BOND distils π_BoN of π_ref, which the testbed measures it against. Iterative BOND (§5)
    distils Best-of-n of a moving anchor (Best-of-n^t of π_ref after t swaps), and J-BOND an EMA anchor's
    Best-of-2: neither has Best-of-n of π_ref as its target."""
    assert Bond(BondConfig(n=4, quantiles="mc")).exact_targets() == {"bon_n": 4}
    assert Bond(BondConfig(n=4, quantiles="mc", anchor_period=3)).exact_targets() == {}
    assert JBond(JBondConfig()).exact_targets() == {}


def test_bond_jeffreys_weights_backward_by_beta_and_forward_by_one_minus_beta():
    """§4 at β = 0.25, N = 4: loss = β·backward + (1 − β)·forward, each term by hand."""
    algo = Bond(BondConfig(n=4, beta=0.25, samples=2, baseline="none", quantiles="mc", k=3))
    logp = _tok(NOW, grad=True)
    target = _tok([-2.0, -4.0], grad=True)  # Σ log π(best-of-N target) per prompt
    batch = Batch(
        group_size=2,
        response_mask=_mask(4),
        logp=logp,
        old_logp=_tok(OLD),
        rewards=torch.zeros(4, dtype=torch.float64),
        ref_logp=_tok(REF),
        quantiles=torch.tensor([0.5, 1.0, 0.25, 1.0], dtype=torch.float64),
        target_logp=target,
        target_mask=_mask(2),
    )
    # R = (N−1)·log p_≤ − (Σ old − Σ ref) = [−3 log 2 − 0.5, 0 + 1, −6 log 2 − 1, 0 + 1]
    returns = [-3 * LOG2 - 0.5, 1.0, -6 * LOG2 - 1.0, 1.0]
    backward = -sum(returns) / 4  # baseline none: −mean(R)
    forward = (2.0 + 4.0) / 2  # −mean over prompts of Σ log π(target)
    loss, metrics = algo.loss(batch)
    _close(metrics["train/return"], sum(returns) / 4)
    _close(metrics["loss/pg"], backward)
    _close(metrics["loss/sft"], forward)
    _close(loss, 0.25 * backward + 0.75 * forward)
    loss.backward()
    _close(_row_grad(logp), [-0.25 * r / 4 for r in returns])
    _close(_row_grad(target), [-0.75 / 2] * 2)  # (1 − β)·(−1/B) per target token


def _bond_batch(**fields):
    """The rows of test_bond_jeffreys_weights_backward_by_beta_and_forward_by_one_minus_beta (β = 1: no target)."""
    return Batch(
        group_size=2,
        response_mask=_mask(4),
        logp=_tok(NOW, grad=True),
        old_logp=_tok(OLD),
        rewards=torch.zeros(4, dtype=torch.float64),
        quantiles=torch.tensor([0.5, 1.0, 0.25, 1.0], dtype=torch.float64),
        **fields,
    )


def test_bond_leave_one_out_baseline_by_hand():
    """§4: b is the mean return of the prompt's other samples; with two per prompt A_i = R_i − R_other. Returns as
    in the Jeffreys test: R = (N−1)·log p_≤ − (Σ old − Σ ref) at N = 4."""
    algo = Bond(BondConfig(n=4, beta=1.0, samples=2, baseline="loo", quantiles="mc"))
    batch = _bond_batch(ref_logp=_tok(REF))
    r = [-3 * LOG2 - 0.5, 1.0, -6 * LOG2 - 1.0, 1.0]
    adv = [r[0] - r[1], r[1] - r[0], r[2] - r[3], r[3] - r[2]]
    loss, metrics = algo.loss(batch)
    _close(metrics["train/return"], sum(r) / 4)
    _close(loss, -sum(adv) / 4)  # 0: leave-one-out advantages sum to zero per prompt
    loss.backward()
    _close(_row_grad(batch.logp), [-a / 4 for a in adv])


def test_bond_loss_and_metrics_are_expectations_under_the_weights():
    """§8: with expectation weights w every mean over samples is Σ w·(·): the batch of the leave-one-out test with
    baseline none and w = (0.1, 0.2, 0.3, 0.4)."""
    algo = Bond(BondConfig(n=4, beta=1.0, samples=2, baseline="none", quantiles="mc"))
    w = [0.1, 0.2, 0.3, 0.4]
    batch = _bond_batch(ref_logp=_tok(REF), weights=torch.tensor(w, dtype=torch.float64))
    log_q = [-LOG2, 0.0, -2 * LOG2, 0.0]
    r = [-3 * LOG2 - 0.5, 1.0, -6 * LOG2 - 1.0, 1.0]

    def expect(xs):
        return sum(wi * x for wi, x in zip(w, xs, strict=True))

    loss, metrics = algo.loss(batch)
    _close(metrics["bond/log_quantile"], expect(log_q))
    _close(metrics["train/return"], expect(r))
    _close(loss, -expect(r))
    loss.backward()
    _close(_row_grad(batch.logp), [-wi * x for wi, x in zip(w, r, strict=True)])


def test_iterative_bond_regularises_towards_the_anchor_not_the_reference():
    """§5: iterative BOND distils Best-of-n of π_anchor, so the return's KL term is log π − log π_anchor, even on a
    batch that also carries log π_ref. Anchor sums are REF, reference sums REF − 1 (a shift that a mix-up would
    show: it changes every return by 1)."""
    algo = Bond(BondConfig(n=4, beta=1.0, samples=2, baseline="none", quantiles="mc", anchor_period=3))
    batch = _bond_batch(anchor_logp=_tok(REF), ref_logp=_tok([x - 1.0 for x in REF]))
    r = [-3 * LOG2 - 0.5, 1.0, -6 * LOG2 - 1.0, 1.0]  # Σ old − Σ anchor = [0.5, −1, 1, −1]
    loss, metrics = algo.loss(batch)
    _close(metrics["train/return"], sum(r) / 4)
    loss.backward()
    _close(_row_grad(batch.logp), [-x / 4 for x in r])


def _jbond_batch(weights=None):
    """The two-prompt, two-sample J-BOND batch worked by hand below: π's log-probs NOW (with gradient), the target's
    (with gradient), anchors of log-probs (−1.5, −2.5, −2.0, −2.0) and base rewards whose minima are 0 and 5."""
    return Batch(
        group_size=2,
        response_mask=_mask(4),
        logp=_tok(NOW, grad=True),
        old_logp=_tok(OLD),
        rewards=torch.tensor([-1.0, 2.0, 6.0, 7.0], dtype=torch.float64),
        anchor_logp=_tok([-1.5, -2.5, -2.0, -2.0]),
        base_rewards=torch.tensor([[0.0, 1.0], [5.0, 8.0]], dtype=torch.float64),  # min 0 and min 5
        target_logp=_tok([-2.0, -4.0], grad=True),
        target_mask=_mask(2),
        weights=None if weights is None else torch.tensor(weights, dtype=torch.float64),
    )


def test_jbond_loss_by_hand():
    """§6 at β = 0.25, γ = 0.5: r_J per prompt's own anchors, R = r_J − log ratio, coef = β·R − γ·log ratio."""
    algo = JBond(JBondConfig(beta=0.25, gamma=0.5, samples=2, baseline="none"))
    batch = _jbond_batch()
    logp, target = batch.logp, batch.target_logp
    big = math.log(16.0)
    # only row 0 (−1 < 0) loses; row 1 (2 ≥ 0) would lose against prompt 1's anchors (2 < 5)
    r_j = [-big, 0.0, 0.0, 0.0]
    log_ratio = [0.5, 0.5, 1.0, -1.0]  # Σ old − Σ anchor
    returns = [r - lr for r, lr in zip(r_j, log_ratio, strict=True)]  # [−log 16 − 0.5, −0.5, −1, 1]
    coef = [0.25 * R - 0.5 * lr for R, lr in zip(returns, log_ratio, strict=True)]  # baseline none: A = R
    forward = (2.0 + 4.0) / 2
    loss, metrics = algo.loss(batch)
    _close(metrics["jbond/reward"], -big / 4)
    _close(metrics["jbond/kl_anchor_k1"], 1.0 / 4)
    _close(metrics["train/return"], sum(returns) / 4)
    _close(metrics["loss/pg"], -sum(coef) / 4)
    _close(loss, -sum(coef) / 4 + 0.75 * forward)
    loss.backward()
    _close(_row_grad(logp), [-c / 4 for c in coef])
    _close(_row_grad(target), [-0.75 / 2] * 2)


def test_jbond_loss_and_metrics_are_expectations_under_the_weights():
    """§8: with expectation weights w (enumeration on the testbed) every mean over samples is Σ w·(·). The batch of
    test_jbond_loss_by_hand with w = (0.1, 0.2, 0.3, 0.4); the forward term stays a mean over prompts' targets."""
    algo = JBond(JBondConfig(beta=0.25, gamma=0.5, samples=2, baseline="none"))
    w = [0.1, 0.2, 0.3, 0.4]
    batch = _jbond_batch(weights=w)
    logp = batch.logp
    big = math.log(16.0)
    r_j = [-big, 0.0, 0.0, 0.0]
    log_ratio = [0.5, 0.5, 1.0, -1.0]
    returns = [r - lr for r, lr in zip(r_j, log_ratio, strict=True)]
    coef = [0.25 * R - 0.5 * lr for R, lr in zip(returns, log_ratio, strict=True)]

    def expect(xs):
        return sum(wi * x for wi, x in zip(w, xs, strict=True))

    loss, metrics = algo.loss(batch)
    _close(metrics["jbond/reward"], expect(r_j))
    _close(metrics["jbond/kl_anchor_k1"], expect(log_ratio))
    _close(metrics["train/return"], expect(returns))
    _close(metrics["loss/pg"], -expect(coef))
    _close(loss, -expect(coef) + 0.75 * 3.0)
    loss.backward()
    _close(_row_grad(logp), [-wi * c for wi, c in zip(w, coef, strict=True)])


class _ToyPolicy:
    """θ and θ_anchor as scalars; update_anchor is the documented θ_anchor ← (1 − η)·θ_anchor + η·θ."""

    def __init__(self):
        self.theta, self.anchor = 0.0, 0.0

    def update_anchor(self, eta):
        self.anchor = (1.0 - eta) * self.anchor + eta * self.theta


def test_jbond_anchor_ema_moves_by_eta():
    """§6.5, η = 0.25: anchor 0 → 0.75·0 + 0.25·1 = 0.25 → 0.75·0.25 + 0.25·2 = 0.6875."""
    algo, policy = JBond(JBondConfig(eta=0.25)), _ToyPolicy()
    policy.theta = 1.0
    algo.after_step(policy, 1)
    assert policy.anchor == pytest.approx(0.25)
    policy.theta = 2.0
    algo.after_step(policy, 2)
    assert policy.anchor == pytest.approx(0.6875)


def _anchors_over_steps(algo, steps=7):
    """The anchor after each step 1..steps (train.py calls after_step with the step count from 1),
    with θ = the step number, so a hard swap after step s sets the anchor to s."""
    policy, seen = _ToyPolicy(), []
    for step in range(1, steps + 1):
        policy.theta = float(step)
        algo.after_step(policy, step)
        seen.append(policy.anchor)
    return seen


def test_jbond_hard_swap_every_m_steps():
    """swap_period M = 3: the anchor is swapped after steps 3 and 6 (every M optimiser steps)."""
    assert _anchors_over_steps(JBond(JBondConfig(swap_period=3))) == [0, 0, 3, 3, 3, 6, 6]


def test_iterative_bond_swaps_every_m_steps():
    """§5, M = 3: π_anchor = π_ref until the swap after step 3, then π after steps 3 and 6."""
    algo = Bond(BondConfig(quantiles="mc", anchor_period=3))
    assert _anchors_over_steps(algo) == [0, 0, 3, 3, 3, 6, 6]
    assert _anchors_over_steps(Bond(BondConfig(quantiles="mc"))) == [0] * 7  # plain BOND: no anchor moves


def test_bond_mc_quantiles_use_k_cached_base_samples(exact_task):
    """§3: p̂_≤ = (1 + #{r_i ≤ r})/(k + 1) against k = 3 cached samples: every value is a multiple of 1/4."""
    k = 3
    algo = Bond(BondConfig(quantiles="mc", k=k, samples=2))
    assert algo.needs().cache_size == k
    batch = sampled_batch(algo, exact_task, exact_task.build_policy(0))
    scaled = batch.quantiles * (k + 1)
    _close(scaled, scaled.round())
    assert (batch.quantiles < 1).any()  # not all at the top, where every k agrees


def test_reinforce_kl_in_loss_and_return_metric_are_expectations_under_the_weights():
    """§8: on the testbed the weights replace sampling, so every mean is Σ w·(·). The batch of
    test_reinforce_kl_in_loss_adds_beta_times_k3 with w = (1/4, 3/4): E[k3] = ¼(2 log 2 − 1) + ¾(2 − 2 log 2)."""
    algo, logp, batch = _k3_batch(weights=torch.tensor([0.25, 0.75], dtype=torch.float64))
    kl = 0.25 * (2 * LOG2 - 1) + 0.75 * (2 - 2 * LOG2)  # = 1.25 − log 2
    loss, metrics = algo.loss(batch)
    _close(metrics["loss/kl"], kl)
    _close(metrics["loss/pg"], -0.25)  # −Σ w·r
    _close(metrics["train/return"], 0.25)  # Σ w·R, R = r
    _close(loss, -0.25 + 0.3 * kl)
    loss.backward()
    # ∂/∂log π_t: −w_i·r_i from the surrogate, + β·w_i·(1 − ρ_t) from k3
    expected = torch.tensor([[-0.25 + 0.3 * 0.25 * 0.5] * 2 + [0.0], [0.3 * 0.75 * (1 - 2)] * 2 + [0.0]])
    _close(logp.grad, expected)


def test_reinforce_exact_kl_in_loss_is_kl_of_pi_to_ref_per_visited_prefix():
    """§1: the exact-token estimator is Σ_t KL(π(·|prefix) ‖ π_ref(·|prefix)), in that direction. Row 0: at
    both positions π = (½, ½), π_ref = (¼, ¾): KL = ½ log 2 + ½ log(2/3) each (the reverse direction,
    ¼ log ½ + ¾ log(3/2), differs); row 1: π = π_ref, KL 0. Padding rows hold junk."""
    algo = Reinforce(ReinforceConfig(samples=2, baseline="none", beta=0.3, kl_in="loss", kl_estimator="exact"))
    half = torch.log(torch.tensor([0.5, 0.5], dtype=torch.float64))
    skew = torch.log(torch.tensor([0.25, 0.75], dtype=torch.float64))
    junk = torch.tensor([JUNK, -JUNK], dtype=torch.float64)
    full = torch.stack([torch.stack([half, half, junk]), torch.stack([skew, skew, junk])]).requires_grad_(True)
    ref_full = torch.stack([torch.stack([skew, skew, -junk]), torch.stack([skew, skew, -junk])])
    ids = torch.tensor([[0, 1, 0], [1, 1, 0]])
    logp = full.gather(-1, ids[..., None]).squeeze(-1)
    batch = Batch(
        group_size=2,
        response_mask=_mask(2),
        logp=logp,
        old_logp=logp.detach(),
        rewards=torch.tensor([1.0, 0.0], dtype=torch.float64),
        ref_logp=ref_full.gather(-1, ids[..., None]).squeeze(-1),
        full_logprobs=full,
        ref_full_logprobs=ref_full,
    )
    per_position = 0.5 * LOG2 + 0.5 * math.log(2 / 3)
    kl = (2 * per_position + 0.0) / 2
    loss, metrics = algo.loss(batch)
    _close(metrics["loss/kl"], kl)
    _close(loss, -0.5 + 0.3 * kl)


def test_jbond_leave_one_out_baseline_by_hand():
    """§6.3: b is the mean return of the prompt's other samples. The batch of test_jbond_loss_by_hand with
    baseline=loo, two samples per prompt: A_i = R_i − R_other."""
    algo = JBond(JBondConfig(beta=0.25, gamma=0.5, samples=2, baseline="loo"))
    batch = _jbond_batch()
    logp = batch.logp
    big = math.log(16.0)
    log_ratio = [0.5, 0.5, 1.0, -1.0]
    returns = [-big - 0.5, -0.5, -1.0, 1.0]
    adv = [returns[0] - returns[1], returns[1] - returns[0], returns[2] - returns[3], returns[3] - returns[2]]
    coef = [0.25 * a - 0.5 * lr for a, lr in zip(adv, log_ratio, strict=True)]
    loss, metrics = algo.loss(batch)
    _close(metrics["loss/pg"], -sum(coef) / 4)
    loss.backward()
    _close(_row_grad(logp), [-c / 4 for c in coef])


def test_ppo_lite_return_metric_is_an_expectation_under_the_weights():
    """§8: PPO-lite's train/return is Σ w·R like REINFORCE's: R = r − β·(Σ old − Σ ref) at β = 0.25 (the rows of
    test_reinforce_kl_in_reward_uses_sampling_time_logp, R = [0.875, 0.25, 1.75, −0.75]), w = (0.1, 0.2, 0.3, 0.4)."""
    algo = PPOLite(PPOLiteConfig(samples=2, baseline="none", beta=0.25, epochs=1, minibatches=1))
    batch = Batch(
        group_size=2,
        response_mask=_mask(4),
        logp=_tok(OLD, grad=True),
        old_logp=_tok(OLD),
        rewards=torch.tensor([1.0, 0.0, 2.0, -1.0], dtype=torch.float64),
        ref_logp=_tok(REF),
        weights=torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64),
    )
    expected = 0.1 * 0.875 + 0.2 * 0.25 + 0.3 * 1.75 - 0.4 * 0.75
    loss, metrics = algo.loss(batch)
    _close(metrics["train/return"], expected)
    _close(loss, -expected)  # ρ ≡ 1: S = A = R


@pytest.mark.parametrize(("eps", "clipped"), [(0.05, True), (0.2, False)])
def test_ppo_lite_clips_at_its_own_epsilon(eps, clipped):
    """§7: every token ratio is 1.1 and every A > 0 (β = 0, no baseline: A = r). With ε = 0.05 the clip binds:
    S = A + 2·0.05·A and no gradient; with ε = 0.2 it does not: S = A + 2·0.1·A, ∂L/∂log π_t = −A·1.1/N."""
    algo = PPOLite(PPOLiteConfig(samples=2, baseline="none", beta=0.0, clip_eps=eps, epochs=2, minibatches=1))
    logp = _tok(NOW, grad=True)
    rewards = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    batch = Batch(
        group_size=2,
        response_mask=_mask(4),
        logp=logp,
        old_logp=logp.detach() - math.log(1.1),
        rewards=rewards,
        ref_logp=_tok(REF),
    )
    loss, metrics = algo.loss(batch)
    gain = 2 * (eps if clipped else 0.1)
    _close(loss, -(1 + gain) * rewards.mean())
    _close(metrics["ppo/clip_fraction"], 1.0 if clipped else 0.0)
    loss.backward()
    expected = torch.zeros(4, dtype=torch.float64) if clipped else -rewards * 1.1 / 4
    _close(_row_grad(logp), expected)


class _ThreadShard:
    """Rank ``rank`` of ``world`` threads; ``gather`` concatenates every rank's rows by rank, as an all-gather does."""

    def __init__(self, rank, world, slots, barrier):
        self.rank, self.world, self.slots, self.barrier = rank, world, slots, barrier

    def gather(self, x):
        self.slots[self.rank] = x
        self.barrier.wait()
        out = torch.cat(list(self.slots))
        self.barrier.wait()
        return out

    def gather_objects(self, obj):
        raise AssertionError("not used here")


def _on_threads(world, each, shard=_ThreadShard):
    """``each(rank, shard)`` on ``world`` threads standing for processes, sharing one all-gather; their results."""
    import threading

    slots, barrier, got = [None] * world, threading.Barrier(world, timeout=60), [None] * world

    def rank(r):
        got[r] = each(r, shard(r, world, slots, barrier))

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return got


def _clip_fraction(mask, logp, old, rewards, rows, shard=None):
    """PPO-lite's ``ppo/clip_fraction`` over the prompts ``rows`` (one sample each, A = r, ε = 0.2)."""
    algo = PPOLite(PPOLiteConfig(samples=1, baseline="none", beta=0.0, clip_eps=0.2, epochs=2, minibatches=1))
    batch = Batch(
        group_size=1,
        response_mask=mask[rows],
        logp=logp[rows],
        old_logp=old[rows],
        rewards=rewards[rows],
        ref_logp=old[rows],
        shard=shard,
    )
    return algo.loss(batch)[1]["ppo/clip_fraction"]


def test_ppo_lite_clip_fraction_over_processes_counts_every_token_once():
    """§7's clip fraction is over the minibatch's completion tokens. Two prompts, one sample each, A = r > 0, ε = 0.2:
    prompt 0 has 2 tokens with ratios (1.5, 1), prompt 1 has 6 with (1.5, 1, 1, 1, 1, 1); one token of each is clipped,
    so 2 of 8 tokens: 1/4, whether one process holds both prompts or each of two processes holds one (its own
    fraction 1/2 or 1/6: their plain mean, 1/3, would weigh a short completion's tokens more)."""
    mask = torch.tensor([[1.0, 1.0, 0, 0, 0, 0], [1.0] * 6], dtype=torch.float64)
    old = torch.full((2, 6), -1.0, dtype=torch.float64)
    logp = old.clone()
    logp[:, 0] += math.log(1.5)
    rewards = torch.tensor([1.0, 2.0], dtype=torch.float64)
    _close(_clip_fraction(mask, logp, old, rewards, [0, 1]), 0.25)
    got = _on_threads(2, lambda r, shard: _clip_fraction(mask, logp, old, rewards, [r], shard))
    _close(got[0], 0.25)
    _close(got[1], 0.25)


def test_ppo_lite_clip_fraction_over_three_processes_equals_one_process_bit_for_bit():
    """§7's clip fraction of the global minibatch is the same number, bit for bit, whether one process or three
    compute it (``_global_fraction``'s promise). Three prompts, one sample each, A = r > 0, ε = 0.2: prompt 0 has 22
    completion tokens of which 15 are clipped (ratio 1.5), prompt 1 has 2 tokens, none clipped, prompt 2 has 1,
    clipped: 16 of 25 tokens. Two traps: rank 0's own fraction 15/22 times 22 is 14.999999999999998 in float64 (the
    count must be recovered as the integer 15), and averaging the three ranks' counts instead of summing them
    changes 16/25 in its last bit."""
    t = 22
    mask = torch.zeros(3, t, dtype=torch.float64)
    mask[0, :] = 1.0
    mask[1, :2] = 1.0
    mask[2, :1] = 1.0
    old = torch.full((3, t), -1.0, dtype=torch.float64)
    logp = old.clone()
    logp[0, :15] += math.log(1.5)
    logp[2, :1] += math.log(1.5)
    rewards = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    one = _clip_fraction(mask, logp, old, rewards, [0, 1, 2])
    assert float(one) == 16 / 25
    got = _on_threads(3, lambda r, shard: _clip_fraction(mask, logp, old, rewards, [r], shard))
    assert all(g is not None and torch.equal(g, one) for g in got), (got, one)


class _GlobalOrderShard(_ThreadShard):
    """Like _ThreadShard, but ``gather`` returns the global rows in global order (rank r holds rows r, r + 2,
    ...), as the real all-gather followed by rlhf_zoo.shard.interleave does."""

    def gather(self, x):
        from rlhf_zoo.shard import interleave

        return interleave(super().gather(x), self.world)


@pytest.mark.parametrize("baseline", ["mean", "loo"])
@pytest.mark.parametrize("cls", [Reinforce, PPOLite])
def test_batch_level_baselines_are_over_the_global_batch_on_every_process(cls, baseline):
    """§4/§7: with one sample per prompt the baseline is over the batch (its mean, or the mean of the *other* rows
    for loo), the global batch when two processes each hold half of it. The rows of
    test_reinforce_kl_in_reward_uses_sampling_time_logp as four prompts × one sample, R = [0.875, 0.25, 1.75, −0.75]
    (β = 0.25): rank r holds rows r and r + 2, and its gradient is −A_i/2 with A from all four returns."""
    returns = [0.875, 0.25, 1.75, -0.75]
    total = sum(returns)
    adv = [r - total / 4 for r in returns] if baseline == "mean" else [r - (total - r) / 3 for r in returns]
    cfg = cls.Config(samples=1, baseline=baseline, beta=0.25)
    if cls is PPOLite:
        cfg = PPOLiteConfig(samples=1, baseline=baseline, beta=0.25, epochs=1, minibatches=1)
    algo = cls(cfg)
    rewards = [1.0, 0.0, 2.0, -1.0]

    def rank(r, shard):
        rows = [r, r + 2]
        logp = _tok([OLD[i] for i in rows], grad=True)
        batch = Batch(
            group_size=1,
            response_mask=_mask(2),
            logp=logp,
            old_logp=_tok([OLD[i] for i in rows]),
            rewards=torch.tensor([rewards[i] for i in rows], dtype=torch.float64),
            ref_logp=_tok([REF[i] for i in rows]),
            shard=shard,
        )
        loss, _ = algo.loss(batch)
        loss.backward()
        return loss.detach(), _row_grad(logp)

    got = _on_threads(2, rank, shard=_GlobalOrderShard)
    for r in range(2):
        rows = [r, r + 2]
        _close(got[r][0], -sum(adv[i] for i in rows) / 2)
        _close(got[r][1], [-adv[i] / 2 for i in rows])
