"""The evaluator on a task without an oracle: metrics recomputed from the very completions it sampled.

The testbed's task with ``oracle=None`` is a sampled task with a tabular policy; a recording wrapper
hands the test the evaluated and the reference completions, and the test recomputes each metric from
rewards and log-probs it obtains itself.
"""

import dataclasses
import math

import pytest
import torch

from rlhf_zoo.algorithms.base import Needs
from rlhf_zoo.algorithms.best_of_n import BestOfN, BestOfNConfig
from rlhf_zoo.algorithms.reinforce import Reinforce
from rlhf_zoo.evaluate import Evaluator
from rlhf_zoo.functional.best_of_n import bon_kl_bound, bon_log_ratio
from rlhf_zoo.functional.quantile import quantile_estimate, quantile_estimate_strict
from rlhf_zoo.rng import Streams
from rlhf_zoo.rollout import collect
from rlhf_zoo.shard import interleave
from tests.rollout.recording import RecordingPolicy, UniformsPolicy
from tests.tasks import brute_force as bf


@pytest.fixture
def sampled_task(exact_task):
    return dataclasses.replace(exact_task, oracle=None)


def tokens(rollout, max_len):
    """Completion tokens with EOS, from the texts: a completion shorter than the cap ends with EOS."""
    return torch.tensor([len(t) + (len(t) < max_len) for t in rollout.texts], dtype=torch.float64)


def per_prompt(x, num_prompts):
    return x.double().view(num_prompts, -1)


def win_rate(gold, ref_gold):
    """P(gold(y) > gold(y_ref)) + ½·P(=) over every pair of a prompt's completion and reference completion."""
    a, b = gold[:, :, None], ref_gold[:, None, :]
    return float(((a > b).double() + 0.5 * (a == b).double()).mean())


def log_quantile(proxy, ref_proxy):
    """Mean log p̂_≤ with p̂_≤(y) = (1 + #{ref ≤ r(y)}) / (k + 1) (ALGORITHMS.md §3)."""
    k = ref_proxy.shape[-1]
    count = (ref_proxy[:, None, :] <= proxy[:, :, None]).sum(-1)
    return ((1 + count) / (k + 1)).double(), float(torch.log((1 + count) / (k + 1)).mean())


def test_metrics_are_recomputed_from_the_sampled_completions(sampled_task):
    policy = RecordingPolicy(bf.perturbed(sampled_task, seed=1))
    ev = Evaluator(sampled_task, Reinforce(), num_prompts=3, samples=5, ref_samples=7, seed=11)
    got = ev(policy, round=4)
    (ref_call,) = policy.of("ref")
    (call,) = policy.of("policy")
    prompts = sampled_task.eval_prompts[:3]
    assert ref_call.prompts == prompts and ref_call.n == 7
    assert call.prompts == prompts and call.n == 5
    roll, ref_roll = call.rollout, ref_call.rollout

    lp = policy.logprobs(roll, role="policy").detach().double()
    lq = policy.logprobs(roll, role="ref").double()
    mask = roll.response_mask.double()
    log_ratio = lq - lp
    assert got["kl/k1"] == pytest.approx(float(((lp - lq) * mask).sum(-1).mean()), rel=1e-5)
    assert got["kl/k3"] == pytest.approx(float(((log_ratio.exp() - 1 - log_ratio) * mask).sum(-1).mean()), rel=1e-5)
    full_p = policy.logprobs(roll, role="policy", full=True).detach().double()
    full_q = policy.logprobs(roll, role="ref", full=True).double()
    token_kl = (full_p.exp() * (full_p - full_q)).sum(-1)
    assert got["kl/exact"] == pytest.approx(float((token_kl * mask).sum(-1).mean()), rel=1e-5)
    # the three are different estimates here (a handful of samples)
    assert len({round(got[k], 4) for k in ("kl/k1", "kl/k3", "kl/exact")}) == 3

    proxy = per_prompt(sampled_task.proxy.score(roll.prompts, roll.texts), 3)
    gold = per_prompt(sampled_task.gold.score(roll.prompts, roll.texts), 3)
    ref_proxy = per_prompt(sampled_task.proxy.score(ref_roll.prompts, ref_roll.texts), 3)
    ref_gold = per_prompt(sampled_task.gold.score(ref_roll.prompts, ref_roll.texts), 3)
    assert got["reward/proxy"] == pytest.approx(float(proxy.mean()), rel=1e-6)
    assert got["reward/gold"] == pytest.approx(float(gold.mean()), rel=1e-6)
    assert got["win_rate/gold"] == pytest.approx(win_rate(gold, ref_gold), rel=1e-6)
    assert got["quantile/log_mean"] == pytest.approx(log_quantile(proxy, ref_proxy)[1], rel=1e-6)
    assert got["length/mean"] == pytest.approx(float(tokens(roll, policy.tree.max_len).mean()))
    assert got["kl/estimator"] == "exact_token" and got["cost/samples_per_output"] == 1.0


