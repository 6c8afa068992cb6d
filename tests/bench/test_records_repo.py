"""Records that accumulate in the repository: a suite run in pieces renders what one run renders,
finished points are never recomputed, and records that are not comparable are refused."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import rlhf_zoo.bench.runner as runner
import rlhf_zoo.bench.version as version
from rlhf_zoo.bench.records import (
    FORMAT,
    check_comparable,
    commit_of,
    compact,
    dumps_record,
    group_records,
    read_oracle,
    read_point_record,
    repo_records,
    settings_of,
    uncompact,
    write_json_atomic,
)
from rlhf_zoo.bench.suites import EXACT, expand
from rlhf_zoo.cli import main
from rlhf_zoo.errors import UserError
from tests.bench.helpers import META, synth_record

# the exact suite, two sweeps, a handful of steps: a point takes a fraction of a second
TINY = ["suite=exact", "only=reinforce,best_of_n", "train.steps=4", "train.eval_every=2", "jobs=1", "progress=false"]
N_POINTS = len(expand(EXACT, seeds=[0], only=["reinforce", "best_of_n"]))  # per seed


def bench(*args: str) -> int:
    return main(["bench", *TINY, *args])


def _tables(page: str) -> list[list[list[str]]]:
    """The page's numbers: every markdown table after the verdicts, without the wall-time column and
    the provenance lines (commands and paths differ between runs)."""
    body = page[page.index("## Reward at matched KL") :]
    tables, current = [], []
    for line in body.splitlines() + [""]:
        if line.startswith("|"):
            if not line.startswith("|--"):
                current.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif current:
            wall = current[0].index("wall s") if "wall s" in current[0] else None
            tables.append([[c for i, c in enumerate(row) if i != wall] for row in current])
            current = []
    return tables


def _snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    return {p.name: (p.read_text(), p.stat().st_mtime_ns) for p in sorted(folder.glob("*.json"))}


def test_a_suite_run_in_pieces_renders_what_one_run_renders(tmp_path, capsys):
    # one piece: both seeds in one bench
    whole = tmp_path / "whole"
    assert bench(f"out={whole}/runs", f"docs={whole}/docs", "seeds=0,1") == 0
    # two pieces: one seed each, on "two machines" (two run folders) that share one records folder
    shared = tmp_path / "repo" / "records"
    assert bench(f"out={tmp_path}/machine_a", f"docs={tmp_path}/a", f"records={shared}", "seeds=0") == 0
    page_a = (tmp_path / "a" / "exact.md").read_text()
    assert f"| {N_POINTS} of the {N_POINTS} planned points have records " in page_a
    assert bench(f"out={tmp_path}/machine_b", f"docs={tmp_path}/b", f"records={shared}", "seeds=1") == 0
    capsys.readouterr()
    # the page, rendered from the shared records alone (no run folder), counts the planned points
    docs = tmp_path / "repo" / "docs"
    assert bench(f"out={tmp_path}/fresh", f"docs={docs}", f"records={shared}", "seeds=0,1", "render_only=true") == 0
    page = (docs / "exact.md").read_text()
    assert f"{2 * N_POINTS} of the {2 * N_POINTS} planned points have records" in page
    whole_page = (whole / "docs" / "exact.md").read_text()
    assert _tables(page) == _tables(whole_page) and len(_tables(page)) >= 4
    # the records themselves agree, number for number
    for name, rec in repo_records(shared / "exact").items():
        other = read_point_record(whole / "docs" / "records" / "exact" / f"{name}.json")

        def results(r):
            return {k: v for k, v in r["summary"].items() if not k.startswith("time/")}  # timings differ

        assert results(rec) == results(other) and rec["metrics"] == other["metrics"], name
    # a plan larger than what ran: the page says how much is there
    assert bench(f"out={tmp_path}/fresh", f"docs={docs}", f"records={shared}", "seeds=0,1,2", "render_only=true") == 0
    assert f"{2 * N_POINTS} of the {3 * N_POINTS} planned points have records" in (docs / "exact.md").read_text()


def test_a_second_run_recomputes_nothing_even_without_its_run_folders(tmp_path, capsys, monkeypatch):
    records = tmp_path / "records"
    args = [f"out={tmp_path}/runs", f"docs={tmp_path}/docs", f"records={records}", "seeds=0"]
    assert bench(*args) == 0
    before = _snapshot(records / "exact")
    assert len(before) == N_POINTS + 1  # and the oracle's curves
    capsys.readouterr()

    calls = []
    monkeypatch.setattr(runner, "run_point", lambda *a, **k: calls.append(a))
    assert bench(*args) == 0
    assert f"0 point(s) run (0 resumed, 0 redone), {N_POINTS} already finished" in capsys.readouterr().err
    shutil.rmtree(tmp_path / "runs")  # another machine: only the committed records
    assert bench(*args) == 0
    assert f"0 point(s) run (0 resumed, 0 redone), {N_POINTS} already finished" in capsys.readouterr().err
    assert calls == [] and _snapshot(records / "exact") == before  # not even rewritten


def test_records_are_small_and_read_back_as_written(tmp_path):
    """A compact record reads back as the run's: its arguments, settings, summary and, at every evaluation, each
    metric that the page's tables show (their curves over training, which the records keep for the plots and
    claims: records that lost ``quantile/log_mean`` or any other went unnoticed); the training logs stay in the run
    folder."""
    from rlhf_zoo.bench.render import EXTRA_COLUMNS, MAIN_COLUMNS

    shown = [k for k, _, _ in MAIN_COLUMNS + EXTRA_COLUMNS if not k.startswith("cost/") and k != "wall_s"]
    records = tmp_path / "records"
    assert bench(f"out={tmp_path}/runs", f"docs={tmp_path}/docs", f"records={records}", "seeds=0", "render=false") == 0
    kept = set()
    for path in sorted((records / "exact").glob("*-s0.json")):
        rec = read_point_record(path)
        full = json.loads((tmp_path / "runs" / "exact" / path.stem / "record.json").read_text())
        assert path.stat().st_size < 6000, path.name
        assert rec["args"] == full["args"] and rec["code_version"] == version.current_code_version()
        assert rec["settings"]["train.steps"] == 4 and "seed" not in rec["settings"]
        steps = [0, 2, 4] if path.name.startswith("reinforce") else [0]  # Best-of-N is evaluated once
        assert [m["step"] for m in rec["metrics"]] == [m["step"] for m in full["metrics"]] == steps
        for mine, theirs in zip(rec["metrics"], full["metrics"], strict=True):
            for key in (k for k in shown if k in theirs):
                if not math.isfinite(theirs[key]):  # JSON has no inf or NaN: left out
                    assert key not in mine, (path.name, key)
                else:
                    assert mine.get(key) == pytest.approx(theirs[key], rel=1e-5, abs=1e-12), (path.name, key)
                kept.add(key)
            assert "loss/total" not in mine  # training logs stay in the run folder
        assert rec["summary"]["kl/exact"] == pytest.approx(full["summary"]["kl/exact"], rel=1e-5, abs=1e-12)
    assert kept == set(shown)  # the exact suite's REINFORCE and Best-of-N evaluate every one of them
    # compact → text → back is the identity on a compact record
    rec = json.loads((tmp_path / "runs" / "exact" / "reinforce-beta_RL0.01-s0" / "record.json").read_text())
    small = compact(rec)
    assert compact(uncompact(json.loads(dumps_record(small)))) == small


def test_compact_rounds_drops_non_finite_and_keeps_sparse_curves_sparse():
    """A metric some evaluations lack comes back absent there (not null); a non-number or a key outside the
    curves stays out of them; ±inf and NaN become null (JSON has no such numbers)."""
    rec = {
        "id": "p",
        "summary": {"kl/exact": float("inf"), "reward/proxy": 0.123456789, "x": float("nan")},
        "metrics": [
            {"step": 0, "reward/proxy": 0.1, "kl/exact": 0.0, "bon/flag": True, "loss/total": 3.0},
            {"step": 10, "reward/proxy": 0.2, "reward/gold": 0.5},
        ],
    }
    small = compact(rec)
    assert set(small["curves"]) == {"step", "reward/proxy", "reward/gold", "kl/exact"}
    assert small["summary"] == {"kl/exact": None, "reward/proxy": 0.123457, "x": None}
    assert json.loads(dumps_record(small))["summary"]["kl/exact"] is None
    assert uncompact(small)["metrics"] == [
        {"step": 0, "reward/proxy": 0.1, "kl/exact": 0.0},
        {"step": 10, "reward/proxy": 0.2, "reward/gold": 0.5},
    ]


def test_a_seed_missing_a_value_does_not_blank_the_seed_mean_path():
    records = [
        synth_record(
            "reinforce", 0.1, 0, {}, path=[{"step": 0, "reward/proxy": 1.0}, {"step": 10, "reward/proxy": 3.0}]
        ),
        synth_record(
            "reinforce", 0.1, 1, {}, path=[{"step": 0, "reward/proxy": float("nan")}, {"step": 10, "reward/proxy": 5.0}]
        ),
    ]
    group = group_records(records)["reinforce"][0.1]
    assert group.mean_path("reward/proxy") == [(0.0, 1.0), (10.0, 4.0)]


def test_finals_and_paths_are_in_the_seed_order_of_the_records():
    """Records read in the order seed 2, 0, 1: a group's finals and paths line up with its records (seeds 0, 1, 2),
    which the claims zip with them (Jeffreys' estimate reads each record's n beside its finals)."""
    records = [
        synth_record("reinforce", 0.1, s, {"reward/proxy": 10.0 + s}, path=[{"step": 0, "reward/proxy": 20.0 + s}])
        for s in (2, 0, 1)
    ]
    group = group_records(records)["reinforce"][0.1]
    assert [r["seed"] for r in group.records] == [0, 1, 2]
    assert group.finals("reward/proxy") == [10.0, 11.0, 12.0]
    assert group.paths("reward/proxy") == [[(0.0, 20.0)], [(0.0, 21.0)], [(0.0, 22.0)]]


def test_a_flag_where_a_metric_belongs_is_no_number_in_the_finals_or_the_paths():
    """``True`` stored under a metric is missing (NaN) in what the claims and the plots read, as the tables and
    :func:`~rlhf_zoo.bench.stats.finite` read it, not a reward of 1.0 in one place and absent in another."""
    records = [
        synth_record("reinforce", 0.1, 0, {"reward/proxy": True}, path=[{"step": 0, "reward/proxy": True}]),
        synth_record("reinforce", 0.1, 1, {"reward/proxy": 3.0}, path=[{"step": 0, "reward/proxy": 3.0}]),
    ]
    group = group_records(records)["reinforce"][0.1]
    seed0, seed1 = group.finals("reward/proxy")
    assert math.isnan(seed0) and seed1 == 3.0
    assert group.mean_path("reward/proxy") == [(0.0, 3.0)]


def test_a_point_finished_in_its_run_folder_is_copied_not_run(tmp_path, capsys, monkeypatch):
    out = tmp_path / "runs"
    # runs made with records in another folder, then a new records folder: copied, not recomputed
    assert bench(f"out={out}", f"docs={tmp_path}/docs", f"records={tmp_path}/old", "seeds=0", "render=false") == 0
    calls = []
    monkeypatch.setattr(runner, "run_point", lambda *a, **k: calls.append(a))
    new = tmp_path / "new"
    assert bench(f"out={out}", f"docs={tmp_path}/docs", f"records={new}", "seeds=0", "render=false") == 0
    assert calls == [] and f"({N_POINTS} copied from {out / 'exact'})" in capsys.readouterr().err
    assert sorted(p.name for p in (new / "exact").glob("*-s0.json")) == sorted(
        p.name for p in (tmp_path / "old" / "exact").glob("*-s0.json")
    )


def test_a_stale_record_in_the_records_folder_is_redone_and_replaced(tmp_path, capsys):
    records = tmp_path / "records"
    args = [f"out={tmp_path}/runs", f"docs={tmp_path}/docs", f"records={records}", "seeds=0", "render=false"]
    assert bench(*args, "only=best_of_n") == 0
    capsys.readouterr()
    assert main(["bench", *TINY, *args, "only=best_of_n", "train.eval_prompts=2"]) == 2  # not replaced unasked
    err = capsys.readouterr().err
    assert "6 finished point(s)" in err and "train.eval_prompts=2 vs <unset>): redo=true" in err, err
    assert main(["bench", *TINY, *args, "only=best_of_n", "train.eval_prompts=2", "redo=true"]) == 0
    assert "6 point(s) run (0 resumed, 6 redone)" in capsys.readouterr().err
    for path in (records / "exact").glob("best_of_n-*.json"):
        assert "train.eval_prompts=2" in read_point_record(path)["args"]


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def _set_code_version(path: Path, code_version: str) -> None:
    """A record in the records folder made to come from another code version."""
    path.write_text(dumps_record({**json.loads(path.read_text()), "code_version": code_version}))


def test_records_of_another_code_version_are_not_pooled(tmp_path, capsys):
    records = tmp_path / "records"
    args = [f"out={tmp_path}/runs", f"docs={tmp_path}/docs", f"records={records}", "seeds=0,1"]
    assert bench(*args, "render=false") == 0
    assert bench(*args, "render_only=true") == 0
    path = records / "exact" / "reinforce-beta_RL0.1-s1.json"
    _set_code_version(path, "0123456789ab")
    capsys.readouterr()
    assert bench(*args, "render_only=true") == 2
    err = _one_line_error(capsys)
    mine = version.current_code_version()
    assert "reinforce beta_RL=0.1" in err and "0123456789ab" in err and mine in err, err
    # and the runner never recomputes it, but says that its code version is not this code's
    assert bench(*args, "render=false") == 0
    err = capsys.readouterr().err
    assert "1 finished point(s) have records of code version 0123456789ab" in err and "0 point(s) run" in err


def _first_piece(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """Seed 0 of the tiny suite run as a first piece: (records, out, the bench arguments without a seed)."""
    records, out = tmp_path / "records", tmp_path / "runs"
    args = [f"out={out}", f"docs={tmp_path}/docs", f"records={records}", "render=false"]
    assert bench(*args, "seeds=0") == 0
    return records, out, args


def test_a_seed_that_would_join_records_of_another_code_version_is_refused_before_anything_runs(tmp_path, capsys):
    """A suite continued in a later piece (seeds=1) after the code changed: the page could not pool its new
    records with the first piece's, so the bench says so at once rather than after the runs (hours on an LM)."""
    records, out, args = _first_piece(tmp_path)
    path = records / "exact" / "reinforce-beta_RL0.1-s0.json"
    _set_code_version(path, "0123456789ab")
    capsys.readouterr()
    assert bench(*args, "seeds=1") == 2
    err = _one_line_error(capsys)
    assert "reinforce-beta_RL0.1-s1 would join the records of reinforce at 0.1" in err and "(seed(s) 0)" in err, err
    assert "0123456789ab" in err and version.current_code_version() in err
    assert "run this piece at that commit" in err and "(commit " in err, err
    assert not list((out / "exact").glob("*-s1")) and not list((records / "exact").glob("*-s1.json"))
    # the records of that value run again (deleted) or the other values alone: they pool, and run
    assert main(["bench", *(a for a in TINY if not a.startswith("only=")), "only=best_of_n", *args, "seeds=1"]) == 0
    path.unlink()
    shutil.rmtree(out / "exact" / "reinforce-beta_RL0.1-s0")
    assert bench(*args, "seeds=0,1") == 0
    assert json.loads(path.read_text())["code_version"] == version.current_code_version()


