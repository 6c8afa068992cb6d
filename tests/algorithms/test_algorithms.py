"""Every registered objective through one contract, and the properties ALGORITHMS.md states."""

import dataclasses
import math

import pytest
import torch

from rlhf_zoo.algorithms import REGISTRY, Batch, get_algorithm
from rlhf_zoo.algorithms.bond import Bond, BondConfig
from rlhf_zoo.algorithms.jbond import JBond, JBondConfig
from rlhf_zoo.algorithms.ppo_lite import PPOLite, PPOLiteConfig
from rlhf_zoo.algorithms.reinforce import Reinforce, ReinforceConfig
from rlhf_zoo.functional.best_of_n import bon_probs
from rlhf_zoo.functional.kl import categorical_kl
from rlhf_zoo.functional.quantile import exact_quantiles
from tests.algorithms.helpers import clone_batch, enumerated_batch, sampled_batch

EXPECTED = {"best_of_n", "reinforce", "ppo_lite", "bond", "jbond"}


def test_registry_holds_exactly_the_five_names():
    assert set(REGISTRY) == EXPECTED
    for name, cls in REGISTRY.items():
        assert cls.name == name


def test_a_duplicate_name_is_an_error_and_the_names_are_listed_sorted():
    """The registry is an explicit name → class map: two classes under one name would silently keep the last."""
    from rlhf_zoo.algorithms.registry import _build, known_algorithms

    class Shadow(Bond):
        name = "reinforce"

    with pytest.raises(ValueError, match="reinforce"):
        _build([Reinforce, Shadow])
    assert _build([Reinforce, Bond]) == {"reinforce": Reinforce, "bond": Bond}
    assert known_algorithms() == sorted(EXPECTED)


@pytest.mark.parametrize(
    ("anchor_logp", "base", "anchor"), [(False, "ref", False), (True, "ref", True), (False, "anchor", True)]
)
def test_an_anchor_is_kept_whenever_anything_is_read_under_the_anchor_role(anchor_logp, base, anchor):
    """§5, §6: π_anchor must exist as soon as its log-probs are read *or* it is the base that quantiles and forward
    targets are drawn from (a base of ``anchor`` alone, without anchor log-probs, still needs the copy)."""
    from rlhf_zoo.algorithms import Needs

    assert Needs(anchor_logp=anchor_logp, base=base).anchor is anchor


def test_best_of_n_is_evaluated_as_the_sampler_of_its_own_n():
    """§7: Best-of-N is not trained; it is evaluated as N draws from π_ref keeping the best, with its own N (and
    measured on the testbed against π_BoN of that N). The trained objectives are evaluated as π itself."""
    for n in (1, 3, 16):
        algo = get_algorithm("best_of_n")(get_algorithm("best_of_n").Config(n=n))
        assert not algo.trainable
        assert algo.best_of_n_sampling() == n
        assert algo.exact_targets() == {"bon_n": n}
    for name in sorted(REGISTRY.keys() - {"best_of_n"}):
        algo = get_algorithm(name)()
        assert algo.trainable and algo.best_of_n_sampling() is None


def test_unknown_algorithm_lists_known_names():
    with pytest.raises(KeyError) as e:
        get_algorithm("dpo")
    for name in EXPECTED:
        assert name in str(e.value)


def _configs():
    out = []
    for name, cls in sorted(REGISTRY.items()):
        cfg = cls.Config()
        if hasattr(cfg, "quantiles"):
            out.append((name, dataclasses.replace(cfg, quantiles="exact")))
            out.append((name, dataclasses.replace(cfg, quantiles="mc")))
            out.append((name, dataclasses.replace(cfg, quantiles="mc", anchor_period=3)))
        elif hasattr(cfg, "kl_in"):
            out.append((name, cfg))
            out.append((name, dataclasses.replace(cfg, kl_in="loss", kl_estimator="exact")))
        else:
            out.append((name, cfg))
    return out


