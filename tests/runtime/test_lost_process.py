"""Another process of a multi-process run is gone (the OOM killer, ``kill -9``): the survivors' next collective
fails, and each ends with one line naming the checkpoint that ``resume=true`` continues from, not gloo's
traceback. Only the distributed communication errors are told so; any other error keeps its traceback. While the
run still starts (loading its model), torchrun's SIGTERM to the survivors after a process ended is told so too,
and the user's SIGTERM stays "interrupted".

The two-process run with a process killed in training: tests/lm/test_distributed.py; while it starts: the slow
tests below (on the exact testbed, through tests/runtime/setup_worker.py)."""

import pickle

import pytest
import torch
import torch.distributed as dist

from rlhf_zoo.config import load_config
from rlhf_zoo.runtime import communication_failure
from rlhf_zoo.train import LostProcess, Trainer, build

# What the survivor of a 2-process CPU run raised when the other process was killed (torch 2.13): a plain
# RuntimeError from the all-reduce's work.wait().
CLOSED = (
    "[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:553] Connection closed by peer "
    "[127.0.0.1]:9644. This is typically caused by a remote worker crashing. Check the logs of the remote worker "
    "before reporting an error. GLHF! \U0001f3d6\ufe0f"
)
RESET = (
    "[../third_party/gloo/gloo/transport/tcp/pair.cc:598] Read error [10.0.0.2]:41235: Connection reset by peer. "
    "This is typically caused by a remote worker hanging or bugs in the application."
)
TIMEOUT = (
    "[../third_party/gloo/gloo/transport/tcp/unbound_buffer.cc:81] Timed out waiting 1800000ms for recv operation "
    "to complete"
)
NCCL = (
    "NCCL error in: ProcessGroupNCCL.cpp:1970, remote process exited or there was a network error, NCCL version "
    "2.21.5\nncclRemoteError: A call failed possibly due to a network error or a remote process exiting prematurely."
)
# gloo's assertion that a collective differs between the processes: a bug, whose traceback must stay.
MISMATCH = (
    "[enforce fail at ../third_party/gloo/gloo/transport/tcp/pair.cc:446] op.preamble.length <= op.nbytes. 32 vs "
    "16. Received data size doesn't match expected size. Is there a distributed collective mismatch in your code?"
)


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (RuntimeError(CLOSED), "Connection closed by peer [127.0.0.1]:9644"),
        (RuntimeError(RESET), "Read error [10.0.0.2]:41235: Connection reset by peer"),
        (RuntimeError(TIMEOUT), "Timed out waiting 1800000ms for recv operation to complete"),
        (dist.DistBackendError(NCCL), "DistBackendError: " + NCCL.splitlines()[0]),
        (dist.DistNetworkError("Connection reset by peer"), "DistNetworkError: Connection reset by peer"),
        (dist.DistStoreError("wait timeout after 300000ms"), "DistStoreError: wait timeout after 300000ms"),
    ],
    ids=["gloo closed", "gloo reset", "gloo timeout", "nccl", "network", "store"],
)
def test_a_failure_to_reach_another_process_is_told_in_short(error, said):
    assert communication_failure(error) == said


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError(MISMATCH),
        RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError("Connection closed by peer"),  # not gloo's: no source file of its transport
        NotImplementedError(CLOSED),  # not what a collective raises
        ValueError("boom"),
    ],
    ids=["collective mismatch", "oom", "no gloo prefix", "another type", "value error"],
)
def test_other_errors_are_not_communication_failures(error):
    assert communication_failure(error) is None


