"""Two processes give the result of one with the same global batch (CPU, gloo, through accelerate).

One ``torchrun`` group of 2 processes trains every configuration below on the exact testbed with
4 prompts per step (2 per process); the same configurations then train in this one process. The
final weights must be equal and every logged metric (evaluation, training, costs) equal up to float
rounding of the per-process means.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.runtime.distributed_helpers import (
    assert_records_close,
    interrupted_one_process,
    launch,
    max_abs_diff,
    one_process,
    records,
    torchrun,
)

COMMON = [
    "task=exact",
    "seed=3",
    "train.batch_prompts=4",
    "train.steps=6",
    "train.eval_every=3",
    "train.progress=false",
]
RUNS = {
    "reinforce": ["algo=reinforce"],
    # a batch-mean baseline: computed on the gathered global batch
    "reinforce_mean_baseline": ["algo=reinforce", "algo.baseline=mean"],
    "bond": ["algo=bond"],
    # Monte-Carlo quantiles and targets from the base cache, split and exchanged; checkpoints every 2 steps
    "bond_cache": ["algo=bond", "algo.quantiles=mc", "algo.k=4", "train.checkpoint_every=2"],
    "iterative_bond_cache": ["algo=iterative_bond", "algo.quantiles=mc", "algo.k=4", "algo.anchor_period=2"],
    # one sample per prompt: the leave-one-out baseline runs over the (global) batch
    "jbond": ["algo=jbond"],
    # 2 epochs × 2 minibatches: each process holds half of every global minibatch
    "ppo_lite": ["algo=ppo_lite"],
}


@pytest.fixture(scope="module")
def two_process_runs(tmp_path_factory):
    """Every run of RUNS in one 2-process group, plus ``resumed``: bond_cache interrupted after 3 steps
    in one process and resumed by the 2 processes."""
    root = tmp_path_factory.mktemp("two")
    resumed = [*COMMON, *RUNS["bond_cache"], f"run_dir={root / 'resumed'}"]
    interrupted_one_process(resumed, stop_after=3)
    runs = [[*COMMON, *args, f"run_dir={root / name}"] for name, args in RUNS.items()]
    out = torchrun([*runs, [*resumed, "resume=true"]])
    assert "MULTI_CPU" in out
    return root


@pytest.mark.slow
@pytest.mark.parametrize("name", list(RUNS))
def test_two_processes_equal_one_process_on_the_exact_task(name, two_process_runs, tmp_path):
    two = two_process_runs / name
    w0 = torch.load(two / "weights_rank0.pt")
    w1 = torch.load(two / "weights_rank1.pt")
    assert max_abs_diff(w0, w1) == 0.0  # every process applies the same update
    one = one_process([*COMMON, *RUNS[name], f"run_dir={tmp_path / 'one'}"])
    assert max_abs_diff(one, w0) <= 1e-6
    rows_one, rows_two = records(tmp_path / "one"), records(two)
    assert [r.get("step") for r in rows_one] == [0, 3, 6, None]  # 3 evaluations and the summary
    assert_records_close(rows_one, rows_two, atol=1e-6)


@pytest.mark.slow
def test_a_one_process_checkpoint_resumes_on_two_processes(two_process_runs):
    """The checkpoint holds the whole base cache, summed costs and global state: 2 processes resume a
    1-process run (interrupted at step 3 of 6) and finish it as the uninterrupted run does."""
    resumed, uninterrupted = two_process_runs / "resumed", two_process_runs / "bond_cache"
    assert (
        max_abs_diff(torch.load(uninterrupted / "weights_rank0.pt"), torch.load(resumed / "weights_rank0.pt")) <= 1e-6
    )
    assert_records_close(records(uninterrupted), records(resumed), atol=1e-6)


@pytest.mark.slow
def test_a_failure_in_one_process_ends_the_group_with_its_error(tmp_path):
    """The proxy reward fails in the last process only (step 3 of 6; checkpoints every 2 steps) while the
    other process goes on to its next collective: the failing process must not start a checkpoint, a
    collective the others are not in (gloo aborts on the mismatch, NCCL waits), but end with its own
    error; the periodic checkpoint of step 2 stays."""
    run = tmp_path / "run"
    args = [*COMMON, *RUNS["reinforce"], "train.checkpoint_every=2", "worker.fail_at=3", f"run_dir={run}"]
    out = launch([args], timeout=300)
    assert out.returncode != 0
    assert "RewardError: worker.fail_at=3: the proxy reward failed in process 1" in out.stderr, out.stderr[-4000:]
    assert torch.load(run / "checkpoint" / "state.pt", weights_only=False)["step"] == 2


@pytest.mark.slow
def test_a_sigterm_to_one_process_is_named_sigterm_by_every_process(tmp_path):
    """A scheduler may signal one process of a job: every process stops at the same step and names the
    signal that one received (exit 143), not Ctrl-C's (130), which the others named for want of their own."""
    run = tmp_path / "run"
    out = launch([[*COMMON, *RUNS["reinforce"], "worker.sigterm_at=2", f"run_dir={run}"]], timeout=300)
    assert out.returncode == 0, out.stderr[-4000:]
    assert [(run / f"stopped_rank{r}.txt").read_text() for r in (0, 1)] == ["143", "143"]
    assert torch.load(run / "checkpoint" / "state.pt", weights_only=False)["step"] == 3


