"""The runner: finished points are never recomputed, unfinished ones are redone, records are atomic."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import sys
from pathlib import Path

import pytest

import rlhf_zoo.bench.runner as runner
from rlhf_zoo.bench.records import read_record, write_json_atomic
from rlhf_zoo.bench.runner import plan, point_dir, run_suite
from rlhf_zoo.bench.suites import expand


def _snapshot(suite_dir: Path) -> dict[str, str]:
    return {p.parent.name: p.read_text() for p in sorted(suite_dir.glob("*/record.json"))}


def test_runs_every_point_then_never_again(tiny_exact_suite, tmp_path, monkeypatch):
    report = run_suite(tiny_exact_suite, tmp_path, progress=False, command="rlhf-zoo bench suite=tinyexact")
    points = expand(tiny_exact_suite)
    assert len(report.ran) == len(points) == 6 and not report.skipped
    suite_dir = tmp_path / "tinyexact"
    for p in points:
        rec = read_record(point_dir(tmp_path, p))
        assert rec is not None and rec["args"] == list(p.args) and rec["seed"] == p.seed
        assert rec["summary"]["steps"] == (5 if "algo=reinforce" in p.args else 0)
        assert [m["step"] for m in rec["metrics"]][0] == 0
        assert rec["meta"]["git_commit"] and rec["meta"]["hardware"]
        assert rec["bench_command"] == "rlhf-zoo bench suite=tinyexact"
        assert not (point_dir(tmp_path, p) / "checkpoint").exists()  # removed once the record is written
    assert json.loads((suite_dir / "bench.json").read_text())["ran"] == 6
    assert json.loads((suite_dir / "oracle.json").read_text())["frontier"]
    before = _snapshot(suite_dir)

    calls = []
    monkeypatch.setattr(runner, "run_point", lambda *a, **k: calls.append(a))
    again = run_suite(tiny_exact_suite, tmp_path, progress=False)
    assert calls == [] and again.ran == [] and len(again.skipped) == 6
    assert _snapshot(suite_dir) == before


def test_unfinished_point_is_deleted_and_redone(tiny_exact_suite, tmp_path):
    run_suite(tiny_exact_suite, tmp_path, progress=False, seeds=[0])
    victim = expand(tiny_exact_suite, seeds=[0])[0]
    d = point_dir(tmp_path, victim)
    (d / "record.json").unlink()  # as if the run had been killed before it finished
    (d / "half-written.tmp").write_text("junk")
    assert plan(victim, d, resumable=False) == "redo"
    report = run_suite(tiny_exact_suite, tmp_path, progress=False, seeds=[0])
    assert report.ran == [victim.id] == report.redone
    assert not (d / "half-written.tmp").exists() and read_record(d) is not None


def test_a_point_another_bench_is_running_is_neither_deleted_nor_run(tiny_exact_suite, tmp_path):
    """The same sweep or bench started twice on one folder: the second must not delete (as unfinished)
    the run directory the first is writing, nor run the point into it beside the first. Found by
    starting a sweep twice: the second deleted the first's running point, whose record then held one
    metrics line."""
    from rlhf_zoo.errors import UserError
    from rlhf_zoo.runlog import RunLog

    running = expand(tiny_exact_suite, seeds=[0])[0]
    d = point_dir(tmp_path, running)
    write_json_atomic(d / "point.json", {"id": running.id, "args": list(running.args), "wall_s": 0.0})
    (d / "metrics.jsonl").write_text('{"step": 0}\n')
    held = RunLog(d).lock()  # the first bench's run of this point
    try:
        with pytest.raises(UserError, match="in use by another run"):
            run_suite(tiny_exact_suite, tmp_path, progress=False, seeds=[0])
        assert (d / "metrics.jsonl").read_text() == '{"step": 0}\n' and read_record(d) is None
    finally:
        held.release()
    report = run_suite(tiny_exact_suite, tmp_path, progress=False, seeds=[0])  # once it has stopped: redone
    assert running.id in report.redone and read_record(d) is not None


class _Loading(Exception):
    """Stops a point while it loads its model."""


@pytest.mark.parametrize("pool", [False, True], ids=["trained", "pool"])
def test_a_point_holds_its_directory_while_its_model_loads(tiny_exact_suite, tmp_path, monkeypatch, pool):
    """The lock was taken only by the training loop, after the model had loaded: a second bench started
    in those seconds saw an unfinished point nobody held and deleted its directory to redo it. The pool
    point (which never reaches the training loop) was never held at all."""
    import rlhf_zoo.train
    from rlhf_zoo.errors import UserError
    from rlhf_zoo.runlog import RunLog

    point = expand(tiny_exact_suite, seeds=[0])[0]
    if pool:
        point = dataclasses.replace(point, pool=4)
    d = point_dir(tmp_path, point)
    held: list[bool] = []

    def loading(cfg, runtime=None):
        try:
            RunLog(d).lock().release()
            held.append(False)
        except UserError:
            held.append(True)
        raise _Loading

    monkeypatch.setattr(rlhf_zoo.train, "build", loading)
    with pytest.raises(_Loading):
        runner.run_point(point, str(d), False, "", False)
    assert held == [True]
    RunLog(d).lock().release()  # released once the point has stopped


def test_a_finished_point_whose_arguments_changed_is_refused_and_redone_with_redo(tiny_exact_suite, tmp_path):
    """A finished point's record that its arguments no longer make (an override added) is not silently replaced:
    the bench refuses before anything runs or is deleted, naming the setting; with ``redo`` it runs the point again
    and replaces the record."""
    from rlhf_zoo.errors import UserError

    piece = dict(progress=False, seeds=[0], only=["best_of_n"])
    run_suite(tiny_exact_suite, tmp_path, **piece)
    before = _snapshot(tmp_path / tiny_exact_suite.name)
    with pytest.raises(UserError, match=r"1 finished point\(s\) \(best_of_n-n2-s0\) were run with other arguments "
                       r"\(best_of_n-n2-s0: train.eval_prompts=2 vs <unset>\): redo=true"):  # fmt: skip
        run_suite(tiny_exact_suite, tmp_path, **piece, extra=["train.eval_prompts=2"])
    assert _snapshot(tmp_path / tiny_exact_suite.name) == before
    report = run_suite(tiny_exact_suite, tmp_path, **piece, extra=["train.eval_prompts=2"], redo=True)
    assert report.redone == report.ran == ["best_of_n-n2-s0"]
    rec = read_record(tmp_path / "tinyexact" / "best_of_n-n2-s0")
    assert "train.eval_prompts=2" in rec["args"]


def test_failed_run_leaves_no_record(tiny_exact_suite, tmp_path, monkeypatch):
    import rlhf_zoo.train as train

    def boom(cfg, argv=None, held_lock=None):
        Path(cfg.run_dir, "metrics.jsonl").write_text('{"step": 0}\n')
        raise RuntimeError("reward model died")

    monkeypatch.setattr(train, "run", boom)
    with pytest.raises(RuntimeError, match="reward model died"):
        run_suite(tiny_exact_suite, tmp_path, progress=False, seeds=[0], only=["best_of_n"])
    d = tmp_path / "tinyexact" / "best_of_n-n2-s0"
    assert d.is_dir() and not (d / "record.json").exists()
    assert plan(expand(tiny_exact_suite, seeds=[0], only=["best_of_n"])[0], d, resumable=False) == "redo"


def test_resumable_suite_resumes_from_a_checkpoint(tiny_exact_suite, tmp_path):
    p = expand(tiny_exact_suite, seeds=[0])[0]
    d = point_dir(tmp_path, p)
    d.mkdir(parents=True)
    write_json_atomic(d / "point.json", {"id": p.id, "args": list(p.args)})
    assert plan(p, d, resumable=True) == "redo"  # no checkpoint yet: start over
    (d / "checkpoint").mkdir()
    (d / "checkpoint" / "state.pt").write_bytes(b"x")
    assert plan(p, d, resumable=True) == "resume"
    assert plan(p, d, resumable=False) == "redo"
    # a checkpoint swap cut short by a kill: the checkpoint set aside is resumed from (the run puts it back),
    # not deleted with the point's folder by a redo
    aside = d / ".checkpoint.old-x1y2"
    aside.mkdir()
    (d / "checkpoint").rename(aside / "checkpoint")
    assert plan(p, d, resumable=True) == "resume"
    # started with its arguments in another order, or with settings without effect on the results: the same run
    for args in (list(reversed(p.args)), [*p.args, "train.checkpoint_every=3", "train.progress=true"]):
        write_json_atomic(d / "point.json", {"id": p.id, "args": args})
        assert plan(p, d, resumable=True) == "resume", args
    write_json_atomic(d / "point.json", {"id": p.id, "args": ["something", "else"]})
    assert plan(p, d, resumable=True) == "redo"  # a checkpoint of another configuration


def test_a_checkpoint_left_by_a_kill_after_the_record_is_deleted_by_the_next_run(
    tiny_exact_suite, tmp_path, monkeypatch
):
    """A point killed between its record and the deletion of its checkpoint is finished: the next run of the
    bench does not run it again, and deletes the checkpoint that it would otherwise keep for ever. Found by
    killing a sweep at every call of the runner's functions."""
    rmtree = runner.shutil.rmtree

    def killed_at_the_checkpoint(path, *a, **k):
        if Path(path).name == "checkpoint":
            raise KeyboardInterrupt  # kill -9 after the record, before the checkpoint goes
        rmtree(path, *a, **k)

    monkeypatch.setattr(runner.shutil, "rmtree", killed_at_the_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        run_suite(tiny_exact_suite, tmp_path, progress=False, seeds=[0], only=["reinforce"])
    monkeypatch.undo()
    p = expand(tiny_exact_suite, seeds=[0], only=["reinforce"])[0]
    d = point_dir(tmp_path, p)
    assert read_record(d) is not None and (d / "checkpoint" / "state.pt").is_file()
    report = run_suite(tiny_exact_suite, tmp_path, progress=False, seeds=[0], only=["reinforce"])
    assert report.skipped == [p.id] and report.ran == [expand(tiny_exact_suite, seeds=[0], only=["reinforce"])[1].id]
    assert not (d / "checkpoint").exists() and read_record(d) is not None
    # kept with keep_checkpoints
    (d / "checkpoint").mkdir()
    run_suite(tiny_exact_suite, tmp_path, progress=False, seeds=[0], only=["reinforce"], keep_checkpoints=True)
    assert (d / "checkpoint").is_dir()


def test_record_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "p" / "record.json"
    write_json_atomic(path, {"format": 1, "v": 1})
    assert json.loads(path.read_text()) == {"format": 1, "v": 1}

    def crash(src, dst):
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        write_json_atomic(path, {"format": 1, "v": 2})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"format": 1, "v": 1}  # the old record, whole
    fresh = tmp_path / "q" / "record.json"
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        write_json_atomic(fresh, {"format": 1})
    monkeypatch.undo()
    assert not fresh.exists() and read_record(fresh.parent) is None  # no record: the point is unfinished


