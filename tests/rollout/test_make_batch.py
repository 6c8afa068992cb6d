"""Stage 2 of a step, ``make_batch``: log π with gradient on the current policy, everything else as
collected, and minibatch ``groups`` that select the right rows of every field."""

import dataclasses

import torch

from rlhf_zoo.algorithms.base import Needs
from rlhf_zoo.rng import Streams
from rlhf_zoo.rollout import BaseCache, collect, make_batch

NEEDS = Needs(samples=3, ref_logp=True, anchor_logp=True, quantiles="mc", cache_size=4, base_samples=2, target="fresh")


def collected(task, policy, needs=NEEDS, step=0):
    cache = BaseCache(needs.cache_size) if needs.cache_size else None
    return collect(needs, policy, task, task.train_prompts, streams=Streams(0, step), cache=cache)


def sgd_step(policy, rollout, lr=1.0):
    """One gradient step that changes π (raises the likelihood of ``rollout``)."""
    params = policy.trainable_parameters()
    grads = torch.autograd.grad((policy.logprobs(rollout) * rollout.response_mask).sum(), params)
    with torch.no_grad():
        for p, g in zip(params, grads, strict=True):
            p.add_(lr * g)


def test_old_logp_is_the_sampling_time_log_prob_after_the_policy_moved(exact_task, three_roles):
    """PPO-lite's ratio π/π_old needs π_old from sampling time: after an optimiser step (a second epoch,
    a later minibatch), old_logp must still be the sampled log-probs, and logp the current ones."""
    policy = three_roles
    data = collected(exact_task, policy)
    mask = data.rollout.response_mask.bool()
    with torch.no_grad():
        at_sampling = policy.logprobs(data.rollout).clone()
    sgd_step(policy, data.rollout)
    batch = make_batch(NEEDS, policy, data)
    now = policy.logprobs(data.rollout).detach()
    assert (now[mask] - at_sampling[mask]).abs().max() > 0.05  # the step moved π
    assert torch.allclose(batch.old_logp[mask], at_sampling[mask], atol=1e-6)
    assert torch.allclose(batch.logp.detach()[mask], now[mask], atol=1e-6)
    assert batch.logp.requires_grad and not batch.old_logp.requires_grad


def test_fields_equal_the_policys_own_log_probs_and_the_collected_data(exact_task, three_roles):
    policy = three_roles
    data = collected(exact_task, policy)
    batch = make_batch(NEEDS, policy, data)
    roll, mask = data.rollout, data.rollout.response_mask.bool()
    assert batch.group_size == 3 and batch.num_groups == 4
    assert torch.equal(batch.response_mask, roll.response_mask)
    assert torch.allclose(batch.ref_logp[mask], policy.logprobs(roll, role="ref")[mask])
    assert torch.allclose(batch.anchor_logp[mask], policy.logprobs(roll, role="anchor")[mask])
    assert torch.equal(batch.rewards, exact_task.proxy.score(roll.prompts, roll.texts))
    # the collected quantiles reach the loss as they are: p̂_≤ and p̂_< (apart where rewards tie), base rewards
    assert (data.quantiles_lt < data.quantiles).any() and (data.quantiles_lt <= data.quantiles).all()
    for name in ("quantiles", "quantiles_lt", "base_rewards"):
        assert torch.equal(getattr(batch, name), getattr(data, name)), name
    target_logp = policy.logprobs(data.target)
    assert torch.allclose(batch.target_logp, target_logp) and batch.target_logp.requires_grad
    assert torch.equal(batch.target_mask, data.target.response_mask)
    assert batch.weights is None
    # the gradient of Σ log π reaches the policy's table, and only through logp / target_logp
    (batch.seq("logp").sum() + (batch.target_logp * batch.target_mask).sum()).backward()
    assert policy.logits.grad.abs().sum() > 0


def test_full_log_probs_with_gradient(exact_task, three_roles):
    needs = Needs(samples=2, ref_logp=True, full_logprobs=True)
    data = collected(exact_task, three_roles, needs)
    batch = make_batch(needs, three_roles, data)
    roll, mask = data.rollout, data.rollout.response_mask.bool()
    assert batch.full_logprobs.requires_grad
    assert torch.allclose(batch.full_logprobs, three_roles.logprobs(roll, full=True))
    assert torch.allclose(batch.full_logprobs.exp().sum(-1), torch.ones(mask.shape))
    assert torch.allclose(batch.logp[mask], three_roles.logprobs(roll)[mask])
    assert torch.allclose(batch.ref_full_logprobs, three_roles.logprobs(roll, role="ref", full=True))


def test_groups_select_the_rows_of_those_prompts_in_every_field(exact_task, three_roles):
    policy = three_roles
    data = collected(exact_task, policy)
    whole = make_batch(NEEDS, policy, data)
    groups = [2, 0]
    part = make_batch(NEEDS, policy, data, groups=groups)
    rows = torch.tensor([6, 7, 8, 0, 1, 2])  # prompt-major: group i holds rows 3i, 3i+1, 3i+2
    assert part.group_size == 3 and part.num_groups == 2
    for name in ("response_mask", "old_logp", "rewards", "ref_logp", "anchor_logp", "quantiles", "quantiles_lt"):
        assert torch.equal(getattr(part, name), getattr(whole, name)[rows]), name
    assert torch.allclose(part.logp, whole.logp[rows].detach()) and part.logp.requires_grad
    assert torch.equal(part.base_rewards, whole.base_rewards[groups])
    assert torch.allclose(part.target_logp, whole.target_logp[groups].detach())
    assert torch.equal(part.target_mask, whole.target_mask[groups])
    # and the rows are the prompts' own: rewards of the selected prompts' completions
    picked = data.rollout.groups(groups)
    assert picked.prompts == ["x2"] * 3 + ["x0"] * 3
    assert torch.equal(part.rewards, exact_task.proxy.score(picked.prompts, picked.texts))


def test_groups_select_the_rows_of_the_full_reference_log_probs(exact_task, three_roles):
    """The [N, T, V] reference distributions are per row too: groups [2, 0] of 3 samples are rows 6, 7, 8, 0, 1, 2."""
    needs = Needs(samples=3, ref_logp=True, full_logprobs=True)
    data = collected(exact_task, three_roles, needs)
    part = make_batch(needs, three_roles, data, groups=[2, 0])
    assert torch.equal(part.ref_full_logprobs, data.ref_full_logprobs[torch.tensor([6, 7, 8, 0, 1, 2])])


def test_an_enumerations_weights_reach_the_batch(exact_task, three_roles):
    """A weighted rollout (an enumeration, used whole) hands its weights to the loss's expectations."""
    data = collected(exact_task, three_roles)
    weights = torch.arange(1.0, 13.0) / 78.0  # 12 rows (4 prompts × 3), each its own weight, summing to 1
    data.rollout = data.rollout.with_weights(weights)
    assert torch.equal(make_batch(NEEDS, three_roles, data).weights, weights)


def test_without_sampling_log_probs_old_logp_is_the_current_log_prob_without_gradient(exact_task, three_roles):
    """A rollout that carries no sampling-time log-probs: π_old is π now, a constant, so that the ratio π/π_old
    is 1 with the gradient of π (with the gradient through π_old too, the ratio's gradient would be 0)."""
    data = collected(exact_task, three_roles)
    data.rollout = dataclasses.replace(data.rollout, sample_logp=None)
    batch = make_batch(NEEDS, three_roles, data)
    assert torch.equal(batch.old_logp, batch.logp.detach())
    assert batch.logp.requires_grad and not batch.old_logp.requires_grad
