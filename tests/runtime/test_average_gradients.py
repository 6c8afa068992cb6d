"""Runtime.average_gradients in a real 2-process group (gloo on CPU) where a parameter's gradient is None
on one process (unused in its forward): the same collectives on every process, None counted as zeros."""

import json
import os
import subprocess
import sys
from pathlib import Path

WORKER = Path(__file__).with_name("grad_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def test_a_gradient_missing_on_one_process_is_averaged_as_zeros(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(WORKER)]
    cmd.append(str(tmp_path))
    # the repository first on the worker script's path: else it imports the installed rlhf_zoo, not this one
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    # A mismatched collective fails or hangs: a group still running after the timeout fails the test.
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)
    assert out.returncode == 0, out.stderr[-4000:]
    rows = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["rank"] for r in rows] == [0, 1]
    for r in rows:
        # a: (1 + 3) / 2; b: (2 + 0) / 2; c: no gradient anywhere, so none.
        assert r["first"] == [[2.0] * 3, [1.0] * 2, None]
        assert r["second"] == [None, [2.0] * 2, None]