def test_two_worker_processes(tiny_exact_suite, tmp_path):
    report = run_suite(tiny_exact_suite, tmp_path, progress=False, seeds=[0], only=["reinforce"], jobs=2)
    assert sorted(report.ran) == ["reinforce-beta0.1-s0", "reinforce-beta1.0-s0"]
    assert json.loads((tmp_path / "tinyexact" / "bench.json").read_text())["jobs"] == 2


def test_bench_command_line(tmp_path, capsys):
    from rlhf_zoo.cli import main

    out, docs = tmp_path / "runs", tmp_path / "docs"
    args = ["bench", "suite=exact", f"out={out}", f"docs={docs}", "seeds=0", "only=best_of_n", "progress=false"]
    assert main([*args, "render=false"]) == 0
    assert len(list((out / "exact").glob("*/record.json"))) == 6
    assert sorted(p.name for p in docs.iterdir()) == ["records"]  # the records, not the page
    assert len(list((docs / "records" / "exact").glob("best_of_n-*.json"))) == 6
    assert main(["bench", "suite=exact", f"out={out}", f"docs={docs}", "render_only=true"]) == 0
    assert (docs / "exact.md").is_file() and (docs / "exact" / "reward_vs_kl.png").is_file()
    assert main(["bench", "suite=nope"]) == 2
    assert main(["bench", f"out={out}"]) == 2
    assert main(["bench", "suite=exact", f"out={out}", "only=best_of_n", "algo.nonsense=1"]) == 2
    assert "error" in capsys.readouterr().err


def test_a_rerun_that_differs_only_in_settings_without_effect_redoes_nothing(tiny_exact_suite, tmp_path, monkeypatch):
    """Adding ``train.checkpoint_every=7`` to a bench (or reordering a suite's arguments, or dropping
    ``train.progress=false``) changed every point's arguments, so every finished point was redone, and the
    page counted none of them among the planned points: none of these can change a run's numbers."""
    from rlhf_zoo.bench.records import NO_EFFECT, same_run
    from rlhf_zoo.bench.render import planned_count

    assert {"train.progress", "train.log_with", "train.checkpoint_every", "train.checkpoint_minutes"} <= set(NO_EFFECT)
    assert same_run(["a=1", "b=2", "train.progress=false"], ["b=2", "a=1", "train.log_with=none"])
    assert not same_run(["a=1", "b=2"], ["a=1", "b=3"]) and not same_run(["a=1", "a=2"], ["a=2", "a=1"])

    records = tmp_path / "records"
    first = run_suite(tiny_exact_suite, tmp_path, progress=False, seeds=[0], records=records)
    assert len(first.ran) == 3
    task_args = tuple(a for a in reversed(tiny_exact_suite.task_args) if not a.startswith("train.progress="))
    reordered = dataclasses.replace(tiny_exact_suite, task_args=task_args)
    extra = ["train.checkpoint_every=7", "train.checkpoint_minutes=0", "train.log_with=none"]
    calls = []
    monkeypatch.setattr(runner, "run_point", lambda *a, **k: calls.append(a))
    for folder in (records, None):  # the records folder's record, or only the run directory's
        again = run_suite(reordered, tmp_path, progress=False, seeds=[0], extra=extra, records=folder)
        assert calls == [] and again.ran == [] and again.redone == [] and len(again.skipped) == 3
    planned = expand(reordered, seeds=[0], extra=extra)
    raw = [read_record(point_dir(tmp_path, p)) for p in expand(tiny_exact_suite, seeds=[0])]
    assert planned_count(raw, planned) == "3 of the 3 planned points have records"
    # a setting that does change the numbers still redoes them
    changed = run_suite(
        reordered, tmp_path, progress=False, seeds=[0], extra=["train.lr=0.5"], records=records, redo=True
    )
    assert len(changed.redone) == 3