def test_a_negative_k1_mean_is_reported_as_it_is(sampled_task):
    """Reported KL is never clamped (ALGORITHMS.md §1). π ends at once (the one-token completion EOS)
    with probability 0.999 where π_ref does with 0.9999, and puts the rest on the letters: every sample
    that ends at once has k1 = log(0.999 / 0.9999) < 0, so the sample mean is negative although
    KL(π‖π_ref) > 0, and the evaluator must report it so (a clamp at 0 would hide that k1 is noisy)."""
    policy = sampled_task.build_policy(0)
    vocab = policy.logits.shape[-1]

    def first_token(p_eos):
        probs = torch.full((vocab,), (1 - p_eos) / (vocab - 1), dtype=torch.float64)
        probs[policy.tree.eos] = p_eos
        return probs.log().to(policy.logits.dtype)

    with torch.no_grad():  # prefix 0 is the empty prefix: the first token's distribution
        policy.ref_logits[:, 0] = first_token(0.9999)
        policy.logits[:, 0] = first_token(0.999)
    policy = RecordingPolicy(policy)
    got = Evaluator(sampled_task, Reinforce(), num_prompts=3, samples=5, ref_samples=7, seed=11)(policy)
    (call,) = policy.of("policy")
    roll = call.rollout
    lp = policy.logprobs(roll, role="policy").detach().double()
    lq = policy.logprobs(roll, role="ref").double()
    k1 = ((lp - lq) * roll.response_mask.double()).sum(-1)
    assert float(k1.mean()) < 0  # the setting above makes it so (each sample ended at once)
    assert got["kl/k1"] == pytest.approx(float(k1.mean()), rel=1e-5)
    assert got["kl/exact"] > 0  # the exact-token estimate is never negative


def test_quantiles_compare_each_prompt_with_its_own_reference(sampled_task):
    """x0's rewards all lie far above x1's. Against its own reference completions each prompt's mean log
    quantile is E_{π_ref}[log p_≤] (−1 for a continuous reward, a little above with the testbed's
    ties); against the other prompt's it would be log 1 = 0 for x0 and log 1/(k+1) for x1."""
    high = {key: 10.0 + value for key, value in sampled_task.proxy.table.items() if key[0] == "x0"}
    low = {key: -10.0 + value for key, value in sampled_task.proxy.table.items() if key[0] == "x1"}
    task = dataclasses.replace(sampled_task, proxy=type(sampled_task.proxy)("shifted", {**high, **low}))
    task = dataclasses.replace(task, eval_prompts=["x0", "x1"])
    policy = task.build_policy(0)  # π = π_ref
    got = Evaluator(task, Reinforce(), num_prompts=2, samples=400, ref_samples=400, seed=0)(policy)
    ref = bf.completion_probs(policy, "ref")[:2]
    p_le = bf.quantiles(ref, bf.reward_table(task.proxy, ["x0", "x1"], policy))
    assert got["quantile/log_mean"] == pytest.approx(float((ref * p_le.log()).sum(-1).mean()), abs=0.05)


def test_sampled_metrics_estimate_the_exact_ones(exact_task, sampled_task):
    """With many samples, the sampled evaluation agrees with the exact one on the same policy (the
    completions come from π, the reference from π_ref, each prompt's from its own row)."""
    policy = bf.perturbed(exact_task, seed=6)
    exact = Evaluator(exact_task, Reinforce(), num_prompts=4, samples=1, ref_samples=1)(policy)
    sampled = Evaluator(sampled_task, Reinforce(), num_prompts=4, samples=1500, ref_samples=1500, seed=3)(policy)
    for key, tol in [
        ("reward/proxy", 0.04),
        ("reward/gold", 0.04),
        ("win_rate/gold", 0.02),
        ("quantile/log_mean", 0.05),
        ("length/mean", 0.05),
        ("kl/exact", 0.02),
        ("kl/k1", 0.05),
        ("kl/k3", 0.05),
    ]:
        assert sampled[key] == pytest.approx(exact[key], abs=tol), key


