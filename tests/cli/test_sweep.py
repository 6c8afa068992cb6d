"""Sweeps of ``rlhf-zoo train``: a comma list on any key (or a ``sweep:`` mapping in an experiment file) runs
every combination through the bench's runner, resumably, and prints the compare table of its folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from rlhf_zoo.config import ConfigError, load_config
from rlhf_zoo.sweep import plan_sweep, split_values

FAST = ("task=exact", "threads=1", "train.steps=4", "train.eval_every=2")


def _runs(folder: Path) -> dict[str, dict]:
    """Point id → its resolved config.yaml, for every finished point (one with a record)."""
    return {d.name: yaml.safe_load((d / "config.yaml").read_text()) for d in sorted(folder.iterdir())
            if (d / "record.json").is_file()}  # fmt: skip


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in folder.glob("*/record.json")}


def test_a_2x2_grid_runs_4_points_once_and_prints_the_compare_table(cli, tmp_path):
    out = tmp_path / "sw"
    args = ("train", *FAST, "algo=bond,jbond", "algo.beta=0.1,0.5", f"out={out}")
    code, table, err = cli(*args)
    assert code == 0, err
    runs = _runs(out)
    assert sorted(runs) == ["bond-beta0.1-s0", "bond-beta0.5-s0", "jbond-beta0.1-s0", "jbond-beta0.5-s0"]
    assert sorted((c["algo"]["name"], c["algo"]["beta"]) for c in runs.values()) == [
        ("bond", 0.1), ("bond", 0.5), ("jbond", 0.1), ("jbond", 0.5)]  # fmt: skip
    assert all(c["train"]["steps"] == 4 and c["seed"] == 0 and c["run_dir"] == str(out / d) for d, c in runs.items())
    assert "4 run(s) (0 resumed, 0 redone), 0 already finished" in err
    assert "sweep sw: 100%" in err and "bench sw" not in err  # its bar is named by the command run

    # the printed table is `rlhf-zoo compare` on the folder, with the runs' own numbers
    code, compared, _ = cli("compare", str(out))
    assert code == 0 and compared == table
    header, _, *lines = ([c.strip() for c in line.split("|")[1:-1]] for line in table.splitlines())
    rows = {cells[0]: dict(zip(header, cells, strict=True)) for cells in lines}
    assert sorted(rows) == ["bond algo.beta=0.1", "bond algo.beta=0.5", "jbond algo.beta=0.1", "jbond algo.beta=0.5"]
    summary = json.loads((out / "jbond-beta0.5-s0" / "summary.json").read_text())
    assert float(rows["jbond algo.beta=0.5"]["reward/proxy"]) == round(summary["reward/proxy"], 3)

    before = _mtimes(out)
    code, again, err = cli(*args)
    assert code == 0 and again == table
    assert "0 run(s) (0 resumed, 0 redone), 4 already finished" in err
    assert _mtimes(out) == before  # no record rewritten: nothing recomputed


def test_an_interrupted_point_resumes_and_ends_as_an_uninterrupted_one(cli, tmp_path, monkeypatch):
    import rlhf_zoo.train as train

    args = ("train", *FAST, "algo=reinforce", "seed=0,1")
    original = train.Trainer.train_step

    def ctrl_c_at_step_2(self):
        if self.step == 2:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(train.Trainer, "train_step", ctrl_c_at_step_2)
    code, _, err = cli(*args, f"out={tmp_path}/a")
    assert code == 130 and "run the same command again" in err
    first = tmp_path / "a" / "reinforce-s0"
    assert (first / "checkpoint" / "state.pt").is_file() and not (first / "record.json").exists()
    assert not (tmp_path / "a" / "reinforce-s1").exists()
    monkeypatch.undo()

    code, _, err = cli(*args, f"out={tmp_path}/a")
    assert code == 0 and "2 run(s) (1 resumed, 0 redone), 0 already finished" in err
    record = json.loads((first / "record.json").read_text())
    assert record["resumed"] is True and [m["step"] for m in record["metrics"]] == [0, 2, 4]
    code, _, err = cli(*args, f"out={tmp_path}/b")  # the same sweep, never interrupted
    assert code == 0, err
    resumed, whole = (
        json.loads((d / "reinforce-s0" / "summary.json").read_text()) for d in (tmp_path / "a", tmp_path / "b")
    )
    assert (resumed["reward/proxy"], resumed["kl/exact"]) == (whole["reward/proxy"], whole["kl/exact"])


def test_without_out_the_folder_is_printed_and_more_seeds_continue_in_it(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("train", *FAST, "algo=bond", "seed=0,1")
    assert code == 0, err
    folder = err.split("sweep: 2 runs in ")[1].split()[0]
    assert folder.startswith("runs/bond-exact-sweep-") and sorted(_runs(tmp_path / folder)) == ["bond-s0", "bond-s1"]
    code, _, err = cli("train", *FAST, "algo=bond", "seed=0,1,2")
    assert code == 0 and f"sweep: 3 runs in {folder}" in err and "1 run(s)" in err and "2 already finished" in err
    code, _, err = cli("train", *FAST, "algo=bond", "seed=0,1", "train.steps=2")  # other settings: another folder
    assert code == 0 and folder not in err


def test_a_sweep_file_composes_with_the_command_line(cli, tmp_path):
    exp = tmp_path / "sweep.yaml"
    exp.write_text(
        "algo: bond\ntask: exact\nthreads: 1\ntrain: {steps: 2, eval_every: 1}\n"
        "sweep:\n  seed: [0, 1]\n  algo: {n: [2, 4]}\n"
    )
    code, _, err = cli("train", f"config={exp}", f"out={tmp_path}/f")
    assert code == 0, err
    runs = _runs(tmp_path / "f")
    assert sorted((c["algo"]["n"], c["seed"]) for c in runs.values()) == [(2, 0), (2, 1), (4, 0), (4, 1)]
    assert all(c["algo"]["name"] == "bond" and c["train"]["steps"] == 2 for c in runs.values())
    # a single value on the command line stops sweeping that key; a list there replaces the file's
    code, _, err = cli("train", f"config={exp}", "algo.n=3", "seed=5,6", "algo=bond,jbond", "algo.n=3",
                       f"out={tmp_path}/g")  # fmt: skip
    assert code == 2 and "algo.n" in err and "algo=jbond" in err  # jbond has no n: refused before anything runs
    assert not (tmp_path / "g").exists()
    code, _, err = cli("train", f"config={exp}", "algo.n=3", "seed=5,6", f"out={tmp_path}/g")
    assert code == 0, err
    assert sorted((c["algo"]["n"], c["seed"]) for c in _runs(tmp_path / "g").values()) == [(3, 5), (3, 6)]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["algo=bond,dpo"], "unknown algorithm 'dpo'"),
        (["algo=bond,"], "empty item"),
        (["algo=bond", "seed=0,,1"], "empty item"),
        (["algo=bond", "seed=0,x"], "integers"),
        (["algo=bond", "seed=0,0"], "lists 0 twice"),
        (["algo=bond", "algo.beta=1,1.0"], "algo.beta=1,1.0 lists 1 and 1.0, one value: keep one"),  # both ran
        (["algo=bond", "algo.beta=0.1,1e-1"], "lists 0.1 and 1e-1, one value"),
        (["BETAFILE"], "sweep.algo.beta lists 1 and 1.0, one value: keep one"),
        (["algo=bond", "seed=0,1", "run_dir=a,b"], "run_dir cannot be swept"),
        (["algo=bond", "seed=0,1", "resume=true"], "without resume"),
        (["algo=bond", "seed=0,1", "redo=maybe"], "redo takes true or false, got 'maybe'"),
        (["algo=bond", "seed=0,1", "keep_checkpoints=maybe"], "keep_checkpoints takes true or false"),
        (["algo=bond", "seed=0,1", "redo=true,false"], "redo cannot be swept"),
        (["algo=bond", "algo.bogus=1,2"], "bogus"),
        (["algo=bond,jbond", "algo.n=2,4"], "algo=jbond"),
        (["algo=bond", "algo.beta=0.5,x"], "algo.beta"),
        (["seed=0,1"], "name an algorithm"),
        # a preset equal to its algorithm's settings on the testbed: both ran, then compare refused the pair (exit 2)
        (["algo=rloo,reinforce,grpo", "seed=0,1"], "rloo and reinforce are the same run (every setting equal"),
        (["SWEEPFILE"], "sweep.seed must be a non-empty list"),
        (["EMPTYSWEEP"], "sweep.seed must be a non-empty list"),  # no point to run, not a sweep of none
    ],
)
def test_a_bad_sweep_is_one_line_before_anything_runs(cli, tmp_path, args, needle):
    bad = tmp_path / "bad.yaml"
    bad.write_text("algo: bond\nsweep: {seed: 3, algo.n: [2, 4]}\n")
    (tmp_path / "empty.yaml").write_text("algo: bond\nsweep: {seed: [], algo.n: [2, 4]}\n")
    (tmp_path / "beta.yaml").write_text("algo: bond\nsweep: {algo.beta: [1, 1.0]}\n")
    files = {
        "SWEEPFILE": f"config={bad}",
        "EMPTYSWEEP": f"config={tmp_path}/empty.yaml",
        "BETAFILE": f"config={tmp_path}/beta.yaml",
    }
    args = [files.get(a, a) for a in args]
    code, out, err = cli("train", *FAST, *args, f"out={tmp_path}/sw")
    assert code == 2 and needle in err, err
    assert len(err.strip().splitlines()) == 1 and not out and not (tmp_path / "sw").exists()


def test_an_error_about_one_item_of_a_comma_list_says_the_comma_made_a_sweep(cli, tmp_path, monkeypatch):
    """An unquoted comma in a file name sweeps its pieces: the error was about the missing file "my" alone."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my,file.jsonl").write_text('{"text": "a prompt"}\n')
    code, _, err = cli("train", "algo=reinforce", "task=sentiment", "task.gold=null", "task.prompts=./my,file.jsonl")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("rlhf-zoo: error: task.prompts=./my: no such file or directory"), err
    assert "(task.prompts=./my,file.jsonl is a sweep over 2 values" in err, err
    assert "\"task.prompts='./my,file.jsonl'\"" in err, err
    assert not (tmp_path / "runs").exists()