def test_records_of_another_code_version_from_several_commits_ask_for_one_of_them(tmp_path, capsys):
    """Seeds 0 and 1 of a value recorded at two commits of one other code version: a later piece is told to run at
    one of those commits (either makes records that pool with them), not at 'that commit' of a list."""
    records, out = tmp_path / "records", tmp_path / "runs"
    args = [f"out={out}", f"docs={tmp_path}/docs", f"records={records}", "render=false"]
    assert bench(*args, "seeds=0,1") == 0
    for seed, commit in ((0, "a" * 40), (1, "b" * 40)):
        path = records / "exact" / f"reinforce-beta_RL0.1-s{seed}.json"
        path.write_text(
            dumps_record(
                {
                    **json.loads(path.read_text()),
                    "code_version": "0123456789ab",
                    "git_commit": commit,
                    "git_dirty": False,
                }
            )
        )
    capsys.readouterr()
    assert bench(*args, "seeds=2") == 2
    err = _one_line_error(capsys)
    assert f"of code version 0123456789ab (commits {'a' * 10}, {'b' * 10})" in err, err
    assert "run this piece at one of those commits" in err, err


def test_a_seed_that_would_join_records_of_other_settings_is_refused_before_anything_runs(tmp_path, capsys):
    """A later piece (seeds=1) given another override than the first (train.steps): the page could not pool its
    records with the first piece's, so the bench says so at once, naming the setting, and runs nothing."""
    records, out, args = _first_piece(tmp_path)
    capsys.readouterr()
    assert bench(*args, "seeds=1", "train.steps=6") == 2
    err = _one_line_error(capsys)
    assert "best_of_n-n1-s1 would join the records of best_of_n at 1 (seed(s) 0)" in err, err
    assert "train.steps=6 vs 4" in err and "settings" in err, err
    assert not list((out / "exact").glob("*-s1")) and not list((records / "exact").glob("*-s1.json"))
    # the same settings pool, and run; so do both seeds run again with the new one
    assert bench(*args, "seeds=1") == 0
    assert bench(*args, "seeds=0,1", "train.steps=6", "redo=true") == 0
    assert all("train.steps=6" in read_point_record(p)["args"] for p in (records / "exact").glob("reinforce-*.json"))