def test_a_bad_setting_of_a_later_point_fails_before_any_point_runs(tiny_exact_suite, tmp_path, monkeypatch):
    """Every configuration is built before the first point runs: a key that only the last sweep's points
    hold must not let the first sweep's points train (minutes each on a language model) before it fails."""
    from rlhf_zoo.bench.suites import Sweep
    from rlhf_zoo.config import ConfigError

    bad = Sweep("bad", "bad", "best_of_n", "algo.n", (2,), fixed=("algo.nonsense=1",))
    suite = dataclasses.replace(tiny_exact_suite, sweeps=(*tiny_exact_suite.sweeps, bad))
    calls = []
    monkeypatch.setattr(runner, "run_point", lambda *a, **k: calls.append(a[0].id))
    with pytest.raises(ConfigError, match="nonsense"):
        run_suite(suite, tmp_path, progress=False, seeds=[0])
    assert calls == [] and not (tmp_path / suite.name).exists()


def test_a_run_that_fails_in_a_worker_fails_the_bench_and_the_other_keeps_its_record(tiny_exact_suite, tmp_path):
    """A point whose run fails in a worker process is the bench's error, not a point counted as run; the point
    in flight beside it finishes and keeps its record."""
    from rlhf_zoo.config import ConfigError

    sweep = dataclasses.replace(tiny_exact_suite.sweeps[0], values=(0.1, "oops"))
    suite = dataclasses.replace(tiny_exact_suite, sweeps=(sweep,))
    with pytest.raises(ConfigError, match="oops"):
        run_suite(suite, tmp_path, progress=False, seeds=[0], jobs=2, validate=False)
    good, bad = expand(suite, seeds=[0])
    assert read_record(point_dir(tmp_path, good)) is not None and read_record(point_dir(tmp_path, bad)) is None


def test_records_of_another_machine_are_counted_by_code_version_and_redone_when_stale(
    tiny_exact_suite, tmp_path, monkeypatch
):
    """Only the records folder holds the points (their run folders are on another machine): the bench counts
    those of another code version, one by one, and redoes (and counts as redone) those whose run changed."""
    from rlhf_zoo.bench.records import dumps_record, record_path

    records = tmp_path / "records"
    run_suite(tiny_exact_suite, tmp_path / "a", progress=False, seeds=[0], records=records)
    ids = [p.id for p in expand(tiny_exact_suite, seeds=[0])]
    for pid in ids[:2]:
        path = record_path(records, tiny_exact_suite.name, pid)
        path.write_text(dumps_record({**json.loads(path.read_text()), "code_version": "0123456789ab"}))
    calls = []
    monkeypatch.setattr(runner, "run_point", lambda *a, **k: calls.append(a[0].id))
    elsewhere = dict(progress=False, seeds=[0], records=records)
    again = run_suite(tiny_exact_suite, tmp_path / "b", **elsewhere)
    assert calls == [] and again.skipped == ids and again.other_code == {"0123456789ab": 2}
    changed = run_suite(tiny_exact_suite, tmp_path / "b", **elsewhere, extra=["train.lr=0.5"], redo=True)
    assert calls == ids == changed.redone == changed.ran and changed.skipped == []


def _relabelled(suite):
    """The suite's Best-of-N sweep alone (n = 2), before and after its knob_label became ``size``: the point's id
    goes from best_of_n-n2-s0 to best_of_n-size2-s0."""
    before = dataclasses.replace(suite, sweeps=suite.sweeps[1:])
    return before, dataclasses.replace(before, sweeps=(dataclasses.replace(before.sweeps[0], knob_label="size"),))


def test_a_copy_of_a_finished_point_under_an_earlier_id_is_deleted_not_moved_onto_it(
    tiny_exact_suite, tmp_path, monkeypatch
):
    """Records merged from two branches, one of them before the sweep's knob_label changed: the point finished
    under its id and, the same run, under its earlier id. The point's record and run folder are kept as they
    are, the copy is deleted (the page refuses two records of one seed) and nothing runs."""
    import shutil

    before, suite = _relabelled(tiny_exact_suite)
    records, name = tmp_path / "records", suite.name
    run_suite(before, tmp_path / "branch", progress=False, seeds=[0], records=tmp_path / "branch_records")
    run_suite(suite, tmp_path, progress=False, seeds=[0], records=records)
    shutil.copytree(tmp_path / "branch" / name / "best_of_n-n2-s0", tmp_path / name / "best_of_n-n2-s0")
    shutil.copy(tmp_path / "branch_records" / name / "best_of_n-n2-s0.json", records / name)
    kept = _snapshot(tmp_path / name)["best_of_n-size2-s0"]
    calls = []
    monkeypatch.setattr(runner, "run_point", lambda *a, **k: calls.append(a))
    report = run_suite(suite, tmp_path, progress=False, seeds=[0], records=records)
    assert calls == [] and report.skipped == ["best_of_n-size2-s0"] and report.renamed == []
    assert sorted(p.name for p in (records / name).glob("best_of_n-*")) == ["best_of_n-size2-s0.json"]
    assert _snapshot(tmp_path / name) == {"best_of_n-size2-s0": kept}


def test_a_point_another_bench_is_running_is_not_resumed_beside_it(tiny_exact_suite, tmp_path, monkeypatch):
    """In a resumable suite the second bench plans to resume (not redo) the point that the first is running
    from its checkpoint: refused as well, before any point runs (not after running the points planned before
    it, which the first bench runs too)."""
    from rlhf_zoo.errors import UserError
    from rlhf_zoo.runlog import RunLog

    suite = dataclasses.replace(tiny_exact_suite, resumable=True)
    running = expand(suite, seeds=[0])[-1]
    d = point_dir(tmp_path, running)
    write_json_atomic(d / "point.json", {"id": running.id, "args": list(running.args)})
    (d / "checkpoint").mkdir()
    (d / "checkpoint" / "state.pt").write_bytes(b"x")
    assert plan(running, d, resumable=True) == "resume"
    calls = []
    monkeypatch.setattr(runner, "run_point", lambda *a, **k: calls.append(a[0].id))
    held = RunLog(d).lock()
    try:
        with pytest.raises(UserError, match="in use by another run"):
            run_suite(suite, tmp_path, progress=False, seeds=[0])
    finally:
        held.release()
    assert calls == [] and (d / "checkpoint" / "state.pt").read_bytes() == b"x"


