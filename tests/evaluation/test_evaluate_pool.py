"""Best-of-n for every n from one pool (rlhf_zoo.evaluate_pool): the curve is ``bon_pool_mean`` of the
scored pool, n = 1 is the pool mean, the KL never exceeds its bound, and the pool is keyed by prompt."""

import dataclasses
import json
import math
from itertools import product

import pytest
import torch

from rlhf_zoo.evaluate_pool import draw_pool, pool_curve, pool_summary
from rlhf_zoo.functional.best_of_n import bon_kl_bound, bon_pool_kl, bon_pool_mean
from rlhf_zoo.rollout import Costs
from tests.rollout.recording import RecordingPolicy
from tests.tasks import brute_force as bf


def _pool(p: int = 5, m: int = 12, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    proxy = torch.randint(0, 4, (p, m), generator=g).to(torch.float64) / 4  # many ties, as VADER gives
    proxy[0] = torch.rand(m, generator=g, dtype=torch.float64)  # one continuous row
    gold = proxy + 0.3 * torch.randn(p, m, generator=g, dtype=torch.float64)
    length = torch.randint(1, 20, (p, m), generator=g).to(torch.float64)
    return {"proxy": proxy, "gold": gold, "length": length}


def test_curve_is_bon_pool_mean_of_the_scored_pool_for_every_n():
    pool = _pool()
    m = pool["proxy"].shape[-1]
    curve = pool_curve(pool)
    assert sorted(curve) == list(range(1, m + 1))
    for n, row in curve.items():
        for key, what in (("reward/proxy", "proxy"), ("reward/gold", "gold"), ("length/mean", "length")):
            want = float(bon_pool_mean(pool["proxy"], pool[what], n).mean())
            assert row[key] == pytest.approx(want, abs=1e-12), (n, key)
        assert row["kl/exact"] == pytest.approx(float(bon_pool_kl(pool["proxy"], n).mean()), abs=1e-12)
        assert row["bon/kl_bound"] == pytest.approx(math.log(n) - (n - 1) / n)
        assert row["cost/samples_per_output"] == n


def test_n_equal_one_is_the_pool_mean_and_a_coin_flip_against_the_pool():
    pool = _pool()
    row = pool_curve(pool, [1])[1]
    assert row["reward/proxy"] == pytest.approx(float(pool["proxy"].mean()), abs=1e-12)
    assert row["reward/gold"] == pytest.approx(float(pool["gold"].mean()), abs=1e-12)
    assert row["length/mean"] == pytest.approx(float(pool["length"].mean()), abs=1e-12)
    assert row["kl/exact"] == pytest.approx(0.0, abs=1e-12)
    assert row["win_rate/gold"] == pytest.approx(0.5, abs=1e-12)


def test_win_rate_counts_a_gold_tie_as_half_a_win():
    """Gold 1, 1, 2, 3 in one pool: Best-of-1 is exactly ½; Best-of-3 against each left-out member j is the top
    proxy among the other three: it beats the 1s and the 2 with the 3, and loses to the 3 with the 2 (3/4).
    When a gold-1 sample has the top proxy, it ties with the other 1 (½) and loses to 2 and 3 (3/8). At n = M
    no member is left out: NaN."""
    pool = {
        "proxy": torch.tensor([[0.1, 0.2, 0.3, 0.4]], dtype=torch.float64),
        "gold": torch.tensor([[1.0, 1.0, 2.0, 3.0]], dtype=torch.float64),
        "length": torch.ones(1, 4, dtype=torch.float64),
    }
    curve = pool_curve(pool, [1, 3, 4])
    assert curve[1]["win_rate/gold"] == pytest.approx(0.5, abs=1e-12)
    assert curve[3]["win_rate/gold"] == pytest.approx(3 / 4, abs=1e-12)
    assert math.isnan(curve[4]["win_rate/gold"]) and math.isnan(curve[4]["quantile/log_mean"])
    pool["proxy"] = torch.tensor([[0.4, 0.1, 0.2, 0.3]], dtype=torch.float64)  # a gold-tied sample is the best
    assert pool_curve(pool, [3])[3]["win_rate/gold"] == pytest.approx(3 / 8, abs=1e-12)


def test_kl_estimate_never_exceeds_the_bound_and_is_strictly_below_with_ties():
    pool = _pool(m=16)
    for n, row in pool_curve(pool).items():
        assert row["kl/exact"] <= row["bon/kl_bound"] + 1e-12, n
    tied = {k: v[1:] for k, v in pool.items()}  # the rows with ties only
    assert pool_curve(tied, [8])[8]["kl/exact"] < bon_kl_bound(8) - 0.05


def test_curve_rises_with_n_and_the_largest_n_takes_the_pool_maximum():
    pool = _pool()
    curve = pool_curve(pool)
    m = max(curve)
    proxy = [curve[n]["reward/proxy"] for n in sorted(curve)]
    assert all(b >= a - 1e-12 for a, b in zip(proxy, proxy[1:], strict=False))
    assert curve[m]["reward/proxy"] == pytest.approx(float(pool["proxy"].max(-1).values.mean()))
    log_q = [curve[n]["quantile/log_mean"] for n in sorted(curve)]
    assert math.isnan(log_q[-1]) and all(v <= 0 for v in log_q[:-1])  # at n = M no member is left to compare


def test_summary_holds_the_whole_curve_as_json():
    s = pool_summary(pool_curve(_pool(m=4)), 4, 5)
    assert s["pool_size"] == 4 and s["kl/estimator"] == "bon_pool" and sorted(s["curve"]) == ["1", "2", "3", "4"]


def test_summary_stores_what_n_equal_m_cannot_measure_as_null_not_as_a_number():
    """At n = M no pool member is left out to compare the Best-of-n with: its win rate and log quantile are null
    in the record (strict JSON), which the tables read as missing, never as a win rate of 0 (or of anything)."""
    curve = pool_curve(_pool(m=4))
    s = pool_summary(curve, 4, 5)
    json.dumps(s, allow_nan=False)
    assert s["curve"]["4"]["win_rate/gold"] is None and s["curve"]["4"]["quantile/log_mean"] is None
    assert s["curve"]["4"]["reward/gold"] == curve[4]["reward/gold"]  # what n = M does measure is kept
    assert s["curve"]["3"] == curve[3]  # every value below M is finite and stored as it is


def test_draw_pool_is_keyed_by_prompt_not_by_batching():
    pytest.importorskip("transformers")
    pytest.importorskip("peft")
    from rlhf_zoo.policies.hf import HFPolicyConfig, build_hf_policy
    from rlhf_zoo.rewards.base import CallableReward
    from rlhf_zoo.tasks.base import Task

    pol = build_hf_policy(HFPolicyConfig(max_new_tokens=5), seed=0)
    prompts = ["The movie was", "I did not expect", "Great", "A slow film"]
    task = Task(
        name="lm",
        train_prompts=prompts,
        eval_prompts=prompts,
        proxy=CallableReward(lambda ps, ts: [len(t) / 10 for t in ts], "length"),
        gold=CallableReward(lambda ps, ts: [t.count("e") for t in ts], "e_count"),
        build_policy=lambda seed: pol,
    )
    a = draw_pool(task, pol, 3, 6, seed=1, chunk=3)
    b = draw_pool(task, pol, 3, 6, seed=1, chunk=1)
    assert a["proxy"].shape == (3, 6) and set(a) == {"proxy", "gold", "length"}
    for k in a:
        assert torch.equal(a[k], b[k]), k
    c = draw_pool(task, pol, 3, 6, seed=2, chunk=3)
    assert not torch.equal(a["proxy"], c["proxy"])


def _best_of_n_win_rate(probs, proxy, gold, n):
    """P(gold(Y) > gold(Y')) + ½·P(=), Y the Best-of-n of n i.i.d. draws from ``probs`` (ties in the proxy
    broken uniformly) and Y' an independent draw: by enumerating every n-tuple of draws and every Y'."""
    total = 0.0
    for draws in product(range(len(probs)), repeat=n):
        p_draws = math.prod(float(probs[i]) for i in draws)
        top = max(float(proxy[i]) for i in draws)
        winners = [i for i in draws if float(proxy[i]) == top]
        for y_ref in range(len(probs)):
            beats = sum(float(gold[i] > gold[y_ref]) + 0.5 * float(gold[i] == gold[y_ref]) for i in winners) / len(
                winners
            )
            total += p_draws * float(probs[y_ref]) * beats
    return total


@pytest.mark.parametrize("n", [2, 3])
def test_pool_win_rate_is_unbiased_for_best_of_n_against_an_independent_reference(n):
    """``win_rate/gold`` is documented (docs/metrics.md) as P(gold(y) > gold(y_ref)) + ½·P(=) with y_ref ~ π_ref
    independent of y. Averaged over every ordered pool of m i.i.d. draws from a small discrete π_ref (weighted
    by its probability), the pool's estimate equals that probability for Best-of-n, as its reward and length
    estimates do. Comparing with every other member, the Best-of-n's beaten draws included, gave 0.677
    instead of 0.630 at n = 2."""
    probs = torch.tensor([0.5, 0.2, 0.2, 0.1], dtype=torch.float64)
    proxy = torch.tensor([0.0, 1.0, 1.0, 2.0], dtype=torch.float64)  # outcomes 1 and 2 tie on the proxy
    gold = torch.tensor([0.0, 1.0, 2.0, 2.0], dtype=torch.float64)  # outcomes 2 and 3 tie on the gold
    m = 4
    expected = _best_of_n_win_rate(probs, proxy, gold, n)
    total = 0.0
    for pool in product(range(len(probs)), repeat=m):
        idx = list(pool)
        scored = {"proxy": proxy[idx][None], "gold": gold[idx][None], "length": torch.ones(1, m, dtype=torch.float64)}
        total += float(torch.prod(probs[idx])) * pool_curve(scored, [n])[n]["win_rate/gold"]
    assert total == pytest.approx(expected, abs=1e-9)


def test_draw_pool_samples_the_reference_on_the_held_out_prompts(exact_task):
    """The pool is M completions of π_ref (Best-of-N draws from the reference, whatever π has become) for
    each of the first ``num_prompts`` *held-out* prompts, in their order, and its columns are those
    completions' proxy, gold and length. A testbed whose held-out prompts differ from its training prompts,
    and a π moved away from π_ref, tell each apart."""
    task = dataclasses.replace(exact_task, oracle=None, eval_prompts=["x3", "x1", "x2"])
    policy = RecordingPolicy(bf.perturbed(task, seed=7))
    pool = draw_pool(task, policy, 2, 5, seed=4, chunk=1)
    assert [(c.prompts, c.n, c.role) for c in policy.calls] == [(["x3"], 5, "ref"), (["x1"], 5, "ref")]
    rolls = [c.rollout for c in policy.calls]
    proxy = torch.stack([task.proxy.score(r.prompts, r.texts) for r in rolls]).double()
    gold = torch.stack([task.gold.score(r.prompts, r.texts) for r in rolls]).double()
    lengths = torch.stack([r.response_mask.sum(-1) for r in rolls]).double()
    assert torch.equal(pool["proxy"], proxy) and torch.equal(pool["gold"], gold)
    assert torch.equal(pool["length"], lengths)


def test_draw_pool_pays_each_completion_and_reward_call_once(exact_task):
    """``draw_pool(costs=...)`` counts what the pool spent as the evaluator counts its samples: M completions
    per prompt with their tokens, and a proxy and a gold reward call for each."""
    task = dataclasses.replace(exact_task, oracle=None)
    policy = RecordingPolicy(task.build_policy(0))
    costs = Costs()
    draw_pool(task, policy, 3, 4, seed=1, chunk=2, costs=costs)
    assert costs.completions == 3 * 4 and costs.reward_calls == 2 * 3 * 4
    assert costs.tokens == sum(int(c.rollout.response_mask.sum()) for c in policy.calls) > 0


def _best_of_n_log_quantile(probs, proxy, n, k):
    """E[log p̂_≤(Y)], Y the Best-of-n of n i.i.d. draws from ``probs`` and p̂_≤ = (1 + #{refs ≤ r(Y)})/(k + 1)
    from k independent reference draws (the evaluator's ``quantile_estimate``): by enumerating every n-tuple of
    draws and every k-tuple of references."""
    total = 0.0
    for draws in product(range(len(probs)), repeat=n):
        p_draws = math.prod(float(probs[i]) for i in draws)
        top = max(float(proxy[i]) for i in draws)
        for refs in product(range(len(probs)), repeat=k):
            p_refs = math.prod(float(probs[i]) for i in refs)
            below = sum(float(proxy[i]) <= top for i in refs)
            total += p_draws * p_refs * math.log((1 + below) / (k + 1))
    return total


@pytest.mark.parametrize("n", [1, 2, 3])
def test_pool_log_quantile_is_that_of_best_of_n_against_the_members_outside_its_draws(n):
    """``quantile/log_mean`` of the pool at n, averaged over every ordered pool of m i.i.d. draws from a small
    discrete π_ref with tied proxy rewards, equals E[log p̂_≤] of a Best-of-n output scored against m − n
    independent reference samples, as the evaluator scores a sampled Best-of-N output. Counting the draws it
    beat as references gave p̂_≤ ≥ n/m (0 at n = m)."""
    probs = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    proxy = torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64)  # outcomes 1 and 2 tie
    m = 4
    expected = _best_of_n_log_quantile(probs, proxy, n, m - n)
    total = 0.0
    for pool in product(range(len(probs)), repeat=m):
        idx = list(pool)
        scored = {"proxy": proxy[idx][None], "length": torch.ones(1, m, dtype=torch.float64)}
        total += float(torch.prod(probs[idx])) * pool_curve(scored, [n])[n]["quantile/log_mean"]
    assert total == pytest.approx(expected, abs=1e-9)


def test_the_pool_draws_none_of_the_random_numbers_of_the_evaluators_reference_completions(exact_task):
    """Both are reference samples of the same held-out prompts under the run's seed: sharing a stream, the pool
    would hold the very completions the trained objectives' win rates and quantiles are measured against."""
    from rlhf_zoo.algorithms.reinforce import Reinforce
    from rlhf_zoo.evaluate import Evaluator
    from tests.rollout.recording import UniformsPolicy

    task = dataclasses.replace(exact_task, oracle=None)
    policy = UniformsPolicy(task.build_policy(0))
    Evaluator(task, Reinforce(), num_prompts=2, samples=1, ref_samples=4, seed=5)(policy)
    reference = policy.uniforms[[c.role for c in policy.calls].index("ref")]
    draw_pool(task, policy, 2, 4, seed=5, chunk=2)
    pool = policy.uniforms[-1]
    assert not torch.isin(pool, reference).any()