def test_the_message_names_the_lost_process_and_the_checkpoint_to_resume_from():
    two = str(LostProcess(7, "runs/x", "Connection closed by peer [127.0.0.1]:9644", 6, rank=0, world=2))
    assert two.startswith("the other process of this run (rank 1) stopped at step 7"), two
    assert "this one (rank 0) stops too (Connection closed by peer [127.0.0.1]:9644)" in two, two
    assert two.endswith("runs/x holds the checkpoint of step 6: add resume=true to continue from it"), two
    four = str(LostProcess(7, "runs/x", "Timed out", None, rank=2, world=4))
    assert four.startswith("another process of this run stopped at step 7"), four
    assert four.endswith("runs/x holds no checkpoint yet: add resume=true to start it over"), four
    unknown = str(LostProcess(0, "runs/x", "Timed out", None, rank=1, world=2, checkpointed=True))
    assert unknown.endswith("runs/x holds a checkpoint: add resume=true to continue from it"), unknown
    assert "stopped at step 0 " in unknown, unknown  # the step-0 evaluation: the run had started
    assert "\n" not in two + four + unknown


def _trainer(run_dir, *args):
    cfg = load_config(["algo=reinforce", *args, f"run_dir={run_dir}", "train.progress=false", "threads=1"])
    return Trainer(cfg, *build(cfg))


def test_a_process_lost_while_a_checkpoint_is_saved_names_the_one_written(tmp_path):
    """The other process is killed while this one (the main, which writes) saves step 4's checkpoint: the
    barrier after the write fails. The message names step 4's, which the run directory holds (the step of the
    last checkpoint was set only once every process had passed that barrier: it named step 2's)."""
    tr = _trainer(tmp_path / "r", "train.steps=8", "train.eval_every=4", "train.checkpoint_every=2")
    barrier = tr.rt.barrier

    def lost_at_step_4():
        if tr.step == 4:
            raise RuntimeError(CLOSED)
        barrier()

    tr.rt.barrier = lost_at_step_4
    with pytest.raises(LostProcess) as lost:
        tr.fit()
    assert isinstance(lost.value.__cause__, RuntimeError)  # what gloo said stays with the error
    assert torch.load(tmp_path / "r" / "checkpoint" / "state.pt", weights_only=False)["step"] == 4
    assert lost.value.last_checkpoint == 4 and lost.value.step == 4
    assert "holds the checkpoint of step 4: add resume=true" in str(lost.value)


def test_a_process_lost_before_a_resumed_run_read_its_checkpoint_says_the_directory_holds_one(tmp_path):
    """resume=true on a directory with a checkpoint, and the other process is lost at the first barrier, before
    this one restored it (so it knows no step): the message says that the directory holds a checkpoint to
    continue from, not that it holds none and the run starts over."""
    args = ["train.steps=4", "train.eval_every=2", "train.checkpoint_every=2"]
    _trainer(tmp_path / "r", *args).fit()
    tr = _trainer(tmp_path / "r", *args, "resume=true")
    tr.rt.barrier = lambda: (_ for _ in ()).throw(RuntimeError(CLOSED))
    with pytest.raises(LostProcess) as lost:
        tr.fit()
    assert lost.value.last_checkpoint is None
    assert str(lost.value).endswith(f"{tmp_path / 'r'} holds a checkpoint: add resume=true to continue from it")


