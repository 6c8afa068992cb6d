"""The testbed's oracle against brute force and against sampling."""

import math

import pytest
import torch

from rlhf_zoo.policies.tabular import PrefixTree
from rlhf_zoo.rng import Streams
from tests.tasks import brute_force as bf


def test_completion_count_and_decoding_are_injective():
    tree = PrefixTree(vocab_size=4, max_len=4)
    assert len(tree.completions) == 1 + 3 + 9 + 27 + 81
    texts = [tree.decode(c) for c in tree.completions]
    assert len(set(texts)) == len(texts)


def test_oracle_probs_sum_to_one_and_match_sampling(exact_task):
    policy = exact_task.build_policy(0)
    oracle = exact_task.oracle
    probs = oracle.probs(policy, "ref")
    assert probs.dtype == torch.float64
    assert torch.allclose(probs.sum(-1), torch.ones(4, dtype=torch.float64), atol=1e-5)
    g = torch.Generator().manual_seed(0)
    n = 20000
    roll = policy.sample(["x1"], n, role="ref", generator=g)
    _, cols = oracle.columns(roll)
    freq = torch.bincount(cols, minlength=oracle.num_completions).float() / n
    assert (freq - probs[1]).abs().max() < 0.015


def test_sample_logp_equals_logprobs_and_mask_stops_at_eos(exact_task):
    policy = exact_task.build_policy(0)
    roll = policy.sample(exact_task.train_prompts, 50, generator=torch.Generator().manual_seed(1))
    lp = policy.logprobs(roll)
    m = roll.response_mask.bool()
    assert torch.allclose(lp[m], roll.sample_logp[m], atol=1e-6)
    eos = policy.tree.eos
    for ids, mask in zip(roll.completion_ids, roll.response_mask, strict=True):
        length = int(mask.sum())
        assert (mask[:length] == 1).all() and (mask[length:] == 0).all()
        assert eos not in ids[: length - 1].tolist()  # only the last kept token may be EOS


def test_per_prompt_generators_make_a_prompts_samples_independent_of_its_batch(exact_task):
    """Prompt i's completions come from generator i alone: the same whether it is sampled alone, first
    or last, next to other prompts or to itself; and they follow π (checked against the oracle)."""
    policy = exact_task.build_policy(0)
    with torch.no_grad():  # move π away from uniform-ish π_ref so that rows differ per prompt
        policy.logits.add_(torch.randn(policy.logits.shape, generator=torch.Generator().manual_seed(4)))
    prompts = ["x0", "x1", "x2", "x3", "x1"]

    def gen(i):
        return Streams(7, 0).per_prompt("policy", [i])[0]

    batched = policy.sample(prompts, 6, generator=[gen(i) for i in range(len(prompts))])
    assert batched.texts[6:12] != batched.texts[24:30]  # x1 twice, two generators: different draws
    for i, p in enumerate(prompts):
        alone = policy.sample([p], 6, generator=[gen(i)])
        rows = slice(6 * i, 6 * i + 6)
        assert alone.texts == batched.texts[rows]
        assert torch.equal(alone.completion_ids, batched.completion_ids[rows])
        assert torch.equal(alone.sample_logp, batched.sample_logp[rows])
    reordered = policy.sample(prompts[::-1], 6, generator=[gen(i) for i in reversed(range(len(prompts)))])
    assert reordered.texts[:6] == batched.texts[24:30]
    assert torch.equal(
        policy.logprobs(batched)[batched.response_mask.bool()], batched.sample_logp[batched.response_mask.bool()]
    )
    n = 4000
    roll = policy.sample(["x2"] * n, 5, generator=Streams(1, 0).per_prompt("policy", range(n)))
    _, cols = exact_task.oracle.columns(roll)
    freq = torch.bincount(cols, minlength=exact_task.oracle.num_completions).double() / len(cols)
    assert (freq - exact_task.oracle.probs(policy, "policy")[2]).abs().max() < 0.015


def test_one_generator_per_prompt_is_required(exact_task):
    policy = exact_task.build_policy(0)
    with pytest.raises(ValueError, match="one torch.Generator per prompt"):
        policy.sample(["x0", "x1"], 2, generator=[torch.Generator()])