def test_values_that_would_share_a_run_folder_are_one_line(cli, tmp_path):
    code, out, err = cli(
        "train", "algo=bond", "task=sentiment", "task.prompts=a/b.jsonl,a-b.jsonl", f"out={tmp_path}/sw"
    )
    assert code == 2 and "would share the run folder 'bond-promptsa-b.jsonl-s0'" in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "sw").exists()


def test_brackets_and_quotes_keep_a_comma_inside_one_value():
    assert split_values("k", "0.1,0.5") == ["0.1", "0.5"]
    assert split_values("k", "[q_proj,v_proj]") == ["[q_proj,v_proj]"]
    assert split_values("k", "[q_proj],[q_proj,v_proj]") == ["[q_proj]", "[q_proj,v_proj]"]
    assert split_values("k", "'my,file.jsonl'") == ["'my,file.jsonl'"]
    assert split_values("k", "'a,b',\"c,d\",e") == ["'a,b'", '"c,d"', "e"]
    assert split_values("k", "it's,x") == ["it's", "x"]  # a quote inside a word opens nothing
    # through the config: each item is read as the command line reads one value
    plan = plan_sweep(["algo=bond", "task=sentiment", "model.name=tiny", "task.gold=null", "threads=1",
                       "model.lora_target_modules=[q_proj],[q_proj,v_proj]", "task.proxy='py:a,b.py:f'"])  # fmt: skip
    assert plan is not None and len(plan.suite.sweeps[0].values) == 2
    from rlhf_zoo.bench.suites import expand

    point = expand(plan.suite)[1]
    assert "model.lora_target_modules=[q_proj,v_proj]" in point.args
    cfg = load_config([*point.args, "task.proxy=vader", f"run_dir={Path('unused')}"])
    assert list(cfg.model.lora_target_modules) == ["q_proj", "v_proj"]
    assert plan_sweep(["algo=bond", "task.proxy='py:a,b.py:f'"]) is None  # a quoted comma: one run, not a sweep


