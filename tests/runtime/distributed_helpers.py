"""Launch a real process group on CPU (gloo, through accelerate) and compare its runs with one process."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from subprocess import PIPE

import torch

from rlhf_zoo.config import load_config
from rlhf_zoo.train import Trainer, build
from tests.runtime.resume_helpers import interrupt_after

WORKER = Path(__file__).with_name("ddp_worker.py")
ROOT = Path(__file__).resolve().parents[2]


TEARDOWN_ABORT = "terminate called without an active exception"


def torchrun(runs: list[list[str]], nproc: int = 2, timeout: int = 600) -> str:
    """Run every override list of ``runs`` in one ``nproc``-process group; returns stdout.

    One failure is not the code's: a process that aborts in torch's teardown with ``TEARDOWN_ABORT`` after
    every process printed the worker's last line (every run done and its weights saved).
    Seen in 1 of 117 back-to-back launches of test_distributed_exact's group on this 2-core CPU, with the
    group destroyed first (pytorch/pytorch#190489 reports the like without it); what the runs wrote is
    checked all the same by the tests."""
    out = launch(runs, nproc, timeout)
    finished = all(f"rank {r} of {nproc} " in out.stdout for r in range(nproc))
    assert out.returncode == 0 or (finished and TEARDOWN_ABORT in out.stderr), (
        f"stdout: {out.stdout[-1000:]}\nstderr: {out.stderr[-4000:]}"
    )
    return out.stdout


def launch(runs: list[list[str]], nproc: int = 2, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run every override list of ``runs`` in one ``nproc``-process group, whatever its exit code. A group
    still running after ``timeout`` seconds (processes waiting for each other) is stopped and fails the
    test."""
    args: list[str] = []
    for i, run in enumerate(runs):
        args += (["--"] if i else []) + [*run, "device=cpu"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
    # The worker is a script: without the repository on its path it imports whichever rlhf_zoo is installed (the
    # main checkout's, for a worktree), not the code under test.
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen([*cmd, str(WORKER), *args], stdout=PIPE, stderr=PIPE, text=True, env=env)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # The launcher stops its workers (each in a session of its own) on SIGTERM: SIGKILL after 30 s.
        proc.terminate()
        try:
            _, stderr = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            stderr = "(the launcher did not stop; killed)"
        raise AssertionError(f"the process group still ran after {timeout} s:\n{stderr[-4000:]}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def one_process(args: list[str]) -> dict[str, torch.Tensor]:
    """Train ``args`` in this process; returns the policy's final state dict."""
    cfg = load_config([*args, "device=cpu"])
    algo, task, policy = build(cfg)
    Trainer(cfg, algo, task, policy).fit()
    return {k: v.detach().cpu() for k, v in policy.state_dict().items()}


def interrupted_one_process(args: list[str], stop_after: int) -> None:
    """Train ``args`` in this process and stop it with Ctrl-C after ``stop_after`` steps (a checkpoint
    is saved), for a run that another number of processes resumes."""
    cfg = load_config([*args, "device=cpu"])
    interrupt_after(Trainer(cfg, *build(cfg)), stop_after)


def records(run_dir: Path) -> list[dict]:
    """metrics.jsonl plus summary.json, without wall-clock fields and the process count."""
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rows.append(json.loads((run_dir / "summary.json").read_text()))
    return [{k: v for k, v in r.items() if not k.startswith("time/") and k != "processes"} for r in rows]


def assert_records_close(one: list[dict], many: list[dict], atol: float, rtol: float = 0.0) -> None:
    """Same keys, equal strings and integers, floats within ``atol`` (or ``rtol`` of their size)."""
    assert len(one) == len(many)
    for a, b in zip(one, many, strict=True):
        assert sorted(a) == sorted(b)
        for k in a:
            if isinstance(a[k], float) or isinstance(b[k], float):
                assert math.isclose(a[k], b[k], rel_tol=rtol, abs_tol=atol), (k, a[k], b[k])
            else:
                assert a[k] == b[k], (k, a[k], b[k])


def max_abs_diff(one: dict[str, torch.Tensor], many: dict[str, torch.Tensor]) -> float:
    assert sorted(one) == sorted(many)
    return max(float((one[k].double() - many[k].double()).abs().max()) for k in one if one[k].numel())
