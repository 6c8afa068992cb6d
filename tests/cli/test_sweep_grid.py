"""Planning a sweep of ``rlhf-zoo train`` (:func:`rlhf_zoo.sweep.plan_sweep`), without running it: the points'
ids and arguments, the default folder, and the values refused."""

from __future__ import annotations

import pytest

from rlhf_zoo.bench.suites import expand
from rlhf_zoo.config import ConfigError
from rlhf_zoo.sweep import plan_sweep


def _value(point, key: str) -> str:
    return next(a.split("=", 1)[1] for a in point.args if a.startswith(f"{key}="))


def test_outer_values_that_slug_alike_still_get_a_point_each():
    """``a/b.jsonl`` and ``a-b.jsonl`` of a key that is not the knob both read as ``a_b_jsonl`` in a sweep's
    tag: each of the 2 × 2 combinations is still one point, in a folder of its own."""
    plan = plan_sweep(["algo=bond", "task=sentiment", "task.prompts=a/b.jsonl,a-b.jsonl", "train.lr=1e-3,2e-3"])
    points = expand(plan.suite)
    assert len({p.id for p in points}) == 4
    got = sorted((_value(p, "task.prompts"), _value(p, "train.lr")) for p in points)
    assert got == [("a-b.jsonl", "1e-3"), ("a-b.jsonl", "2e-3"), ("a/b.jsonl", "1e-3"), ("a/b.jsonl", "2e-3")]


def test_outer_values_that_slug_alike_keep_their_points_ids_whatever_their_order():
    """The ids name the runs' folders and records: written in the other order, ``a/b.jsonl`` and ``a-b.jsonl``
    must each keep the ids they had, or a continued sweep would redo finished points."""

    def ids(values: str) -> dict[tuple[str, str], str]:
        plan = plan_sweep(["algo=bond", "task=sentiment", f"task.prompts={values}", "train.lr=1e-3,2e-3"])
        return {(_value(p, "task.prompts"), _value(p, "train.lr")): p.id for p in expand(plan.suite)}

    first = ids("a/b.jsonl,a-b.jsonl")
    assert len(set(first.values())) == 4
    assert ids("a-b.jsonl,a/b.jsonl") == first


@pytest.mark.parametrize("seeds", ["0,1.5", "2.5,3"])
def test_a_fractional_seed_is_refused_not_rounded(seeds):
    with pytest.raises(ConfigError, match="seed takes integers"):
        plan_sweep(["algo=bond", f"seed={seeds}"])


def test_sweeps_of_other_keys_get_other_default_folders():
    """The default folder's digest covers the swept keys: sweeping seeds and sweeping beta with the same fixed
    settings are two sweeps, whose points must not land in one folder."""
    seeds = plan_sweep(["algo=bond", "task=exact", "seed=0,1"]).folder
    betas = plan_sweep(["algo=bond", "task=exact", "algo.beta=0.1,0.5"]).folder
    assert str(seeds).startswith("runs/bond-exact-sweep-") and str(betas).startswith("runs/bond-exact-sweep-")
    assert seeds != betas
    # the values are not in the digest: more of them continue in the same folder
    assert plan_sweep(["algo=bond", "task=exact", "algo.beta=0.1,0.5,0.9"]).folder == betas


def test_a_folder_named_twice_is_refused():
    with pytest.raises(ConfigError, match="once"):
        plan_sweep(["algo=bond", "seed=0,1", "out=a", "run_dir=b"])


@pytest.mark.parametrize("key", ["out", "run_dir"])
def test_an_empty_folder_is_refused_not_replaced_by_the_default_one(key):
    """``out=$DIR`` with DIR unset: the sweep must not run into ``runs/...`` instead."""
    with pytest.raises(ConfigError, match=f"{key} is empty"):
        plan_sweep(["algo=bond", "seed=0,1", f"{key}="])
    with pytest.raises(ConfigError, match=f"{key} is empty"):
        plan_sweep(["algo=bond", "seed=0,1", f"{key}= "])


def test_the_command_lines_folder_wins_over_the_files(tmp_path):
    exp = tmp_path / "sweep.yaml"
    exp.write_text("algo: bond\ntask: exact\nrun_dir: from_file\nsweep:\n  seed: [0, 1]\n")
    assert plan_sweep([f"config={exp}"]).folder.name == "from_file"
    assert plan_sweep([f"config={exp}", "run_dir=mine"]).folder.name == "mine"
    assert plan_sweep([f"config={exp}", "out=mine"]).folder.name == "mine"