@pytest.mark.parametrize(("name", "cfg"), _configs(), ids=lambda x: str(x) if isinstance(x, str) else "")
def test_contract(name, cfg, exact_task):
    """Finite loss and metrics, gradients only through the policy, the batch not mutated."""
    algo = get_algorithm(name)(cfg)
    policy = exact_task.build_policy(0)
    with torch.no_grad():  # move π away from π_ref so that every term is non-trivial
        policy.logits.add_(0.3 * torch.randn(policy.logits.shape, generator=torch.Generator().manual_seed(3)))
    batch = sampled_batch(algo, exact_task, policy)
    before = clone_batch(batch)
    loss, metrics = algo.loss(batch)
    assert loss.dim() == 0 and torch.isfinite(loss)
    for key, value in metrics.items():
        assert "/" in key, f"metric keys are namespaced: {key}"
        assert torch.isfinite(torch.as_tensor(value)).all(), key
    for field, value in before.items():
        now = getattr(batch, field)
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, now.detach()), f"{name} mutated batch.{field}"
    for field in ("old_logp", "ref_logp", "anchor_logp", "rewards", "quantiles", "base_rewards", "weights"):
        value = getattr(batch, field)
        assert value is None or not value.requires_grad, f"batch.{field} must carry no gradient"
    if algo.trainable:
        loss.backward()
        assert policy.logits.grad is not None and policy.logits.grad.abs().sum() > 0
    else:
        assert not loss.requires_grad


def test_ppo_lite_equals_reinforce_with_one_epoch(exact_task):
    """ρ ≡ 1 on the first epoch: PPO-lite's loss equals REINFORCE's in value and in gradient."""
    for baseline, kl_in in [("loo", "reward"), ("mean", "reward"), ("loo", "loss")]:
        r_cfg = ReinforceConfig(samples=4, baseline=baseline, beta=0.3, kl_in=kl_in)
        p_cfg = PPOLiteConfig(samples=4, baseline=baseline, beta=0.3, kl_in=kl_in, epochs=1, minibatches=1)
        policy = exact_task.build_policy(0)
        with torch.no_grad():
            policy.logits.add_(0.5 * torch.randn(policy.logits.shape, generator=torch.Generator().manual_seed(1)))
        batch = sampled_batch(Reinforce(r_cfg), exact_task, policy, seed=4)
        l_r, _ = Reinforce(r_cfg).loss(batch)
        (g_r,) = torch.autograd.grad(l_r, policy.logits, retain_graph=True)
        l_p, m = PPOLite(p_cfg).loss(batch)
        (g_p,) = torch.autograd.grad(l_p, policy.logits)
        assert torch.allclose(l_r, l_p, atol=1e-6)
        assert torch.allclose(g_r, g_p, atol=1e-6)
        assert g_r.abs().sum() > 0
        assert float(m["ppo/clip_fraction"]) == 0.0


def test_ppo_lite_clipped_tokens_give_no_gradient(exact_task):
    """Once π has moved past the clip range in the advantage's direction, the update stops."""
    algo = PPOLite(PPOLiteConfig(samples=4, beta=0.0, clip_eps=0.01))
    policy = exact_task.build_policy(0)
    batch = sampled_batch(algo, exact_task, policy, seed=2)
    from rlhf_zoo.algorithms.common import grouped_advantages

    adv = grouped_advantages(batch.rewards, batch.group_size, "loo")
    # Pretend π_old differed so that every ratio sits far on the clipped side for its advantage.
    shift = torch.where(adv > 0, 1.0, -1.0)[:, None] * batch.response_mask
    moved = dataclasses.replace(batch, old_logp=batch.old_logp - shift)
    loss, m = algo.loss(moved)
    (g,) = torch.autograd.grad(loss, policy.logits)
    assert float(m["ppo/clip_fraction"]) == pytest.approx(float((adv != 0).float().mean()), abs=1e-6)
    assert g.abs().max() == 0


@pytest.mark.parametrize("log_b", [True, False])
def test_bond_backward_gradient_is_the_gradient_of_exact_kl_to_bon(exact_task, log_b):
    """With exact quantiles and enumeration instead of sampling, BOND's backward-term loss has
    exactly the gradient of KL(π ‖ π_BoN) when log B is kept; when it is dropped (the paper's
    default) it is the gradient of KL(π ‖ π̃) with π̃ ∝ π_ref·p_≤^(N−1), and differs from the former."""
    n = 4
    for baseline in ("none", "mean"):
        policy = exact_task.build_policy(0).double()
        with torch.no_grad():
            policy.logits.add_(0.4 * torch.randn(policy.logits.shape, generator=torch.Generator().manual_seed(5)))
        algo = Bond(BondConfig(n=n, beta=1.0, quantiles="exact", baseline=baseline, log_b=log_b))
        batch, probs = enumerated_batch(exact_task, policy)
        loss, _ = algo.loss(batch)
        (g_algo,) = torch.autograd.grad(loss, policy.logits, retain_graph=True)

        ref = exact_task.oracle.probs(policy, "ref").double()
        proxy = exact_task.oracle.proxy.double()
        target = bon_probs(ref, proxy, n)
        if not log_b:
            p_le, _ = exact_quantiles(proxy, proxy, ref)
            target = ref * p_le ** (n - 1)  # unnormalised: the constant does not change the gradient
        kl = (probs * (probs.log() - target.log())).sum(-1).mean()
        (g_kl,) = torch.autograd.grad(kl, policy.logits)
        assert torch.allclose(g_algo, g_kl, atol=1e-10, rtol=1e-7), (g_algo - g_kl).abs().max()
        assert g_kl.abs().max() > 1e-3