def test_records_of_one_value_written_as_int_and_float_are_checked_together():
    """A suite file that once said ``n: 2`` and now ``n: 2.0`` writes points the tables and claims pool as one
    value (2 == 2.0); their code versions must then be compared too, not passed as two points."""
    a = synth_record("bond", 2, 0, {"kl/exact": 1.0}, knob="algo.n")
    b = synth_record("bond", 2.0, 1, {"kl/exact": 3.0}, knob="algo.n")
    a["code_version"], b["code_version"] = "aaaaaaaaaaaa", "bbbbbbbbbbbb"
    assert list(group_records([a, b])["bond"]) == [2]  # one group: its seeds are pooled
    with pytest.raises(UserError, match="aaaaaaaaaaaa and bbbbbbbbbbbb"):
        check_comparable([a, b], "exact")


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [("code_version", "bbbbbbbbbbbb", "code versions aaaaaaaaaaaa and bbbbbbbbbbbb"), ("settings", {}, "settings")],
)
def test_the_last_seed_of_a_value_is_checked_against_the_first(key, value, needle):
    """Three seeds of one value, the third of another code version or other settings: refused, not pooled
    because the first two agree."""
    recs = [synth_record("bond", 2, seed, {"kl/exact": 1.0}, knob="algo.n") for seed in (0, 1, 2)]
    for rec in recs:
        rec["code_version"], rec["settings"] = "aaaaaaaaaaaa", {"train.steps": 5}
    recs[2][key] = value
    with pytest.raises(UserError, match=f"bond-2-s0 \\(seed 0\\) and bond-2-s2 \\(seed 2\\).*{needle}"):
        check_comparable(recs, "exact")