def test_exact_quantiles_match_brute_force(exact_task):
    policy = exact_task.build_policy(0)
    oracle = exact_task.oracle
    ref = oracle.probs(policy, "ref")
    roll = policy.sample(["x2"], 5, generator=torch.Generator().manual_seed(2))
    q, _ = oracle.quantiles(roll, ref)
    rewards = exact_task.proxy.score(roll.prompts, roll.texts)
    for qi, r in zip(q, rewards, strict=True):
        brute = sum(float(ref[2, j]) for j in range(oracle.num_completions) if oracle.proxy[2, j] <= r)
        assert abs(float(qi) - brute) < 1e-5


def regularised_objective(p, proxy, ref, beta):
    """E_p[r] − β·KL(p ‖ π_ref) per prompt: [P]."""
    return (p * proxy).sum(-1) - beta * bf.kl(p, ref)


@pytest.mark.parametrize("beta", [0.2, 0.7, 3.0])
def test_optimal_policy_maximises_the_regularised_objective(exact_task, beta):
    """π*_β is *the* maximiser of E[r] − β·KL(π ‖ π_ref): a small step in any direction, either way,
    lowers the objective for every prompt. (One-sided random steps are not enough: near a wrong point
    they lower a concave objective too.)"""
    policy = exact_task.build_policy(0)
    ref = bf.completion_probs(policy, "ref")
    proxy = bf.reward_table(exact_task.proxy, exact_task.train_prompts, policy)
    opt = exact_task.oracle.optimal(ref, beta)
    assert torch.allclose(opt.sum(-1), torch.ones(len(ref), dtype=torch.float64))
    best = regularised_objective(opt, proxy, ref, beta)
    for s in range(6):
        direction = torch.randn(ref.shape, generator=torch.Generator().manual_seed(s), dtype=torch.float64)
        for sign in (1.0, -1.0):
            other = torch.softmax(torch.log(opt) + sign * 0.01 * direction, -1)
            assert (regularised_objective(other, proxy, ref, beta) < best).all(), (s, sign)


def test_optimal_policy_moves_from_the_reference_to_the_best_completion_as_beta_falls(exact_task):
    """KL(π*_β ‖ π_ref) and E_{π*_β}[r] fall as β grows: π*_β → π_ref as β → ∞ and → the best
    completion of each prompt as β → 0."""
    policy = exact_task.build_policy(0)
    ref = bf.completion_probs(policy, "ref")
    proxy = bf.reward_table(exact_task.proxy, exact_task.train_prompts, policy)
    betas = [0.01, 0.05, 0.2, 0.7, 1.5, 5.0, 50.0, 1e4]
    optima = [exact_task.oracle.optimal(ref, b) for b in betas]
    kls = [float(bf.kl(o, ref).mean()) for o in optima]
    rewards = [float((o * proxy).sum(-1).mean()) for o in optima]
    assert all(a > b for a, b in zip(kls, kls[1:], strict=False)), kls
    assert all(a > b for a, b in zip(rewards, rewards[1:], strict=False)), rewards
    assert torch.allclose(optima[-1], ref, atol=1e-3)
    assert (optima[0].argmax(-1) == proxy.argmax(-1)).all() and (optima[0].max(-1).values > 0.99).all()
    with pytest.raises(ValueError, match="beta must be > 0"):
        exact_task.oracle.optimal(ref, 0.0)


def test_weighted_rollout_sums_are_expectations_over_prompts_and_completions(exact_task):
    """A weighted sum over the enumeration's rows is E_x E_{y~π}[f(x, y)]: here f is the proxy reward
    read through the reward model from each row's (prompt, text), and π is from the brute force."""
    policy = bf.perturbed(exact_task, seed=1)
    oracle = exact_task.oracle
    probs = bf.completion_probs(policy)
    roll = oracle.weighted_rollout(probs)
    assert abs(float(roll.weights.sum()) - 1.0) < 1e-6
    proxy = exact_task.proxy.score(roll.prompts, roll.texts).double()
    table = bf.reward_table(exact_task.proxy, exact_task.train_prompts, policy)
    assert float((roll.weights.double() * proxy).sum()) == pytest.approx(float((probs * table).sum(-1).mean()))
    assert torch.allclose(roll.weights.double(), probs.reshape(-1) / len(exact_task.train_prompts))
    assert roll.weights.dtype == probs.dtype == torch.float64  # exact sums are not rounded to float32