def test_reinforce_gradient_is_the_gradient_of_the_regularised_objective(exact_task):
    """KL in the reward, enumeration instead of sampling: −∇(E[r] − β·KL(π ‖ π_ref)) exactly."""
    beta = 0.4
    policy = exact_task.build_policy(0).double()
    with torch.no_grad():
        policy.logits.add_(0.4 * torch.randn(policy.logits.shape, generator=torch.Generator().manual_seed(6)))
    batch, probs = enumerated_batch(exact_task, policy)
    loss, _ = Reinforce(ReinforceConfig(beta=beta, baseline="none")).loss(batch)
    (g_algo,) = torch.autograd.grad(loss, policy.logits, retain_graph=True)
    ref = exact_task.oracle.probs(policy, "ref")
    objective = ((probs * exact_task.oracle.proxy.double()).sum(-1) - beta * categorical_kl(probs, ref)).mean()
    (g_obj,) = torch.autograd.grad(-objective, policy.logits)
    assert torch.allclose(g_algo, g_obj, atol=1e-10, rtol=1e-7)
    assert g_obj.abs().max() > 1e-3


def test_jbond_gamma_pulls_towards_the_anchor(exact_task):
    """Raising γ lowers KL(π ‖ π_anchor) after an update (the sign decision of ALGORITHMS.md §6.4)."""
    kls = []
    for gamma in (0.0, 1.0, 2.0):
        policy = exact_task.build_policy(0)
        policy.update_anchor(1.0)
        with torch.no_grad():  # π drifts away from its anchor
            policy.logits.add_(0.5 * torch.randn(policy.logits.shape, generator=torch.Generator().manual_seed(7)))
        algo = JBond(JBondConfig(gamma=gamma, beta=0.5, baseline="none"))
        batch, _ = enumerated_batch(exact_task, policy, quantile_role="anchor")
        # J-BOND reads fresh anchor rewards; two per prompt, chosen as the prompt's median reward.
        med = exact_task.oracle.proxy.median(-1).values
        batch = dataclasses.replace(
            batch,
            group_size=exact_task.oracle.num_completions,
            base_rewards=torch.stack([med, med], -1),
            target_logp=batch.logp[:4],
            target_mask=batch.response_mask[:4],
        )
        loss, _ = algo.loss(batch)
        opt = torch.optim.SGD([policy.logits], lr=0.5)
        opt.zero_grad()
        loss.backward()
        opt.step()
        o = exact_task.oracle
        kls.append(float(categorical_kl(o.probs(policy, "policy"), o.probs(policy, "anchor")).mean()))
    assert kls[0] > kls[1] > kls[2], kls


def test_jbond_mean_reward_at_the_anchor_is_minus_log16_over_3(exact_task):
    """π = π_anchor, (near-)continuous reward: P(y loses to both anchor samples) = 1/3."""
    algo = JBond(JBondConfig())
    policy = exact_task.build_policy(0)
    policy.update_anchor(1.0)
    vals = []
    for s in range(40):
        batch = sampled_batch(algo, exact_task, policy, prompts=exact_task.train_prompts * 64, seed=s)
        _, m = algo.loss(batch)
        vals.append(float(m["jbond/reward"]))
    # Discrete outcomes tie with probability Σπ², which lowers the penalty a little; bound it.
    mean = sum(vals) / len(vals)
    assert -math.log(16) / 3 - 0.03 < mean < -math.log(16) / 3 + 0.12, mean


