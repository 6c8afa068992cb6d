"""The language-model suite's machinery on the tiny random model: run, interrupt mid-way, resume, render."""

from __future__ import annotations

import pytest

from rlhf_zoo.bench.records import read_record
from rlhf_zoo.bench.render import render_suite
from rlhf_zoo.bench.runner import plan, point_dir, run_suite
from rlhf_zoo.bench.suites import QUICK, expand

pytest.importorskip("transformers")
pytest.importorskip("peft")
pytest.importorskip("vaderSentiment")


def _tiny(prompts_file) -> list[str]:
    return [
        "model.name=tiny",
        f"task.prompts={prompts_file}",
        "task.gold=null",
        "task.eval_fraction=0.25",
        "model.max_new_tokens=6",
        "train.batch_prompts=2",
        "train.steps=2",
        "train.eval_every=2",
        "train.eval_prompts=2",
        "train.eval_samples=2",
        "train.eval_ref_samples=2",
        "train.checkpoint_every=1",
        "threads=1",
    ]


def test_quick_suite_runs_resumes_and_renders_on_the_tiny_model(prompts_file, tmp_path, monkeypatch):
    import rlhf_zoo.train as train

    extra = _tiny(prompts_file)
    points = expand(QUICK, seeds=[0], extra=extra, only=["reinforce"])
    assert [p.id for p in points] == [f"reinforce-beta_RL{v!r}-s0" for v in QUICK.sweep("reinforce").values]
    assert len(points) >= 3  # every knob at three values or more
    assert all("task=sentiment" in p.args and p.args[-2] == "threads=1" for p in points)

    # (jobs=1: the patched trainer must run in this process; quick itself runs 2 worker processes)
    # Ctrl-C during the first point's second step: the trainer checkpoints step 1, no record is written.
    original = train.Trainer.train_step

    def interrupted(self):
        if self.step == 1:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(train.Trainer, "train_step", interrupted)
    with pytest.raises(train.Interrupted):
        run_suite(QUICK, tmp_path, seeds=[0], extra=extra, only=["reinforce"], progress=False, jobs=1)
    monkeypatch.undo()
    first = point_dir(tmp_path, points[0])
    assert read_record(first) is None and (first / "checkpoint" / "state.pt").is_file()
    assert plan(points[0], first, QUICK.resumable) == "resume"

    report = run_suite(QUICK, tmp_path, seeds=[0], extra=extra, only=["reinforce"], progress=False, jobs=1)
    assert report.resumed == [points[0].id] and sorted(report.ran) == sorted(p.id for p in points)
    rec = read_record(first)
    assert rec["resumed"] is True and rec["summary"]["steps"] == 2
    assert [m["step"] for m in rec["metrics"]] == [0, 2]
    assert rec["summary"]["kl/estimator"] == "exact_token" and "model.name=tiny" in rec["args"]
    assert not (first / "checkpoint").exists()

    text = render_suite("quick", tmp_path, tmp_path / "docs").read_text()
    assert "exact-token estimator" in text and "REINFORCE (2 samples, leave-one-out)" in text
    assert "not run" in text  # claims whose sweeps were not run
