"""Suite definitions expand to the right points."""

from __future__ import annotations

import dataclasses

import pytest

from rlhf_zoo.bench.runner import validate_points
from rlhf_zoo.bench.suite_file import get_suite
from rlhf_zoo.bench.suites import (
    BOND,
    BOND_BETA,
    EXACT,
    FULL,
    QUICK,
    SUITES,
    SWEEPS,
    Suite,
    Sweep,
    expand,
    format_value,
)
from rlhf_zoo.errors import UserError

CLAIM_TAGS = {"best_of_n", "reinforce", "bond", "bond_beta", "iterative", "jbond_gamma", "jbond_eta", "jbond_swap"}


def _configs(suite: Suite) -> int:
    """Distinct configurations: the values of every sweep, less the ones two sweeps share."""
    return len({tuple(sorted(p.args[:-1])) for p in expand(suite, seeds=[0])})


def test_exact_suite_points():
    points = expand(EXACT)
    assert len(points) == _configs(EXACT) * len(EXACT.seeds) == 31 * 5
    assert len({p.id for p in points}) == len(points)
    # seed-major: all configurations of seed 0 come first
    assert [p.seed for p in points[:31]] == [0] * 31 and points[31].seed == 1
    for p in points:
        assert p.args[-1] == f"seed={p.seed}"
        assert "task=exact" in p.args and "threads=1" in p.args
    # the paper's REINFORCE: 2 samples, leave-one-out, at every paper beta
    rf = [p for p in points if p.memberships[0]["sweep"] == "reinforce" and p.seed == 0]
    assert {m["value"] for p in rf for m in p.memberships} >= {0.001, 0.01, 0.1, 1.0}
    assert all("algo.samples=2" in p.args and "algo.baseline=loo" in p.args for p in rf)
    bon = [p for p in points if p.memberships[0]["sweep"] == "best_of_n" and p.seed == 0]
    assert [p.memberships[0]["value"] for p in bon] == [1, 2, 4, 8, 16, 32]
    bond = [p.memberships[0]["value"] for p in points if p.memberships[0]["sweep"] == "bond" and p.seed == 0]
    assert bond == [2, 4, 8, 16]


def test_shared_configuration_runs_once_and_belongs_to_both_sweeps():
    points = expand(EXACT, seeds=[3])
    shared = [p for p in points if len(p.memberships) > 1]
    tags = sorted(tuple(sorted(m["sweep"] for m in p.memberships)) for p in shared)
    assert tags == [("bond", "bond_beta"), ("jbond_eta", "jbond_gamma")]
    bond4 = next(p for p in shared if p.memberships[0]["sweep"] == "bond")
    assert {(m["sweep"], m["value"]) for m in bond4.memberships} == {("bond", 4), ("bond_beta", 0.5)}


def test_every_suite_holds_the_sweeps_the_claims_need():
    for suite in (EXACT, QUICK, FULL):  # demo shows the five objectives and judges no claim
        assert CLAIM_TAGS <= {s.tag for s in suite.sweeps}, suite.name
    assert QUICK.resumable and FULL.resumable and not EXACT.resumable
    assert any("model.finetune=full" == a for a in FULL.task_args)
    assert any("model.name=zoo-lm" == a for a in QUICK.task_args)
    assert len(FULL.seeds) == 3 and len(QUICK.seeds) == 3 and len(EXACT.seeds) == 5
    # every objective with its knob at three values or more (the swap schedules of iterative BOND and
    # J-BOND, which only the claims read, at two); Best-of-N n = 1…64 from one pool
    assert all(len(s.values) >= (2 if s.tag in ("iterative", "jbond_swap") else 3) for s in QUICK.sweeps)
    five = {"best_of_n", "reinforce", "ppo_lite", "bond", "jbond"}
    assert {s.algo for s in QUICK.sweeps if len(s.values) >= 3} == five
    # claim c1 pairs each swap period M with the EMA rate η = 1/M
    assert {1 / m for m in QUICK.sweep("jbond_swap").values} <= set(QUICK.sweep("jbond_eta").values)
    assert QUICK.bon_pool == 64 and max(QUICK.sweep("best_of_n").values) == 64


def test_every_point_of_every_suite_is_a_valid_config():
    for suite in SUITES.values():
        validate_points(expand(suite, seeds=[0]))  # raises ConfigError on an unknown key or a bad value


