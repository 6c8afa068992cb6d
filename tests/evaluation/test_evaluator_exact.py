"""The evaluator on the exact testbed: every metric against a brute-force expectation over all completions.

The expected values come from tests/tasks/brute_force.py (probabilities by walking the logit table, the
rewards read through the task's reward models), not from the oracle the evaluator uses.
"""

import math

import numpy as np
import pytest
import torch

from rlhf_zoo.algorithms.registry import get_algorithm
from rlhf_zoo.evaluate import Evaluator
from tests.tasks import brute_force as bf


def evaluate(task, policy, name, **cfg):
    cls = get_algorithm(name)
    return Evaluator(task, cls(cls.Config(**cfg)), num_prompts=len(task.eval_prompts), samples=2, ref_samples=2)(
        policy, round=0
    )


def reward_tables(task, policy):
    """Proxy and gold reward of every completion, through the task's reward models: 2 × [P, M]."""
    return bf.reward_table(task.proxy, task.eval_prompts, policy), bf.reward_table(task.gold, task.eval_prompts, policy)


def expected_metrics(task, policy, probs):
    """What every evaluated metric must be when completions are distributed as ``probs`` [P, M]."""
    ref = bf.completion_probs(policy, "ref")
    proxy, gold = reward_tables(task, policy)
    p_le = bf.quantiles(ref, proxy)
    beats = (gold[:, :, None] > gold[:, None, :]).double() + 0.5 * (gold[:, :, None] == gold[:, None, :]).double()
    win = torch.einsum("py,pz,pyz->p", probs, ref, beats)
    return {
        "reward/proxy": (probs * proxy).sum(-1).mean(),
        "reward/gold": (probs * gold).sum(-1).mean(),
        "win_rate/gold": win.mean(),
        "quantile/log_mean": (probs * p_le.log()).sum(-1).mean(),
        "length/mean": (probs * bf.lengths(policy)).sum(-1).mean(),
    }


def assert_metrics(got, expected, rel=1e-5, abs=1e-6):
    for key, value in expected.items():
        assert got[key] == pytest.approx(float(value), rel=rel, abs=abs), key


def test_policy_metrics_are_the_exact_expectations_under_the_policy(exact_task):
    policy = bf.perturbed(exact_task, seed=1)
    got = evaluate(exact_task, policy, "reinforce", beta=0.3)
    probs = bf.completion_probs(policy)
    assert_metrics(got, expected_metrics(exact_task, policy, probs))
    assert got["kl/estimator"] == "exact" and got["cost/samples_per_output"] == 1.0


def test_every_kl_estimator_is_the_exact_kl_under_enumeration(exact_task):
    """k1, k3 and the exact-token KL are unbiased for KL(π ‖ π_ref): their expectations over every
    completion weighted by π all equal the categorical KL of the enumerated distributions."""
    policy = bf.perturbed(exact_task, seed=2)
    got = evaluate(exact_task, policy, "reinforce", beta=0.3)
    kl = float(bf.kl(bf.completion_probs(policy), bf.completion_probs(policy, "ref")).mean())
    assert kl > 0.1
    for key in ("kl/exact", "kl/k1", "kl/k3"):
        assert got[key] == pytest.approx(kl, rel=1e-5), key


def test_at_the_reference_every_kl_is_zero_and_the_win_rate_one_half(exact_task):
    """π = π_ref: y and y_ref are two independent draws of one distribution, so P(>) + ½·P(=) = ½
    exactly, although ties (y = y_ref) have positive probability."""
    policy = exact_task.build_policy(0)
    got = evaluate(exact_task, policy, "reinforce", beta=0.3)
    for key in ("kl/exact", "kl/k1", "kl/k3", "frontier/gap"):
        assert got[key] == pytest.approx(0.0, abs=1e-6), key
    assert got["win_rate/gold"] == pytest.approx(0.5, abs=1e-6)


def optimal(ref, proxy, beta):
    """π*_β ∝ π_ref·exp(r/β) (the closed form; tests/tasks checks the oracle's against its defining property)."""
    w = ref * torch.exp((proxy - proxy.max(-1, keepdim=True).values) / beta)
    return w / w.sum(-1, keepdim=True)


def test_kl_to_the_optimal_policy_and_the_frontier(exact_task):
    beta = 0.3
    policy = bf.perturbed(exact_task, seed=3)
    ref = bf.completion_probs(policy, "ref")
    proxy, _ = reward_tables(exact_task, policy)
    opt = optimal(ref, proxy, beta)
    probs = bf.completion_probs(policy)
    got = evaluate(exact_task, policy, "reinforce", beta=beta)
    assert got["kl/to_optimal"] == pytest.approx(float(bf.kl(probs, opt).mean()), rel=1e-5)
    assert got["optimal/kl_ref"] == pytest.approx(float(bf.kl(opt, ref).mean()), rel=1e-5)
    assert got["optimal/reward_proxy"] == pytest.approx(float((opt * proxy).sum(-1).mean()), rel=1e-5)

    # The frontier by a dense grid over β (not the evaluator's bisection): reward at the policy's KL.
    betas = np.logspace(-2.5, 2.5, 1500)
    optima = [optimal(ref, proxy, b) for b in betas]
    curve = [(float(bf.kl(o, ref).mean()), float((o * proxy).sum(-1).mean())) for o in optima]
    kls, rewards = np.array(curve).T  # KL falls as β grows
    kl = float(bf.kl(probs, ref).mean())
    reward_at_kl = float(np.interp(kl, kls[::-1], rewards[::-1]))
    assert got["frontier/reward_at_kl"] == pytest.approx(reward_at_kl, abs=2e-4)
    assert got["frontier/gap"] == pytest.approx(reward_at_kl - float((probs * proxy).sum(-1).mean()), abs=2e-4)
    assert got["frontier/gap"] > 0.05  # a random policy is well below the frontier


