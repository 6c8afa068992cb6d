"""Stage 1 of a step, ``collect``: each field of StepData against what the policy and the task say
independently (the log-probs of each role, the rewards, the exact and the cached quantiles, the targets)."""

import contextlib
import dataclasses

import pytest
import torch

from rlhf_zoo.algorithms.base import Needs
from rlhf_zoo.rng import Streams
from rlhf_zoo.rollout import BaseCache, Costs, collect, score
from rlhf_zoo.tasks.exact import ExactTaskConfig, build_exact_task
from tests.rollout.recording import Flat, LMOrderPolicy, RecordingPolicy, UniformsPolicy, ahead
from tests.tasks import brute_force as bf


def step(needs, policy, task, prompts=None, step=0, seed=0, cache=None, costs=None, shard=None):
    prompts = task.train_prompts if prompts is None else prompts
    streams = Streams(seed, step)
    return collect(needs, policy, task, prompts, streams=streams, cache=cache, costs=costs, shard=shard)


def masked(x, mask):
    return x[mask.bool()]


def test_completions_rewards_and_the_log_probs_of_each_role(exact_task, three_roles):
    policy = three_roles
    prompts = ["x2", "x0", "x3"]
    data = step(Needs(samples=3, ref_logp=True, anchor_logp=True), policy, exact_task, prompts)
    roll, mask = data.rollout, data.rollout.response_mask
    assert data.prompts == prompts
    assert roll.prompts == [p for p in prompts for _ in range(3)] and roll.group_size == 3
    # sampled from π: the sampling-time log-probs are π's (π_ref and π_anchor give others)
    own = policy.logprobs(roll, role="policy").detach()
    assert torch.allclose(masked(roll.sample_logp, mask), masked(own, mask), atol=1e-6)
    assert torch.equal(data.rewards, exact_task.proxy.score(roll.prompts, roll.texts))
    ref, anchor = policy.logprobs(roll, role="ref"), policy.logprobs(roll, role="anchor")
    assert torch.allclose(masked(data.ref_logp, mask), masked(ref, mask))
    assert torch.allclose(masked(data.anchor_logp, mask), masked(anchor, mask))
    for a, b in [(own, ref), (own, anchor), (ref, anchor)]:
        assert (masked(a, mask) - masked(b, mask)).abs().max() > 0.1  # the three roles are told apart
    assert data.quantiles is None and data.target is None and data.base_rewards is None


def test_full_reference_log_probs(exact_task, three_roles):
    data = step(Needs(samples=2, ref_logp=True, full_logprobs=True), three_roles, exact_task)
    roll, mask = data.rollout, data.rollout.response_mask
    full = three_roles.logprobs(roll, role="ref", full=True)
    assert torch.allclose(data.ref_full_logprobs, full)
    assert torch.allclose(masked(data.ref_logp, mask), masked(three_roles.logprobs(roll, role="ref"), mask))


@pytest.mark.parametrize("base", ["ref", "anchor"])
def test_exact_quantiles_are_against_the_base_distribution(exact_task, three_roles, base):
    policy = three_roles
    data = step(Needs(samples=8, quantiles="exact", base=base), policy, exact_task)
    roll = data.rollout
    base_probs = bf.completion_probs(policy, base)
    proxy = bf.reward_table(exact_task.proxy, exact_task.train_prompts, policy)
    p_le = bf.quantiles(base_probs, proxy)
    texts = [policy.tree.decode(c) for c in policy.tree.completions]
    rows = [exact_task.train_prompts.index(p) for p in roll.prompts]
    cols = [texts.index(t) for t in roll.texts]
    assert torch.allclose(data.quantiles.double(), p_le[rows, cols], atol=1e-6)
    assert torch.allclose(data.quantiles_lt.double(), (p_le - base_probs)[rows, cols], atol=1e-6)


def cached(cache, prompt):
    """The (rollout, rewards) of the cache's entries for one prompt."""
    return [entry for key, entry in cache.entries.items() if key[0] == prompt]