def test_another_error_in_a_collective_keeps_its_traceback(tmp_path):
    tr = _trainer(tmp_path / "r", "train.steps=4", "train.eval_every=2", "train.checkpoint_every=2")
    tr.rt.barrier = lambda: (_ for _ in ()).throw(RuntimeError(MISMATCH))
    with pytest.raises(RuntimeError, match="collective mismatch"):
        tr.fit()


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (
            LostProcess(3, "runs/x", "Connection closed by peer [127.0.0.1]:9644", 2, rank=0, world=2),
            "rlhf-zoo: error: the other process of this run (rank 1) stopped at step 3",
        ),
        # outside training (the command's last barrier): no step to name
        (RuntimeError(CLOSED), "rlhf-zoo: error: another process of this run stopped"),
        (dist.DistBackendError(NCCL), "rlhf-zoo: error: another process of this run stopped"),
    ],
    ids=["in training", "gloo outside training", "nccl outside training"],
)
def test_the_command_ends_with_one_line_and_exit_code_1(error, line, monkeypatch, capsys, tmp_path):
    import rlhf_zoo.train
    from rlhf_zoo.cli import main

    def lost(*args, **kwargs):
        raise error

    monkeypatch.setattr(rlhf_zoo.train, "run", lost)
    assert main(["train", "algo=reinforce", f"run_dir={tmp_path}/r"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(line) and len(err.strip().splitlines()) == 1, err
    assert "resume=true" in err and "Traceback" not in err and "GLHF" not in err, err


def test_the_command_keeps_the_traceback_of_any_other_error(monkeypatch, tmp_path):
    import rlhf_zoo.train
    from rlhf_zoo.cli import main

    def fails(*args, **kwargs):
        raise RuntimeError(MISMATCH)

    monkeypatch.setattr(rlhf_zoo.train, "run", fails)
    with pytest.raises(RuntimeError, match="collective mismatch"):
        main(["train", "algo=reinforce", f"run_dir={tmp_path}/r"])


def _launch_setup_worker(args: list[str], exits, env: dict[str, str]):
    """``rlhf-zoo train ARGS`` in a 2-process launch through tests/runtime/setup_worker.py (stderr to a file, which
    the caller may watch); returns the launcher's Popen and the path of its stderr."""
    import os
    import subprocess
    import sys

    from tests.runtime.distributed_helpers import ROOT

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += [str(ROOT / "tests" / "runtime" / "setup_worker.py"), "train", *args, "device=cpu"]
    full_env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "SETUP_EXIT_DIR": str(exits),
        **env,
    }
    err = exits / "stderr.txt"
    with open(err, "w") as stderr:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr, text=True, env=full_env)
    return proc, err


EXACT = ["task=exact", "algo=reinforce", "seed=3", "train.batch_prompts=4", "train.steps=2", "train.progress=false"]


@pytest.mark.slow
def test_a_process_lost_while_the_run_starts_leaves_the_other_one_line_not_interrupted(tmp_path):
    """Rank 1 is killed (SIGKILL) as it builds the task while rank 0 still builds its own (slowly): torchrun then
    stops rank 0 with SIGTERM, which it took for the user's stop: "rlhf-zoo: interrupted (SIGTERM)", exit code
    143. It ends with one line naming the lost process (the launcher's SIGTERM as the cause) and what the run
    directory holds, and exit code 1."""
    run = tmp_path / "run"
    proc, err = _launch_setup_worker(
        [*EXACT, f"run_dir={run}"], tmp_path, {"SETUP_KILL_RANK": "1", "SETUP_SLEEP": "20"}
    )
    proc.wait(timeout=120)
    stderr = err.read_text()
    assert proc.returncode != 0
    line = (
        "rlhf-zoo: error: the other process of this run (rank 1) stopped while the run was starting (killed, out of "
        "memory?, or failed with its own error above), so this one (rank 0) stops too (SIGTERM from the launcher, "
        f"which stops every process once one has ended); {run} holds no checkpoint yet: add resume=true to start "
        "it over\n"
    )
    assert stderr.count(line) == 1 and "interrupted" not in stderr, stderr[-3000:]
    assert (tmp_path / "exit_rank0.txt").read_text() == "1"