@pytest.mark.slow
def test_a_sweep_under_a_multi_process_launch_is_refused_in_one_line(tmp_path):
    """A sweep (train with a list of values) runs its points through the bench's runner, which plans and
    writes them as the only process: under a 2-process launch each process planned and wrote every point, and
    one could see the other's just-started run as stale and delete its directory. Refused in every process."""
    out_dir = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "rlhf_zoo"]
    args = ["train", *COMMON, "algo=reinforce,jbond", "train.steps=2", "device=cpu", f"out={out_dir}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode != 0
    message = "rlhf-zoo: error: a sweep or a bench runs in one process"
    # Every process refuses, but torchrun stops the others once one has failed: on a busy machine they may be
    # stopped (SIGTERM, silently while still importing) before they print their own refusal.
    assert out.stderr.count(message) >= 1, out.stderr[-3000:]
    assert not list(out_dir.glob("*/metrics.jsonl"))


CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "accelerate"


def _accelerate_launch(config: Path, args: list[str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config), "-m", "rlhf_zoo"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([*cmd, "train", *args], capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.slow
def test_shipped_multi_gpu_config_launches_the_same_two_process_run(two_process_runs, tmp_path):
    """`accelerate launch --config_file configs/accelerate/multi_gpu.yaml` (on CPU with device=cpu)
    starts 2 processes and reproduces the torchrun run."""
    run = tmp_path / "launched"
    out = _accelerate_launch(CONFIGS / "multi_gpu.yaml", [*COMMON, *RUNS["reinforce"], "device=cpu", f"run_dir={run}"])
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads((run / "summary.json").read_text())["processes"] == 2
    assert out.stdout.count(f"run directory: {run}") == 1  # the summary printed once, not once per process
    assert_records_close(records(two_process_runs / "reinforce"), records(run), atol=0.0)


def test_shipped_accelerate_configs_are_valid_data_parallel_configs():
    from accelerate.commands.config.config_args import load_config_from_file

    for name, machines in [("multi_gpu.yaml", 1), ("multi_node.yaml", 2)]:
        cfg = load_config_from_file(str(CONFIGS / name))
        assert str(cfg.distributed_type) in ("MULTI_GPU", "DistributedType.MULTI_GPU"), name
        assert cfg.num_machines == machines and cfg.num_processes % machines == 0
        assert str(cfg.mixed_precision) in ("no", "PrecisionType.NO") and not cfg.fsdp_config
    cfg = load_config_from_file(str(CONFIGS / "fsdp.yaml"))
    assert str(cfg.distributed_type) in ("FSDP", "DistributedType.FSDP")
    assert cfg.fsdp_config["fsdp_version"] == 2 and str(cfg.mixed_precision) in ("no", "PrecisionType.NO")
    assert sorted(p.name for p in CONFIGS.glob("*.yaml")) == ["fsdp.yaml", "multi_gpu.yaml", "multi_node.yaml"]


@pytest.mark.slow
def test_an_fsdp_config_on_the_tabular_task_is_refused_in_one_line(tmp_path):
    """FSDP shards the language-model policy only: a launch that selects it on the exact testbed fails in
    every process with the one-line error instead of silently training full replicas (the FSDP runs of
    the language model: tests/lm/test_fsdp.py)."""
    run = tmp_path / "run"
    out = _accelerate_launch(CONFIGS / "fsdp.yaml", [*COMMON, "algo=jbond", "device=cpu", f"run_dir={run}"])
    assert out.returncode != 0
    # Both processes write to one stderr at the same moment, so their lines can run together: count
    # the messages, not the lines.
    message = "rlhf-zoo: error: FSDP shards the language-model policy"
    assert out.stderr.count(message) == 2 and out.stderr.count("(docs/scaling.md)") == 2, out.stderr[-3000:]
    assert not (run / "metrics.jsonl").exists()