def test_a_record_under_an_earlier_id_whose_folder_a_run_holds_is_neither_moved_nor_deleted(tiny_exact_suite, tmp_path):
    """The point's place on the page holds a record under its earlier id (before the knob_label changed) whose
    run folder another bench is writing (redoing it): the bench refuses, rather than move or delete that folder
    under the running one."""
    from rlhf_zoo.errors import UserError
    from rlhf_zoo.runlog import RunLog

    before, suite = _relabelled(tiny_exact_suite)
    run_suite(before, tmp_path, progress=False, seeds=[0], records=tmp_path / "records")
    d = tmp_path / suite.name / "best_of_n-n2-s0"
    held = RunLog(d).lock()
    try:
        with pytest.raises(UserError, match="in use by another run"):
            run_suite(suite, tmp_path, progress=False, seeds=[0], records=tmp_path / "records")
    finally:
        held.release()
    assert read_record(d) is not None and not (tmp_path / suite.name / "best_of_n-size2-s0").exists()


def test_every_record_carries_the_stamp_of_the_bench_that_ran_it(tiny_exact_suite, tmp_path, monkeypatch):
    """The code a bench runs is the code it loaded when it started: a tracked file edited while it runs (the
    checkout turns dirty, or moves to another commit) does not change the stamp of its later records."""
    import itertools

    import rlhf_zoo.bench.version as version

    states = itertools.chain([("a" * 40, False)], itertools.repeat(("b" * 40, True)))
    monkeypatch.setattr(version, "git_state", lambda cwd=None, written=(): next(states))
    run_suite(tiny_exact_suite, tmp_path, progress=False, seeds=[0], only=["best_of_n"])
    recs = [read_record(point_dir(tmp_path, p)) for p in expand(tiny_exact_suite, seeds=[0], only=["best_of_n"])]
    assert [(r["git_commit"], r["git_dirty"]) for r in recs] == [("a" * 40, False)] * len(recs)


def test_a_kill_while_the_record_is_copied_to_the_records_folder_costs_no_run(tiny_exact_suite, tmp_path, monkeypatch):
    """A point's record goes to its run folder first, then to the records folder: a kill between the two leaves the
    point finished, and the next bench copies its record over instead of running it again."""
    only = dict(seeds=[0], only=["best_of_n"])
    (p,) = expand(tiny_exact_suite, **only)
    records = tmp_path / "records"

    def killed(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "write_point_record", killed)
    with pytest.raises(KeyboardInterrupt):
        run_suite(tiny_exact_suite, tmp_path, progress=False, records=records, **only)
    monkeypatch.undo()
    assert read_record(point_dir(tmp_path, p)) is not None
    calls = []
    monkeypatch.setattr(runner, "run_point", lambda *a, **k: calls.append(a))
    report = run_suite(tiny_exact_suite, tmp_path, progress=False, records=records, **only)
    assert calls == [] and report.skipped == report.backfilled == [p.id]
    assert (records / tiny_exact_suite.name / f"{p.id}.json").is_file()


def test_a_stale_record_in_the_records_folder_of_a_point_never_run_here_is_counted_as_redone(
    tiny_exact_suite, tmp_path
):
    """Another machine (no run folder here) finds the point's record in the shared records folder, made with other
    arguments: the point runs again (asked to: ``redo``), is counted as redone, not as new, and its record is
    replaced."""
    from rlhf_zoo.errors import UserError

    only = dict(seeds=[0], only=["best_of_n"])
    (p,) = expand(tiny_exact_suite, **only)
    records = tmp_path / "records"
    run_suite(tiny_exact_suite, tmp_path / "machine_a", progress=False, records=records, **only)
    extra = ["train.eval_prompts=2"]
    b = dict(progress=False, records=records, extra=extra, **only)
    with pytest.raises(UserError, match="another out= and records= keeps them"):  # the record is not lost unasked
        run_suite(tiny_exact_suite, tmp_path / "machine_b", **b)
    report = run_suite(tiny_exact_suite, tmp_path / "machine_b", **b, redo=True)
    assert report.ran == report.redone == [p.id]
    rec = json.loads((records / tiny_exact_suite.name / f"{p.id}.json").read_text())
    assert "train.eval_prompts=2" in rec["args"]


def test_a_redo_that_a_stop_interrupted_continues_without_asking_again(tiny_exact_suite, tmp_path, monkeypatch):
    """``redo=true`` deleted the point's old run folder and started the new run (its point.json holds the new
    arguments) when a stop came; the stale record is still in the records folder until the new one replaces it. The
    same command without ``redo`` again must go on with the run, not refuse it as a finished point's replacement."""
    from rlhf_zoo.bench.records import STARTED
    from rlhf_zoo.errors import UserError

    only = dict(progress=False, seeds=[0], only=["best_of_n"], records=tmp_path / "records")
    run_suite(tiny_exact_suite, tmp_path / "a", **only)
    extra = ["train.eval_prompts=2"]
    (p,) = expand(tiny_exact_suite, seeds=[0], only=["best_of_n"], extra=extra)
    write_json_atomic(point_dir(tmp_path / "b", p) / STARTED, {"id": p.id, "args": list(p.args), "wall_s": 1.0})
    calls = []
    monkeypatch.setattr(runner, "run_point", lambda *a, **k: calls.append(a[0].id))
    report = run_suite(tiny_exact_suite, tmp_path / "b", **only, extra=extra)
    assert calls == report.ran == [p.id]
    # a run of yet other arguments was started there: that is no choice made for this one
    other = ["train.eval_prompts=3" if a == "train.eval_prompts=2" else a for a in p.args]
    write_json_atomic(point_dir(tmp_path / "c", p) / STARTED, {"id": p.id, "args": other, "wall_s": 1.0})
    with pytest.raises(UserError, match="1 finished point.*redo=true"):
        run_suite(tiny_exact_suite, tmp_path / "c", **only, extra=extra)


def test_what_a_point_prints_goes_on_its_own_line_above_the_bar(tiny_exact_suite, tmp_path, monkeypatch, capsys):
    """A language-model point prints its prompts line on stderr as it starts: it was written onto the bar's line
    ("... [reinforce-beta0.1-s0]rlhf-zoo: prompts: ..."); now the bar is cleared first and drawn again below it."""
    import sys

    from tqdm.contrib import DummyTqdmFile

    seen = []

    def point(*a, **k):
        seen.append(sys.stderr)
        print("rlhf-zoo: prompts: p.jsonl", file=sys.stderr)

    monkeypatch.setattr(runner, "run_point", point)
    report = run_suite(tiny_exact_suite, tmp_path, seeds=[0], only=["best_of_n"], progress=True)
    err = capsys.readouterr().err
    assert report.ran == ["best_of_n-n2-s0"] and "rlhf-zoo: prompts: p.jsonl\n" in err, err
    before = err.split("rlhf-zoo: prompts")[0]
    assert before.endswith("\r"), repr(before[-80:])  # the bar's line cleared back to its start, not written after
    # a point with its own bar (train.progress=true) as well: its bar is drawn beneath the points bar, not on stderr
    run_suite(tiny_exact_suite, tmp_path / "b", seeds=[0], only=["best_of_n"], extra=["train.progress=true"])
    assert isinstance(seen[0], DummyTqdmFile) and isinstance(seen[1], DummyTqdmFile)