@pytest.mark.slow
def test_a_process_lost_before_it_joins_the_group_leaves_the_waiting_one_a_line(tmp_path):
    """Rank 1 is killed before it joins the process group, where rank 0 waits for it (in torch's rendezvous, which
    Python's signal handlers cannot interrupt): rank 0 waited until torchrun killed it 30 s after its SIGTERM,
    silently. A watching thread ends it soon after that SIGTERM, with the line and exit code 1."""
    import re

    run = tmp_path / "run"
    env = {"SETUP_KILL_RANK": "1", "SETUP_KILL_BEFORE_GROUP": "3"}
    proc, err = _launch_setup_worker([*EXACT, f"run_dir={run}"], tmp_path, env)
    proc.wait(timeout=120)
    stderr = err.read_text()
    line = (
        "rlhf-zoo: error: the other process of this run (rank 1) stopped while the run was starting (killed, out of "
        "memory?, or failed with its own error above), so this one (rank 0) stops too (SIGTERM from the launcher, "
        "which stops every process once one has ended, while this one waited for it in the process group's "
        f"rendezvous); {run} holds no checkpoint yet: add resume=true to start it over\n"
    )
    assert stderr.count(line) == 1 and "interrupted" not in stderr, stderr[-3000:]
    # torchrun's summary: rank 0 exited with 1, not -9 (SIGKILL, 30 s after its SIGTERM)
    assert re.search(r"rank +: 0 \(local_rank: 0\)\n +exitcode +: 1 \(pid", stderr), stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize(
    "busy", [{}, {"SETUP_BUSY_RANK": "1", "SETUP_BUSY": "4"}], ids=["both-take-it", "rank1-in-a-long-call"]
)
def test_the_users_stop_while_a_launched_run_starts_is_still_interrupted(tmp_path, busy):
    """The user's SIGTERM to the launch while both processes build the task: each says it was interrupted
    (exit code 143), none that another process was lost (the launcher passes the stop on to both, running).
    ``rank1-in-a-long-call``: rank 1 is in a call that Python cannot interrupt (a model's load) for 4 s, while
    rank 0 ends at once and torchrun collects it. Rank 1 looked for the ended processes only when its handler ran,
    found rank 0 gone, and said that rank 0 had stopped (exit code 1); it is looked at when the signal comes."""
    import signal
    import time

    run = tmp_path / "run"
    proc, err = _launch_setup_worker([*EXACT, f"run_dir={run}"], tmp_path, {"SETUP_SLEEP": "20", **busy})
    deadline = time.monotonic() + 120
    while err.read_text().count("building (rank ") < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    stderr = err.read_text()
    assert stderr.count("rlhf-zoo: interrupted (SIGTERM)") == 2 and "stopped while" not in stderr, stderr[-3000:]
    assert [(tmp_path / f"exit_rank{r}.txt").read_text() for r in (0, 1)] == ["143", "143"]


def _fake_proc(root, me_env: dict[str, str], launcher_env: dict[str, str], siblings: list[tuple[int, str, dict]]):
    """A /proc with this process's launcher (its real parent) and its other children: (pid, state, environment)."""
    import os

    def process(pid: int, ppid: int, state: str, env: dict[str, str]) -> None:
        d = root / str(pid)
        d.mkdir()
        (d / "stat").write_text(f"{pid} (python (x)) {state} {ppid} 1 1 0 -1\n")
        (d / "environ").write_bytes(b"".join(f"{k}={v}".encode() + b"\0" for k, v in env.items()))

    process(os.getppid(), 1, "S", launcher_env)
    process(os.getpid(), os.getppid(), "R", me_env)
    process(999_999_1, 4242, "S", {"TORCHELASTIC_RUN_ID": "r1", "RANK": "3"})  # another launcher's child
    for pid, state, env in siblings:
        process(pid, os.getppid(), state, env)
    return root


def _worker(rank: int, run: str = "r1") -> dict[str, str]:
    return {"TORCHELASTIC_RUN_ID": run, "RANK": str(rank), "LOCAL_RANK": str(rank % 2), "LOCAL_WORLD_SIZE": "2"}


@pytest.mark.parametrize(
    ("siblings", "ended"),
    [
        ([(900_001, "S", _worker(1))], []),  # the other one runs: the user's stop
        ([], [1]),  # the launcher has collected it: it ended before this SIGTERM
        ([(900_001, "Z", {})], []),  # it ended just now, on the same stop (not collected yet)
        ([(900_001, "S", _worker(1, run="another"))], [1]),  # a child of another launch does not count
    ],
    ids=["running", "collected", "zombie", "another run"],
)
def test_a_sigterm_under_torchrun_notes_which_processes_of_the_launch_had_ended(tmp_path, siblings, ended):
    from rlhf_zoo.signals import ended_processes

    proc = _fake_proc(tmp_path, _worker(0), {"PATH": "/bin"}, siblings)
    assert ended_processes(_worker(0), proc=str(proc)) == ended


