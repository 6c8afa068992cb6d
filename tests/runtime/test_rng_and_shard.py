"""Keyed random streams and the strided split of a global batch (the pieces behind N processes = 1)."""

import pytest
import torch

from rlhf_zoo.algorithms.common import grouped_advantages
from rlhf_zoo.functional.advantages import advantages
from rlhf_zoo.functional.best_of_n import best_of_n_select
from rlhf_zoo.rng import Streams, derive_seed, keyed_generator
from rlhf_zoo.shard import interleave, local_items, local_rows, positions


def test_derived_seeds_are_stable_and_keys_do_not_collide():
    # Pinned: changing the mix silently changes every run's samples.
    assert derive_seed(0, "policy", 0, 0) == 5023930410479894728
    assert derive_seed(0, "ab", "c") != derive_seed(0, "a", "bc")
    assert derive_seed(1) != derive_seed("1")
    seeds = {derive_seed(0, "policy", step, i) for step in range(50) for i in range(50)}
    assert len(seeds) == 2500 and all(0 <= s < 2**63 for s in seeds)
    with pytest.raises(TypeError):
        derive_seed(0, 1.5)
    with pytest.raises(TypeError):  # a bool is no int key: True would draw the stream of 1
        derive_seed(0, True)


def test_streams_are_stateless_and_keyed_by_global_position():
    a = Streams(3, 7).per_prompt("policy", [0, 2])
    b = Streams(3, 7).per_prompt("policy", [2])
    assert torch.equal(torch.rand(4, generator=a[1]), torch.rand(4, generator=b[0]))
    fresh = Streams(3, 7).per_prompt("policy", [2])[0]
    assert torch.equal(torch.rand(4, generator=fresh), torch.rand(4, generator=keyed_generator(3, "policy", 7, 2)))
    assert not torch.equal(torch.rand(4, generator=a[0]), torch.rand(4, generator=keyed_generator(3, "base", 7, 0)))
    assert not torch.equal(
        torch.rand(4, generator=Streams(3, 7).per_prompt("policy", [0])[0]),
        torch.rand(4, generator=Streams(3, 8).per_prompt("policy", [0])[0]),
    )


def test_positions_held_as_tensor_or_numpy_integers_key_the_streams_of_those_ints():
    """``per_prompt`` reads each position as an int: positions in a tensor or numpy integers (an index of prompts)
    draw the very streams of the same Python ints, where a key part of another type is refused."""
    import numpy as np

    want = [torch.rand(3, generator=g) for g in Streams(3, 7).per_prompt("policy", [0, 5])]
    assert not torch.equal(want[0], want[1])
    for held in (torch.tensor([0, 5]), np.array([0, 5])):
        got = [torch.rand(3, generator=g) for g in Streams(3, 7).per_prompt("policy", held)]
        assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True)), type(held)


class SimulatedShard:
    """Process ``rank`` of ``world`` over a known global tensor: gather checks it is handed this
    process's rows and returns the global rows, as the real all-gather does."""

    def __init__(self, rank, world, everything):
        self.rank, self.world, self.everything = rank, world, everything

    def gather(self, x):
        assert torch.equal(x, self.everything[self.rank :: self.world])
        return self.everything

    def gather_objects(self, obj):
        raise AssertionError("not used here")


def test_strided_split_and_interleave_invert_each_other():
    x = torch.arange(12.0).view(6, 2)
    parts = [local_rows(x, SimulatedShard(r, 3, x)) for r in range(3)]
    assert torch.equal(interleave(torch.cat(parts), 3), x)
    assert [positions(6, SimulatedShard(r, 2, x)) for r in range(2)] == [[0, 2, 4], [1, 3, 5]]
    assert local_items(list("abcdef"), SimulatedShard(1, 2, x)) == ["b", "d", "f"]


