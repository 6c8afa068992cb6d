"""What a run writes about itself, against figures worked out by hand on the testbed: the costs and
training time of each ``metrics.jsonl`` line and of ``summary.json`` (across a resume too), the summary's
other keys, a checkpoint at the last step written once, files replaced by a rename rather than rewritten in
place, the progress bar of a resumed run, and the list of settings a refused resume names."""

import json
import os
import time
from types import SimpleNamespace

import pytest

from rlhf_zoo.config import load_config
from rlhf_zoo.runlog import RunLog
from rlhf_zoo.train import Trainer, _config_difference, build
from tests.runtime.resume_helpers import interrupt_after
from tests.training.helpers import recorded

# REINFORCE on the testbed: 2 prompts a step, 4 samples each: 8 completions and 8 reward calls a step.
RUN = ["algo=reinforce", "algo.samples=4", "train.batch_prompts=2", "train.steps=4", "train.eval_every=2", "threads=1"]


def _trainer(run_dir, *args, progress=False):
    cfg = load_config([*args, f"run_dir={run_dir}", f"train.progress={str(progress).lower()}"])
    return Trainer(cfg, *build(cfg))


def test_each_evaluation_line_and_the_summary_hold_the_costs_spent_so_far(tmp_path):
    """8 completions and 8 reward calls a step: the lines of steps 0, 2 and 4 count 0, 16 and 32; each
    completion has 1 to 4 tokens (``task.max_len=4``); the summary holds the last line's totals. The testbed's
    evaluation enumerates the completions, so it samples none (``eval_cost/completions`` 0)."""
    tr = _trainer(tmp_path / "r", *RUN)
    summary = tr.fit()
    lines = tr.log.read_metrics()
    assert [line["step"] for line in lines] == [0, 2, 4]
    assert [line["cost/completions"] for line in lines] == [0, 16, 32]
    assert [line["cost/reward_calls"] for line in lines] == [0, 16, 32]
    tokens = [line["cost/tokens"] for line in lines]
    assert tokens[0] == 0 and 16 <= tokens[1] <= 64 and 16 <= tokens[2] - tokens[1] <= 64, tokens
    assert (summary["cost/completions"], summary["cost/reward_calls"], summary["cost/tokens"]) == (32, 32, tokens[2])
    assert summary["eval_cost/completions"] == 0


def test_the_summary_counts_the_completions_a_sampled_evaluation_drew(tmp_path):
    """An evaluation that samples (the testbed's task without its oracle): 4 held-out prompts × 4 samples at
    each of 3 evaluations (steps 0, 1, 2), and once 4 prompts × 8 reference samples: 48 + 32 = 80, apart from
    the 2 steps' 16 training completions."""
    from rlhf_zoo.tasks.base import Task

    tr = _trainer(tmp_path / "r", *RUN, "train.steps=2", "train.eval_every=1", "train.eval_ref_samples=8")
    tr.evaluator.task = Task(**{**tr.task.__dict__, "oracle": None})
    summary = tr.fit()
    assert summary["eval_cost/completions"] == 80
    assert summary["cost/completions"] == 16
    # With two processes each counts its share of the completions and the summary sums them: seen from a
    # runtime whose sums double, as two processes that counted alike (both counts were taken as this one's alone
    # before, for evaluation, and no test failed).
    rt = tr.rt
    tr.rt = SimpleNamespace(
        sum_ints=lambda counts: {k: 2 * v for k, v in counts.items()},
        gather_objects=lambda obj: [obj, obj],
        is_main=True,
        world=2,
        sharded=False,
        barrier=rt.barrier,
        end_trackers=rt.end_trackers,
        device=rt.device,
        optimizer_state=rt.optimizer_state,
    )
    both = tr.finish({})
    assert both["eval_cost/completions"] == 160 and both["cost/completions"] == 32 and both["processes"] == 2


def _fake_clocks(monkeypatch, trainer, step_s: float, eval_s: float) -> None:
    """Steps that take ``step_s`` and evaluations ``eval_s`` on the training loop's clock."""
    clock = {"now": 1000.0}
    monkeypatch.setattr(
        "rlhf_zoo.train.time", SimpleNamespace(monotonic=time.monotonic, perf_counter=lambda: clock["now"])
    )
    step, evaluate = trainer.train_step, trainer.evaluate

    def slow_step():
        clock["now"] += step_s
        return step()

    def slow_evaluation():
        clock["now"] += eval_s
        return evaluate()

    trainer.train_step, trainer.evaluate = slow_step, slow_evaluation


