"""Stopping a parallel bench: its workers' runs stop at a step with a checkpoint, and the same command
continues them (``rlhf_zoo.bench.runner``, ``rlhf_zoo.signals``)."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from rlhf_zoo import signals

ROOT = Path(__file__).resolve().parents[2]
SLOW_TRAIN = ROOT / "tests" / "training" / "slow_train.py"

SUITE = """\
name: stoppable
description: two REINFORCE runs on the testbed, in two processes
budget: seconds
task_args:
  task: exact
  threads: 1
  train: {steps: 80, eval_every: 40, batch_prompts: 8, progress: false, checkpoint_every: 1000}
seeds: [0]
jobs: 2
resumable: true
sweeps:
  - tag: reinforce
    objective: REINFORCE
    algo: reinforce
    knob: algo.beta
    values: [0.1, 1.0]
"""


def test_stop_requests_restore_the_handlers_and_can_be_entered_again():
    before = signal.getsignal(signal.SIGTERM)
    stop = signals.StopRequests()
    for _ in range(2):
        with stop:
            assert signal.getsignal(signal.SIGTERM) == stop._handle
        assert signal.getsignal(signal.SIGTERM) == before


def test_a_worker_that_hears_twice_keeps_its_stop_request():
    """In a bench worker (repeats_force(False)) a second signal during a step keeps the stop request;
    by default it forces a stop without a checkpoint."""
    try:
        signals.repeats_force(False)
        with signals.StopRequests() as stop:
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)  # the handlers run here
        assert stop.signum == signal.SIGTERM
    finally:
        signals.repeats_force(True)
    with pytest.raises(signals.ForcedStop), signals.StopRequests():
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)


def test_stop_signals_raise_names_the_signal_and_its_exit_code():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(signals.StopSignal) as caught, signals.stop_signals_raise():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)
    assert caught.value.signum == signal.SIGTERM and signals.stop_exit_code(caught.value) == 143
    assert signal.getsignal(signal.SIGTERM) is before  # the previous handler is back
    assert signals.stop_exit_code(KeyboardInterrupt()) == 130


def test_a_stop_survives_the_trip_from_a_worker():
    """A worker returns its stop to the bench by pickling: the signal, and so the exit code, survive; so do the
    processes that had ended when a SIGTERM came, and a forced stop's message naming the checkpoint the run
    directory holds (it came back saying that the directory held none)."""
    from rlhf_zoo.train import Interrupted

    for e in (signals.StopSignal(signal.SIGTERM), Interrupted(7, "runs/x", signal.SIGTERM)):
        back = pickle.loads(pickle.dumps(e))
        assert type(back) is type(e) and back.signum == signal.SIGTERM and signals.stop_exit_code(back) == 143
    assert pickle.loads(pickle.dumps(Interrupted(7, "runs/x", signal.SIGTERM))).step == 7
    assert pickle.loads(pickle.dumps(signals.StopSignal(signal.SIGTERM, ended=[3]))).ended == [3]
    for last in (2, None):
        stop = Interrupted(3, "runs/x", signal.SIGTERM, forced=True, last_checkpoint=last)
        back = pickle.loads(pickle.dumps(stop))
        assert (back.forced, back.last_checkpoint, str(back)) == (True, last, str(stop))


def _bench_mid_run(tmp_path: Path, stderr: Any) -> tuple[subprocess.Popen, list[str], dict[str, str], list[Path]]:
    """The stoppable suite's bench started in a session of its own, returned once both runs are past their step-0
    evaluation: (the process, its command, its environment, the runs' folders)."""
    suite = tmp_path / "stoppable.yaml"
    suite.write_text(SUITE)
    out = tmp_path / "runs"
    cmd = [sys.executable, str(SLOW_TRAIN), "bench", f"suite={suite}", f"out={out}", "progress=false"]
    # 0.1 s a reward call: each run trains for at least 8 s, so both are mid-run when the signal comes
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SLOW_REWARD_S": "0.1"}
    proc = subprocess.Popen(cmd, stderr=stderr, text=True, env=env, start_new_session=True)
    run_dirs = [out / "stoppable" / "reinforce-beta0.1-s0", out / "stoppable" / "reinforce-beta1.0-s0"]
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        if all((d / "metrics.jsonl").is_file() for d in run_dirs):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the bench ended before it could be stopped"
    return proc, cmd, env, run_dirs


@pytest.mark.parametrize(
    ("how", "code"),
    [("SIGTERM to the bench process", 143), ("Ctrl-C: SIGINT to the terminal's process group", 130)],
)
def test_a_stopped_parallel_bench_checkpoints_its_runs_and_the_same_command_continues(tmp_path, how, code):
    proc, cmd, env, run_dirs = _bench_mid_run(tmp_path, subprocess.PIPE)
    time.sleep(0.5)
    if how.startswith("SIGTERM"):
        proc.send_signal(signal.SIGTERM)
    else:
        os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "run the same command again to continue" in err
    for d in run_dirs:
        assert not (d / "record.json").exists()  # stopped, not finished
        step = torch.load(d / "checkpoint" / "state.pt", weights_only=False)["step"]
        assert 0 < step < 80, (d.name, step)

    again = subprocess.run(cmd, capture_output=True, text=True, env={**env, "SLOW_REWARD_S": "0"})
    assert again.returncode == 0, again.stderr
    assert "2 point(s) run (2 resumed, 0 redone)" in again.stderr
    for d in run_dirs:
        record = json.loads((d / "record.json").read_text())
        assert record["resumed"] is True and record["summary"]["steps"] == 80


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="finds the workers through Linux's /proc")
def test_the_workers_of_a_bench_killed_outright_checkpoint_and_end(tmp_path):
    """``kill -9`` of a parallel bench (or its terminal closed, or the out-of-memory killer) left its workers behind:
    an idle one waited for work for ever holding its memory, a busy one trained on with its point's folder locked.
    Now a busy worker stops its run at a step with a checkpoint, as the bench's SIGTERM would (the same command
    then resumes it, as the test above shows), and every worker ends."""
    proc, _, _, run_dirs = _bench_mid_run(tmp_path, subprocess.DEVNULL)
    workers = _children(proc.pid)  # the two workers (and multiprocessing's resource tracker)
    proc.kill()
    proc.wait()
    deadline = time.time() + 60
    while time.time() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.1)
    left = [p for p in workers if _alive(p)]
    for p in left:  # not left running after the test
        os.kill(p, signal.SIGKILL)
    assert len(workers) >= 2 and not left, (workers, left)
    for d in run_dirs:
        assert not (d / "record.json").exists()
        step = torch.load(d / "checkpoint" / "state.pt", weights_only=False)["step"]
        assert 0 < step < 80, (d.name, step)