def test_invalid_settings_are_rejected():
    for bad in [
        lambda: Bond(BondConfig(n=1)),
        lambda: Bond(BondConfig(beta=1.5)),
        lambda: Reinforce(ReinforceConfig(baseline="median")),
        lambda: Reinforce(ReinforceConfig(samples=1, baseline="group_norm")),
        lambda: JBond(JBondConfig(gamma=-1.0)),
        lambda: PPOLite(PPOLiteConfig(clip_eps=0.0)),
    ]:
        with pytest.raises(ValueError):
            bad()


# Each setting just outside its range (ALGORITHMS.md: β ∈ [0, 1] for the Jeffreys weight, β_RL ≥ 0, γ ≥ 0,
# η ∈ [0, 1], N ≥ 2 for BOND's β_BOND = 1/(N−1), N ≥ 1 draws for Best-of-N, ε > 0), and the edge just inside it.
OUT_OF_RANGE = [
    ("bond", "beta", -0.1, 0.0),
    ("bond", "beta", 1.1, 1.0),
    ("bond", "n", 1, 2),
    ("bond", "samples", 0, 1),
    ("bond", "k", 0, 1),
    ("bond", "anchor_period", -1, 0),
    ("bond", "quantiles", "sampled", "mc"),
    ("jbond", "beta", -0.1, 0.0),
    ("jbond", "beta", 1.1, 1.0),
    ("jbond", "gamma", -0.5, 0.0),
    ("jbond", "eta", -0.1, 0.0),
    ("jbond", "eta", 1.1, 1.0),
    ("jbond", "samples", 0, 1),
    ("jbond", "swap_period", -1, 0),
    ("reinforce", "beta", -0.1, 0.0),
    ("reinforce", "samples", 0, 1),
    ("reinforce", "kl_in", "both", "loss"),
    ("reinforce", "kl_estimator", "k2", "exact"),
    ("ppo_lite", "beta", -0.1, 0.0),
    ("ppo_lite", "clip_eps", 0.0, 1e-3),
    ("ppo_lite", "epochs", 0, 1),
    ("ppo_lite", "minibatches", 0, 1),
    ("ppo_lite", "samples", 0, 1),
    ("best_of_n", "n", 0, 1),
]


@pytest.mark.parametrize(("name", "field", "bad", "edge"), OUT_OF_RANGE, ids=lambda x: str(x))
def test_each_setting_is_checked_at_the_edge_of_its_range(name, field, bad, edge):
    """A value just outside a setting's range is refused on construction; the edge value just inside is taken."""
    cls = get_algorithm(name)
    with pytest.raises(ValueError):
        cls(dataclasses.replace(cls.Config(), **{field: bad}))
    assert getattr(cls(dataclasses.replace(cls.Config(), **{field: edge})).cfg, field) == edge


def test_a_batch_lacking_a_field_names_it():
    """A loss that reads a field the batch does not carry (one its Needs did not declare) is a ValueError naming
    that field, not a TypeError from deep inside the arithmetic."""
    mask = torch.ones(2, 2)
    batch = Batch(
        group_size=2, response_mask=mask, logp=torch.zeros(2, 2), old_logp=torch.zeros(2, 2), rewards=torch.zeros(2)
    )
    with pytest.raises(ValueError, match="ref_logp"):
        batch.seq("ref_logp")
    with pytest.raises(ValueError, match="quantiles, base_rewards"):
        batch.require("quantiles", "base_rewards")
    batch.require("logp", "rewards")  # present: nothing said
    with pytest.raises(ValueError, match="quantiles"):
        Bond(BondConfig(quantiles="mc")).loss(batch)
    with pytest.raises(ValueError, match="base_rewards"):
        JBond(JBondConfig()).loss(batch)