def test_the_example_sweep_file_plans_its_12_points():
    from rlhf_zoo.bench.suites import expand

    example = Path(__file__).resolve().parents[2] / "examples" / "sweep.yaml"
    plan = plan_sweep([f"config={example}"])
    assert plan is not None and plan.folder == Path("runs/sweep-example")
    points = expand(plan.suite)
    assert len(points) == 12 and {p.seed for p in points} == {0, 1, 2}
    assert {
        (a, b) for p in points for a in p.args for b in p.args if a.startswith("algo=") and b.startswith("algo.beta=")
    } == {(f"algo={x}", f"algo.beta={y}") for x in ("bond", "jbond") for y in ("0.1", "0.5")}
    assert all("train.steps=200" in p.args and "task=exact" in p.args for p in points)
    plan = plan_sweep([f"config={example}", "algo=bond", "seed=0,1", "out=elsewhere"])  # the command line wins
    assert plan.folder == Path("elsewhere") and len(expand(plan.suite)) == 4


def test_sigterm_between_points_says_how_to_continue(tmp_path):
    """SIGTERM to a sweep outside a run's training (here while a point's model loads; also between
    points, or while a bench renders): the command must end as for Ctrl-C, with the line that
    says to run it again and exit code 143. It was killed by the default action, silently (found with
    ``kill -TERM`` right after a sweep's first point finished)."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    mark = tmp_path / "builds"
    cmd = [sys.executable, str(root / "tests" / "training" / "slow_train.py"), "train", "algo=reinforce", "threads=1"]
    cmd += ["train.steps=2", "train.eval_every=2", "seed=0,1", f"out={tmp_path / 'sweep'}"]
    env = {**os.environ, "PYTHONPATH": str(root), "SLOW_BUILD_S": "60", "BUILD_MARK": str(mark)}
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not mark.is_file():
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep ended before it could be signalled"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "run the same command again to continue" in err, err


def test_a_sweep_file_with_every_key_pinned_runs_its_one_point_in_the_sweep_folder(cli, tmp_path):
    """``rlhf-zoo train config=examples/sweep.yaml algo=bond algo.beta=0.1 seed=0``: a single value stops
    sweeping a key, so nothing was left to sweep and the command became a plain run whose run_dir was the
    file's ``run_dir``, the sweep's folder: its run files landed beside the points, and from then on
    ``rlhf-zoo compare FOLDER`` (and the sweep's own table) took the folder for one run and hid every point."""
    exp = tmp_path / "sweep.yaml"
    folder = tmp_path / "sw"
    exp.write_text(f"task: exact\nthreads: 1\nrun_dir: {folder}\ntrain: {{steps: 2, eval_every: 1}}\n"
                   "sweep:\n  algo: [bond, jbond]\n  seed: [0, 1]\n")  # fmt: skip
    code, _, err = cli("train", f"config={exp}", "algo=bond", "seed=0,1")
    assert code == 0, err
    code, _, err = cli("train", f"config={exp}", "algo=jbond", "seed=1")
    assert code == 0, err
    assert not (folder / "summary.json").exists()  # no run in the folder itself
    assert sorted(_runs(folder)) == ["bond-s0", "bond-s1", "jbond-s1"]
    code, table, _ = cli("compare", str(folder))
    assert code == 0 and "| bond " in table and "| jbond " in table


def test_out_on_a_single_run_says_it_names_a_sweep_folder(cli, tmp_path):
    code, out, err = cli("train", *FAST, "algo=bond", f"out={tmp_path}/x")
    assert code == 2 and "run_dir=" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("option", ["redo", "keep_checkpoints"])
def test_a_sweeps_option_on_a_single_run_or_in_a_sweep_file_is_one_line(cli, tmp_path, option):
    """A single run has no such option (it said "unknown key 'redo'"); in an experiment file it would have been
    dropped without a word with the keys a sweep does not pass to its runs."""
    code, _, err = cli("train", *FAST, "algo=bond", f"{option}=true", f"run_dir={tmp_path}/x")
    assert code == 2 and f"{option}= is a sweep's option" in err and len(err.strip().splitlines()) == 1, err
    exp = tmp_path / "exp.yaml"
    exp.write_text(f"algo: bond\n{option}: true\nsweep: {{algo.beta: [0.1, 0.5]}}\n")
    code, _, err = cli("train", *FAST, f"config={exp}", f"out={tmp_path}/sw")
    assert code == 2 and f"config={exp}: {option} is an option of the command line" in err, err
    assert not (tmp_path / "x").exists() and not (tmp_path / "sw").exists()


def test_a_sweep_run_again_with_a_changed_setting_keeps_its_finished_runs_unless_asked_to_redo(cli, tmp_path):
    """The same out= with train.steps changed replaced every finished run, saying only "2 redone": hours of
    language-model runs lost to a changed setting. Now it is one line naming the setting, with nothing deleted;
    redo=true runs them again."""
    out = tmp_path / "sw"
    args = ("train", *FAST, "algo=reinforce", "seed=0,1", f"out={out}")
    assert cli(*args)[0] == 0
    before = _mtimes(out)
    code, _, err = cli(*args, "train.steps=6")
    assert code == 2 and err.strip().splitlines()[-1].startswith("rlhf-zoo: error: ") and "Traceback" not in err, err
    assert "2 finished point(s) (reinforce-s0, reinforce-s1)" in err and "train.steps=6 vs 4" in err, err
    assert "redo=true" in err and _mtimes(out) == before
    code, _, err = cli(*args, "train.steps=6", "redo=true")
    assert code == 0 and "2 run(s) (0 resumed, 2 redone), 0 already finished" in err, err
    assert all(c["train"]["steps"] == 6 for c in _runs(out).values())
    code, _, err = cli(*args, "train.steps=6")  # redone: finished with these settings
    assert code == 0 and "0 run(s) (0 resumed, 0 redone), 2 already finished" in err, err


def test_the_order_of_the_swept_keys_does_not_change_the_points():
    """``algo.beta=0.1,0.5 algo.n=2,4`` and ``algo.n=2,4 algo.beta=0.1,0.5`` are one grid: the last key written
    was the knob, so the two orders gave the points other ids (and a rerun in the other order redid them all in
    the same folder). The swept keys are sorted: the knob is the alphabetically last."""
    from rlhf_zoo.bench.suites import expand

    a = plan_sweep(["algo=bond", *FAST, "algo.beta=0.1,0.5", "algo.n=2,4", "out=sw"])
    b = plan_sweep(["algo=bond", *FAST, "algo.n=2,4", "algo.beta=0.1,0.5", "out=sw"])
    pa, pb = expand(a.suite), expand(b.suite)
    assert [p.id for p in pa] == [p.id for p in pb] and [p.args for p in pa] == [p.args for p in pb]
    assert {s.knob for s in a.suite.sweeps} == {"algo.n"} and pa[0].id == "bond_beta0_1-n2-s0"


@pytest.mark.parametrize(
    ("body", "args", "needle"),
    [
        ("algo: bond\nsweep: {sed: [1, 2]}\n", [], "unknown key 'sed'"),
        ("algo: bond\nalgo.bta: 3\nsweep: {algo.beta: [0.1, 0.5]}\n", [], "unknown key 'algo.bta'"),
        ("algo: bond\nsweep: {algo.beta: [abc, 0.5]}\n", [], "'abc'"),
        ("sweep: {algo.beta: [0.1, 7.0]}\n", ["algo=bond"], "algo.beta must lie in [0, 1], got 7.0"),
        ("algo: bond\nsweep: {seed: [a, b]}\n", [], "sweep.seed takes integers, got a,b"),
        ("algo: bond\nseed: a\nsweep: {algo.beta: [0.1, 0.5]}\n", [], "seed takes integers, got a"),
    ],
)
def test_a_bad_key_or_value_of_a_sweep_file_is_one_line_naming_the_file(cli, tmp_path, body, args, needle):
    exp = tmp_path / "exp.yaml"
    exp.write_text(body)
    code, out, err = cli("train", *FAST, f"config={exp}", *args, f"out={tmp_path}/sw")
    assert code == 2 and f"config={exp}: " in err and needle in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "sw").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["algo=bond", "train.stepz=3"], "unknown key 'train.stepz'"),
        (["algo=bond,dpo"], "unknown algorithm 'dpo'"),
        (["algo=bond", "seed=a,b"], "seed takes integers, got a,b"),
    ],
)
def test_a_bad_key_on_the_command_line_of_a_sweep_file_does_not_name_the_file(cli, tmp_path, args, needle):
    exp = tmp_path / "exp.yaml"
    exp.write_text("sweep: {algo.beta: [0.1, 0.5]}\n")
    code, out, err = cli("train", *FAST, f"config={exp}", *args, f"out={tmp_path}/sw")
    assert code == 2 and needle in err and "exp.yaml" not in err, err