def test_a_policy_on_the_frontier_has_no_gap_and_no_kl_to_the_optimum(exact_task):
    beta = 0.5
    policy = exact_task.build_policy(0)
    ref = bf.completion_probs(policy, "ref")
    proxy, _ = reward_tables(exact_task, policy)
    bf.set_distribution(policy, optimal(ref, proxy, beta))
    got = evaluate(exact_task, policy, "reinforce", beta=beta)
    assert got["kl/to_optimal"] == pytest.approx(0.0, abs=1e-6)
    assert got["frontier/gap"] == pytest.approx(0.0, abs=1e-4)
    assert got["kl/exact"] > 0.1


@pytest.mark.parametrize("n", [2, 4])
def test_kl_to_and_from_best_of_n(exact_task, n):
    """BOND is measured against π_BoN of π_ref (the closed form p_≤^N − p_<^N): both KL directions,
    π_BoN's own KL and reward; and a π set to π_BoN is at KL 0 from it."""
    policy = bf.perturbed(exact_task, seed=4)
    ref = bf.completion_probs(policy, "ref")
    proxy, _ = reward_tables(exact_task, policy)
    bon = bf.best_of_n(ref, proxy, n)
    probs = bf.completion_probs(policy)
    got = evaluate(exact_task, policy, "bond", n=n, quantiles="exact")
    assert got["kl/to_bon"] == pytest.approx(float(bf.kl(probs, bon).mean()), rel=1e-5)
    assert got["kl/from_bon"] == pytest.approx(float(bf.kl(bon, probs).mean()), rel=1e-5)
    assert got["kl/to_bon"] != pytest.approx(got["kl/from_bon"], rel=1e-2)  # the two directions differ here
    assert got["bon/kl_ref"] == pytest.approx(float(bf.kl(bon, ref).mean()), rel=1e-5)
    assert got["bon/reward_proxy"] == pytest.approx(float((bon * proxy).sum(-1).mean()), rel=1e-5)

    bf.set_distribution(policy, bon)
    at_bon = evaluate(exact_task, policy, "bond", n=n, quantiles="exact")
    assert at_bon["kl/to_bon"] == pytest.approx(0.0, abs=1e-6)
    assert at_bon["kl/from_bon"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("n", [1, 3, 8])
def test_best_of_n_is_evaluated_as_the_exact_best_of_n_of_the_reference(exact_task, n):
    """Best-of-N samples π_ref, never π: its metrics are the expectations under π_BoN, whatever π is,
    and its KL is KL(π_BoN ‖ π_ref), below the bound log N − (N−1)/N."""
    policy = bf.perturbed(exact_task, seed=5)
    ref = bf.completion_probs(policy, "ref")
    proxy, _ = reward_tables(exact_task, policy)
    bon = bf.best_of_n(ref, proxy, n)
    got = evaluate(exact_task, policy, "best_of_n", n=n)
    assert_metrics(got, expected_metrics(exact_task, policy, bon))
    kl = float(bf.kl(bon, ref).mean())
    assert got["kl/exact"] == pytest.approx(kl, rel=1e-5, abs=1e-7)
    assert got["bon/kl_bound"] == pytest.approx(math.log(n) - (n - 1) / n)
    assert got["kl/exact"] <= got["bon/kl_bound"] + 1e-7
    assert got["cost/samples_per_output"] == float(n) and got["kl/estimator"] == "exact"
    assert got["kl/to_bon"] == pytest.approx(0.0, abs=1e-6)
    assert evaluate(exact_task, exact_task.build_policy(0), "best_of_n", n=n) == pytest.approx(got)


def test_distances_to_targets_far_beyond_float32_are_finite_and_exact(exact_task):
    """Best-of-64 of π_ref and π*_β at β = 0.02 put mass ~1e-150 to 1e-230 on the worst completions: far below
    float32's smallest number, within float64's. A policy that keeps mass there is far from those targets but at a
    finite KL, the brute-force value; distances computed in float32 round the targets' mass to 0 and read inf."""
    policy = bf.perturbed(exact_task, seed=9)
    ref = bf.completion_probs(policy, "ref")
    proxy, _ = reward_tables(exact_task, policy)
    probs = bf.completion_probs(policy)
    bon, opt = bf.best_of_n(ref, proxy, 64), optimal(ref, proxy, 0.02)
    assert float(bon.min()) < 1e-46 and float(opt.min()) < 1e-46  # what float32 cannot hold
    got = evaluate(exact_task, policy, "bond", n=64, quantiles="exact")
    assert got["kl/to_bon"] == pytest.approx(float(bf.kl(probs, bon).mean()), rel=1e-6)
    got = evaluate(exact_task, policy, "reinforce", beta=0.02)
    assert got["kl/to_optimal"] == pytest.approx(float(bf.kl(probs, opt).mean()), rel=1e-6)