def test_seeds_extra_and_only():
    pts = expand(EXACT, seeds=[7, 8], extra=["train.steps=5"], only=["bond_beta"])
    assert [p.seed for p in pts] == [7, 7, 7, 8, 8, 8]
    assert all(p.args[-2] == "train.steps=5" for p in pts)
    # BOND n=4 at β=0.5 is the bond sweep's point too: the same id (and both memberships) as in the whole suite
    assert [p.id for p in pts[:3]] == ["bond-n4-s7", "bond_beta-beta0.0-s7", "bond_beta-beta1.0-s7"]
    assert [m["sweep"] for m in pts[0].memberships] == ["bond", "bond_beta"]
    whole = {p.id: p for p in expand(EXACT, seeds=[7, 8], extra=["train.steps=5"])}
    assert all(whole[p.id] == p for p in pts)
    with pytest.raises(UserError, match="no sweep"):
        expand(EXACT, only=["nope"])
    with pytest.raises(UserError, match="no seeds"):
        expand(EXACT, seeds=[])  # not the suite's seeds
    for bad in ("seed=3", "run_dir=x", "algo=bond", "resume=true", "train.steps"):
        with pytest.raises(UserError, match="cannot override"):
            expand(EXACT, extra=[bad])
    with pytest.raises(UserError, match="unknown suite"):
        get_suite("nope")


def test_a_key_a_sweep_overrides_again_makes_another_configuration():
    """The suite's train.lr, overridden by one sweep's fixed train.lr: a configuration is what its arguments
    resolve to (the later of a repeated key wins), so the two sweeps' points at n = 4 are two runs; a sweep that
    repeats the suite's own value makes the same run as the sweep without it, one point of both."""
    fast = Sweep("fast", "x", "bond", "algo.n", (4,), fixed=("train.lr=0.1",))
    plain = Sweep("plain", "y", "bond", "algo.n", (4,))
    same = Sweep("same", "z", "bond", "algo.n", (4,), fixed=("train.lr=0.01",))
    suite = Suite("s", "d", ("task=exact", "train.lr=0.01"), (fast, plain, same), (0,), "b")
    assert [[m["sweep"] for m in p.memberships] for p in expand(suite)] == [["fast"], ["plain", "same"]]


def test_a_value_is_written_as_on_the_command_line():
    """A point's arguments are read back as YAML: ``None`` and ``True`` would be the strings "None" and, in a
    point's id and arguments, another spelling than the ``null`` and ``true`` that earlier records hold."""
    assert [format_value(v) for v in (True, False, None, 0.1, 1e-4, 2, "bond")] == [
        "true",
        "false",
        "null",
        "0.1",
        "0.0001",
        "2",
        "bond",
    ]
    assert format_value(("q_proj", "v_proj")) == format_value(["q_proj", "v_proj"]) == '["q_proj", "v_proj"]'
    assert format_value({"k": 1}) == '{"k": 1}'


def test_sweep_validation():
    with pytest.raises(ValueError):
        Sweep("Bad Tag", "x", "bond", "algo.n", (2,))
    s = Sweep("ok", "x", "bond", "algo.beta", (0.5,), fixed=("algo.n=4",))
    assert s.args(0.5) == ["algo=bond", "algo.n=4", "algo.beta=0.5"]
    assert s.args(0.5, ("algo.k=8",)) == ["algo=bond", "algo.n=4", "algo.k=8", "algo.beta=0.5"]
    shape = Sweep("ok", "x", "bond", "algo.n")
    with pytest.raises(ValueError, match="no values"):
        Suite("s", "d", (), (shape,), (0,), "b")
    with pytest.raises(ValueError, match=r"sweeps\[1\] has the tag .ok. of sweeps\[0\]"):
        Suite("s", "d", (), (shape.over(2), shape.over(4)), (0,), "b")


def test_every_suite_uses_the_declared_sweep_shapes():
    """A suite chooses values (and may rename an objective or read the frontier differently); the
    algorithm, knob, fixed overrides and label are the shape's."""
    shapes = {s.tag: s for s in SWEEPS}
    for suite in SUITES.values():
        for sweep in suite.sweeps:
            shape = shapes[sweep.tag]
            same = ("algo", "knob", "fixed", "knob_label", "claims")
            assert all(getattr(sweep, k) == getattr(shape, k) for k in same), (suite.name, sweep.tag)