def test_best_of_n_outputs_are_the_best_of_n_reference_samples(sampled_task):
    n, per_prompt_outputs, k = 3, 4, 6
    policy = RecordingPolicy(bf.perturbed(sampled_task, seed=2))
    ev = Evaluator(sampled_task, BestOfN(BestOfNConfig(n=n)), num_prompts=2, samples=per_prompt_outputs, ref_samples=k)
    got = ev(policy, round=1)
    assert not policy.of("policy"), "Best-of-N samples π_ref only"
    (ref_call,) = policy.of("ref", n=k)
    (cand_call,) = policy.of("ref", n=n * per_prompt_outputs)
    cands, ref_roll = cand_call.rollout, ref_call.rollout
    # prompt-major candidates; each output is the best of n consecutive ones
    proxy = sampled_task.proxy.score(cands.prompts, cands.texts).double().view(2, per_prompt_outputs, n)
    gold = sampled_task.gold.score(cands.prompts, cands.texts).double().view(2, per_prompt_outputs, n)
    best = proxy.argmax(-1, keepdim=True)
    best_proxy, best_gold = proxy.gather(-1, best)[..., 0], gold.gather(-1, best)[..., 0]
    ref_proxy = per_prompt(sampled_task.proxy.score(ref_roll.prompts, ref_roll.texts), 2)
    ref_gold = per_prompt(sampled_task.gold.score(ref_roll.prompts, ref_roll.texts), 2)
    assert got["reward/proxy"] == pytest.approx(float(best_proxy.mean()), rel=1e-6)
    assert got["reward/gold"] == pytest.approx(float(best_gold.mean()), rel=1e-6)
    assert got["win_rate/gold"] == pytest.approx(win_rate(best_gold, ref_gold), rel=1e-6)
    p_le, log_mean = log_quantile(best_proxy, ref_proxy)
    assert got["quantile/log_mean"] == pytest.approx(log_mean, rel=1e-6)
    # the KL estimate E[(N−1)·log p̂_≤ + log B̂], B̂ = Σ_{i<N} (p̂_</p̂_≤)^i, p̂_< = (1 + #{ref < r})/(k + 1)
    p_lt = (1 + (ref_proxy[:, None, :] < best_proxy[:, :, None]).sum(-1)) / (k + 1)
    b_hat = sum((p_lt / p_le) ** i for i in range(n))
    assert got["kl/exact"] == pytest.approx(float(((n - 1) * p_le.log() + b_hat.log()).mean()), rel=1e-6)
    assert got["bon/kl_bound"] == pytest.approx(math.log(n) - (n - 1) / n)
    assert got["kl/estimator"] == "bon_quantile" and got["cost/samples_per_output"] == float(n)


def test_reference_completions_are_drawn_once_and_survive_a_checkpoint(sampled_task):
    policy = RecordingPolicy(bf.perturbed(sampled_task, seed=3))
    ev = Evaluator(sampled_task, Reinforce(), num_prompts=4, samples=3, ref_samples=5, seed=2)
    first = ev(policy, round=0)
    second = ev(policy, round=10)
    assert len(policy.of("ref")) == 1 and len(policy.of("policy")) == 2
    a, b = (c.rollout.texts for c in policy.of("policy"))
    assert a != b, "each round draws new completions"
    assert first != second

    again = Evaluator(sampled_task, Reinforce(), num_prompts=4, samples=3, ref_samples=5, seed=2)
    assert again(policy, round=10) == second, "a round's samples depend on (seed, round) only"

    resumed = Evaluator(sampled_task, Reinforce(), num_prompts=4, samples=3, ref_samples=5, seed=2)
    resumed.load_reference(ev.reference_state())
    policy.calls.clear()
    assert resumed(policy, round=10) == second
    assert not policy.of("ref"), "a restored evaluator reuses the saved reference completions"


class HalfOf:
    """Process ``rank`` of 2, without a process group (the evaluator only needs the split here)."""

    world = 2

    def __init__(self, rank):
        self.rank = rank

    def gather(self, x):
        raise AssertionError("not needed")

    def gather_objects(self, obj):
        raise AssertionError("not needed")