class _Terminal(io.StringIO):
    """stderr as a terminal (tqdm's bars ask the stream they write to)."""

    def isatty(self) -> bool:
        return True


def _bench_output(suite, out: Path, monkeypatch, stream: io.StringIO, own_bar: str = "true", **kw) -> str:
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setenv("COLUMNS", "120")  # a bar's width: a terminal of no size draws empty lines
    run_suite(suite, out, seeds=[0], only=["reinforce"], extra=[f"train.progress={own_bar}", "train.steps=5"], **kw)
    return stream.getvalue()


def test_a_running_point_shows_its_steps_beneath_the_points_bar(tiny_exact_suite, tmp_path, monkeypatch):
    """A point of a bench or sweep trained for minutes with nothing but the points bar moving (its own bar was
    turned off, or written over the points bar's line): on a terminal its step bar is now drawn on the line beneath,
    named by the point, and erased when the point ends."""
    err = _bench_output(tiny_exact_suite, tmp_path, monkeypatch, _Terminal())
    for point in ("reinforce-beta0.1-s0", "reinforce-beta1.0-s0"):
        # drawn one line down ("\n"), the cursor then brought back up to the points bar ("\x1b[A")
        assert f"\n\r{point}:   0%|          | 0/5 [00:00<?, ?step/s]\x1b[A" in err, err[-600:]
    assert "bench tinyexact: 100%" in err
    last = err.split("reinforce-beta1.0-s0:")[-1]
    assert "\r" + " " * 40 in last  # erased at its end (leave=False): no finished step bars pile up


@pytest.mark.parametrize("how", ["not a terminal", "progress=false", "train.progress=false"])
def test_no_step_bars_where_they_would_be_noise(how, tiny_exact_suite, tmp_path, monkeypatch):
    """Into a log file the cursor moves of a bar beneath another are noise; with the points bar off (progress=false)
    there is nothing to put them beneath; and a point's own train.progress=false still turns its bar off."""
    stream = io.StringIO() if how == "not a terminal" else _Terminal()
    kw = {"progress": False} if how == "progress=false" else {}
    own_bar = "false" if how == "train.progress=false" else "true"
    err = _bench_output(tiny_exact_suite, tmp_path, monkeypatch, stream, own_bar, **kw)
    assert "step/s" not in err and "/5 [" not in err and "\x1b[A" not in err, err[-600:]
    if how != "progress=false":
        assert "bench tinyexact: 100%" in err


def test_bench_json_describes_the_last_bench_that_ran_points(tiny_exact_suite, tmp_path, monkeypatch):
    """``bench.json`` (the page's "last bench" line) is the invocation that ran the points: how many of the planned
    ones, in how many processes (one point runs in one, whatever ``jobs`` asks for), and whether all are finished; a
    bench that finds them all finished leaves it as it was."""
    only = dict(seeds=[0, 1], only=["best_of_n"])
    path = tmp_path / tiny_exact_suite.name / "bench.json"
    real = runner.run_point

    def second_fails(point, *a, **k):
        if point.seed == 1:
            raise RuntimeError("reward model died")
        return real(point, *a, **k)

    monkeypatch.setattr(runner, "run_point", second_fails)
    with pytest.raises(RuntimeError):
        run_suite(tiny_exact_suite, tmp_path, progress=False, jobs=1, command="first", **only)
    monkeypatch.undo()
    first = json.loads(path.read_text())
    said = {"command": "first", "ran": 1, "points": 2, "seeds": [0, 1], "complete": False}
    assert {k: first[k] for k in said} == said
    run_suite(tiny_exact_suite, tmp_path, progress=False, jobs=2, command="second", **only)
    second = json.loads(path.read_text())
    assert (second["ran"], second["skipped"], second["jobs"], second["complete"]) == (1, 1, 1, True)
    again = run_suite(tiny_exact_suite, tmp_path, progress=False, command="again", **only)
    assert again.ran == [] and json.loads(path.read_text()) == second


def test_the_report_counts_the_finished_points_of_another_code_version(tiny_exact_suite, tmp_path):
    """The bench says how many finished points (never run again) have records of another code version than this
    code's: none after a bench of this code, one after a record was written by other code."""
    import rlhf_zoo.bench.version as version

    only = dict(seeds=[0], only=["reinforce"])
    records = tmp_path / "records"
    run_suite(tiny_exact_suite, tmp_path, progress=False, records=records, **only)
    again = run_suite(tiny_exact_suite, tmp_path, progress=False, records=records, **only)
    assert again.code_version == version.current_code_version() and again.other_code == {}
    first = expand(tiny_exact_suite, **only)[0]
    path = records / tiny_exact_suite.name / f"{first.id}.json"
    path.write_text(path.read_text().replace(version.current_code_version(), "0123456789ab"))
    later = run_suite(tiny_exact_suite, tmp_path, progress=False, records=records, **only)
    assert later.ran == [] and later.other_code == {"0123456789ab": 1}


def test_the_progress_bar_starts_at_the_finished_points(tiny_exact_suite, tmp_path, capsys):
    """The bar counts the planned points: those already finished are counted from the start, so a bench with
    nothing left to run shows them all done, not none."""
    only = dict(seeds=[0], only=["reinforce"])
    run_suite(tiny_exact_suite, tmp_path, progress=False, **only)
    capsys.readouterr()
    run_suite(tiny_exact_suite, tmp_path, progress=True, **only)
    bar = capsys.readouterr().err
    assert "2/2" in bar and "0/2" not in bar, bar


def _twins(suite):
    """The suite's Best-of-N sweep (n = 2) and a second sweep, ``twin``, whose point is the same run under another id
    (it differs only in a setting without effect on the results, so it is a point of its own, not a shared one)."""
    bon = suite.sweeps[1]
    twin = dataclasses.replace(bon, tag="twin", fixed=("train.checkpoint_every=7",))
    return dataclasses.replace(suite, sweeps=(bon, twin))


def test_a_record_of_a_sweep_the_suite_still_has_is_not_taken_over_by_another_sweeps_same_run(
    tiny_exact_suite, tmp_path
):
    """Only the record of a sweep the suite lost (a renamed tag) is kept as a new point's: one that a sweep of the
    suite still reads stays that sweep's, though the new point makes the same run (else ``only=twin`` moved
    best_of_n's record to the twin's id, and best_of_n's table lost its point)."""
    suite, records = _twins(tiny_exact_suite), tmp_path / "records"
    run_suite(suite, tmp_path, progress=False, seeds=[0], only=["best_of_n"], records=records)
    report = run_suite(suite, tmp_path, progress=False, seeds=[0], only=["twin"], records=records)
    assert report.ran == ["twin-n2-s0"] and report.renamed == [] and report.redone == []
    for pid, tag in (("best_of_n-n2-s0", "best_of_n"), ("twin-n2-s0", "twin")):
        rec = read_record(tmp_path / suite.name / pid)
        assert rec is not None and [m["sweep"] for m in rec["memberships"]] == [tag]
        assert (records / suite.name / f"{pid}.json").is_file()