def test_suites_sharing_a_shape_add_their_own_settings_after_its_fixed_ones():
    def first(suite: Suite, tag: str) -> list[str]:
        p = next(p for p in expand(suite, seeds=[0]) if p.memberships[0]["sweep"] == tag)
        return list(p.args[len(suite.task_args) : -1])

    assert first(EXACT, "bond") == ["algo=bond", "algo.beta=0.5", "train.batch_prompts=32", "algo.n=2"]
    assert first(QUICK, "bond") == ["algo=bond", "algo.beta=0.5", "algo.k=8", "train.lr=3e-4", "algo.n=2"]
    assert first(FULL, "bond") == ["algo=bond", "algo.beta=0.5", "algo.k=16", "algo.n=2"]
    assert first(QUICK, "iterative") == ["algo=iterative_bond", "algo.k=8", "train.lr=3e-4", "algo.anchor_period=10"]
    assert first(EXACT, "reinforce") == [
        "algo=reinforce",
        "algo.samples=2",
        "algo.baseline=loo",
        "train.batch_prompts=32",
        "algo.beta=0.001",
    ]
    assert first(EXACT, "jbond_gamma") == ["algo=jbond", "algo.eta=0.02", "algo.gamma=0.0"]  # no suite settings
    assert [p.id for p in expand(QUICK, seeds=[0]) if p.memberships[0]["sweep"] == "bond"] == [
        "bond-n2-s0",
        "bond-n4-s0",
        "bond-n16-s0",
    ]
    assert EXACT.sweep("bond").objective != BOND.objective == BOND.over(2).objective
    assert FULL.sweep("bond_beta").objective == BOND_BETA.objective
    assert EXACT.sweep("jbond_eta").frontier == "sweep" and QUICK.sweep("jbond_eta").frontier == "sweep"


def test_lm_suite_is_claims_c2_and_d_on_smollm2_with_lora():
    from rlhf_zoo.bench.suites import LM

    assert "model.name=smollm2-135m" in LM.task_args and "model.finetune=lora" in LM.task_args
    assert {s.tag for s in LM.sweeps} == {"best_of_n", "reinforce", "jbond_gamma"}
    assert len(LM.seeds) >= 3 and LM.resumable and LM.bon_pool == max(LM.sweep("best_of_n").values)
    assert len(LM.sweep("reinforce").values) >= 3 and 0.0 in LM.sweep("jbond_gamma").values
    ids = [p.id for p in expand(LM, seeds=[0])]
    assert ids[0] == "best_of_n-pool32-s0" and len(ids) == 1 + 3 + 3


@pytest.mark.parametrize(("arg", "hint"), [("seed=3", "did you mean seeds=3?"), ("seed=0,1", "seeds=0,1?")])
def test_bench_refuses_seed_and_hints_seeds(cli, tmp_path, arg, hint):
    """``rlhf-zoo bench suite=exact seed=3`` said only "cannot override 'seed=3' for every point"."""
    code, out, err = cli("bench", "suite=exact", arg, f"out={tmp_path}/o", f"docs={tmp_path}/d", "progress=false")
    assert code == 2 and hint in err and len(err.strip().splitlines()) == 1 and not out, err
    assert not (tmp_path / "o").exists()


def test_each_membership_holds_its_sweeps_place_in_the_suite():
    """The page lists the sweeps in the suite's order, read from each point's membership: a point shared by two
    sweeps holds each one's place, and a Best-of-N pool its sweep's place too when it is not the first."""
    from dataclasses import replace

    pool_second = replace(QUICK, name="pool_second", sweeps=(QUICK.sweeps[1], QUICK.sweeps[0], *QUICK.sweeps[2:]))
    for suite in (EXACT, QUICK, pool_second):
        place = {s.tag: i for i, s in enumerate(suite.sweeps)}
        got = {(m["sweep"], m["order"]) for p in expand(suite, seeds=[0]) for m in p.memberships}
        assert got == set(place.items()), suite.name


def test_points_are_seed_major_in_the_order_the_seeds_and_values_are_given(tiny_exact_suite):
    """The runner runs the points in this order (and a progress bar names them in it): every configuration of a
    seed before the next seed's, the seeds as given and each sweep's values as listed, not sorted."""
    rf, bon = tiny_exact_suite.sweeps
    suite = dataclasses.replace(tiny_exact_suite, sweeps=(rf.over(1.0, 0.1), bon), seeds=(3, 1))
    configs = ["reinforce-beta1.0", "reinforce-beta0.1", "best_of_n-n2"]
    assert [p.id for p in expand(suite)] == [f"{c}-s{s}" for s in (3, 1) for c in configs]
    assert [p.id for p in expand(suite, seeds=[0, 2])] == [f"{c}-s{s}" for s in (0, 2) for c in configs]


def test_a_best_of_n_sweep_beyond_its_pool_is_refused_when_the_suite_is_made():
    """Best-of-n for every n up to the pool's size M is read from one pool of M samples: an n above M was accepted
    by no test of the bound, and would fail only when the pool point is evaluated."""
    from rlhf_zoo.bench.suites import BEST_OF_N

    def suite(pool: int) -> Suite:
        return Suite("p", "d", ("task=exact",), (BEST_OF_N.over(1, 2, 5),), (0,), "", bon_pool=pool)

    with pytest.raises(ValueError, match="Best-of-n up to 5 needs bon_pool ≥ that"):
        suite(4)
    assert suite(5).bon_pool == 5