def test_defaults_are_the_settings_algorithms_md_names():
    """The defaults that ALGORITHMS.md fixes: BOND's J_0.5 with a leave-one-out baseline, k = 16 cached samples for
    training and log B dropped (§3, §4), plain BOND unless an anchor period is set (§5); J-BOND's β = 0.5, η = 0.02
    EMA after every step, one policy sample and two anchor samples (§6); REINFORCE's KL in the reward with the
    paper's k = 2 leave-one-out baseline, PPO-lite's KL in the reward and several epochs (§7)."""
    bond = BondConfig()
    assert (bond.beta, bond.baseline, bond.k, bond.log_b, bond.anchor_period) == (0.5, "loo", 16, False, 0)
    jbond = JBondConfig()
    assert (jbond.beta, jbond.eta, jbond.swap_period, jbond.samples) == (0.5, 0.02, 0, 1)
    assert JBond(jbond).needs().base_samples == 2
    rf = ReinforceConfig()
    assert (rf.kl_in, rf.samples, rf.baseline) == ("reward", 2, "loo")
    ppo = PPOLiteConfig()
    assert ppo.kl_in == "reward" and ppo.epochs >= 2


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_only_ppo_lite_takes_several_updates_per_rollout_batch(name):
    """§4, §6, §7: the score-function objectives (REINFORCE, BOND, J-BOND) are on-policy, one update per batch
    of samples from π; only PPO-lite's clipped surrogate runs several epochs of minibatches on one batch."""
    cls = get_algorithm(name)
    algo = cls(cls.Config(quantiles="mc") if name == "bond" else cls.Config())  # bond: auto is resolved by the task
    needs = algo.needs()
    if name == "ppo_lite":
        assert (needs.epochs, needs.minibatches) == (algo.cfg.epochs, algo.cfg.minibatches)
        other = PPOLite(PPOLiteConfig(epochs=3, minibatches=1)).needs()
        assert (other.epochs, other.minibatches) == (3, 1)
    else:
        assert (needs.epochs, needs.minibatches) == (1, 1)


def test_ppo_lite_equals_reinforce_with_one_epoch_under_enumeration_weights(exact_task):
    """§7 and §8: on the testbed the expectation is Σ π(y)·(·) over every completion; PPO-lite's first epoch
    must still equal REINFORCE in value and gradient, i.e. weigh its surrogate by the same weights."""
    policy = exact_task.build_policy(0).double()
    with torch.no_grad():
        policy.logits.add_(0.5 * torch.randn(policy.logits.shape, generator=torch.Generator().manual_seed(8)))
    batch, _ = enumerated_batch(exact_task, policy)
    r_cfg = ReinforceConfig(samples=batch.group_size, baseline="mean", beta=0.3)
    p_cfg = PPOLiteConfig(samples=batch.group_size, baseline="mean", beta=0.3, epochs=1, minibatches=1)
    l_r, _ = Reinforce(r_cfg).loss(batch)
    (g_r,) = torch.autograd.grad(l_r, policy.logits, retain_graph=True)
    l_p, _ = PPOLite(p_cfg).loss(batch)
    (g_p,) = torch.autograd.grad(l_p, policy.logits)
    assert torch.allclose(l_r, l_p, atol=1e-10)
    assert torch.allclose(g_r, g_p, atol=1e-10)
    assert g_r.abs().max() > 1e-3


def _anchor_on_the_empty_completion(exact_task):
    """π = π_ref, and π_anchor (numerically) a point mass on the empty completion (EOS first)."""
    policy = exact_task.build_policy(0)
    with torch.no_grad():
        policy.anchor_logits[:, 0, policy.tree.eos] += 60.0
    return policy


def _collect(algo, exact_task, policy, seed=0):
    from rlhf_zoo.rng import Streams
    from rlhf_zoo.rollout import BaseCache, collect

    needs = algo.needs()
    cache = BaseCache(needs.cache_size) if needs.cache_size else None
    return collect(needs, policy, exact_task, exact_task.train_prompts, streams=Streams(seed, 0), cache=cache)


def test_jbond_draws_its_two_samples_and_its_target_from_the_anchor(exact_task):
    """§6: y'_1, y'_2 ~ π_anchor, and the forward target is the better of them. With π_anchor a point mass
    on one completion, both samples of every prompt and every target are that completion."""
    policy = _anchor_on_the_empty_completion(exact_task)
    data = _collect(JBond(JBondConfig()), exact_task, policy)
    prompts = exact_task.train_prompts
    empty = exact_task.proxy.score(prompts, [""] * len(prompts)).to(data.base_rewards.dtype)
    assert torch.equal(data.base_rewards, empty[:, None].expand(-1, 2))
    assert data.target.texts == [""] * len(prompts)
    assert set(data.rollout.texts) != {""}  # π itself is not the anchor