def test_on_a_second_machine_the_ranks_looked_for_are_that_machines(tmp_path):
    """Machine 2 of a launch of 2 × 4 processes holds ranks 4 to 7: rank 5 there, ranks 4 and 6 running, finds rank
    7 ended (not ranks 0 to 3, which run on machine 1)."""
    from rlhf_zoo.signals import ended_processes

    def worker(rank: int) -> dict[str, str]:
        return {"TORCHELASTIC_RUN_ID": "r1", "RANK": str(rank), "LOCAL_RANK": str(rank % 4), "LOCAL_WORLD_SIZE": "4"}

    proc = _fake_proc(tmp_path, worker(5), {"PATH": "/bin"}, [(900_004, "S", worker(4)), (900_006, "S", worker(6))])
    assert ended_processes(worker(5), proc=str(proc)) == [7]


def test_an_environment_value_that_holds_an_equals_sign_is_read(tmp_path):
    """Environments hold values with ``=`` (``LS_COLORS=di=01;34:...``, a URL's query): the launcher's and the other
    processes' are read all the same."""
    from rlhf_zoo.signals import ended_processes

    colours = {"LS_COLORS": "di=01;34:ln=01;36", "QUERY": "https://h/?a=1&b=2"}
    proc = _fake_proc(tmp_path, _worker(0), {"PATH": "/bin", **colours}, [(900_001, "S", {**colours, **_worker(1)})])
    assert ended_processes(_worker(0), proc=str(proc)) == []


def test_which_processes_ended_is_not_told_without_torchrun_or_through_a_wrapper(tmp_path):
    from rlhf_zoo.signals import ended_processes

    assert ended_processes({"RANK": "0", "WORLD_SIZE": "2"}, proc=str(tmp_path)) is None  # no torchrun
    assert ended_processes(_worker(0), proc=str(tmp_path / "none")) is None  # no /proc
    # A shell that torchrun started runs this process: its siblings are not the launch's processes.
    wrapped = _fake_proc(tmp_path, _worker(0), _worker(0), [])
    assert ended_processes(_worker(0), proc=str(wrapped)) is None


def test_the_message_of_a_process_lost_while_the_run_starts():
    from rlhf_zoo.train import LAUNCHER_STOP

    two = str(LostProcess(None, "runs/x", LAUNCHER_STOP, rank=0, world=2))
    assert two.startswith("the other process of this run (rank 1) stopped while the run was starting (killed"), two
    assert f"so this one (rank 0) stops too ({LAUNCHER_STOP}); runs/x holds no checkpoint yet" in two, two
    four = str(LostProcess(None, "runs/x", LAUNCHER_STOP, rank=2, world=4, checkpointed=True, lost=[3]))
    assert four.startswith("another process of this run (rank 3) stopped while the run was starting"), four
    assert four.endswith("runs/x holds a checkpoint: add resume=true to continue from it"), four
    assert str(LostProcess(None, "r", "c", rank=0, world=4, lost=[1, 3])).startswith(
        "other processes of this run (ranks 1, 3)"
    )
    again = pickle.loads(pickle.dumps(LostProcess(None, "runs/x", LAUNCHER_STOP, rank=2, world=4, lost=[3])))
    assert str(again) == str(LostProcess(None, "runs/x", LAUNCHER_STOP, rank=2, world=4, lost=[3])) and again.lost == [
        3
    ]


def test_what_ends_a_launched_run_while_it_starts(tmp_path, monkeypatch):
    """The launcher's SIGTERM after a lost process, or a collective that fails, while the run is still starting:
    a LostProcess naming what the run directory holds; the user's stop (no process ended), another error, or one
    process alone: None, the error as it was."""
    import signal

    from rlhf_zoo.signals import StopSignal
    from rlhf_zoo.train import LAUNCHER_STOP, lost_while_starting

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    run = tmp_path / "r"
    lost = lost_while_starting(StopSignal(signal.SIGTERM, ended=[0]), str(run))
    assert lost is not None and lost.step is None and lost.cause == LAUNCHER_STOP and lost.rank == 1
    assert "(rank 0) stopped while the run was starting" in str(lost) and "holds no checkpoint yet" in str(lost)
    (run / "checkpoint").mkdir(parents=True)
    (run / "checkpoint" / "state.pt").write_bytes(b"")
    closed = lost_while_starting(RuntimeError(CLOSED), str(run))
    assert closed is not None and closed.cause == "Connection closed by peer [127.0.0.1]:9644"
    assert str(closed).endswith(f"{run} holds a checkpoint: add resume=true to continue from it")
    assert lost_while_starting(StopSignal(signal.SIGTERM, ended=[]), str(run)) is None  # the user's stop
    assert lost_while_starting(StopSignal(signal.SIGINT), str(run)) is None
    assert lost_while_starting(RuntimeError(MISMATCH), str(run)) is None
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert lost_while_starting(RuntimeError(CLOSED), str(run)) is None