@pytest.mark.parametrize(("baseline", "g"), [("mean", 2), ("loo", 1), ("mean", 1), ("loo", 2), ("group_norm", 2)])
def test_batch_level_baselines_use_the_global_batch(baseline, g):
    returns = torch.randn(8 * g, generator=torch.Generator().manual_seed(0))
    expected = advantages(returns.view(8, g), baseline).reshape(8, g)
    for rank in range(2):
        shard = SimulatedShard(rank, 2, returns.view(8, g))
        mine = returns.view(8, g)[rank::2].reshape(-1)
        got = grouped_advantages(mine, g, baseline, shard).view(4, g)
        assert torch.equal(got, expected[rank::2])


def test_best_of_n_select_with_one_generator_per_row():
    rewards = torch.tensor([[1.0, 1.0, 0.0, 1.0], [0.0, 2.0, 2.0, 1.0], [3.0, 0.0, 0.0, 0.0]])

    def gens():
        return [keyed_generator(5, i) for i in range(3)]

    both = best_of_n_select(rewards, gens())
    for i in range(3):
        alone = best_of_n_select(rewards[i : i + 1], [gens()[i]])
        assert int(alone[0]) == int(both[i])
    assert int(both[2]) == 0 and int(both[1]) in (1, 2) and int(both[0]) in (0, 1, 3)
    with pytest.raises(ValueError, match="one generator per row"):
        best_of_n_select(rewards, gens()[:2])


def test_unequal_shares_are_refused_and_minibatches_are_contiguous():
    from rlhf_zoo.errors import UserError
    from rlhf_zoo.train import check_equal_shares, minibatches

    check_equal_shares(1, 5, 2, 3)  # one process: anything goes
    check_equal_shares(2, 8, 2, 4)
    with pytest.raises(
        UserError,
        match=r"batch_prompts=6 does not split evenly over 2 processes × 2 minibatches: "
        r"use a multiple of 4, such as 4 or 8$",
    ):
        check_equal_shares(2, 6, 2, None)
    with pytest.raises(
        UserError,
        match=r"batch_prompts=5 does not split evenly over 2 processes: use a multiple "
        r"of 2, such as 4 or 6$",
    ):
        check_equal_shares(2, 5, 1, None)
    with pytest.raises(UserError, match=r"batch_prompts=3 .* 4 processes: use a multiple of 4, such as 4$"):
        check_equal_shares(4, 3, 1, None)
    with pytest.raises(
        UserError, match=r"3 evaluation prompts .* over 2 processes: use a multiple of 2, such as 2 or 4$"
    ):
        check_equal_shares(2, 4, 1, 3)
    assert minibatches(5, 2) == [[0, 1], [2, 3, 4]]
    # process r of 2 holds global groups r, r+2, ...: the processes' i-th blocks make up global block i
    for i, block in enumerate(minibatches(8, 2)):
        assert sorted(2 * j + r for r in range(2) for j in minibatches(4, 2)[i]) == block


def test_a_sampled_evaluation_splits_its_held_out_prompts_and_an_enumerated_one_does_not(tmp_path):
    """With 2 processes a sampled evaluation gives each an equal share of the held-out prompts: 3 are refused
    before anything trains. The testbed's evaluation enumerates every completion of every prompt in each
    process (not split): 3 are taken. (Seen from process 0 of 2; the test above checks the arithmetic.)"""
    from rlhf_zoo.config import load_config
    from rlhf_zoo.errors import UserError
    from rlhf_zoo.runtime import Runtime
    from rlhf_zoo.tasks.base import Task
    from rlhf_zoo.train import Trainer, build

    cfg = load_config(["algo=reinforce", "train.batch_prompts=4", "train.eval_prompts=3", f"run_dir={tmp_path}"])
    algo, task, policy = build(cfg)

    def two_processes():
        rt = Runtime("cpu")
        rt.rank, rt.world = 0, 2  # as process 0 of 2 holds them
        return rt

    sampled = Task(**{**task.__dict__, "oracle": None})
    with pytest.raises(UserError, match=r"^3 evaluation prompts \(train.eval_prompts\) do not split evenly over 2"):
        Trainer(cfg, algo, sampled, policy, runtime=two_processes())
    Trainer(cfg, algo, task, policy, runtime=two_processes())  # enumerated: not refused