@pytest.mark.parametrize("beta", [10**-3.5, 0.05, 1.0, 10**3.5])
def test_the_frontiers_reward_at_a_kl_is_that_of_the_optimal_policy_at_that_kl(exact_task, beta):
    """``reward_at_kl`` inverts β ↦ KL(π*_β ‖ π_ref) over the whole range it searches (β from 1e-4 to 1e4): at the
    KL of π*_β it gives π*_β's expected proxy reward, for β near either end as in the middle."""
    policy = exact_task.build_policy(0)
    ref = bf.completion_probs(policy, "ref")
    proxy = bf.reward_table(exact_task.proxy, exact_task.train_prompts, policy)
    opt = exact_task.oracle.optimal(ref, beta)
    kl = float(bf.kl(opt, ref).mean())
    expected = float((opt * proxy).sum(-1).mean())
    assert exact_task.oracle.reward_at_kl(ref, kl) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(("scale", "beta"), [(1e-2, 2e-4), (1e2, 5e3)])
def test_the_frontier_search_reaches_both_ends_of_its_range(exact_task, scale, beta):
    """On the testbed's rewards π*_β hardly changes below β = 1e-3 or above 1e3, so the test above cannot tell a
    search over [1e-3, 1e3] from one over [1e-4, 1e4]. With the proxy scaled by 1/100 (by 100), π*_β at β = 2e-4
    (5e3) is as far from π*_1e-3 (π*_1e3) as β = 0.02 (50) is from 0.1 (10) on the testbed's own rewards: the
    frontier's reward at its KL must still be π*_β's, computed here in closed form."""
    from rlhf_zoo.tasks.oracle import ExactOracle

    oracle = exact_task.oracle
    scaled = ExactOracle(oracle.prompts, oracle.tree, oracle.proxy * scale, oracle.gold)
    policy = exact_task.build_policy(0)
    ref = bf.completion_probs(policy, "ref")
    proxy = bf.reward_table(exact_task.proxy, exact_task.train_prompts, policy) * scale
    weights = ref * torch.exp((proxy - proxy.max(-1, keepdim=True).values) / beta)
    opt = weights / weights.sum(-1, keepdim=True)
    kl = float(bf.kl(opt, ref).mean())
    assert scaled.reward_at_kl(ref, kl) == pytest.approx(float((opt * proxy).sum(-1).mean()), rel=1e-6)


def test_state_dict_round_trip_keeps_weights_and_anchor_version(exact_task):
    policy = exact_task.build_policy(0)
    with torch.no_grad():
        policy.logits.add_(1.0)
    policy.update_anchor(0.5)
    policy.update_anchor(0.5)
    fresh = exact_task.build_policy(0)
    fresh.load_state_dict(policy.state_dict())
    assert fresh.anchor_version == 2
    assert torch.equal(fresh.logits, policy.logits) and torch.equal(fresh.anchor_logits, policy.anchor_logits)


def test_policies_built_from_one_task_share_no_weights(exact_task):
    """Every run, seed and objective of a bench builds its policy from the same task: moving one policy's π and
    its anchor must leave the task's π_ref, and so the next policy's three roles, where they were."""
    first = exact_task.build_policy(0)
    ref = first.ref_logits.clone()
    with torch.no_grad():
        first.logits.add_(1.0)
    first.update_anchor(0.5)
    assert (first.anchor_logits - ref).abs().max() > 0.4 and torch.equal(first.ref_logits, ref)
    second = exact_task.build_policy(1)
    for table in (second.logits, second.anchor_logits, second.ref_logits):
        assert torch.equal(table.detach(), ref)


def test_only_the_policys_log_probs_carry_a_gradient_and_only_when_asked(exact_task):
    policy = exact_task.build_policy(0)
    roll = policy.sample(exact_task.train_prompts, 2, generator=torch.Generator().manual_seed(0))
    assert policy.logprobs(roll).requires_grad and policy.logprobs(roll, full=True).requires_grad
    assert not any(policy.logprobs(roll, role=role).requires_grad for role in ("ref", "anchor"))
    with torch.no_grad():  # collect and the evaluation score without gradient: no graph is built
        assert not policy.logprobs(roll).requires_grad
    with pytest.raises(ValueError, match="unknown role 'reference'"):  # not silently some other table
        policy.logprobs(roll, role="reference")