def test_the_training_time_adds_up_the_steps_only_and_carries_across_a_resume(tmp_path, monkeypatch):
    """Steps of 1.625 s and evaluations of 100 s: the lines of steps 0, 2 and 4 show 0, 3.25 and 6.5 s of training,
    and the summary 6.5 s (to the millisecond: not rounded to 6); a run stopped after 3 steps and resumed shows the
    same (its 4.875 s carried over)."""
    full = _trainer(tmp_path / "full", *RUN)
    _fake_clocks(monkeypatch, full, 1.625, 100.0)
    summary = full.fit()
    assert [line["time/elapsed_s"] for line in full.log.read_metrics()] == [0.0, 3.25, 6.5]
    assert summary["time/train_s"] == 6.5

    part = _trainer(tmp_path / "part", *RUN)
    _fake_clocks(monkeypatch, part, 1.625, 100.0)
    interrupt_after(part, 3)
    resumed = _trainer(tmp_path / "part", *RUN, "resume=true")
    _fake_clocks(monkeypatch, resumed, 1.625, 100.0)
    summary = resumed.fit()
    assert [line["time/elapsed_s"] for line in resumed.log.read_metrics()] == [0.0, 3.25, 6.5]
    assert summary["time/train_s"] == 6.5


def test_the_summary_holds_the_seconds_of_each_phase_over_the_whole_run(tmp_path, monkeypatch):
    """Every timed phase lasting 0.25 s on a fake clock: each of REINFORCE's 4 steps generates, scores, takes
    the reference log-probs and updates once, so each phase totals 1 s, also for a run resumed after step 2."""
    import rlhf_zoo.rollout

    clock = {"now": 0.0}

    def ticking():
        clock["now"] += 0.25  # a phase lasts from one reading (its start) to the next (its end)
        return clock["now"]

    monkeypatch.setattr(rlhf_zoo.rollout, "time", SimpleNamespace(perf_counter=ticking))
    phases = {f"time/{p}_s": 1.0 for p in ("generate", "reward", "logprobs", "update")}
    summary = _trainer(tmp_path / "full", *RUN).fit()
    assert {k: summary[k] for k in phases} == phases
    interrupt_after(_trainer(tmp_path / "part", *RUN), 2)
    summary = _trainer(tmp_path / "part", *RUN, "resume=true").fit()
    assert {k: summary[k] for k in phases} == phases


def test_the_summary_names_the_run(tmp_path):
    """algo, task, seed, the steps trained and the processes; Best-of-N trains no step (the comparison page
    reads its ``steps`` 0 as a run that trains none) whatever ``train.steps`` says."""
    summary = _trainer(tmp_path / "r", *RUN, "seed=3").fit()
    assert {k: summary[k] for k in ("algo", "task", "seed", "steps", "processes")} == {
        "algo": "reinforce",
        "task": "exact",
        "seed": 3,
        "steps": 4,
        "processes": 1,
    }
    written = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert written == summary
    bon = _trainer(tmp_path / "bon", "algo=best_of_n", "train.steps=5", "seed=2").fit()
    assert (bon["algo"], bon["steps"], bon["seed"]) == ("best_of_n", 0, 2)
    assert [line["step"] for line in RunLog(tmp_path / "bon").read_metrics()] == [0]


def test_a_checkpoint_due_at_the_last_step_is_written_once(tmp_path):
    """4 steps with ``train.checkpoint_every=2``: checkpoints after steps 2 and 4; the final checkpoint is
    step 4's, not written a second time as a periodic one."""
    tr = _trainer(tmp_path / "r", *RUN, "train.checkpoint_every=2", "train.checkpoint_minutes=0")
    saves = recorded(tr, "save")
    tr.fit()
    assert saves == [2, 4]


def test_a_stop_signal_at_a_periodic_checkpoint_writes_that_checkpoint_once(tmp_path):
    """SIGTERM during step 2 of a run with ``train.checkpoint_every=2``: the run stops after step 2 with step
    2's checkpoint, written once (it was written again for the stop, doubling the time a preempted job needs
    to stop), and the resumed run equals an uninterrupted one."""
    import signal

    from rlhf_zoo.train import Interrupted
    from tests.runtime.resume_helpers import metrics_rows

    args = [*RUN, "train.steps=6", "train.checkpoint_every=2", "train.checkpoint_minutes=0"]
    _trainer(tmp_path / "full", *args).fit()
    tr = _trainer(tmp_path / "part", *args)
    step = tr.train_step

    def signalled():
        metrics = step()
        if tr.step == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return metrics

    tr.train_step = signalled
    saves = recorded(tr, "save")
    with pytest.raises(Interrupted) as stopped:
        tr.fit()
    assert stopped.value.exit_code == 143 and saves == [2]
    assert tr.log.load_checkpoint()[1]["step"] == 2
    _trainer(tmp_path / "part", *args, "resume=true").fit()
    assert metrics_rows(tmp_path / "part" / "metrics.jsonl") == metrics_rows(tmp_path / "full" / "metrics.jsonl")