def test_two_processes_each_evaluate_half_and_average_to_one(sampled_task):
    policy = bf.perturbed(sampled_task, seed=4)
    one = Evaluator(sampled_task, Reinforce(), num_prompts=4, samples=3, ref_samples=5, seed=9)(policy, round=2)
    halves = [
        Evaluator(sampled_task, Reinforce(), num_prompts=4, samples=3, ref_samples=5, seed=9, shard=HalfOf(r))
        for r in range(2)
    ]
    assert [h.prompts for h in halves] == [["x0", "x2"], ["x1", "x3"]]
    parts = [h(policy, round=2) for h in halves]
    for key, value in one.items():
        if isinstance(value, float):
            assert (parts[0][key] + parts[1][key]) / 2 == pytest.approx(value, rel=1e-6, abs=1e-9), key


def test_a_one_process_reference_state_loads_into_each_process_share(sampled_task):
    """A checkpoint of one process holds every prompt's reference rewards; a process of two that loads
    it keeps its own prompts' rows and evaluates as if it had drawn them itself."""
    policy = bf.perturbed(sampled_task, seed=5)

    def evaluator(shard=None):
        return Evaluator(sampled_task, Reinforce(), num_prompts=4, samples=3, ref_samples=5, seed=9, shard=shard)

    one = evaluator()
    one(policy, round=0)
    state = one.reference_state()
    for rank in range(2):
        expected = evaluator(HalfOf(rank))(policy, round=2)
        loaded = evaluator(HalfOf(rank))
        loaded.load_reference(state)
        recording = RecordingPolicy(policy)
        assert loaded(recording, round=2) == expected
        assert not recording.of("ref")


class PairOf(HalfOf):
    """Process ``rank`` of 2 whose ``gather`` returns what a process group's would: the tensor in the same
    place of each process's reference state, concatenated by rank and put in global (strided) order."""

    def __init__(self, rank, processes):
        super().__init__(rank)
        self.processes = processes  # the two evaluators, by rank

    def gather(self, x):
        (i,) = [i for i, t in enumerate(self.processes[self.rank]._ref) if t is x]
        return interleave(torch.cat([p._ref[i] for p in self.processes]), self.world)


def test_two_processes_save_every_prompts_reference_in_one_process_order(sampled_task):
    """A checkpoint of two processes holds the reference rewards of *all* held-out prompts in global order,
    the very state one process saves, so that a run resumes on any number of processes."""
    policy = bf.perturbed(sampled_task, seed=5)

    def evaluator(shard=None):
        return Evaluator(sampled_task, Reinforce(), num_prompts=4, samples=3, ref_samples=5, seed=9, shard=shard)

    one = evaluator()
    one(policy, round=0)
    processes = []
    processes.extend(evaluator(PairOf(rank, processes)) for rank in range(2))
    for p in processes:
        p(policy, round=0)
    for rank in range(2):
        state = processes[rank].reference_state()
        assert state[0].shape == (4, 5)
        for got, want in zip(state, one.reference_state(), strict=True):
            assert torch.equal(got, want)


def test_evaluation_draws_neither_the_reference_completions_nor_the_training_samples(sampled_task):
    """At π = π_ref (step 0) the policy, the reference and training sample one distribution, so draws that
    shared a random stream would be the very same completions: the evaluated completions would be the
    reference completions they are compared with (win rate, quantiles), or the samples the next training
    step learns from. On the sampled testbed (training and held-out prompts are the same list), the
    evaluation of round s, its reference completions and the training step s's samples of the same prompts
    at the same positions must be different draws."""
    policy = RecordingPolicy(sampled_task.build_policy(0))
    prompts = sampled_task.eval_prompts[:4]
    assert sampled_task.train_prompts[:4] == prompts
    k, seed = 6, 3
    for step in (0, 2):
        policy.calls.clear()
        Evaluator(sampled_task, Reinforce(), num_prompts=4, samples=k, ref_samples=k, seed=seed)(policy, round=step)
        collect(Needs(samples=k), policy, sampled_task, prompts, streams=Streams(seed, step), cache=None)
        (evaluated, trained), (reference,) = policy.of("policy"), policy.of("ref")
        texts = [c.rollout.texts for c in (evaluated, reference, trained)]
        assert texts[0] != texts[1], "the evaluated completions are the reference completions"
        assert texts[0] != texts[2], "the evaluated completions are the training step's samples"
        assert texts[1] != texts[2], "the reference completions are the training step's samples"


