"""A suite run in pieces: a point shared by two sweeps keeps one id and both memberships whatever only=
selects (never recomputed, never dropped from a sweep's table), a seed given twice is one seed, and a
resumed point's wall time counts its interrupted part."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

import rlhf_zoo.bench.runner as runner
from rlhf_zoo.bench.records import group_records, load_records
from rlhf_zoo.bench.runner import run_suite
from rlhf_zoo.bench.suites import BOND, BOND_BETA, Suite


@pytest.fixture
def shared_suite(tiny_exact_suite) -> Suite:
    # BOND n=4 at beta=0.5 is in both sweeps: one point
    return replace(tiny_exact_suite, name="shared", sweeps=(BOND.over(4), BOND_BETA.over(0.5)), seeds=(0,))


def test_a_piece_run_with_only_then_the_whole_suite_keeps_every_sweep_on_the_page(shared_suite, tmp_path):
    run_suite(shared_suite, tmp_path, progress=False, only=["bond"], records=tmp_path / "rec")
    report = run_suite(shared_suite, tmp_path, progress=False, records=tmp_path / "rec")
    assert report.ran == []  # the one configuration was finished
    groups = group_records(load_records(tmp_path / "shared"))
    assert 0.5 in groups.get("bond_beta", {}), "the shared point's record lost its bond_beta membership"


def test_only_the_second_sweep_does_not_recompute_the_shared_point(shared_suite, tmp_path, monkeypatch):
    run_suite(shared_suite, tmp_path, progress=False, records=tmp_path / "rec")
    calls = []
    monkeypatch.setattr(runner, "run_point", lambda *a, **k: calls.append(a[0].id))
    report = run_suite(shared_suite, tmp_path, progress=False, only=["bond_beta"], records=tmp_path / "rec")
    assert calls == [] and report.ran == [], f"recomputed {calls}"


def test_a_suite_that_gains_a_sweep_sharing_a_finished_point_lists_it_on_the_page(shared_suite, tmp_path):
    from dataclasses import replace

    from rlhf_zoo.bench.records import repo_records, suite_records

    before = replace(shared_suite, sweeps=shared_suite.sweeps[:1])  # a suite file before bond_beta was added
    run_suite(before, tmp_path, progress=False, records=tmp_path / "rec")
    report = run_suite(shared_suite, tmp_path, progress=False, records=tmp_path / "rec")
    assert report.ran == [] and report.backfilled == []  # its record was in the records folder: updated, not copied
    for recs in (suite_records("shared", tmp_path, None), list(repo_records(tmp_path / "rec" / "shared").values())):
        groups = group_records(recs)
        assert set(groups) == {"bond", "bond_beta"} and 0.5 in groups["bond_beta"]


def test_a_seed_given_twice_is_one_line_not_a_punctuation_clash(cli, tmp_path):
    code, out, err = cli("bench", "suite=exact", f"out={tmp_path}/runs", "seeds=0,0", "render=false")
    assert code == 2 and err.strip().splitlines() == ["rlhf-zoo: error: seeds 0,0 name seed 0 twice"], err
    assert not (tmp_path / "runs" / "exact").exists()


@pytest.fixture(params=[(), ("train.checkpoint_every=2", "train.progress=true")], ids=["same", "no_effect"])
def again_extra(request) -> list[str]:
    """The resuming bench's extra settings: none, or settings without effect on the results (the first bench
    had none). With these the point was deleted and redone: its point.json's arguments had to equal the
    point's, and ``resume=true`` refused a config.yaml that differed in any setting."""
    return list(request.param)


def test_a_resumed_points_wall_time_counts_its_interrupted_part(tiny_exact_suite, tmp_path, monkeypatch, again_extra):
    import os
    import signal
    import time
    from dataclasses import replace

    import rlhf_zoo.train as train
    from rlhf_zoo.bench.records import read_record

    suite = replace(
        tiny_exact_suite,
        resumable=True,
        task_args=("task=exact", "threads=1", "train.steps=6", "train.eval_every=6", "train.progress=false"),
    )
    step = train.Trainer.train_step

    def slow_step(self):
        time.sleep(0.5)  # 6 steps: 3 s of training
        if self.step == 3 and not getattr(slow_step, "fired", False):
            slow_step.fired = True
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: stop at this step, with a checkpoint
        return step(self)

    monkeypatch.setattr(train.Trainer, "train_step", slow_step)
    only = dict(seeds=[0], only=["reinforce"])
    suite = replace(suite, sweeps=(replace(suite.sweeps[0], values=(0.1,)),))
    with pytest.raises((train.Interrupted, KeyboardInterrupt)):
        run_suite(suite, tmp_path, progress=False, **only)
    report = run_suite(suite, tmp_path, progress=False, extra=again_extra, **only)
    assert report.resumed == ["reinforce-beta0.1-s0"] and report.redone == []
    rec = read_record(tmp_path / "tinyexact" / "reinforce-beta0.1-s0")
    assert rec["resumed"] is True and json.loads((tmp_path / "tinyexact" / "bench.json").read_text())["resumed"] == 1
    assert set(again_extra) <= set(rec["args"])  # the resuming bench's own arguments
    assert rec["summary"]["time/train_s"] >= 2.9  # the run trained 3 s in all
    assert rec["wall_s"] >= rec["summary"]["time/train_s"], rec["wall_s"]