@pytest.mark.parametrize("key", ["config", "out", "run_dir", "resume", "redo", "keep_checkpoints"])
def test_a_key_that_cannot_be_swept_in_a_sweep_file_is_one_line_naming_the_file(cli, tmp_path, key):
    """``sweep: {config: [a.yaml, b.yaml]}`` was dropped without a word (the command line's config= counted as
    a value that stops sweeping it) and one point ran; ``out`` was refused without the file's name."""
    exp = tmp_path / "exp.yaml"
    exp.write_text(f"algo: bond\nsweep: {{{key}: [a, b], algo.beta: [0.1, 0.5]}}\n")
    code, out, err = cli("train", *FAST, f"config={exp}", f"out={tmp_path}/sw")
    assert code == 2 and f"config={exp}: sweep.{key} cannot be swept" in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "sw").exists()


@pytest.mark.parametrize("sweep", ["sweep:\n", "sweep: {}\n", "sweep:\n  # seed: [0, 1]\n"])
@pytest.mark.parametrize("folder", ["out", "run_dir"])
def test_an_empty_sweep_mapping_is_one_line_naming_the_file(cli, tmp_path, sweep, folder):
    """A ``sweep:`` left empty (its lists commented out) ran one plain run, into run_dir and not a sweep's folder,
    without a word; with out= it said "out=DIR names a sweep's folder", of a file that names a sweep."""
    exp = tmp_path / "exp.yaml"
    exp.write_text(f"algo: bond\n{sweep}")
    code, out, err = cli("train", *FAST, f"config={exp}", f"{folder}={tmp_path}/sw")
    assert code == 2 and f"config={exp}: sweep is empty: give it a key's list of values" in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "sw").exists()