@pytest.mark.parametrize(("vocab_size", "max_len"), [(1, 2), (28, 2), (4, 0)])
def test_a_prefix_tree_needs_a_letter_an_eos_and_a_length(vocab_size, max_len):
    with pytest.raises(ValueError, match="vocab_size must lie in|max_len must be >= 1"):
        PrefixTree(vocab_size, max_len)


def test_a_huge_max_len_is_refused_at_once() -> None:
    """``task.max_len=1000000000000`` is refused as too many completions to enumerate, at once: the count
    summed (V−1)^t over every t < L first, which for such an L never ended (the check hung the command)."""
    from rlhf_zoo.tasks.exact import ExactTaskConfig, check_exact_task

    for vocab_size in (2, 3, 27):
        with pytest.raises(ValueError, match="^at least .* that are enumerated exactly"):  # counted in part
            check_exact_task(ExactTaskConfig(vocab_size=vocab_size, max_len=10**12))


def test_a_testbed_too_large_for_the_exact_evaluation_is_refused() -> None:
    """max_len=9 (29 524 completions per prompt, 4 prompts) passed the completion count and then asked
    for 28 GB in the first evaluation, which compares every completion of a prompt with every other."""
    from rlhf_zoo.tasks.exact import ExactTaskConfig, check_exact_task

    with pytest.raises(ValueError, match="compares every completion of a prompt with every other"):
        check_exact_task(ExactTaskConfig(max_len=9))
    check_exact_task(ExactTaskConfig(max_len=7))  # 3 280 per prompt: 4.3e7 pairs, 1.2 GB, still allowed


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"num_prompts": 0}, "num_prompts must be >= 1"),
        ({"vocab_size": 28}, "vocab_size must lie in"),
        ({"vocab_size": 1}, "vocab_size must lie in"),  # EOS alone: no letter (refused here, not first by the build)
        ({"max_len": 0}, "max_len must be >= 1"),
        # one letter: completions of every length 0..200, so 201 per prompt (the length-200 one without EOS
        # included), 201 000 in all: one over the limit, while its pairs (4.0e7) would still fit
        ({"num_prompts": 1000, "vocab_size": 2, "max_len": 200}, "^201 completions per prompt"),
    ],
)
def test_a_testbed_that_cannot_be_built_or_enumerated_is_refused(change, message) -> None:
    from rlhf_zoo.tasks.exact import ExactTaskConfig, check_exact_task

    with pytest.raises(ValueError, match=message):
        check_exact_task(ExactTaskConfig(**change))


def test_the_testbeds_knobs_shape_the_reference_and_the_proxy_as_they_say() -> None:
    """Same seed, other knobs: ``ref_scale`` scales π_ref's random logits, ``eos_logit`` shifts EOS's alone, and
    ``proxy_noise`` is the spread of the proxy's Gaussian noise around the gold reward (none: proxy = gold)."""
    from rlhf_zoo.tasks.exact import ExactTaskConfig, build_exact_task

    def tables(**change):
        task = build_exact_task(ExactTaskConfig(**change))
        policy = task.build_policy(0)
        rewards = [bf.reward_table(r, task.train_prompts, policy) for r in (task.proxy, task.gold)]
        return policy.ref_logits, *rewards, policy.tree.eos

    base, proxy, gold, eos = tables(eos_logit=0.0)
    shifted = tables(eos_logit=2.0)[0]
    assert torch.allclose(shifted[..., eos], base[..., eos] + 2.0) and torch.equal(shifted[..., :eos], base[..., :eos])
    assert torch.allclose(tables(eos_logit=0.0, ref_scale=3.0)[0], 3.0 * base)
    noise = (proxy - gold).reshape(-1)
    assert 0.4 < float(noise.std()) < 0.6 and abs(float(noise.mean())) < 0.1  # proxy_noise = 0.5, 484 draws
    _, proxy, gold, _ = tables(proxy_noise=0.0)
    assert torch.equal(proxy, gold)