@pytest.mark.parametrize("quantiles", ["exact", "mc"])
def test_iterative_bond_measures_quantiles_and_targets_against_the_anchor(exact_task, quantiles):
    """§5: after a swap, quantiles and forward targets refer to π_anchor, not π_ref. With π_anchor a point
    mass on the empty completion e: p_≤(y) = 1[r(e) ≤ r(y)] exactly, and p̂_≤ = (1 + k·1[r(e) ≤ r(y)])/(k + 1)
    against k cached anchor samples (all e); every forward target is e."""
    k = 3
    algo = Bond(BondConfig(quantiles=quantiles, k=k, samples=4, anchor_period=5))
    policy = _anchor_on_the_empty_completion(exact_task)
    data = _collect(algo, exact_task, policy)
    r_e = exact_task.proxy.score(data.rollout.prompts, [""] * len(data.rollout.prompts))
    above = (data.rewards >= r_e).double()
    expected = above if quantiles == "exact" else (1 + k * above) / (k + 1)
    torch.testing.assert_close(data.quantiles.double(), expected, rtol=0, atol=1e-9)
    assert 0 < float(above.mean()) < 1  # both cases occur
    assert data.target.texts == [""] * len(exact_task.train_prompts)


def _best_of_n_target_statistic(exact_task, n: int, quantiles: str):
    """(the target statistic's mean over 1000 collected targets, its exact mean for Best-of-n, for
    Best-of-(n − 1)) for BOND's forward targets. ``exact``: fresh π_ref samples, statistic p_≤(target)
    under π_ref, whose mean under π_BoN is Σ_y (p_≤^n − p_<^n)·p_≤ (§2, distinct rewards per prompt).
    ``mc``: n draws from k = 2 cached samples, statistic 1[target = the cache's best], whose probability
    is 1 − (1 − c/k)^n with c cached samples at the top reward."""
    from rlhf_zoo.rng import Streams
    from rlhf_zoo.rollout import BaseCache, collect, score

    k = 2
    algo = Bond(BondConfig(n=n, quantiles=quantiles, k=k, samples=1))
    policy = exact_task.build_policy(0)
    prompts = exact_task.train_prompts * 250
    needs = algo.needs()
    cache = BaseCache(needs.cache_size) if needs.cache_size else None
    streams = Streams(0, 0)
    data = collect(needs, policy, exact_task, prompts, streams=streams, cache=cache)
    target_r = score(exact_task, data.target).double()
    row = torch.tensor([exact_task.oracle.prompts.index(p) for p in prompts])
    if quantiles == "exact":
        ref = exact_task.oracle.probs(policy, "ref").double()  # [P, M]
        proxy = exact_task.oracle.proxy.double()
        p_le = ((proxy[row] <= target_r[:, None]) * ref[row]).sum(-1)
        exact = []
        for m in (n, n - 1):
            per_prompt = []
            for p, r in zip(ref, proxy, strict=True):
                assert len(set(r.tolist())) == len(r)  # distinct rewards: the closed form applies
                order = torch.argsort(r)
                le = p[order].cumsum(0)
                lt = le - p[order]
                per_prompt.append(((le**m - lt**m) * le).sum())
            exact.append(float(torch.stack(per_prompt)[row].mean()))
        return float(p_le.mean()), exact[0], exact[1]
    cached = cache.get(policy, needs.base, prompts, exact_task, streams, None)
    top = torch.stack([rew.double().max() for _, rew in cached])
    c = torch.stack([(rew.double() == rew.double().max()).sum() for _, rew in cached]).double()
    hit = (target_r == top).double()
    return float(hit.mean()), *(float((1 - (1 - c / k) ** m).mean()) for m in (n, n - 1))


@pytest.mark.parametrize("quantiles", ["exact", "mc"])
def test_bond_forward_target_is_a_best_of_n_draw(exact_task, quantiles):
    """§4: the forward term draws N base completions (fresh, or from the cache) and keeps the best. The
    collected targets' statistic matches Best-of-N, and is far from Best-of-(N − 1)."""
    got, best_of_n, best_of_n_minus_1 = _best_of_n_target_statistic(exact_task, 4, quantiles)
    assert abs(best_of_n - best_of_n_minus_1) > 0.04
    assert got == pytest.approx(best_of_n, abs=0.02), (got, best_of_n, best_of_n_minus_1)