def test_a_records_commit_is_its_own_or_for_format_1_its_runs():
    """Format 1 kept the commit only in the run's meta.json, with ``-dirty`` appended; a record outside git has
    none."""
    old = synth_record("bond", 2, 0, {}, knob="algo.n")
    assert commit_of(old) == "0123456789"
    assert commit_of({**old, "meta": {**META, "git_commit": "0123456789abcdef0123-dirty"}}) == "0123456789-dirty"
    assert commit_of({**old, "meta": {**META, "git_commit": "unknown"}}) == "unknown"
    assert commit_of({**old, "git_commit": "f" * 40, "git_dirty": False}) == "ffffffffff"
    assert commit_of({**old, "git_commit": None, "git_dirty": None}) == "unknown"


def test_a_records_settings_leave_out_what_cannot_change_its_numbers():
    """The seed, folders, device, threads and the :data:`NO_EFFECT` keys are no settings, nor is a mapping left
    empty (a key added since: records written before it compare equal)."""
    config = {
        "seed": 3,
        "run_dir": "runs/x",
        "resume": True,
        "device": "cpu",
        "threads": 2,
        "task": {"name": "exact", "proxy_options": {}},
        "train": {"steps": 5, "lr": 0.01, "progress": False, "checkpoint_every": 7},
    }
    assert settings_of(config) == {"task.name": "exact", "train.lr": 0.01, "train.steps": 5}


def test_a_knob_whose_values_are_lists_is_grouped_checked_and_shown_as_written():
    """A suite file sweeping ``model.lora_target_modules: [[q_proj], [q_proj, v_proj]]``: every point ran, then
    the page ended in a traceback (TypeError: unhashable type: 'list') where it grouped the records by value."""
    from rlhf_zoo.bench.render import final_table

    values, knob = (["q_proj"], ["q_proj", "v_proj"]), "model.lora_target_modules"
    recs = [synth_record("lora", v, s, {"kl/exact": 1.0}, knob=knob) for v in values for s in (0, 1)]
    check_comparable(recs, "mine")
    groups = group_records(recs)
    assert {v: sorted(g.by_seed) for v, g in groups["lora"].items()} == {tuple(v): [0, 1] for v in values}
    assert 'lora_target_modules=["q_proj", "v_proj"]' in final_table(groups)
    recs[3]["code_version"] = "bbbbbbbbbbbb"
    with pytest.raises(UserError, match="come from code versions unknown and bbbbbbbbbbbb"):
        check_comparable(recs, "mine")


def test_two_records_of_one_value_and_seed_are_refused():
    """A group keeps one record per seed: two points of one sweep value with the same seed (say, records kept
    from a suite file that named the point otherwise) are refused, not one silently dropped from the means
    while the page counts both."""
    a = synth_record("bond", 2, 0, {"kl/exact": 1.0}, knob="algo.n")
    b = synth_record("bond", 2, 0, {"kl/exact": 3.0}, knob="algo.n")
    b["id"] = "bond-n2-renamed-s0"
    assert len(group_records([a, b])["bond"][2].by_seed) == 1
    with pytest.raises(UserError, match="are both seed 0"):
        check_comparable([a, b], "exact")
    check_comparable([a, a], "exact")  # one point met twice (its run folder and its compact record) is one


def test_records_with_other_settings_are_not_pooled(tmp_path, capsys):
    """Seed 1 run elsewhere with another setting and its records copied in (the bench itself refuses to add
    them: test_a_seed_that_would_join_records_of_other_settings_is_refused_before_anything_runs)."""
    records = tmp_path / "records"
    base = [f"out={tmp_path}/runs", f"docs={tmp_path}/docs", f"records={records}", "only=best_of_n", "render=false"]
    assert bench(*base, "seeds=0") == 0
    elsewhere = [f"out={tmp_path}/runs2", f"docs={tmp_path}/docs", f"records={tmp_path}/records2", *base[3:]]
    assert bench(*elsewhere, "seeds=1", "train.eval_prompts=2") == 0  # another setting for seed 1
    for path in (tmp_path / "records2" / "exact").glob("*-s1.json"):
        shutil.copy(path, records / "exact")
    capsys.readouterr()
    assert bench(*base[:-1], "seeds=0,1", "render_only=true") == 2
    err = _one_line_error(capsys)
    assert "best_of_n n=1: best_of_n-n1-s0 (seed 0) and best_of_n-n1-s1 (seed 1)" in err, err
    assert "train.eval_prompts=4 vs 2" in err, err


def test_a_broken_record_is_named_in_one_line(tmp_path, capsys):
    records = tmp_path / "records"
    (records / "exact").mkdir(parents=True)
    (records / "exact" / "best_of_n-n2-s0.json").write_text('{\n "format": 2,\n}\n')
    assert bench(f"out={tmp_path}/runs", f"docs={tmp_path}/docs", f"records={records}", "seeds=0") == 2
    err = _one_line_error(capsys)
    assert "best_of_n-n2-s0.json is not valid JSON" in err


