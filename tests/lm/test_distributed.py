"""A real 2-process group on CPU (gloo, through accelerate): identical weights, gathered metrics."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch


@pytest.mark.slow
def test_two_processes_hold_identical_weights_and_gather_metrics(lm_args, tmp_path):
    run_dir = tmp_path / "run"
    args = [a for a in lm_args if not a.startswith("run_dir")] + [
        "algo=jbond",
        f"run_dir={run_dir}",
        "device=cpu",
        "train.steps=3",
        "train.batch_prompts=4",
    ]
    worker = Path(__file__).with_name("ddp_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29533",
            str(worker),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "MULTI_CPU" in out.stdout
    w0 = torch.load(run_dir / "weights_rank0.pt")
    w1 = torch.load(run_dir / "weights_rank1.pt")
    assert all(torch.equal(a, b) for a, b in zip(w0, w1, strict=True))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["processes"] == 2
    # Each process sampled its half of every step's 4 prompts (1 sample each for J-BOND) plus
    # 2 anchor samples per prompt: the summed cost covers the whole global batch.
    assert summary["cost/completions"] == 3 * 4 * (1 + 2)
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 3]  # one line per evaluation, written once