def test_the_default_folder_names_every_algorithm_and_the_task():
    plan = plan_sweep(["algo=bond,jbond", "task=sentiment", "seed=0,1"])
    assert str(plan.folder).startswith("runs/bond+jbond-sentiment-sweep-")
    assert plan_sweep(["algo=jbond", "seed=0,1"]).folder.name.startswith("jbond-exact-sweep-")  # exact by default


def test_the_points_keep_their_step_bars_unless_the_sweep_turns_them_off():
    """A sweep's points trained without a bar (a 15-minute language-model point showed nothing moving); they now
    keep theirs, which the runner draws beneath the points bar on a terminal (tests/bench/test_runner.py), and a
    sweep given train.progress=false passes it on to every point."""
    from rlhf_zoo.config import load_config

    for extra, shown in (([], True), (["train.progress=false"], False)):
        plan = plan_sweep(["algo=bond", "task=exact", "seed=0,1", *extra])
        for point in expand(plan.suite):
            assert load_config([*point.args, "run_dir=unused"]).train.progress is shown


def test_a_list_of_experiment_files_is_refused_before_any_is_read():
    """``config=a.yaml,b.yaml`` is not a sweep of two files (and not a file named ``a.yaml,b.yaml``)."""
    with pytest.raises(ConfigError, match="config cannot be swept"):
        plan_sweep(["config=a.yaml,b.yaml", "algo=bond"])


def test_a_file_string_yaml_cannot_read_reaches_the_points_as_that_string(tmp_path):
    from omegaconf import OmegaConf

    exp = tmp_path / "sweep.yaml"
    exp.write_text("algo: bond\ntask: sentiment\nsweep:\n  task.prompts: ['[x.jsonl', 'y: z.jsonl']\n")
    args = [a for p in expand(plan_sweep([f"config={exp}"]).suite) for a in p.args if a.startswith("task.prompts=")]
    assert sorted(OmegaConf.from_dotlist([a]).task.prompts for a in args) == ["[x.jsonl", "y: z.jsonl"]


FAST = ("task=exact", "threads=1", "train.steps=2", "train.eval_every=2")


def test_a_folder_that_is_a_file_is_one_line_before_anything_runs(cli, tmp_path):
    (tmp_path / "taken").write_text("")
    code, out, err = cli("train", *FAST, "algo=bond", "seed=0,1", f"out={tmp_path}/taken")
    assert code == 2 and "is a file, not a directory" in err and len(err.strip().splitlines()) == 1, err


def test_out_dot_runs_the_points_in_the_current_folder(cli, tmp_path, monkeypatch):
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    code, _, err = cli("train", *FAST, "algo=bond", "seed=0,1", "out=.")
    assert code == 0, err
    assert sorted(p.parent.name for p in here.glob("*/record.json")) == ["bond-s0", "bond-s1"]


def test_a_command_line_algorithm_that_the_files_keys_do_not_fit_is_not_blamed_on_the_file(cli, tmp_path):
    """The file's own points (bond, whose ``n`` it sweeps) build: the error is the command line's ``algo=jbond``."""
    exp = tmp_path / "exp.yaml"
    exp.write_text("algo: bond\nsweep: {algo.n: [2, 4]}\n")
    code, _, err = cli("train", *FAST, f"config={exp}", "algo=jbond", f"out={tmp_path}/sw")
    assert code == 2 and "algo.n" in err and "exp.yaml" not in err, err


def test_every_value_of_the_knob_is_run_for_every_combination_of_the_other_keys():
    """The knob (the alphabetically last swept key) with three values and another key with two: 2 × 3 points per
    seed, each combination once, as the grid written on the command line asks."""
    import itertools

    plan = plan_sweep(["algo=bond", "task=exact", "algo.beta=0.1,0.5", "train.lr=1e-3,2e-3,3e-3", "seed=0,1"])
    assert {s.knob for s in plan.suite.sweeps} == {"train.lr"}
    got = sorted((_value(p, "algo.beta"), _value(p, "train.lr"), p.seed) for p in expand(plan.suite))
    assert got == sorted(itertools.product(["0.1", "0.5"], ["1e-3", "2e-3", "3e-3"], [0, 1]))