def test_the_reference_curves_are_the_optimal_policies_and_best_of_n_written_out(exact_task):
    """The bench page's reference curves (``oracle.curves``): π*_β ∝ π_ref·exp(r/β) over 121 values of β from
    10^1.5 down to 0.01, and Best-of-n of π_ref, each point's KL to π_ref, proxy and gold rewards and (for
    Best-of-n) E[log p_≤] and the log n − (n−1)/n bound, all from brute-force tables."""
    policy = exact_task.build_policy(0)
    ref = bf.completion_probs(policy, "ref")
    proxy = bf.reward_table(exact_task.proxy, exact_task.train_prompts, policy)
    gold = bf.reward_table(exact_task.gold, exact_task.train_prompts, policy)
    curves = exact_task.oracle.curves(ref)
    frontier = curves["frontier"]
    assert len(frontier) == 121 and curves["kl_estimator"] == "exact"
    assert frontier[0]["beta"] == pytest.approx(10**1.5) and frontier[-1]["beta"] == pytest.approx(0.01)
    for point in frontier[::30]:
        opt = ref * torch.exp(proxy / point["beta"])
        opt = opt / opt.sum(-1, keepdim=True)
        assert point["kl"] == pytest.approx(float(bf.kl(opt, ref).mean()), rel=1e-6, abs=1e-12)
        assert point["reward_proxy"] == pytest.approx(float((opt * proxy).sum(-1).mean()))
        assert point["reward_gold"] == pytest.approx(float((opt * gold).sum(-1).mean()))
    p_le = bf.quantiles(ref, proxy)
    for point in curves["best_of_n"]:
        n = point["n"]
        bon = bf.best_of_n(ref, proxy, n)
        assert point["kl"] == pytest.approx(float(bf.kl(bon, ref).mean()), rel=1e-6, abs=1e-12), n
        assert point["reward_proxy"] == pytest.approx(float((bon * proxy).sum(-1).mean())), n
        assert point["reward_gold"] == pytest.approx(float((bon * gold).sum(-1).mean())), n
        assert point["log_quantile"] == pytest.approx(float((bon * p_le.log()).sum(-1).mean())), n
        assert point["kl_bound"] == pytest.approx(math.log(n) - (n - 1) / n), n
    assert [p["n"] for p in curves["best_of_n"]][:2] == [1, 2]


def test_the_testbed_is_a_function_of_its_seed():
    """Every draw of the testbed (π_ref, gold, the proxy's noise) comes from its seed: a proxy noise drawn from the
    global generator instead was caught by no test of the testbed's own (only by a CLI samples test)."""
    from rlhf_zoo.tasks.exact import ExactTaskConfig, build_exact_task

    calls = []

    def tables(seed: int) -> tuple:
        calls.append(seed)
        torch.manual_seed(1234 + len(calls))  # the global generator in another state each time: it must not matter
        task = build_exact_task(ExactTaskConfig(seed=seed))
        probs = task.oracle.probs(task.build_policy(0), "ref")
        return task.proxy.table, task.gold.table, probs

    (p0, g0, r0), (p1, g1, r1), (q0, h0, s0) = tables(0), tables(0), tables(1)
    assert p0 == p1 and g0 == g1 and torch.equal(r0, r1)
    assert p0 != q0 and g0 != h0 and not torch.equal(r0, s0)
    assert any(abs(p0[k] - g0[k]) > 1e-3 for k in p0)  # the proxy is the gold plus its noise


def test_a_testbed_at_both_limits_exactly_is_taken_and_one_prompt_more_is_refused() -> None:
    """The limits are "at most": one letter and max_len 249 give 250 completions per prompt (the tree's own
    enumeration), so 800 prompts make exactly MAX_COMPLETIONS completions and exactly MAX_PAIRS pairs, which are
    taken; 801 prompts are one prompt over both."""
    from rlhf_zoo.tasks.exact import MAX_COMPLETIONS, MAX_PAIRS, ExactTaskConfig, check_exact_task

    per_prompt = len(PrefixTree(vocab_size=2, max_len=249).completions)
    assert per_prompt == 250
    prompts = MAX_COMPLETIONS // per_prompt
    assert prompts * per_prompt == MAX_COMPLETIONS and prompts * per_prompt**2 == MAX_PAIRS
    check_exact_task(ExactTaskConfig(num_prompts=prompts, vocab_size=2, max_len=249))
    with pytest.raises(ValueError, match="^250 completions per prompt × 801 prompts is more than"):
        check_exact_task(ExactTaskConfig(num_prompts=prompts + 1, vocab_size=2, max_len=249))