def test_a_dropped_sweeps_record_that_is_the_same_run_as_a_finished_point_is_kept(tiny_exact_suite, tmp_path):
    """A sweep taken out of the suite leaves its records, which the page names (records accumulate), even one that
    is the same run as a point the suite still has and finished: that point has its own record, and nothing
    takes the dropped sweep's place (it was deleted as if the finished point superseded it)."""
    suite, records = _twins(tiny_exact_suite), tmp_path / "records"
    run_suite(suite, tmp_path, progress=False, seeds=[0], records=records)
    dropped = dataclasses.replace(suite, sweeps=suite.sweeps[:1])
    report = run_suite(dropped, tmp_path, progress=False, seeds=[0], records=records)
    assert report.skipped == ["best_of_n-n2-s0"] and report.ran == report.redone == report.renamed == []
    assert read_record(tmp_path / suite.name / "twin-n2-s0") is not None
    assert sorted(p.stem for p in (records / suite.name).glob("*-s0.json")) == ["best_of_n-n2-s0", "twin-n2-s0"]


def test_a_finished_point_keeps_the_checkpoint_of_another_run_in_its_run_folder(tiny_exact_suite, tmp_path):
    """The point finished in the records folder, and its run folder holds another run of it (a bench with another
    setting and its own records, ``keep_checkpoints=true``) with that run's checkpoint. A bench that finds the
    point finished deletes only the checkpoint of the point's own run (one a kill after its record left): the
    other run's checkpoint, kept on purpose, stays with that run's record. Neither does that other run's record take
    the place of the point's in the records folder, nor does it join a sweep that the suite gains."""
    from rlhf_zoo.bench.records import read_point_record, record_path

    rf = tiny_exact_suite.sweeps[0]
    suite = dataclasses.replace(tiny_exact_suite, sweeps=(dataclasses.replace(rf, values=(0.1,)),))
    mine = dict(progress=False, seeds=[0], records=tmp_path / "records")
    run_suite(suite, tmp_path, **mine)
    run_suite(suite, tmp_path, progress=False, seeds=[0], records=tmp_path / "other", extra=["train.lr=0.5"],
              keep_checkpoints=True, redo=True)  # fmt: skip
    d = point_dir(tmp_path, expand(suite, seeds=[0])[0])
    other = _snapshot(tmp_path / suite.name)
    kept = record_path(tmp_path / "records", suite.name, d.name)
    own = kept.read_text()
    assert (d / "checkpoint" / "state.pt").is_file() and "train.lr=0.5" in read_record(d)["args"]
    report = run_suite(suite, tmp_path, **mine)
    assert report.skipped == [d.name] and report.ran == report.backfilled == []
    assert (d / "checkpoint" / "state.pt").is_file() and _snapshot(tmp_path / suite.name) == other
    assert kept.read_text() == own
    again = dataclasses.replace(suite, sweeps=(*suite.sweeps, dataclasses.replace(suite.sweeps[0], tag="again")))
    report = run_suite(again, tmp_path, **mine)  # a sweep that shares the point: its record joins it
    assert report.skipped == [d.name] and report.ran == [] and _snapshot(tmp_path / suite.name) == other
    rec = read_point_record(kept)
    assert [m["sweep"] for m in rec["memberships"]] == ["reinforce", "again"] and "train.lr=0.5" not in rec["args"]


class _Killed(BaseException):
    """kill -9: nothing after it runs (no ``except Exception`` catches it)."""


def test_a_bench_killed_after_its_last_record_leaves_a_bench_json_that_says_so(tiny_exact_suite, tmp_path, monkeypatch):
    """A bench killed (kill -9, power loss) after its last point's record and before it wrote bench.json: the rerun
    finds every point finished and runs nothing, so bench.json stayed an earlier bench's (or none, and nothing
    marked the folder a bench's), and the page gave that bench's wall time as the last. It says that the last bench,
    with its command and points, stopped before its end."""
    path = tmp_path / tiny_exact_suite.name / "bench.json"
    run_suite(tiny_exact_suite, tmp_path, progress=False, command="first", seeds=[0], only=["best_of_n"])
    real = runner.write_json_atomic

    def killed_at_the_end(where, obj):
        if Path(where).name == "bench.json" and obj.get("finished"):
            raise _Killed
        real(where, obj)

    monkeypatch.setattr(runner, "write_json_atomic", killed_at_the_end)
    with pytest.raises(_Killed):
        run_suite(tiny_exact_suite, tmp_path, progress=False, command="second", seeds=[0, 1], only=["best_of_n"])
    monkeypatch.undo()
    again = run_suite(tiny_exact_suite, tmp_path, progress=False, command="third", seeds=[0, 1], only=["best_of_n"])
    assert again.ran == [] and again.skipped == ["best_of_n-n2-s0", "best_of_n-n2-s1"]
    bench = json.loads(path.read_text())
    said = {k: bench[k] for k in ("command", "points", "skipped", "ran", "finished", "wall_s", "complete")}
    assert said == {"command": "second", "points": 2, "skipped": 1, "ran": None, "finished": None, "wall_s": None,
                    "complete": None}  # fmt: skip


def test_a_bench_under_a_launch_of_several_processes_is_refused_before_it_writes_anything(
    tiny_exact_suite, tmp_path, monkeypatch
):
    """``accelerate launch`` (WORLD_SIZE=2) of a bench: every process would plan, run and write every point."""
    from rlhf_zoo.errors import UserError

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(UserError, match="not under a launch of 2 processes"):
        run_suite(tiny_exact_suite, tmp_path / "out", progress=False, records=tmp_path / "records")
    assert sorted(tmp_path.iterdir()) == []


def test_a_point_renamed_whose_run_folder_is_on_another_machine_is_renamed_in_the_records_folder(
    tiny_exact_suite, tmp_path, monkeypatch
):
    """The sweep's knob_label changed, and the point's record is in the shared records folder only (its run folder
    is on the machine that ran it): the record is kept under the point's new id, with its new label, and nothing
    runs or appears in this machine's folder."""
    from rlhf_zoo.bench.records import read_point_record

    before, suite = _relabelled(tiny_exact_suite)
    records, name = tmp_path / "records", suite.name
    run_suite(before, tmp_path / "there", progress=False, seeds=[0], records=records)
    calls = []
    monkeypatch.setattr(runner, "run_point", lambda *a, **k: calls.append(a))
    report = run_suite(suite, tmp_path / "here", progress=False, seeds=[0], records=records)
    assert calls == [] and report.renamed == report.skipped == ["best_of_n-size2-s0"] and report.redone == []
    assert sorted(p.stem for p in (records / name).glob("best_of_n-*")) == ["best_of_n-size2-s0"]
    rec = read_point_record(records / name / "best_of_n-size2-s0.json")
    assert rec["id"] == "best_of_n-size2-s0" and [m["knob_label"] for m in rec["memberships"]] == ["size"]
    assert [p.name for p in (tmp_path / "here" / name).iterdir() if p.is_dir()] == []