def test_a_record_left_in_a_merge_conflict_is_named_as_one(tmp_path, capsys):
    """Two machines that ran the same point leave git's conflict markers in its record when their records are
    merged: the line says so and how to keep one side, not only that the file is not JSON."""
    records = tmp_path / "records"
    (records / "exact").mkdir(parents=True)
    path = records / "exact" / "best_of_n-n2-s0.json"
    path.write_text('{\n<<<<<<< HEAD\n "format": 2\n=======\n "format": 2\n>>>>>>> other\n}\n')
    assert bench(f"out={tmp_path}/runs", f"docs={tmp_path}/docs", f"records={records}", "seeds=0") == 2
    err = _one_line_error(capsys)
    assert f"the record {path} holds git's merge conflict markers" in err, err
    assert f"git checkout --ours {path}, or --theirs" in err, err


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('{"format": 99, "id": "x"}', "has format 99; this rlhf_zoo reads formats"),
        # said "has format None"
        ("[2]", "holds a list, not a record (an object); restore it from git or delete it"),
    ],
)
def test_a_record_of_a_format_this_version_does_not_read_is_refused_not_read(tmp_path, text, needle):
    """A record written by a later rlhf_zoo (or a file that holds no record) in the records folder: refused,
    naming it, rather than taken for a finished point of a layout this version does not know."""
    path = tmp_path / "records" / "exact" / "best_of_n-n2-s0.json"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.raises(UserError, match=re.escape(f"the record {path} {needle}")):
        read_point_record(path)


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("summary", None, "its summary is null, not an object"),
        ("curves", 5, "its curves is an integer, not an object"),
        ("seed", "x", "its seed is a string, not an integer"),
        ("memberships", [5], "its memberships hold an integer, not an object per sweep"),
    ],
)
def test_a_damaged_record_is_named_in_one_line(tmp_path, capsys, field, value, needle):
    """A record with a field of another kind (a hand edit, a merge gone wrong) ended the page's rendering in an
    AttributeError or ValueError traceback."""
    records = tmp_path / "records"
    path = records / "exact" / "best_of_n-n2-s0.json"
    path.parent.mkdir(parents=True)
    rec = compact(synth_record("best_of_n", 2, 0, {"kl/exact": 1.0}, knob="algo.n"))
    path.write_text(json.dumps({**rec, field: value}))
    assert bench(f"out={tmp_path}/runs", f"docs={tmp_path}/docs", f"records={records}", "render_only=true") == 2
    err = _one_line_error(capsys)
    assert f"the record {path} is damaged: {needle}; restore it from git or delete it" in err, err


def test_a_run_folders_record_of_a_later_format_is_refused_and_kept(tmp_path, capsys):
    """A run folder whose record a later rlhf_zoo wrote (format 99) read as an unfinished point: the bench deleted
    the folder and ran the point again. It is refused in one line naming it, as in the records folder, and kept."""
    (point,) = expand(EXACT, seeds=[0], only=["best_of_n"])[:1]
    d = runner.point_dir(tmp_path / "runs", point)
    d.mkdir(parents=True)
    write_json_atomic(d / "record.json", {"format": 99, "id": point.id})
    assert bench(f"out={tmp_path}/runs", f"docs={tmp_path}/docs", "seeds=0", "only=best_of_n") == 2
    err = _one_line_error(capsys)
    assert f"the record {d / 'record.json'} has format 99; this rlhf_zoo reads formats" in err, err
    assert json.loads((d / "record.json").read_text())["format"] == 99


def test_the_oracle_is_the_records_folders_else_the_run_folders(tmp_path):
    """The page's oracle curves come from the records folder, as its points do; the run folder's only where the
    records folder has none (a bench run without one)."""
    out, records = tmp_path / "runs", tmp_path / "records"
    write_json_atomic(out / "exact" / "oracle.json", {"frontier": [{"kl": 2.0}]})
    assert read_oracle("exact", out, records) == read_oracle("exact", out, None) == {"frontier": [{"kl": 2.0}]}
    write_json_atomic(records / "exact" / "oracle.json", {"frontier": [{"kl": 1.0}]})
    assert read_oracle("exact", out, records) == {"frontier": [{"kl": 1.0}]}


def test_old_records_still_load_as_code_version_unknown(tmp_path, capsys):
    out = tmp_path / "runs"
    old = []
    for seed in (0, 1):
        rec = synth_record("reinforce", 0.1, seed, {"kl/exact": 1.0, "reward/proxy": 1.0 + seed})
        rec["format"] = 1
        rec["id"] = f"reinforce-beta0.1-s{seed}"
        old.append(rec)
        write_json_atomic(out / "exact" / rec["id"] / "record.json", rec)
    assert main(["bench", "suite=exact", f"out={out}", f"docs={tmp_path}/docs", "render_only=true"]) == 0
    page = (tmp_path / "docs" / "exact.md").read_text()
    assert "| unknown (all 2 points): a hash" in page and "records from commit 0123456789 (all 2 points)" in page
    # a new record beside them, in the same sweep value: refused, naming both versions
    new = {**old[1], "format": FORMAT, "id": "reinforce-beta0.1-s2", "seed": 2, "code_version": "abcdefabcdef"}
    write_json_atomic(out / "exact" / new["id"] / "record.json", new)
    capsys.readouterr()
    assert main(["bench", "suite=exact", f"out={out}", f"docs={tmp_path}/docs", "render_only=true"]) == 2
    err = _one_line_error(capsys)
    assert "code versions unknown and abcdefabcdef" in err


def test_the_page_names_the_commits_behind_the_points(tmp_path, capsys, monkeypatch):
    records = tmp_path / "records"
    args = [f"out={tmp_path}/runs", f"docs={tmp_path}/docs", f"records={records}", "only=best_of_n"]
    monkeypatch.setattr(version, "git_state", lambda cwd=None, written=(): ("a" * 40, False))
    assert bench(*args, "seeds=0,1", "render=false") == 0
    monkeypatch.setattr(version, "git_state", lambda cwd=None, written=(): ("b" * 40, True))
    assert bench(*args, "seeds=2") == 0
    page = (tmp_path / "docs" / "exact.md").read_text()
    assert "records from commit aaaaaaaaaa (12 points), bbbbbbbbbb-dirty (6 points)" in page
    rows = [line for line in page.splitlines() if line.startswith("| 2 ")]  # Best-of-N, n = 2
    assert rows and rows[0].rstrip(" |").endswith("aaaaaaaaaa, bbbbbbbbbb-dirty")
    rec = read_point_record(records / "exact" / "best_of_n-n2-s2.json")
    assert (rec["git_commit"], rec["git_dirty"], rec["package_version"]) == (
        "b" * 40,
        True,
        version.stamp()["package_version"],
    )