def test_a_run_whose_setup_meets_a_lost_process_raises_lost_process(tmp_path, monkeypatch):
    """train.run: the failure of a collective while the model is built (FSDP's sharding, say) is a LostProcess
    with no step, not the communication error's traceback or the command's generic line."""
    import types

    import rlhf_zoo.train

    cfg = load_config(["algo=reinforce", f"run_dir={tmp_path / 'r'}", "train.progress=false"])
    monkeypatch.setattr(rlhf_zoo.train, "runtime_for", lambda cfg: types.SimpleNamespace(rank=0, world=2))

    def lost(*args, **kwargs):
        raise RuntimeError(CLOSED)

    monkeypatch.setattr(rlhf_zoo.train, "build", lost)
    with pytest.raises(LostProcess, match=r"^the other process of this run \(rank 1\) stopped while the run was"):
        rlhf_zoo.train.run(cfg)


@pytest.fixture
def stop_handlers():
    """The command under a launch ignores stop signals once it ends on a lost process: put them back."""
    import signal

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, h in before.items():
        signal.signal(s, h)


@pytest.mark.parametrize("context", [None, "lost", "closed"])
def test_a_stop_after_a_lost_process_ends_the_launched_command_with_one_line(
    context, monkeypatch, capsys, tmp_path, stop_handlers
):
    """The launcher's SIGTERM outside the run's setup and training (where no run directory is known), or while
    a lost process's error goes up: one line naming the lost process, exit code 1, and stop signals ignored
    until the process ends (the launcher's SIGTERM ended it with -15 as it printed or exited)."""
    import signal

    import rlhf_zoo.train
    from rlhf_zoo.cli import main
    from rlhf_zoo.signals import StopSignal

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    earlier = {
        None: None,
        "lost": LostProcess(3, "runs/x", "Connection closed by peer [127.0.0.1]:9644", 2, rank=0, world=2),
        "closed": RuntimeError(CLOSED),
    }[context]

    def stopped(*args, **kwargs):
        try:
            if earlier is not None:
                raise earlier
        finally:
            raise StopSignal(signal.SIGTERM, ended=[1] if earlier is None else [])

    monkeypatch.setattr(rlhf_zoo.train, "run", stopped)
    assert main(["train", "algo=reinforce", f"run_dir={tmp_path}/r"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "interrupted" not in err, err
    if context == "lost":
        assert err.startswith("rlhf-zoo: error: the other process of this run (rank 1) stopped at step 3"), err
    else:
        assert err.startswith("rlhf-zoo: error: the other process of this run (rank 1) stopped (killed"), err
        cause = "SIGTERM from the launcher" if context is None else "Connection closed by peer [127.0.0.1]:9644"
        assert f"so this one (rank 0) stops too ({cause}" in err, err
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN == signal.getsignal(signal.SIGINT)


def test_the_users_stop_of_a_launched_command_stays_interrupted(monkeypatch, capsys, tmp_path, stop_handlers):
    import signal

    import rlhf_zoo.train
    from rlhf_zoo.cli import main
    from rlhf_zoo.signals import StopSignal

    monkeypatch.setenv("WORLD_SIZE", "2")

    def stopped(*args, **kwargs):
        raise StopSignal(signal.SIGTERM, ended=[])

    monkeypatch.setattr(rlhf_zoo.train, "run", stopped)
    assert main(["train", "algo=reinforce", f"run_dir={tmp_path}/r"]) == 143
    assert capsys.readouterr().err.strip() == "rlhf-zoo: interrupted (SIGTERM)"
    assert signal.getsignal(signal.SIGTERM) != signal.SIG_IGN


# This process (a command started as a launch's rank 0, or alone) receives SIGTERM while `rlhf-zoo` imports torch and
# its training code (a launched process's first seconds); $ENDED: which processes of the launch had ended then.
STOPPED_WHILE_IMPORTING = """
import builtins, os, signal, sys

import rlhf_zoo.signals
from rlhf_zoo.cli import main

rlhf_zoo.signals.ended_processes = lambda: [int(r) for r in os.environ["ENDED"].split(",") if r]
real_import = builtins.__import__

def importing(name, *args, **kwargs):
    if name == "rlhf_zoo.train":
        builtins.__import__ = real_import
        os.kill(os.getpid(), signal.SIGTERM)
    return real_import(name, *args, **kwargs)

builtins.__import__ = importing
sys.exit(main(["train", "algo=reinforce", "train.steps=1", "run_dir=" + os.environ["RUN"]]))
"""


@pytest.mark.parametrize(
    ("ended", "line", "code"),
    [
        ("", "rlhf-zoo: interrupted (SIGTERM)", 143),
        ("1", "rlhf-zoo: error: the other process of this run (rank 1) stopped (killed, out of memory?", 1),
    ],
    ids=["the user's stop", "after a lost process"],
)
def test_a_stop_while_the_command_imports_is_told_once_it_has_imported(tmp_path, ended, line, code):
    """SIGTERM while `rlhf-zoo` imports torch ended the process silently (exit code -15): a launched process whose
    peer was lost in its first seconds, or the user's stop. It is told, with its exit code, once the import ends
    (an exception raised inside an import can break it); the command does not run."""
    import os
    import subprocess
    import sys

    from tests.runtime.distributed_helpers import ROOT

    env = {**os.environ, "PYTHONPATH": str(ROOT), "RUN": str(tmp_path / "r"), "ENDED": ended}
    if ended:
        env.update(RANK="0", WORLD_SIZE="2")  # no group is made: the command stops before it would
    out = subprocess.run(
        [sys.executable, "-c", STOPPED_WHILE_IMPORTING], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == code and out.stderr.startswith(line), (out.returncode, out.stderr[-3000:])
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr[-3000:]
    assert not (tmp_path / "r").exists()


def test_which_processes_ended_is_not_told_where_another_process_cannot_be_read(tmp_path, monkeypatch):
    """A process of the launch whose environment cannot be read (another user's, a stricter /proc) is not taken
    for an ended one."""
    from rlhf_zoo import signals

    proc = _fake_proc(tmp_path, _worker(0), {"PATH": "/bin"}, [(900_001, "S", _worker(1))])
    environ = signals._environ

    def unreadable(process):
        if process.name == "900001":
            raise PermissionError(13, "Permission denied")
        return environ(process)

    monkeypatch.setattr(signals, "_environ", unreadable)
    assert signals.ended_processes(_worker(0), proc=str(proc)) is None


def test_a_stop_in_the_rendezvous_is_the_users_unless_another_process_of_the_launch_had_ended(monkeypatch):
    """A stop signal while this process waits for the others to join the group: the user's stop (no other
    process ended, ``[]``, or that cannot be told, None) is "interrupted" with 128 + the signal; after another
    process of the launch ended, one error line naming it, exit code 1."""
    import signal

    from rlhf_zoo.train import _stopped_in_rendezvous

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    for ended in (None, []):
        assert _stopped_in_rendezvous("runs/x", signal.SIGTERM, ended) == ("rlhf-zoo: interrupted (SIGTERM)", 143)
    line, code = _stopped_in_rendezvous("runs/x", signal.SIGTERM, [1])
    assert code == 1 and line.startswith("rlhf-zoo: error: the other process of this run (rank 1) stopped while"), line