def test_a_resumed_run_replaces_its_files_by_a_rename_not_in_place(tmp_path):
    """Resuming a finished run rewrites config.yaml, meta.json, metrics.jsonl (cut back to the checkpoint's
    step) and summary.json: each new file takes the name by a rename, so that a reader of the old one (a
    ``rlhf-zoo compare`` running meanwhile) reads it whole, and a kill during the write leaves the old file."""
    _trainer(tmp_path / "r", *RUN).fit()
    names = ("config.yaml", "meta.json", "metrics.jsonl", "summary.json")
    readers = {name: (tmp_path / "r" / name).open() for name in names}
    before = {name: (tmp_path / "r" / name).read_text() for name in names}
    try:
        _trainer(tmp_path / "r", *RUN, "resume=true").fit()
        for name, reader in readers.items():
            assert os.fstat(reader.fileno()).st_ino != (tmp_path / "r" / name).stat().st_ino, name
            assert reader.read() == before[name], name
    finally:
        for reader in readers.values():
            reader.close()
    assert "resumes" in json.loads((tmp_path / "r" / "meta.json").read_text())


def test_an_appended_evaluation_line_is_on_disk_before_the_run_goes_on(tmp_path, monkeypatch):
    """``metrics.jsonl`` is appended to, not replaced: each line is flushed to disk (fsync) as it is written,
    so that a power loss after a checkpoint cannot leave that checkpoint's lines missing."""
    log = RunLog(tmp_path / "r")
    log.log(0, {"reward/proxy": 0.5})
    synced, fsync = [], os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.fstat(fd).st_ino) or fsync(fd))
    log.log(2, {"reward/proxy": 0.75})
    assert log.metrics_path.stat().st_ino in synced
    assert log.read_metrics() == [{"step": 0, "reward/proxy": 0.5}, {"step": 2, "reward/proxy": 0.75}]


def test_the_progress_bar_of_a_resumed_run_starts_at_its_step(tmp_path, capsys):
    """A run of 6 steps stopped after 4 and resumed: its bar counts from 4/6 to 6/6 (not from 0/6 to 2/6).
    Best-of-N trains no step: no bar."""
    args = [*RUN, "train.steps=6"]
    interrupt_after(_trainer(tmp_path / "r", *args), 4)
    capsys.readouterr()
    _trainer(tmp_path / "r", *args, "resume=true", progress=True).fit()
    frames = [f for f in capsys.readouterr().err.replace("\n", "\r").split("\r") if "reinforce:" in f]
    assert frames and " 4/6 " in frames[0] and " 6/6 " in frames[-1], frames
    _trainer(tmp_path / "bon", "algo=best_of_n", progress=True).fit()
    assert "best_of_n:" not in capsys.readouterr().err


def test_a_refused_resume_names_the_first_three_settings_that_differ_and_counts_the_rest():
    """``_config_difference`` of two resolved configs: dotted keys in sorted order (algo.name and task.name
    first), ``saved → now``; a key that one of them lacks counts as a difference; ``resume`` and the settings
    without effect (a progress bar, the checkpoint cadence, the tracker) do not."""
    saved = "seed: 0\nresume: false\ntrain:\n  steps: 2\n  lr: 0.1\n  progress: true\n  checkpoint_every: 1\n"
    same = "seed: 0\nresume: true\ntrain:\n  steps: 2\n  lr: 0.1\n  progress: false\n  checkpoint_every: 5\n"
    assert _config_difference(saved, same) == ""
    now = (
        "seed: 1\nresume: true\ntrain:\n  steps: 4\n  lr: 0.2\n  progress: true\n  checkpoint_every: 1\n  fsdp: true\n"
    )
    assert _config_difference(saved, now) == "seed: 0 → 1, train.fsdp: None → True, train.lr: 0.1 → 0.2 and 1 more"
    assert _config_difference(saved, now, shown=4).endswith("train.steps: 2 → 4")
    assert _config_difference(now, saved, shown=4).startswith("seed: 1 → 0, train.fsdp: True → None")