@pytest.mark.parametrize("folder", ["out", "run_dir"])
def test_a_sweep_into_a_single_runs_directory_is_refused(cli, tmp_path, folder):
    """``seed=0,1 out=DIR`` where DIR held a single run ran the sweep's points inside that run's directory, and
    its closing table showed the single run alone (compare reads a run directory as one run), not the sweep."""
    code, _, err = cli("train", "algo=bond", *FAST, f"run_dir={tmp_path}/r")
    assert code == 0, err
    code, out, err = cli("train", "algo=bond", *FAST, "seed=0,1", f"{folder}={tmp_path}/r")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"{folder}={tmp_path}/r holds a single run (its config.yaml): a sweep's folder holds a run" in err, err
    assert sorted(p.name for p in (tmp_path / "r").iterdir() if p.is_dir()) == ["checkpoint"]


def test_a_single_run_into_a_sweeps_folder_is_refused(cli, tmp_path):
    """``run_dir=`` a sweep's folder wrote a run beside the sweep's points, and ``rlhf-zoo compare`` of the folder
    then showed that run alone, as if the sweep were gone."""
    code, _, err = cli("train", "algo=bond", *FAST, "seed=0,1", f"out={tmp_path}/sw")
    assert code == 0, err
    code, _, err = cli("train", "algo=bond", *FAST, "seed=2", f"run_dir={tmp_path}/sw")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"run_dir={tmp_path}/sw is a sweep's or a bench's folder (its bench.json): name another" in err, err
    assert not (tmp_path / "sw" / "config.yaml").exists()
    # the folder above it, a bench's out= (out/SUITE/bench.json beside out/SUITE.md): its pages and the run's files
    # would mix
    code, _, err = cli("train", "algo=bond", *FAST, "seed=2", f"run_dir={tmp_path}")
    assert code == 2 and f"run_dir={tmp_path} holds a bench's suites (sw/): name another folder" in err, err
    assert not (tmp_path / "config.yaml").exists()


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("seed: 3\nsweep: {seed: [0, 1]}\n", "seed"),
        ("algo.beta: 0.3\nsweep: {algo: {beta: [0.1, 0.5]}}\n", "algo.beta"),
    ],
)
def test_a_key_a_sweep_file_both_sets_and_sweeps_is_one_line(cli, tmp_path, body, key):
    """``seed: 3`` beside ``sweep: {seed: [0, 1]}`` in one file: the 3 was dropped without a word."""
    exp = tmp_path / "exp.yaml"
    exp.write_text("algo: bond\n" + body)
    code, out, err = cli("train", *FAST, f"config={exp}", f"out={tmp_path}/sw")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"config={exp} sets {key} and sweeps it (sweep.{key}): keep one" in err, err
    assert not (tmp_path / "sw").exists()