@pytest.mark.parametrize("base", ["ref", "anchor"])
def test_monte_carlo_quantiles_are_against_the_cached_base_samples(exact_task, three_roles, base):
    policy, k = three_roles, 5
    cache = BaseCache(k)
    data = step(Needs(samples=2, quantiles="mc", base=base, cache_size=k), policy, exact_task, cache=cache)
    for i, prompt in enumerate(exact_task.train_prompts):
        (entry,) = cached(cache, prompt)
        roll, _ = entry
        assert roll.prompts == [prompt] * k
        mask = roll.response_mask
        # the cached completions are the base role's samples
        assert torch.allclose(masked(roll.sample_logp, mask), masked(policy.logprobs(roll, role=base), mask))
        base_rewards = exact_task.proxy.score(roll.prompts, roll.texts)
        own = data.rewards[2 * i : 2 * i + 2]
        le = (base_rewards[None, :] <= own[:, None]).sum(-1)
        lt = (base_rewards[None, :] < own[:, None]).sum(-1)
        assert torch.allclose(data.quantiles[2 * i : 2 * i + 2], (1 + le) / (k + 1))
        assert torch.allclose(data.quantiles_lt[2 * i : 2 * i + 2], (1 + lt) / (k + 1))


def test_fresh_base_samples_and_the_fresh_target_is_their_best(exact_task, three_roles):
    policy = RecordingPolicy(three_roles)
    needs = Needs(samples=1, anchor_logp=True, base="anchor", base_samples=4, target="fresh")
    data = step(needs, policy, exact_task)
    (fresh_call,) = policy.of("anchor", n=4)
    fresh = fresh_call.rollout
    assert fresh_call.prompts == exact_task.train_prompts
    expected = exact_task.proxy.score(fresh.prompts, fresh.texts).view(4, 4)
    assert torch.equal(data.base_rewards, expected)
    assert data.target.group_size == 1 and data.target.prompts == exact_task.train_prompts
    for i in range(4):
        best = 4 * i + int(expected[i].argmax())
        assert data.target.texts[i] == fresh.texts[best]
        assert torch.equal(data.target.completion_ids[i], fresh.completion_ids[best])


def test_cache_target_with_many_draws_is_the_best_cached_sample(exact_task):
    """N = 64 draws (with replacement) from k = 4 cached samples miss the best one with probability
    (3/4)^64 ≈ 1e-8: the target must be the best cached completion of its prompt, at every step."""
    policy = exact_task.build_policy(0)
    cache = BaseCache(4)
    needs = Needs(samples=1, quantiles="mc", cache_size=4, target="cache", target_n=64)
    for s in range(5):
        data = step(needs, policy, exact_task, step=s, cache=cache)
        assert data.target.group_size == 1 and data.target.prompts == exact_task.train_prompts
        for i, prompt in enumerate(exact_task.train_prompts):
            ((roll, _),) = cached(cache, prompt)
            rewards = exact_task.proxy.score(roll.prompts, roll.texts)
            assert data.target.texts[i] == roll.texts[int(rewards.argmax())], (s, prompt)


def test_cache_target_is_distributed_as_the_best_of_n_cached_draws():
    """The target is the best of N uniform draws (with replacement) from the k cached samples:
    P(r(target) ≤ v) = (#{cached r ≤ v}/k)^N. Its mean reward, averaged over prompts and steps, must
    match that law's mean (the first draw, the worst of N, or the best of all k do not)."""
    task = build_exact_task(ExactTaskConfig(num_prompts=32))
    policy = task.build_policy(0)
    k, n, steps = 8, 2, 40
    cache = BaseCache(k)
    needs = Needs(samples=1, quantiles="mc", cache_size=k, target="cache", target_n=n)
    gaps = []
    for s in range(steps):
        data = step(needs, policy, task, step=s, cache=cache)
        target_rewards = task.proxy.score(data.target.prompts, data.target.texts)
        for i, prompt in enumerate(task.train_prompts):
            ((roll, _),) = cached(cache, prompt)
            assert data.target.texts[i] in roll.texts
            values = task.proxy.score(roll.prompts, roll.texts).double().sort().values
            cdf = torch.arange(1, k + 1, dtype=torch.float64) / k  # P(a draw ≤ the j-th smallest)
            law = cdf**n - torch.cat([torch.zeros(1, dtype=torch.float64), cdf[:-1] ** n])
            gaps.append(float(target_rewards[i]) - float((law * values).sum()))
    gaps = torch.tensor(gaps)
    assert abs(float(gaps.mean())) < 4 * float(gaps.std()) / len(gaps) ** 0.5 + 1e-3, float(gaps.mean())