def test_a_run_draws_alike_whatever_was_drawn_from_the_global_generator_before_it(tmp_path):
    """Two runs of one config in one process (a notebook, an in-process sweep) write the same metrics though
    random numbers were drawn between them, also where a step draws from torch's global generator (dropout, or
    here a proxy reward of the user's with noise): the run seeds it with its ``seed``."""
    from rlhf_zoo.config import load_config
    from rlhf_zoo.train import Trainer, build
    from tests.runtime.resume_helpers import metrics_rows

    def run(name):
        args = ["algo=reinforce", "train.steps=2", "train.eval_every=1", "train.progress=false"]
        cfg = load_config([*args, f"run_dir={tmp_path / name}"])
        algo, task, policy = build(cfg)
        score = task.proxy.score
        task.proxy.score = lambda prompts, completions: [r + float(torch.rand(())) for r in score(prompts, completions)]
        Trainer(cfg, algo, task, policy).fit()
        torch.rand(5)
        return metrics_rows(tmp_path / name / "metrics.jsonl")

    assert run("a") == run("b")


def test_the_steps_prompts_cover_every_prompt_once_an_epoch_in_a_new_order_each_epoch():
    """Steps of 3 prompts over 7 prompts: every consecutive 7 draws (an epoch) hold each prompt once, the
    epochs come in different orders, and any step's prompts are the same when asked again (a resumed run)."""
    from rlhf_zoo.train import prompts_for_step

    prompts = [f"p{i}" for i in range(7)]
    drawn = [p for step in range(14) for p in prompts_for_step(prompts, step, 3, seed=5)]  # 6 epochs
    epochs = [drawn[i : i + 7] for i in range(0, 42, 7)]
    assert all(sorted(e) == prompts for e in epochs)
    assert len({tuple(e) for e in epochs}) == 6
    assert prompts_for_step(prompts, 9, 3, seed=5) == drawn[27:30]
    assert prompts_for_step(prompts, 9, 3, seed=6) != drawn[27:30]


def test_a_step_longer_than_an_epoch_draws_the_same_prompts_as_one_prompt_steps():
    """A step of 10 prompts over 3 spans 4 epochs: its prompts are those that ten steps of one prompt draw, in
    order, and each epoch's order is the stream the committed records were drawn from (a per-epoch permutation
    seeded by seed · 1000003 + epoch), so a faster draw changes no record."""
    from rlhf_zoo.train import prompts_for_step

    prompts = ["a", "b", "c"]
    for step in (0, 2):
        singles = [prompts_for_step(prompts, step * 10 + i, 1, seed=4)[0] for i in range(10)]
        assert prompts_for_step(prompts, step, 10, seed=4) == singles
    stream = [
        prompts[int(i)]
        for epoch in range(4)
        for i in torch.randperm(3, generator=torch.Generator().manual_seed(4 * 1_000_003 + epoch))
    ]
    assert prompts_for_step(prompts, 0, 10, seed=4) == stream[:10]