def test_a_point_renamed_here_moves_its_run_folder_and_records_to_its_new_id(tiny_exact_suite, tmp_path, monkeypatch):
    """The sweep's knob_label changed and the point ran on this machine: its run folder (metrics and all) moves to
    the point's new id, its record there and in the records folder takes the point's new id, label and memberships,
    and nothing runs; the earlier id is left in neither folder (the page would count the run twice)."""
    from rlhf_zoo.bench.records import read_point_record

    before, suite = _relabelled(tiny_exact_suite)
    records, name = tmp_path / "records", suite.name
    run_suite(before, tmp_path, progress=False, seeds=[0], records=records)
    old = tmp_path / name / "best_of_n-n2-s0"
    metrics = (old / "metrics.jsonl").read_text()
    calls = []
    monkeypatch.setattr(runner, "run_point", lambda *a, **k: calls.append(a))
    report = run_suite(suite, tmp_path, progress=False, seeds=[0], records=records)
    (p,) = expand(suite, seeds=[0])
    assert calls == [] and report.renamed == report.skipped == [p.id] == ["best_of_n-size2-s0"]
    assert report.redone == report.backfilled == []
    assert not old.exists() and (point_dir(tmp_path, p) / "metrics.jsonl").read_text() == metrics
    for rec in (read_record(point_dir(tmp_path, p)), read_point_record(records / name / f"{p.id}.json")):
        assert (rec["id"], rec["label"], rec["memberships"]) == (p.id, p.label, list(p.memberships))
        assert rec["memberships"][0]["knob_label"] == "size"
    assert sorted(x.stem for x in (records / name).glob("best_of_n-*")) == [p.id]


def test_each_seeds_pool_is_drawn_with_its_seed_and_recorded_in_the_records_folder(tmp_path, monkeypatch):
    """A Best-of-N pool on the testbed, two seeds: each seed's pool is its own draw (not one pool counted twice),
    its record is in the records folder as in its run folder, and the next bench draws neither again."""
    from rlhf_zoo.bench.records import read_point_record, record_path
    from rlhf_zoo.bench.suites import BEST_OF_N, Suite

    suite = Suite(
        name="testbedpool",
        description="test",
        task_args=("task=exact", "threads=1", "train.progress=false"),
        sweeps=(BEST_OF_N.over(1, 2, 4),),
        seeds=(0, 1),
        budget="seconds",
        bon_pool=4,
        exact=True,
    )
    records = tmp_path / "records"
    report = run_suite(suite, tmp_path, progress=False, records=records)
    points = expand(suite)
    assert report.ran == [p.id for p in points] == ["best_of_n-pool4-s0", "best_of_n-pool4-s1"]
    curves = []
    for p in points:
        run, kept = read_record(point_dir(tmp_path, p)), read_point_record(record_path(records, suite.name, p.id))
        assert run is not None and kept is not None and kept["pool"]["pool_size"] == run["pool"]["pool_size"] == 4
        best = run["pool"]["curve"]["4"]["reward/proxy"]
        assert kept["pool"]["curve"]["4"]["reward/proxy"] == pytest.approx(best, rel=1e-4)  # compact: rounded
        curves.append(run["pool"]["curve"])
    assert curves[0] != curves[1]
    drawn = []
    monkeypatch.setattr(runner, "run_pool_point", lambda *a, **k: drawn.append(a))
    assert run_suite(suite, tmp_path / "elsewhere", progress=False, records=records).skipped == report.ran
    assert drawn == []


def test_a_worker_told_to_stop_starts_no_further_point_and_an_idle_one_lives_on(monkeypatch):
    """A SIGTERM that reaches an idle worker is remembered, not raised (a worker killed inside the executor's queue
    would leave the others blocked for ever), and that worker refuses the points the executor had queued for it; a
    busy worker's run stops at the signal, and it starts no further point either."""
    import signal

    from rlhf_zoo.signals import StopSignal

    started = []

    def run_point(point, *a):
        started.append(point)
        if point == "busy":
            runner._worker_stop(signal.SIGTERM, None)  # the signal arrives while the point runs
        return {"id": point}

    monkeypatch.setattr(runner, "run_point", run_point)
    monkeypatch.setattr(runner, "_worker_busy", False)
    monkeypatch.setattr(runner, "_worker_stopped", None)
    assert runner._run_point_in_worker("first") == {"id": "first"}
    runner._worker_stop(signal.SIGTERM, None)  # idle: nothing raised
    with pytest.raises(StopSignal) as stopped:
        runner._run_point_in_worker("queued")
    assert stopped.value.signum == signal.SIGTERM and started == ["first"]

    monkeypatch.setattr(runner, "_worker_stopped", None)
    with pytest.raises(StopSignal):
        runner._run_point_in_worker("busy")
    with pytest.raises(StopSignal):
        runner._run_point_in_worker("queued")
    assert started == ["first", "busy"] and runner._worker_busy is False


def test_a_later_piece_with_a_setting_of_many_digits_joins_the_compact_records(tiny_exact_suite, tmp_path):
    """The records folder's records are compact, their settings rounded: a later piece of the suite (another seed,
    on a machine with only the records folder) given a setting to more digits than they keep makes the same
    settings as the first piece, and runs, rather than being refused as one the page could not pool."""
    piece = dict(progress=False, only=["best_of_n"], records=tmp_path / "records", extra=["train.lr=0.0123456789012"])
    run_suite(tiny_exact_suite, tmp_path / "a", seeds=[0], **piece)
    assert run_suite(tiny_exact_suite, tmp_path / "b", seeds=[1], **piece).ran == ["best_of_n-n2-s1"]


def test_a_refused_piece_deletes_no_run_folder(tiny_exact_suite, tmp_path, monkeypatch):
    """A piece refused because the page could not pool its records with the earlier pieces' is refused before
    anything is deleted: the run folder of a point it would have redone (here that of another run of it, with its
    record) stays as it was."""
    from rlhf_zoo.errors import UserError

    only = dict(progress=False, only=["best_of_n"])
    run_suite(tiny_exact_suite, tmp_path / "a", seeds=[0], records=tmp_path / "records", **only)
    run_suite(tiny_exact_suite, tmp_path / "b", seeds=[1], records=tmp_path / "other", extra=["train.lr=0.5"], **only)
    before = _snapshot(tmp_path / "b" / tiny_exact_suite.name)
    calls = []
    monkeypatch.setattr(runner, "run_point", lambda *a, **k: calls.append(a))
    with pytest.raises(UserError, match="would join the records of best_of_n at 2"):
        run_suite(
            tiny_exact_suite,
            tmp_path / "b",
            seeds=[1],
            records=tmp_path / "records",
            extra=["train.eval_prompts=2"],
            redo=True,  # the stale run folder would be deleted, but only after the plan is found poolable
            **only,
        )
    assert (
        calls == []
        and _snapshot(tmp_path / "b" / tiny_exact_suite.name) == before
        and list(before) == ["best_of_n-n2-s1"]
    )