def test_costs_count_every_completion_and_reward_call_once(exact_task, three_roles):
    policy = RecordingPolicy(three_roles)
    costs, cache = Costs(), BaseCache(3)
    needs = Needs(samples=2, quantiles="mc", cache_size=3, base_samples=4, target="fresh")
    step(needs, policy, exact_task, cache=cache, costs=costs)
    b = len(exact_task.train_prompts)
    assert costs.completions == b * (2 + 3 + 4) and costs.reward_calls == b * (2 + 3 + 4)
    assert costs.tokens == sum(int(c.rollout.response_mask.sum()) for c in policy.calls)
    assert set(costs.seconds) >= {"generate", "reward"} and all(v >= 0 for v in costs.seconds.values())
    policy.calls.clear()
    step(needs, policy, exact_task, step=1, cache=cache, costs=costs)  # the cache is not paid again
    assert costs.completions == b * (2 + 3 + 4) + b * (2 + 4)
    rescored = policy.calls[0].rollout  # scored again (as an evaluation does): reward calls, no new completion
    score(exact_task, rescored, costs)
    assert costs.as_dict() == {
        "cost/completions": b * (2 + 3 + 4) + b * (2 + 4),
        "cost/tokens": costs.tokens,
        "cost/reward_calls": b * (2 + 3 + 4) + b * (2 + 4) + len(rescored),
    }


class Half:
    """Process ``rank`` of 2 without a process group (nothing here gathers)."""

    world = 2

    def __init__(self, rank):
        self.rank = rank

    def gather(self, x):
        raise AssertionError("not needed")

    def gather_objects(self, obj):
        raise AssertionError("not needed")


@pytest.mark.parametrize("tied", [False, True])
def test_a_prompts_data_depends_on_its_global_position_not_on_who_collects_it(exact_task, three_roles, tied):
    """Also when every reward ties and sampling moves the generators on by the batch's size (a language
    model's): the target's tie-breaks must then come from the prompt's own ``target`` stream."""
    policy, task = (
        (LMOrderPolicy(three_roles), dataclasses.replace(exact_task, proxy=Flat()))
        if tied
        else (three_roles, exact_task)
    )
    needs = Needs(samples=2, ref_logp=True, base_samples=3, target="fresh")
    prompts = ["x0", "x1", "x2", "x3", "x1", "x2"]
    whole = step(needs, policy, task, prompts, step=3)
    for rank in range(2):
        part = step(needs, policy, task, prompts, step=3, shard=Half(rank))
        assert part.prompts == prompts[rank::2]
        groups = list(range(rank, len(prompts), 2))
        assert part.rollout.texts == whole.rollout.groups(groups).texts
        assert torch.equal(part.rewards, whole.rewards.view(-1, 2)[groups].reshape(-1))
        assert torch.equal(part.base_rewards, whole.base_rewards[groups])
        assert part.target.texts == [whole.target.texts[g] for g in groups]


def test_quantiles_need_an_oracle_or_a_cache(exact_task):
    policy = exact_task.build_policy(0)
    with pytest.raises(ValueError, match="quantiles=exact needs a task with an exact oracle"):
        step(Needs(quantiles="exact"), policy, dataclasses.replace(exact_task, oracle=None))
    with pytest.raises(ValueError, match="needs a base cache"):
        step(Needs(quantiles="mc", cache_size=4), policy, exact_task)