def test_out_in_a_sweep_file_is_refused_naming_the_file(cli, tmp_path, monkeypatch):
    """A file's ``out:`` (the command line's name for the folder) was dropped without a word: the sweep ran in
    the default folder under runs/ (a single run refuses it as an unknown key)."""
    exp = tmp_path / "exp.yaml"
    exp.write_text(f"algo: bond\nout: {tmp_path}/mine\nsweep: {{algo.beta: [0.1, 0.5]}}\n")
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("train", *FAST, f"config={exp}")
    assert code == 2 and f"config={exp}: unknown key 'out'; a sweep file names its folder with run_dir:" in err, err
    assert len(err.strip().splitlines()) == 1 and not Path("runs").exists()


def test_a_sweep_files_run_dir_that_yaml_reads_as_a_number_is_the_folders_name(tmp_path, monkeypatch):
    """``run_dir: 2026`` (a single run takes it as the folder "2026") was Path(2026), a TypeError traceback; a list
    is refused as a single run refuses it."""
    monkeypatch.chdir(tmp_path)
    exp = tmp_path / "exp.yaml"
    exp.write_text("algo: bond\ntask: exact\nrun_dir: 2026\nsweep: {algo.beta: [0.1, 0.5]}\n")
    assert plan_sweep([f"config={exp}"]).folder == Path("2026")
    exp.write_text("algo: bond\ntask: exact\nrun_dir: [a, b]\nsweep: {algo.beta: [0.1, 0.5]}\n")
    with pytest.raises(ConfigError, match=r"config=.*exp.yaml: run_dir must be one folder, got \['a', 'b'\]"):
        plan_sweep([f"config={exp}"])