def test_draws_of_different_names_differ_and_a_keyed_draw_does_not_depend_on_the_step():
    """The policy's and the base samples' generators of one prompt and step are different streams (else the
    base samples would repeat the policy's); a base-cache draw keyed by the prompt is the same at any step."""
    s = Streams(3, 7)
    policy, base = s.per_prompt("policy", [0])[0], s.per_prompt("base", [0])[0]
    assert not torch.equal(torch.rand(4, generator=policy), torch.rand(4, generator=base))
    at_7, at_9 = Streams(3, 7).keyed("base", 1, "a prompt"), Streams(3, 9).keyed("base", 1, "a prompt")
    assert torch.equal(torch.rand(4, generator=at_7), torch.rand(4, generator=at_9))
    # ... and on the run's seed: runs of other seeds draw other base caches (keyed without the seed, every seed
    # drew the same cache and no test failed)
    at_7 = Streams(3, 7).keyed("base", 1, "a prompt")
    of_seed_4 = Streams(4, 7).keyed("base", 1, "a prompt")
    assert not torch.equal(torch.rand(4, generator=at_7), torch.rand(4, generator=of_seed_4))
    same = Streams(3, 7).keyed("base", 1, "a prompt")
    assert torch.equal(
        torch.rand(4, generator=same), torch.rand(4, generator=keyed_generator(3, "base", 1, "a prompt"))
    )


def _record_draws(policy) -> list:
    """(role, generator states) of each of ``policy``'s sample calls, as they start, appended to the list returned."""
    sample, drawn = policy.sample, []

    def recorded(prompts, n, role, generator):
        drawn.append((role, [g.get_state() for g in generator]))
        return sample(prompts, n, role=role, generator=generator)

    policy.sample = recorded
    return drawn


@pytest.mark.parametrize("algo", ["reinforce", "bond"])
def test_each_steps_samples_come_from_the_streams_keyed_by_that_step_and_the_prompts_position(tmp_path, algo):
    """A step draws the completions of the prompt at global position i from the generator keyed by (seed, the
    draw's name, the step, i) (rlhf_zoo.rng): a new draw each step. Keyed by step 0 at every step, a run drew
    the same random numbers at every step (the same completions while the policy stays near), and every resume
    test passed (a resumed run draws alike)."""
    from rlhf_zoo.config import load_config
    from rlhf_zoo.train import Trainer, build

    overrides = [f"algo={algo}", "seed=7", "train.batch_prompts=3", "train.progress=false", f"run_dir={tmp_path}"]
    cfg = load_config(overrides)
    tr = Trainer(cfg, *build(cfg))
    drawn = _record_draws(tr.policy)
    tr.begin()
    for step in range(2):
        drawn.clear()
        tr.train_step()
        assert [role for role, _ in drawn] == (["policy", "ref"] if algo == "bond" else ["policy"])
        for name, (_, states) in zip(["policy", "base"], drawn, strict=False):
            expected = [keyed_generator(7, name, step, i).get_state() for i in range(3)]
            assert all(torch.equal(a, b) for a, b in zip(states, expected, strict=True)), (name, step)
    tr.end()


def test_a_sampled_evaluation_at_each_step_draws_from_the_streams_keyed_by_that_step(tmp_path):
    """The evaluation after step s samples held-out prompt i from the generator keyed by (seed, "eval/policy", s,
    i): each evaluation draws new completions. The evaluator's own tests call it with a round; the loop passing
    round 0 at every step (the same draws at every evaluation) failed no test."""
    from rlhf_zoo.config import load_config
    from rlhf_zoo.tasks.base import Task
    from rlhf_zoo.train import Trainer, build

    cfg = load_config(
        ["algo=reinforce", "seed=7", "train.eval_prompts=3", "train.progress=false", f"run_dir={tmp_path}"]
    )
    tr = Trainer(cfg, *build(cfg))
    tr.evaluator.task = Task(**{**tr.task.__dict__, "oracle": None})  # sampled, not enumerated
    drawn = _record_draws(tr.policy)
    tr.begin()
    for step in range(3):
        drawn.clear()
        tr.evaluate()
        states = [s for role, s in drawn if role == "policy"]
        assert len(states) == 1
        expected = [keyed_generator(7, "eval/policy", step, i).get_state() for i in range(3)]
        assert all(torch.equal(a, b) for a, b in zip(states[0], expected, strict=True)), step
        tr.train_step()
    tr.end()