@pytest.mark.parametrize("step_", [0, 3])
def test_each_kind_of_draw_uses_its_own_random_numbers(exact_task, step_, monkeypatch):
    """The policy's samples, the fresh base samples (whose best is the forward target) and the cached base
    samples of a step are independent draws. A base draw keyed like the policy's would, where base and policy
    coincide (π = π_ref at step 0, or base = anchor just after an anchor update), make the fresh base samples
    the policy's own samples, so the target would be the best of the very completions being scored. No two
    draws of one step may start from the same random numbers, nor may the target's tie-breaks reuse a sampling
    draw's (the first completion's tokens would then decide which tie wins, skewing the target towards it)."""
    import rlhf_zoo.rollout as rollout_module

    policy = UniformsPolicy(exact_task.build_policy(0))
    select = rollout_module.best_of_n_select
    ties = []

    def recorded_select(rewards, generator):
        ties.append(torch.cat([ahead(g, rewards.shape[-1] * policy.window) for g in generator]))
        return select(rewards, generator=generator)

    monkeypatch.setattr(rollout_module, "best_of_n_select", recorded_select)
    needs = Needs(samples=4, quantiles="mc", cache_size=4, base_samples=4, target="fresh")
    step(needs, policy, exact_task, step=step_, cache=BaseCache(4))
    assert len(policy.uniforms) == 3 and len(ties) == 1  # policy, base, cache; the target's tie-breaks
    draws = policy.uniforms + ties
    for a in range(4):
        for b in range(a + 1, 4):
            assert not torch.isin(draws[a], draws[b]).any(), (a, b)


@pytest.mark.parametrize("step_", [0, 3])
def test_a_cache_targets_picks_use_random_numbers_of_their_own(exact_task, step_, monkeypatch):
    """As above for the target drawn from the cache (BoND with mc quantiles): its draws among the cached samples
    and its tie-breaks come from a stream of its own, not from the policy's sampling stream (which would make
    the pick follow the policy's first uniforms) nor the cache's. Keyed as the policy's, no test failed."""
    policy = UniformsPolicy(exact_task.build_policy(0))
    per_prompt, streams = Streams.per_prompt, []

    def recorded(self, name, positions):
        gens = per_prompt(self, name, positions)
        streams.append(torch.cat([ahead(g, 64) for g in gens]))
        return gens

    monkeypatch.setattr(Streams, "per_prompt", recorded)
    needs = Needs(samples=4, quantiles="mc", cache_size=4, target="cache", target_n=4)
    step(needs, policy, exact_task, step=step_, cache=BaseCache(4))
    assert len(policy.uniforms) == 2 and len(streams) == 2  # sampled: policy, cache; streams: policy, target
    draws = [*policy.uniforms, streams[1]]
    for a in range(3):
        for b in range(a + 1, 3):
            assert not torch.isin(draws[a], draws[b]).any(), (a, b)


def test_timings_add_up_every_block_of_a_phase_and_run_its_probe_around_each(monkeypatch):
    """``cost/…`` timings (``time/<phase>_s`` in the summary, ``rlhf-zoo profile``'s per-step seconds) are
    totals over every block of a phase: a phase timed twice per step (``logprobs``, ``reward``) that kept only
    its last block's seconds would under-report. Timed with a fake clock: blocks of 1 s and 2 s of ``reward``
    and one of 4 s of ``generate`` give 3 s and 4 s; a probe enters and exits around each block of its phase."""
    import rlhf_zoo.rollout as rollout_module

    clock = iter([0.0, 1.0, 10.0, 12.0, 20.0, 24.0])
    monkeypatch.setattr(rollout_module.time, "perf_counter", lambda: next(clock))
    events = []

    @contextlib.contextmanager
    def probe():
        events.append("enter")
        yield
        events.append("exit")

    costs = Costs()
    costs.probe("reward", probe)
    for phase in ("reward", "reward", "generate"):
        with costs.timed(phase):
            pass
    assert costs.seconds == {"reward": 3.0, "generate": 4.0}
    assert events == ["enter", "exit", "enter", "exit"]
    assert costs.copy().seconds == costs.seconds and costs.copy().seconds is not costs.seconds


def test_score_reads_the_gold_reward_when_asked_and_refuses_a_task_without_one(exact_task):
    """``score(..., gold=True)`` (what the evaluation reports as gold) is the task's gold reward, not its proxy, and
    is paid for like the proxy; a task without a gold reward says so."""
    roll = exact_task.build_policy(0).sample(exact_task.train_prompts, 8, generator=torch.Generator().manual_seed(0))
    gold = exact_task.gold.score(roll.prompts, roll.texts)
    assert not torch.equal(gold, exact_task.proxy.score(roll.prompts, roll.texts))  # the two are told apart
    costs = Costs()
    assert torch.equal(score(exact_task, roll, costs, gold=True), gold)
    assert costs.reward_calls == len(roll)
    with pytest.raises(ValueError, match="no gold reward"):
        score(dataclasses.replace(exact_task, gold=None), roll, gold=True)