@pytest.mark.parametrize("n, k", [(4, 8), (8, 8)])
def test_best_of_n_quantile_kl_estimate_lies_above_the_bound_for_a_continuous_reward(n, k):
    """What docs/metrics.md must say of a sampled ``best_of_n`` evaluation's ``kl/exact``
    (``kl/estimator`` = ``bon_quantile``): with a continuous reward the true KL(π_BoN ‖ π_ref) *is*
    the bound log N − (N−1)/N, but the estimate from k reference rewards, E[(N−1)·log p̂_≤ + log B̂] with
    the evaluator's p̂ (``quantile_estimate``, ``quantile_estimate_strict``), averages above it (about
    0.06 nats at N = 4 or 8 and k = 8, still 0.015 at N = 16, k = 32), so it reads as a KL beyond what Best-of-N can
    reach. Monte-Carlo over 40 000 Best-of-N outputs, each against its own k reference rewards."""
    g = torch.Generator().manual_seed(0)
    draws = 40_000
    best = torch.randn(draws, n, generator=g, dtype=torch.float64).max(-1).values  # Best-of-N outputs
    ref = torch.randn(draws, k, generator=g, dtype=torch.float64)  # their reference rewards
    p_le = quantile_estimate(best[:, None], ref)[:, 0]
    p_lt = quantile_estimate_strict(best[:, None], ref)[:, 0]
    estimate = bon_log_ratio(p_le, p_lt, n)
    mean, se = float(estimate.mean()), float(estimate.std()) / math.sqrt(draws)
    assert mean > bon_kl_bound(n) + 4 * se


def test_best_of_n_candidates_do_not_reuse_the_reference_completions_random_numbers(sampled_task):
    """Best-of-N samples its candidates from π_ref, as the held-out reference completions are. Candidates drawn
    from the reference's generators (the same keys at round 0; the tie-break seed drawn first only shifts them)
    are near-copies of the reference completions they are compared with, biasing quantiles, the KL estimate
    and the win rate. The random numbers the candidates' draw starts from must be none of the reference's."""
    n, outputs, k = 2, 3, 6
    for round in (0, 2):
        policy = UniformsPolicy(sampled_task.build_policy(0))
        algo = BestOfN(BestOfNConfig(n=n))
        Evaluator(sampled_task, algo, num_prompts=4, samples=outputs, ref_samples=k, seed=5)(policy, round=round)
        reference, candidates = policy.uniforms
        assert not torch.isin(candidates, reference).any(), f"round {round}"


def test_metrics_are_averaged_in_float64():
    """Rewards come as float32, whose sum 2²⁴ + 1 rounds to 2²⁴: averaged in float64 the mean of [2²⁴, 1] is
    2²³ + ½, and under weights (¼, ¾) it is 2²² + ¾."""
    from rlhf_zoo.evaluate import _mean

    x = torch.tensor([2.0**24, 1.0], dtype=torch.float32)
    assert _mean(x, None) == 2.0**23 + 0.5
    assert _mean(x, torch.tensor([0.25, 0.75], dtype=torch.float32)) == 2.0**22 + 0.75


def test_runs_of_other_seeds_compare_with_other_reference_completions(sampled_task):
    """The held-out reference completions (drawn once per run) come from generators keyed by the run's seed as
    well as the prompt's position, so runs of two seeds measure their win rates and quantiles against
    independent reference samples, and the spread over seeds includes the reference's own sampling noise.
    Keyed without the seed, every seed drew the same reference completions and no test failed."""
    policy = UniformsPolicy(sampled_task.build_policy(0))
    for seed in (1, 2):
        Evaluator(sampled_task, Reinforce(), num_prompts=4, samples=1, ref_samples=4, seed=seed)(policy)
    first, second = (u for u, c in zip(policy.uniforms, policy.calls, strict=True) if c.role == "ref")
    assert not torch.isin(first, second).any()


def test_the_held_out_prompts_are_evaluated_not_the_training_prompts(sampled_task):
    """The evaluator samples π and π_ref on the first ``num_prompts`` of ``task.eval_prompts``, in their order.
    On the testbed both lists are the same, so reading the training prompts instead failed no test: here the
    held-out list differs, and each sample call, the reference's included, must be on it."""
    task = dataclasses.replace(sampled_task, eval_prompts=["x3", "x1", "x2"])
    policy = RecordingPolicy(bf.perturbed(task, seed=8))
    Evaluator(task, Reinforce(), num_prompts=2, samples=3, ref_samples=4, seed=1)(policy)
    assert sorted((c.role, c.n, tuple(c.prompts)) for c in policy.calls) == [
        ("policy", 3, ("x3", "x1")),
        ("ref", 4, ("x3", "x1")),
    ]