def test_ppo_lite_runs_epochs_times_minibatches_updates_on_one_rollout_batch(tmp_path):
    """§7: per rollout batch, several epochs of minibatch updates. epochs = 3, minibatches = 2, 4 prompts:
    one training step makes 6 updates on minibatches of 2 prompts, all on the batch sampled at its start
    (log π_old fixed), so from the second update on the ratios π/π_old move away from 1."""
    from rlhf_zoo.config import load_config
    from rlhf_zoo.train import Trainer, build

    args = ["algo=ppo_lite", "algo.epochs=3", "algo.minibatches=2", "train.batch_prompts=4"]
    cfg = load_config([*args, f"run_dir={tmp_path / 'r'}", "train.progress=false"])
    tr = Trainer(cfg, *build(cfg))
    loss, seen = tr.algo.loss, []

    def watched(batch):
        moved = torch.where(batch.response_mask.bool(), batch.logp - batch.old_logp, 0.0)  # padding: junk
        seen.append((batch.num_groups, float(moved.detach().abs().max())))
        return loss(batch)

    tr.algo.loss = watched
    tr.begin()
    tr.train_step()
    tr.end()
    assert [groups for groups, _ in seen] == [2] * 6
    assert seen[0][1] == 0.0 and seen[-1][1] > 0.0


@pytest.mark.parametrize(
    ("algo", "unused"),
    [
        (JBond(JBondConfig(swap_period=5, eta=0.1)), "algo.eta=0.1 has no effect with algo.swap_period=5"),
        (JBond(JBondConfig(eta=0.1)), None),  # the EMA: η moves the anchor
        (Bond(BondConfig(quantiles="exact", k=4)), "algo.k=4 has no effect with algo.quantiles=exact"),
        (Bond(BondConfig(quantiles="mc", k=4)), None),  # k samples estimate p_≤
        (Reinforce(ReinforceConfig(kl_estimator="exact")), "algo.kl_estimator=exact has no effect"),
        (Reinforce(ReinforceConfig(kl_in="loss", kl_estimator="exact")), None),  # the estimate in the loss
        (PPOLite(PPOLiteConfig(kl_estimator="exact")), "algo.kl_estimator=exact has no effect"),
        (PPOLite(PPOLiteConfig(kl_in="loss", kl_estimator="exact")), None),
    ],
    ids=[
        "jbond-swap-eta",
        "jbond-ema-eta",
        "bond-exact-k",
        "bond-mc-k",
        "rf-reward",
        "rf-loss",
        "ppo-reward",
        "ppo-loss",
    ],
)
def test_a_setting_given_where_it_has_no_effect_is_named_once(algo, unused):
    """A value the other settings make inert (it changes no number) is one warning line naming it; where it is
    used, nothing is said."""
    lines = algo.unused_settings()
    if unused is None:
        assert lines == []
    else:
        assert len(lines) == 1 and lines[0].startswith(unused)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_defaults_leave_nothing_unused(name):
    """The defaults (and a default that goes unused, as k under exact quantiles) say nothing."""
    cls = get_algorithm(name)
    cfg = cls.Config(quantiles="exact") if name == "bond" else cls.Config()
    assert cls(cfg).unused_settings() == []


@pytest.mark.parametrize(
    ("minibatches", "batch_prompts", "warned"),
    [(8, 4, "takes 4 minibatches"), (4, 4, None), (2, 1, None), (3, 1, "takes 1 minibatch")],
    ids=["more", "equal", "default-2-of-1", "set-3-of-1"],
)
def test_more_minibatches_than_prompts_is_a_warning_unless_the_default(minibatches, batch_prompts, warned):
    """A minibatch is split by prompt: PPO-lite's minibatches above the step's prompts take one prompt each.
    Set by the user, that is said (one minibatch in the singular); the default (2) under a one-prompt batch is
    not."""
    from rlhf_zoo.train import fewer_minibatches

    lines = fewer_minibatches(PPOLite(PPOLiteConfig(minibatches=minibatches)), batch_prompts)
    if warned:
        assert len(lines) == 1 and lines[0].startswith(f"algo.minibatches={minibatches} is more than")
        assert lines[0].endswith(f"so each pass {warned} of one prompt"), lines[0]
    else:
        assert lines == []


@pytest.mark.parametrize(
    ("settings", "warning"),
    [
        (("algo=jbond", "algo.swap_period=5", "algo.eta=0.1"), "algo.eta=0.1 has no effect with algo.swap_period=5"),
        (("algo=ppo_lite", "algo.minibatches=8", "train.batch_prompts=4"), "algo.minibatches=8 is more than"),
    ],
    ids=["unused", "minibatches"],
)
def test_a_run_says_each_warning_at_its_start(cli, tmp_path, settings, warning):
    code, _, err = cli("train", *settings, "task=exact", "train.steps=1", "train.progress=false", f"run_dir={tmp_path}")
    assert code == 0, err
    assert f"rlhf-zoo: warning: {warning}" in err