def test_git_state_in_a_repository_and_outside(tmp_path):
    """A record's commit and dirty flag, and a run's ``meta.json`` commit, by one rule: tracked files outside docs/."""
    from rlhf_zoo.runlog import git_commit

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    assert version.git_state(tmp_path) == (None, None)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "m.py").write_text("x = 1\n")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("a page\n")
    subprocess.run([*git, "add", "m.py", "docs/page.md"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "m"], cwd=tmp_path, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert version.git_state(tmp_path) == (head, False)
    (tmp_path / "new.py").write_text("")  # untracked: not dirty
    (tmp_path / "docs" / "page.md").write_text("the page, rendered again\n")  # what the bench writes
    assert version.git_state(tmp_path) == (head, False)
    assert version.git_state(tmp_path / "docs") == (head, False)
    assert git_commit(tmp_path) == git_commit(tmp_path / "docs") == head  # a run's meta.json says the same
    (tmp_path / "m.py").write_text("x = 2\n")
    assert version.git_state(tmp_path) == version.git_state(tmp_path / "docs") == (head, True)
    assert git_commit(tmp_path) == git_commit(tmp_path / "docs") == f"{head}-dirty"


SOURCE = '''"""A module."""


def loss(x, beta=0.5):
    """The loss."""
    return -(x * beta).mean()  # a comment
'''


def test_the_code_version_follows_the_code_not_its_comments():
    same = [
        SOURCE.replace("# a comment", "# another comment"),
        SOURCE.replace('"""The loss."""', '"""The loss, documented at length.\n\n    More words."""'),
        SOURCE.replace('"""A module."""', ""),
        SOURCE.replace("return -(x * beta).mean()", "return -(\n        x * beta\n    ).mean()"),
    ]
    changed = [
        SOURCE.replace("beta=0.5", "beta=0.25"),
        SOURCE.replace("-(x * beta)", "(x * beta)"),
        SOURCE.replace(".mean()", ".sum()"),
        SOURCE.replace("def loss", "def objective"),
    ]
    base = version.hash_sources([("algorithms/m.py", SOURCE)])
    assert len(base) == 12 and int(base, 16) >= 0
    for text in same:
        assert version.hash_sources([("algorithms/m.py", text)]) == base, text
    for text in changed:
        assert version.hash_sources([("algorithms/m.py", text)]) != base, text
    assert version.hash_sources([("algorithms/other.py", SOURCE)]) != base  # where the code lives counts
    for code in ("class Loss:\n    {}\n    beta = 0.5\n", "async def loss(x):\n    {}\n    return x\n"):
        one, other = (code.format(doc) for doc in ('"""A loss."""', '"""The loss, reworded."""'))
        assert version.hash_sources([("m.py", one)]) == version.hash_sources([("m.py", other)]), code


def test_the_code_version_of_a_copy_of_the_package(tmp_path):
    names = {p.relative_to(version.PACKAGE).as_posix() for p in version.code_files()}
    decide = {"policies/sampling.py", "rollout.py", "rng.py", "algorithms/jbond.py", "functional/kl.py", "evaluate.py"}
    assert decide | {"evaluate_pool.py", "tasks/oracle.py"} <= names
    assert "train.py" not in names and "bench/version.py" not in names
    root = tmp_path / "rlhf_zoo"
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(version.PACKAGE / name, root / name)
    assert version.code_version(root) == version.code_version() == version.current_code_version()
    jbond = root / "algorithms" / "jbond.py"
    text = jbond.read_text()
    jbond.write_text("# a new comment\n" + text.replace('"""', '"""Reworded. ', 1))
    assert version.code_version(root) == version.current_code_version()
    jbond.write_text(text + "\n\ndef _extra(x):\n    return x + 1\n")
    assert version.code_version(root) != version.current_code_version()
    (root / "train.py").write_text("anything = 1\n")  # not a module that decides the numbers
    jbond.write_text(text)
    assert version.code_version(root) == version.current_code_version()


def test_groups_are_in_numeric_order_of_their_knob_values():
    """Best-of-N at n = 1, 2, 4, 16, 32: the table rows and the curves run in n, not in the text order
    1, 16, 2, 32, 4."""
    records = [synth_record("best_of_n", n, 0, {"kl/exact": 0.1 * n}, knob="algo.n") for n in (32, 2, 16, 1, 4)]
    assert list(group_records(records)["best_of_n"]) == [1, 2, 4, 16, 32]


def test_the_seed_mean_path_keeps_the_steps_every_seed_evaluated():
    """Seed 0 was evaluated at steps 0, 5, 10, seed 1 at 0 and 10: the mean path is over steps 0 and 10."""
    records = [
        synth_record("reinforce", 0.1, 0, {}, path=[{"step": s, "reward/proxy": float(s)} for s in (0, 5, 10)]),
        synth_record("reinforce", 0.1, 1, {}, path=[{"step": s, "reward/proxy": 2.0 * s} for s in (0, 10)]),
    ]
    assert group_records(records)["reinforce"][0.1].mean_path("reward/proxy") == [(0.0, 0.0), (10.0, 15.0)]


def test_a_key_given_twice_makes_the_run_of_its_later_value():
    """A suite's ``train.steps=300`` and the command line's ``train.steps=5`` make a 5-step run, as the configuration
    reads them: a record of that run is the point's whatever the suite's value was, and not one of 300 steps."""
    from rlhf_zoo.bench.records import same_run
    from rlhf_zoo.config import load_config

    point = ["task=exact", "algo=bond", "train.steps=300", "train.steps=5"]
    assert load_config([*point, "run_dir=unused"]).train.steps == 5
    assert same_run(point, ["task=exact", "algo=bond", "train.steps=200", "train.steps=5"])
    assert same_run(point, ["task=exact", "algo=bond", "train.steps=5"])
    assert not same_run(point, ["task=exact", "algo=bond", "train.steps=300"])


def test_a_format_1_record_in_the_records_folder_still_loads_as_code_version_unknown(tmp_path):
    """The records folder reads every format this version reads, as the run folders do: a record of format 1 (no
    code version, no settings) is read back, not refused as a later rlhf_zoo's."""
    from rlhf_zoo.bench.records import code_version_of, record_settings, write_point_record

    old = {**synth_record("reinforce", 0.1, 3, {"kl/exact": 1.0}), "format": 1}
    path = write_point_record(tmp_path, old)
    back = read_point_record(path)
    assert back["format"] == 1 and back["id"] == old["id"] and code_version_of(back) == "unknown"
    assert record_settings(back) == {"algo": "reinforce", "algo.beta": "0.1"}  # its arguments, the seed left out
    assert list(repo_records(tmp_path / "exact")) == [old["id"]]


def test_records_of_two_code_versions_are_refused_naming_the_commits_behind_them():
    """The refusal says which commits wrote the two records (format 1: the run's meta.json), so that the user knows
    which records to delete."""
    a = {**synth_record("bond", 2, 0, {"kl/exact": 1.0}, knob="algo.n"), "code_version": "aaaaaaaaaaaa"}
    b = synth_record("bond", 2, 1, {"kl/exact": 3.0}, knob="algo.n")
    b.update(code_version="bbbbbbbbbbbb", git_commit="f" * 40, git_dirty=True)
    with pytest.raises(UserError, match=r"commits 0123456789 and ffffffffff-dirty"):
        check_comparable([a, b], "exact")


def test_records_with_other_settings_are_refused_naming_three_of_them_and_counting_the_rest():
    a = {**synth_record("bond", 2, 0, {"kl/exact": 1.0}, knob="algo.n"), "settings": {"a": 1, "b": 1, "c": 1, "d": 1}}
    b = {**synth_record("bond", 2, 1, {"kl/exact": 1.0}, knob="algo.n"), "settings": {"a": 2, "b": 2, "c": 2}}
    with pytest.raises(UserError, match=r"different settings \(a=1 vs 2, b=1 vs 2, c=1 vs 2 \(and 1 more\)\)"):
        check_comparable([a, b], "exact")


def test_sweeps_are_grouped_in_suite_order_not_by_name():
    """The tables, plots and claims list a suite's sweeps in the order the suite declares them (each membership's
    ``order``), whatever their tags' alphabetical order or the order the records are read in."""
    records = [
        synth_record("alpha", 1, 0, {"kl/exact": 0.1}, order=2),
        synth_record("zeta", 1, 0, {"kl/exact": 0.1}, order=0),
        synth_record("mid", 1, 0, {"kl/exact": 0.1}, order=1),
    ]
    assert list(group_records(records)) == ["zeta", "mid", "alpha"]


def test_a_pool_beside_exact_points_keeps_the_suite_exact():
    """A suite on the exact testbed with a Best-of-N pool: the pool's records estimate KL from the pool
    (``bon_pool``), the trained points' are exact; the records still come from a task with an exact oracle."""
    from rlhf_zoo.bench.records import is_exact

    exact = synth_record("reinforce", 0.1, 0, {"kl/exact": 1.0})
    pool = synth_record("best_of_n", 2, 0, {"kl/exact": 0.3}, estimator="bon_pool")
    assert is_exact([pool, exact]) and is_exact([exact, pool])
    assert not is_exact([pool])


def test_a_record_in_the_records_folder_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    """A kill while a point's record is written to the records folder (shared by every piece of a suite, committed)
    leaves the record that was there, whole, and no other file beside it."""
    import os

    from rlhf_zoo.bench.records import record_path, write_point_record

    old = synth_record("bond", 2, 0, {"kl/exact": 1.0}, knob="algo.n")
    write_point_record(tmp_path, old)
    path = record_path(tmp_path, "exact", old["id"])
    before = path.read_text()

    def killed(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        write_point_record(tmp_path, {**old, "summary": {**old["summary"], "kl/exact": 2.0}})
    monkeypatch.undo()
    assert path.read_text() == before and [p.name for p in path.parent.iterdir()] == [path.name]


def test_every_record_holds_the_bench_command_that_made_it_and_the_bench_says_where_the_page_is(tmp_path, capsys):
    """The page prints the command behind its records, so a reader can run it again: each record holds the whole
    bench command line, and the bench names the page it wrote."""
    args = [f"out={tmp_path}/runs", f"docs={tmp_path}/docs", "seeds=0", "only=best_of_n", "train.eval_prompts=2"]
    assert bench(*args) == 0
    command = " ".join(["rlhf-zoo", "bench", *TINY, *args])
    recs = repo_records(tmp_path / "docs" / "records" / "exact")
    assert len(recs) == 6 and {r["bench_command"] for r in recs.values()} == {command}
    assert f"wrote {tmp_path / 'docs' / 'exact.md'} and its plots" in capsys.readouterr().out


def test_a_run_folders_record_without_a_format_is_an_unfinished_point_not_a_traceback(tmp_path):
    """A ``record.json`` that holds an object without ``format`` (no record this version wrote: a file left by
    hand) is no finished point, as a missing or broken one is: None, not a KeyError."""
    from rlhf_zoo.bench.records import out_records, read_record

    write_json_atomic(tmp_path / "exact" / "p" / "record.json", {"id": "p", "summary": {}})
    assert read_record(tmp_path / "exact" / "p") is None
    assert out_records(tmp_path / "exact") == {}


def test_a_compact_record_of_a_later_format_is_refused_too(tmp_path):
    """A later rlhf_zoo's record in the compact layout (with ``curves``) is refused as any other of its format,
    not read back as this version's."""
    rec = compact(synth_record("best_of_n", 2, 0, {"kl/exact": 1.0}, knob="algo.n"))
    assert "curves" in rec
    path = tmp_path / "exact" / "best_of_n-n2-s0.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({**rec, "format": 99}))
    with pytest.raises(UserError, match="has format 99; this rlhf_zoo reads formats"):
        read_point_record(path)


def test_a_seed_written_as_true_is_a_damaged_record(tmp_path):
    """JSON's ``true`` is no seed, though Python counts a bool as an int: the record is named as damaged, not
    pooled as seed 1."""
    path = tmp_path / "exact" / "best_of_n-n2-s0.json"
    path.parent.mkdir(parents=True)
    rec = compact(synth_record("best_of_n", 2, 0, {"kl/exact": 1.0}, knob="algo.n"))
    path.write_text(json.dumps({**rec, "seed": True}))
    with pytest.raises(UserError, match="its seed is true, not an integer"):
        read_point_record(path)


def test_a_tuple_in_a_record_is_rounded_as_a_list_is():
    """A knob value or a curve held as a tuple in memory is stored as a JSON list, rounded like one."""
    from rlhf_zoo.bench.records import rounded

    x = 0.123456789
    assert rounded((x, 2, "a")) == rounded([x, 2, "a"]) == [float(f"{x:.6g}"), 2, "a"]


def test_a_points_record_in_the_records_folder_wins_over_its_run_folders(tmp_path):
    """The same point in both places: the records folder's record is the one read (the run folder's may be of an
    older run that the records folder's replaced)."""
    from rlhf_zoo.bench.records import suite_records, write_point_record

    out, records = tmp_path / "runs", tmp_path / "records"
    old = synth_record("best_of_n", 2, 0, {"kl/exact": 1.0}, knob="algo.n")
    write_json_atomic(out / "exact" / old["id"] / "record.json", old)
    write_point_record(records, {**old, "summary": {**old["summary"], "kl/exact": 2.0}})
    (rec,) = suite_records("exact", out, records)
    assert rec["summary"]["kl/exact"] == 2.0


def test_format_1_records_that_differ_only_in_what_cannot_change_their_numbers_are_pooled():
    """A format-1 record's settings are its arguments without the keys that are no settings (the device, threads,
    progress bar, ...), as a later record's are: seeds run with another thread count pool; another step count
    does not."""
    from rlhf_zoo.bench.records import record_settings

    def old(seed: int, *extra: str) -> dict:
        rec = synth_record("reinforce", 0.1, seed, {"kl/exact": 1.0})
        return {**rec, "format": 1, "args": [*rec["args"], *extra]}

    a, b = old(0, "threads=1", "train.progress=true"), old(1, "threads=4", "device=cpu", "train.progress=false")
    assert record_settings(a) == record_settings(b) == {"algo": "reinforce", "algo.beta": "0.1"}
    check_comparable([a, b], "exact")
    with pytest.raises(UserError, match="different settings"):
        check_comparable([a, old(1, "train.steps=6")], "exact")


def test_a_file_that_changed_between_two_seeds_is_named_with_each_ones_digest_in_turn():
    """The refusal names the two records and then their two digests in the same order, so that the user can tell
    which record read which content."""
    a, b = (synth_record("bond", 2, seed, {"kl/exact": 1.0}, knob="algo.n") for seed in (0, 1))
    for rec, digest in ((a, "sha256:aa"), (b, "sha256:bb")):
        rec.update(settings={"task.proxy": "r.py"}, inputs={"task.proxy": digest})
    with pytest.raises(UserError, match=r"bond-2-s0 \(seed 0\) and bond-2-s1 \(seed 1\) read different contents of "):
        check_comparable([a, b], "exact")
    with pytest.raises(UserError, match=r"task.proxy=r.py \(sha256:aa vs sha256:bb: the file changed"):
        check_comparable([a, b], "exact")


def test_a_changed_metric_is_a_one_line_diff_of_its_record():
    """A compact record keeps one line per key down to the second level, so that a point run again shows in a diff
    as the lines of the numbers that changed, each naming its metric, not as one long line of the whole summary."""
    rec = compact(synth_record("best_of_n", 2, 0, {"kl/exact": 1.0, "reward/proxy": 0.5}, knob="algo.n"))
    before = dumps_record(rec).splitlines()
    after = dumps_record({**rec, "summary": {**rec["summary"], "reward/proxy": 0.75}}).splitlines()
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert changed == [('  "reward/proxy": 0.5', '  "reward/proxy": 0.75')]  # the last key: no comma


def test_records_to_delete_are_named_in_both_places_and_a_refused_bench_copies_none_back(tmp_path, capsys):
    """The code changed after a first piece: deleting the old records from the records folder alone (git rm) does not
    drop them, since the run folders under out= still hold them. The refusal says where they are, and a refused
    bench does not copy the run folders' records back into the records folder, undoing the deletion."""
    records, out, args = _first_piece(tmp_path)
    for path in (records / "exact").glob("reinforce-beta_RL0.1-s0.json"):
        _set_code_version(path, "0123456789ab")
    run_record = out / "exact" / "reinforce-beta_RL0.1-s0" / "record.json"
    run_record.write_text(json.dumps({**json.loads(run_record.read_text()), "code_version": "0123456789ab"}))
    (records / "exact" / "reinforce-beta_RL0.1-s0.json").unlink()  # as the refusal said: delete those records
    capsys.readouterr()
    assert bench(*args, "seeds=1") == 2
    err = _one_line_error(capsys)
    assert "0123456789ab" in err and f"{out / 'exact'}" in err, err  # where the remaining copy is
    assert not (records / "exact" / "reinforce-beta_RL0.1-s0.json").exists()  # not copied back by a refused bench
    # the page says that it shows a record that the records folder lacks
    capsys.readouterr()
    docs = tmp_path / "docs"
    assert bench(f"out={out}", f"docs={docs}", f"records={records}", "seeds=0", "render_only=true") == 0
    page = (docs / "exact.md").read_text()
    assert f"1 record only in `{out / 'exact'}/`" in page, page[:2000]


def test_a_page_and_records_kept_outside_docs_leave_the_next_pieces_records_clean(tmp_path):
    """records= and docs= elsewhere in the checkout (results/): the page that one piece rendered, or a record that it
    replaced, is the bench's own output, not a change of the code: the next piece's records are not "-dirty"."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "m.py").write_text("x = 1\n")
    results = tmp_path / "results"
    (results / "records" / "mini").mkdir(parents=True)
    (results / "mini").mkdir()
    (results / "mini.md").write_text("a page\n")
    (results / "mini" / "plot.png").write_text("a plot\n")
    (results / "records" / "mini" / "p-s0.json").write_text("{}\n")
    subprocess.run([*git, "add", "."], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "m"], cwd=tmp_path, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    (results / "mini.md").write_text("the page, rendered again\n")
    (results / "mini" / "plot.png").write_text("redrawn\n")
    (results / "records" / "mini" / "p-s0.json").write_text('{"redone": true}\n')
    written = (results / "records", results / "mini.md", results / "mini", Path("/elsewhere/out"))
    assert version.git_state(tmp_path) == (head, True)  # without being told, they are changes
    assert version.git_state(tmp_path, written) == (head, False)
    (tmp_path / "m.py").write_text("x = 2\n")
    assert version.git_state(tmp_path, written) == (head, True)