def test_a_point_recorded_under_two_earlier_ids_keeps_one_record(tiny_exact_suite, tmp_path, monkeypatch):
    """The records folders of two branches merged, each of which had changed the sweep's knob_label its own way: the
    point is recorded, the same run, under two earlier ids. The bench keeps one as the point's, deletes the other and
    runs nothing; it kept the other beside it, and the page refused the two records of one seed."""
    import shutil

    from rlhf_zoo.bench.records import group_records, suite_records

    before, suite = _relabelled(tiny_exact_suite)
    records, name = tmp_path / "records", suite.name
    for label in ("n", "k"):
        branch = dataclasses.replace(before, sweeps=(dataclasses.replace(before.sweeps[0], knob_label=label),))
        run_suite(branch, tmp_path / label, progress=False, seeds=[0], records=tmp_path / f"records_{label}")
        shutil.copytree(tmp_path / f"records_{label}", records, dirs_exist_ok=True)
    assert sorted(p.stem for p in (records / name).glob("best_of_n-*")) == ["best_of_n-k2-s0", "best_of_n-n2-s0"]
    calls = []
    monkeypatch.setattr(runner, "run_point", lambda *a, **k: calls.append(a))
    report = run_suite(suite, tmp_path / "here", progress=False, seeds=[0], records=records)
    assert calls == [] and report.renamed == report.skipped == ["best_of_n-size2-s0"] and report.redone == []
    assert sorted(p.stem for p in (records / name).glob("best_of_n-*")) == ["best_of_n-size2-s0"]
    (group,) = group_records(suite_records(name, tmp_path / "here", records))["best_of_n"].values()
    assert [r["id"] for r in group.records] == ["best_of_n-size2-s0"]


def test_a_shared_point_split_in_two_is_renamed_for_one_and_run_new_for_the_other(tiny_exact_suite, tmp_path):
    """A point two sweeps shared (one record, both memberships) is split: the first sweep's knob_label changed (its
    point, the same run, takes the record over) and the second gained a setting (its point is another run). The record
    is the first point's; the second point runs as a new one, not counted as redone (no record of it was replaced)."""
    from rlhf_zoo.bench.records import read_point_record, record_path

    bon = tiny_exact_suite.sweeps[1]
    shared = dataclasses.replace(tiny_exact_suite, sweeps=(bon, dataclasses.replace(bon, tag="again")))
    records = tmp_path / "records"
    (old,) = expand(shared, seeds=[0])
    assert [m["sweep"] for m in old.memberships] == ["best_of_n", "again"]
    run_suite(shared, tmp_path, progress=False, seeds=[0], records=records)
    split = dataclasses.replace(
        shared,
        sweeps=(
            dataclasses.replace(bon, knob_label="size"),
            dataclasses.replace(bon, tag="again", fixed=("train.eval_prompts=2",)),
        ),
    )
    first, second = expand(split, seeds=[0])
    report = run_suite(split, tmp_path, progress=False, seeds=[0], records=records)
    assert report.renamed == [first.id] and report.ran == [second.id] and report.redone == []
    assert [m["sweep"] for m in read_point_record(record_path(records, split.name, first.id))["memberships"]] == [
        "best_of_n"
    ]
    assert not record_path(records, split.name, old.id).exists()


def test_parallel_points_draw_their_step_bars_on_their_workers_lines(tmp_path):
    """With jobs=2 each worker draws the step bar of its point on its own line beneath the points bar (lines 1 and 2,
    under one write lock): before, a suite's points had no step bars, and bars of two processes on stderr would
    have written over each other's line. Run as a user runs it, on a terminal (a pseudo-terminal here)."""
    import fcntl
    import pty
    import select
    import struct
    import subprocess
    import termios

    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: par\ndescription: two points\ntask_args: {task: exact, threads: 1, train.steps: 300, "
        "train.eval_every: 300}\nseeds: [0]\nsweeps:\n  - {tag: reinforce, objective: R, algo: reinforce, "
        "knob: algo.beta, values: [0.1, 1.0]}\n"
    )
    main, sub = pty.openpty()
    fcntl.ioctl(sub, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a terminal of 120 columns
    cmd = [sys.executable, "-m", "rlhf_zoo", "bench", f"suite={suite}", f"out={tmp_path / 'b'}", "jobs=2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=sub, cwd=tmp_path)
    os.close(sub)
    chunks = []
    while True:  # read the terminal until the bench has ended and its side is closed
        if select.select([main], [], [], 1.0)[0]:
            try:
                data = os.read(main, 65536)
            except OSError:  # the other side closed (Linux)
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(main)
    assert proc.wait(timeout=120) == 0
    err = b"".join(chunks).decode(errors="replace")
    lines = {}  # point → the lines beneath the points bar that its step bar was drawn on
    for point in ("reinforce-beta0.1-s0", "reinforce-beta1.0-s0"):
        for part in err.split(f"\r{point}:")[1:]:
            bar = part.split("\r")[0]
            assert "/300 [" in bar, repr(bar)
            lines.setdefault(point, set()).add(bar.count("\x1b[A"))  # the moves back up to the points bar
    assert sorted(min(v) for v in lines.values()) == [1, 2], (lines, err[-800:])
    assert all(len(v) == 1 for v in lines.values()), lines  # each on one line, as long as it ran


def test_what_a_worker_prints_goes_on_a_line_of_its_own_above_the_bars(monkeypatch):
    """With jobs=2 on a terminal, a language-model point's prompts line was written on after the points bar's text
    ("... 0/2 [00:00<?, ?point/s]rlhf-zoo: prompts: ..."): a worker's whole lines now overwrite the line the cursor
    rests on and end it, under the bars' lock, while its step bar still writes to the terminal itself."""
    from rlhf_zoo import progress
    from rlhf_zoo.progress import LinesAbove

    terminal = _Terminal()
    seen = {}

    def point(p, *rest):
        seen["placement"], seen["stderr"] = progress._placement, sys.stderr
        print("rlhf-zoo: prompts: 8 for training", file=sys.stderr, end="")
        print(" (more)\nsecond", file=sys.stderr)
        return {"id": p.id}

    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(runner, "run_point", point)
    monkeypatch.setattr(runner, "_worker_line", 2)
    p = dataclasses.make_dataclass("P", ["id"])("reinforce-beta0.1-s0")
    assert runner._run_point_in_worker(p, "dir") == {"id": p.id}
    assert isinstance(seen["stderr"], LinesAbove) and sys.stderr is terminal
    assert (seen["placement"].position, seen["placement"].desc, seen["placement"].file) == (2, p.id, terminal)
    assert terminal.getvalue() == "\r\x1b[Jrlhf-zoo: prompts: 8 for training (more)\n\r\x1b[Jsecond\n"
    monkeypatch.setattr(runner, "_worker_line", 0)  # no bars: stderr as it is, and no step bar
    runner._run_point_in_worker(p, "dir")
    assert seen["stderr"] is terminal and not seen["placement"].shown