def test_a_grid_has_every_combination_once_and_the_command_line_wins_over_the_file(tmp_path):
    """3 algorithms × 2 values × 3 values × 2 seeds: 36 points, each combination once. More values of a swept
    key continue in the same default folder. A setting of the file given again on the command line takes the
    command line's value, as in a single run."""
    import itertools

    from rlhf_zoo.bench.suites import expand

    args = ["algo=bond,jbond,reinforce", "task=exact", "train.lr=1e-3,2e-3", "train.batch_prompts=4,8,16"]
    plan = plan_sweep([*args, "seed=0,1"])
    points = expand(plan.suite)

    def value(p, key):
        return next(a.split("=", 1)[1] for a in p.args if a.startswith(f"{key}="))

    got = sorted((value(p, "algo"), value(p, "train.lr"), value(p, "train.batch_prompts"), p.seed) for p in points)
    grid = itertools.product(["bond", "jbond", "reinforce"], ["1e-3", "2e-3"], ["4", "8", "16"], [0, 1])
    assert got == sorted(grid)
    more = plan_sweep([*args[:-2], "train.lr=1e-3,2e-3,3e-3", args[-1], "seed=0,1,2"])
    assert more.folder == plan.folder
    exp = tmp_path / "sweep.yaml"
    exp.write_text("algo: bond\ntask: exact\ntrain: {steps: 200}\nsweep:\n  seed: [0, 1]\n")
    points = expand(plan_sweep([f"config={exp}", "train.steps=5"]).suite)
    assert all("train.steps=5" in p.args and "train.steps=200" not in p.args for p in points)


