"""Another process of a multi-process run is gone (the OOM killer, ``kill -9``): the survivors' next collective
fails, and each ends with one line naming the checkpoint that ``resume=true`` continues from, not gloo's
traceback. Only the distributed communication errors are told so; any other error keeps its traceback.

The two-process run with a process killed: tests/lm/test_distributed.py."""

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


def test_which_processes_ended_is_not_told_without_torchrun_or_through_a_wrapper(tmp_path):
    from rlhf_zoo.signals import ended_processes

    assert ended_processes({"RANK": "0", "WORLD_SIZE": "2"}, proc=str(tmp_path)) is None  # no torchrun
    assert ended_processes(_worker(0), proc=str(tmp_path / "none")) is None  # no /proc
    # A shell that torchrun started runs this process: its siblings are not the launch's processes.
    wrapped = _fake_proc(tmp_path, _worker(0), _worker(0), [])
    assert ended_processes(_worker(0), proc=str(wrapped)) is None
