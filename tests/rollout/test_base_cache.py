"""The base cache (ALGORITHMS.md §3, §5): k base samples per prompt drawn once and reused across steps,
keyed by the prompt (not its position or batch), and redrawn from the new anchor after an anchor update."""

import torch

from rlhf_zoo.algorithms.base import Needs
from rlhf_zoo.rng import Streams
from rlhf_zoo.rollout import BaseCache, collect
from tests.rollout.recording import RecordingPolicy, UniformsPolicy


def step(needs, policy, task, cache, prompts=None, step=0):
    prompts = task.train_prompts if prompts is None else prompts
    return collect(needs, policy, task, prompts, streams=Streams(0, step), cache=cache)


def mc(base, k=5):
    return Needs(samples=2, quantiles="mc", base=base, cache_size=k, target="cache", target_n=3)


def entry_texts(cache):
    return {key[0]: roll.texts for key, (roll, _) in cache.entries.items()}


def test_entries_are_drawn_once_and_reused_across_steps(exact_task, three_roles):
    policy = RecordingPolicy(three_roles)
    cache = BaseCache(5)
    step(mc("ref"), policy, exact_task, cache)
    drawn = entry_texts(cache)
    assert [c.n for c in policy.of("ref")] == [5] and sorted(drawn) == exact_task.train_prompts
    for s in range(1, 4):
        prompts = list(reversed(exact_task.train_prompts)) if s % 2 else exact_task.train_prompts
        step(mc("ref"), policy, exact_task, cache, prompts=prompts, step=s)
    assert [c.n for c in policy.of("ref")] == [5], "no base sample is drawn again"
    assert entry_texts(cache) == drawn


def test_a_prompt_draws_the_same_entry_whichever_step_and_batch_first_need_it(exact_task, three_roles):
    first, later = BaseCache(5), BaseCache(5)
    step(mc("ref"), three_roles, exact_task, first, prompts=["x0", "x1"])
    step(mc("ref"), three_roles, exact_task, later, prompts=["x3", "x2", "x1"], step=7)
    assert entry_texts(first)["x1"] == entry_texts(later)["x1"]


def test_a_prompt_repeated_in_one_batch_is_drawn_once(exact_task, three_roles):
    policy = RecordingPolicy(three_roles)
    cache = BaseCache(5)
    step(mc("ref"), policy, exact_task, cache, prompts=["x1", "x0", "x1"])
    (call,) = policy.of("ref")
    assert call.prompts == ["x1", "x0"]


def test_anchor_entries_are_redrawn_from_the_new_anchor_after_an_update(exact_task, three_roles):
    policy = RecordingPolicy(three_roles)
    cache = BaseCache(6)
    step(mc("anchor"), policy, exact_task, cache)
    step(mc("anchor"), policy, exact_task, cache, step=1)
    assert len(policy.of("anchor")) == 1
    old_anchor = policy.anchor_logits.clone()
    policy.update_anchor(1.0)  # π_anchor ← π, which differs from the old anchor
    assert (policy.anchor_logits - old_anchor).abs().max() > 0.1
    step(mc("anchor"), policy, exact_task, cache, step=2)
    calls = policy.of("anchor")
    assert len(calls) == 2 and calls[1].prompts == exact_task.train_prompts
    assert len(cache.entries) == len(exact_task.train_prompts), "the old anchor's samples are dropped"
    for roll, rewards in cache.entries.values():
        mask = roll.response_mask.bool()
        # drawn from the new anchor: their sampling log-probs are the new anchor's
        assert torch.allclose(roll.sample_logp[mask], policy.logprobs(roll, role="anchor")[mask], atol=1e-6)
        assert torch.equal(rewards, exact_task.proxy.score(roll.prompts, roll.texts))
    step(mc("anchor"), policy, exact_task, cache, step=3)
    assert len(policy.of("anchor")) == 2, "and then reused"


def test_a_new_anchors_entries_are_fresh_draws_not_the_old_anchors_random_numbers(exact_task, three_roles):
    """Keyed by the anchor version: the new anchor's samples start from other random numbers than the old
    anchor's did, so that they are new draws and not the old ones' inverse CDFs at the same uniforms."""
    policy = UniformsPolicy(three_roles)
    cache = BaseCache(6)
    step(mc("anchor"), policy, exact_task, cache)
    policy.update_anchor(1.0)
    step(mc("anchor"), policy, exact_task, cache, step=1)
    (old, new) = [u for u, call in zip(policy.uniforms, policy.calls, strict=True) if call.role == "anchor"]
    assert not torch.isin(old, new).any()


def test_reference_entries_survive_anchor_updates(exact_task, three_roles):
    policy = RecordingPolicy(three_roles)
    cache = BaseCache(5)
    step(mc("ref"), policy, exact_task, cache)
    policy.update_anchor(1.0)
    step(mc("ref"), policy, exact_task, cache, step=1)
    assert len(policy.of("ref")) == 1


def test_state_round_trip_keeps_every_entry(exact_task, three_roles):
    cache = BaseCache(5)
    before = step(mc("ref"), three_roles, exact_task, cache, step=2)
    restored = BaseCache(1)
    restored.load(cache.state())
    policy = RecordingPolicy(three_roles)
    after = step(mc("ref"), policy, exact_task, restored, step=2)
    assert not policy.of("ref") and restored.k == 5
    assert torch.equal(before.quantiles, after.quantiles) and before.target.texts == after.target.texts