def test_nested_brackets_and_spaces_around_items_split_as_written():
    """A comma inside a list inside a mapping is the value's own: only commas at the top level split, and
    spaces around an item (``"algo=bond , jbond"``, quoted in the shell) are not part of it."""
    assert split_values("k", "{a: [1, 2], b: 3},{a: [4]}") == ["{a: [1, 2], b: 3}", "{a: [4]}"]
    assert split_values("k", "[[1, 2], [3]],[[4]]") == ["[[1, 2], [3]]", "[[4]]"]
    assert split_values("algo", "bond , jbond") == ["bond", "jbond"]
    plan = plan_sweep(["algo=bond , jbond", "task=exact"])
    assert [s.algo for s in plan.suite.sweeps] == ["bond", "jbond"]


def test_a_sweep_into_a_single_runs_directory_given_with_a_tilde_is_refused(tmp_path, monkeypatch):
    """``out=~/r``: the shell leaves a ``~`` after ``=`` as it is; the folder it names holds a single run."""
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "config.yaml").write_text("algo: {name: bond}\n")
    with pytest.raises(ConfigError, match=r"^out=~/r holds a single run \(its config.yaml\)"):
        plan_sweep(["algo=bond", "task=exact", "seed=0,1", "out=~/r"])


def test_a_sweep_file_that_names_its_algorithm_and_sweeps_it_is_refused(tmp_path):
    """``algo: bond`` beside ``sweep: {algo: [bond, jbond]}``: the file's choice would be dropped without a word,
    as a setting both set and swept would be."""
    exp = tmp_path / "exp.yaml"
    exp.write_text("algo: bond\ntask: exact\nsweep: {algo: [bond, jbond]}\n")
    with pytest.raises(ConfigError, match=r"sets algo and sweeps it \(sweep.algo\): keep one"):
        plan_sweep([f"config={exp}"])


def test_a_sweep_files_strings_reach_its_points_as_strings(tmp_path):
    """``"010"`` and ``"1:30"``, quoted in the file, are strings; written bare on a point's command line, YAML 1.1
    would read them as the numbers 8 and 90 (a folder of prompts named 010 would become the prompts 8)."""
    from omegaconf import OmegaConf

    from rlhf_zoo.bench.suites import expand

    exp = tmp_path / "exp.yaml"
    exp.write_text('algo: bond\ntask: sentiment\nsweep: {task.prompts: ["010", "1:30", "0x10"]}\n')
    points = expand(plan_sweep([f"config={exp}"]).suite)
    read = {OmegaConf.from_dotlist([a]).task.prompts for p in points for a in p.args if a.startswith("task.prompts=")}
    assert read == {"010", "1:30", "0x10"}


def test_a_knob_pinned_to_one_value_keeps_the_finished_runs_of_that_value(cli, tmp_path):
    """A sweep over algo.beta run, then ``algo.beta=0.1`` pinned on the command line: the points' ids leave the
    knob out (``bond-s0``, not ``bond-beta0.1-s0``), and the finished run was run again under the new id, after
    which compare refused the folder for ever (one seed counted twice). The finished run is kept under the new id,
    and the whole sweep again takes it back."""
    exp = tmp_path / "sweep.yaml"
    folder = tmp_path / "sw"
    exp.write_text(f"algo: bond\ntask: exact\nthreads: 1\nrun_dir: {folder}\ntrain: {{steps: 2, eval_every: 1}}\n"
                   "sweep:\n  algo: {beta: [0.1, 0.5]}\n")  # fmt: skip
    assert cli("train", f"config={exp}")[0] == 0
    assert sorted(_runs(folder)) == ["bond-beta0.1-s0", "bond-beta0.5-s0"]
    metrics = (folder / "bond-beta0.1-s0" / "metrics.jsonl").read_text()
    code, table, err = cli("train", f"config={exp}", "algo.beta=0.1")
    assert code == 0 and "0 run(s) (0 resumed, 0 redone), 1 already finished" in err, err
    assert sorted(_runs(folder)) == ["bond-beta0.5-s0", "bond-s0"] and "| bond " in table
    assert (folder / "bond-s0" / "metrics.jsonl").read_text() == metrics  # the same run, not a new one
    code, _, err = cli("train", f"config={exp}")
    assert code == 0 and "0 run(s) (0 resumed, 0 redone), 2 already finished" in err, err
    assert sorted(_runs(folder)) == ["bond-beta0.1-s0", "bond-beta0.5-s0"]
