"""Best-of-N sampling (ALGORITHMS.md §7): each output is the best by proxy reward of n reference samples
of its prompt, costs n samples and n reward calls, and follows the exact π_BoN."""

import dataclasses

import pytest
import torch

from rlhf_zoo.rng import Streams
from rlhf_zoo.rollout import Costs, best_of_n_outputs
from tests.rollout.recording import Flat, LMOrderPolicy, RecordingPolicy
from tests.tasks import brute_force as bf


def test_each_output_is_the_best_of_its_own_n_candidates(exact_task, three_roles):
    policy = RecordingPolicy(three_roles)
    prompts, n, per_prompt = ["x1", "x3", "x0"], 4, 5
    costs = Costs()
    gens = Streams(0, 0).per_prompt("bon", range(3))
    out = best_of_n_outputs(policy, exact_task, prompts, n, per_prompt, generator=gens, costs=costs)
    (call,) = policy.calls
    assert call.role == "ref" and call.prompts == prompts and call.n == n * per_prompt
    assert out.prompts == [p for p in prompts for _ in range(per_prompt)] and out.group_size == per_prompt
    cands = call.rollout
    rewards = exact_task.proxy.score(cands.prompts, cands.texts).view(3, per_prompt, n)
    got = exact_task.proxy.score(out.prompts, out.texts).view(3, per_prompt)
    assert torch.equal(got, rewards.max(-1).values)
    for i in range(3):
        for j in range(per_prompt):
            group = cands.texts[(i * per_prompt + j) * n : (i * per_prompt + j + 1) * n]
            assert out.texts[i * per_prompt + j] in group
    assert costs.completions == 3 * n * per_prompt and costs.reward_calls == 3 * n * per_prompt


@pytest.mark.parametrize("tied", [False, True])
def test_a_prompts_outputs_do_not_depend_on_its_batch(exact_task, three_roles, tied):
    """Also when every reward ties and sampling moves the generators on by the batch's size (a language
    model's): the tie-breaks must not come from a generator's state after sampling."""
    policy, task = (
        (LMOrderPolicy(three_roles), dataclasses.replace(exact_task, proxy=Flat()))
        if tied
        else (three_roles, exact_task)
    )
    gens = Streams(4, 1).per_prompt
    batched = best_of_n_outputs(policy, task, ["x0", "x2"], 3, 4, generator=gens("b", [0, 1]), costs=None)
    alone = best_of_n_outputs(policy, task, ["x2"], 3, 4, generator=gens("b", [1]), costs=None)
    assert alone.texts == batched.texts[4:]


def test_outputs_follow_the_exact_best_of_n_distribution(exact_task, three_roles):
    n, draws = 4, 6000
    out = best_of_n_outputs(
        three_roles, exact_task, ["x2"], n, draws, generator=torch.Generator().manual_seed(0), costs=None
    )
    texts = [three_roles.tree.decode(c) for c in three_roles.tree.completions]
    freq = torch.bincount(torch.tensor([texts.index(t) for t in out.texts]), minlength=len(texts)).double() / draws
    ref = bf.completion_probs(three_roles, "ref")
    bon = bf.best_of_n(ref, bf.reward_table(exact_task.proxy, exact_task.train_prompts, three_roles), n)[2]
    assert (freq - bon).abs().max() < 0.02
