"""The base cache (ALGORITHMS.md §3, §5): k base samples per prompt drawn once and reused across steps,
keyed by the prompt (not its position or batch), and redrawn from the new anchor after an anchor update."""

import io
import pickle
import zipfile
from dataclasses import replace

import torch

from rlhf_zoo.algorithms.base import Needs
from rlhf_zoo.policies.base import Rollout
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


def _assert_same_entries(a, b):
    assert list(a) == list(b) and a
    for key, (roll, rewards) in a.items():
        other, other_rewards = b[key]
        assert torch.equal(other_rewards, rewards) and other_rewards.dtype == rewards.dtype
        assert (other.prompts, other.texts, other.group_size) == (roll.prompts, roll.texts, roll.group_size)
        for name in ("prompt_ids", "prompt_mask", "completion_ids", "response_mask", "sample_logp"):
            x, y = getattr(roll, name), getattr(other, name)
            assert x.dtype == y.dtype and torch.equal(x, y), (key, name)


def test_the_packed_state_gives_back_every_field_of_every_entry_and_the_older_form_still_loads(exact_task, three_roles):
    """A resumed run must see the very entries it saved (their padding too: a target's log-probs are taken over
    the width it was drawn with). Entries of two roles and two widths; one entry's prompt rows made to differ,
    which packing must not fold into one row."""
    cache = BaseCache(5)
    step(mc("ref"), three_roles, exact_task, cache, prompts=["x0", "x1"])
    step(mc("anchor"), three_roles, exact_task, cache, prompts=["x2"], step=1)
    roll, rewards = cache.entries[("x1", "ref", 0)]
    ids = roll.prompt_ids.clone()
    ids[2] = ids[2] + 1
    cache.entries[("x1", "ref", 0)] = (replace(roll, prompt_ids=ids), rewards)
    for state in (cache.state(), {"k": 5, "entries": dict(cache.entries)}):
        restored = BaseCache(1)
        restored.load(pickle.loads(pickle.dumps(state)))
        assert restored.k == 5
        _assert_same_entries(cache.entries, restored.entries)


def _lm_like_entries(count, k=16, prompt_len=13, width=24, vocab=49152):
    """Entries shaped as a language model's: k completions of one prompt (its row repeated), right padded."""
    gen = torch.Generator().manual_seed(count)
    entries = {}
    for i in range(count):
        mask = (torch.arange(width)[None] < torch.randint(4, width + 1, (k, 1), generator=gen)).long()
        roll = Rollout(
            prompts=[f"prompt {i}"] * k,
            prompt_ids=torch.randint(0, vocab, (1, prompt_len), generator=gen).expand(k, -1).clone(),
            prompt_mask=torch.ones(k, prompt_len, dtype=torch.long),
            completion_ids=torch.randint(0, vocab, (k, width), generator=gen) * mask,
            response_mask=mask,
            sample_logp=-torch.rand(k, width, generator=gen) * mask,
            texts=[f"completion {j} of prompt {i}, some forty characters" for j in range(k)],
            group_size=k,
        )
        entries[(f"prompt {i}", "ref", 0)] = (roll, torch.rand(k, generator=gen))
    return entries


def _saved(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def test_a_checkpoint_holds_the_cache_packed_in_a_few_tensors_and_under_half_the_bytes():
    """Pickled entry by entry, a checkpoint held six tensors and a Rollout per prompt (13.5 KB a prompt with k = 16
    on zoo-lm, rewritten whole at every checkpoint). Packed: the same few tensors whatever the number of entries,
    each prompt row once and token ids in the narrowest integer type, under half the bytes."""
    counts, files = (50, 100), []
    for count in counts:
        cache = BaseCache(16, _lm_like_entries(count))
        packed, pickled = _saved(cache.state()), _saved({"k": 16, "entries": cache.entries})
        files.append(len(zipfile.ZipFile(io.BytesIO(packed)).namelist()))
        assert len(packed) < 0.5 * len(pickled), (count, len(packed), len(pickled))
        restored = BaseCache(1)
        restored.load(torch.load(io.BytesIO(packed), weights_only=False))
        _assert_same_entries(cache.entries, restored.entries)
    assert files[0] == files[1], files


def test_entries_stay_in_cpu_memory_and_are_handed_out_on_the_policys_device(exact_task, three_roles):
    """The cache grows with the prompts visited: on an accelerator it would grow in the accelerator's memory."""

    class Elsewhere(RecordingPolicy):
        device = torch.device("meta")  # a device other than the CPU, which this machine has

    cache = BaseCache(4)
    got = cache.get(Elsewhere(three_roles), "ref", ["x0", "x1"], exact_task, Streams(0, 0), None)
    assert [r.completion_ids.device.type for r, _ in got] == ["meta", "meta"]
    assert [w.device.type for _, w in got] == ["meta", "meta"]
    for roll, rewards in cache.entries.values():
        assert rewards.device.type == "cpu"
        assert {t.device.type for t in (roll.prompt_ids, roll.completion_ids, roll.response_mask)} == {"cpu"}


def test_an_entrys_prompt_fields_are_held_once_with_the_sampled_values(exact_task, three_roles):
    """An entry's k rows share one prompt: held as k copies they took about half of an entry's tensors."""
    k = 6
    cache = BaseCache(k)
    cache.get(three_roles, "ref", ["x0", "x1"], exact_task, Streams(0, 0), None)
    for (prompt, _, _), (roll, _) in cache.entries.items():
        sampled = three_roles.sample([prompt], k, role="ref", generator=torch.Generator().manual_seed(0))
        for name in ("prompt_ids", "prompt_mask"):
            held, want = getattr(roll, name), getattr(sampled, name)
            assert torch.equal(held, want) and held.dtype == want.dtype, name
            assert held.untyped_storage().nbytes() == want[0].numel() * want.element_size(), name


def test_packed_integers_take_the_narrowest_type_that_holds_them_bounds_included():
    """uint8 holds 0..255 and int32 −2³¹..2³¹−1: a tensor reaching a bound exactly fits that type."""
    from rlhf_zoo.rollout import _narrowest

    cases = [
        ([0, 255], torch.uint8),
        ([0, 256], torch.int32),
        ([-1, 3], torch.int32),
        ([-(2**31), 2**31 - 1], torch.int32),
        ([0, 2**31], torch.int64),
    ]
    for values, dtype in cases:
        x = torch.tensor(values, dtype=torch.int64)
        got = _narrowest(x)
        assert got.dtype == dtype, (values, got.dtype)
        assert torch.equal(got.to(torch.int64), x)
    assert _narrowest(torch.tensor([0.5, 300.0])).dtype == torch.float32  # floats are left as they are
