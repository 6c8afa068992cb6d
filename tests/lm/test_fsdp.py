"""FSDP2 on a real 2-process group on CPU (gloo): the tiny language model's policy sharded with
``fully_shard`` (``train.fsdp=true`` under torchrun, and the shipped ``configs/accelerate/fsdp.yaml``
through ``accelerate launch``) gives the result of unsharded training with the same global batch, for
LoRA and for full fine-tuning; checkpoints written from and read into the shards resume the run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rlhf_zoo.config import load_config
from rlhf_zoo.rng import Streams
from rlhf_zoo.rollout import BaseCache
from rlhf_zoo.runlog import RunLog
from rlhf_zoo.train import build, prompts_for_step
from tests.runtime.distributed_helpers import (
    assert_records_close,
    interrupted_one_process,
    launch,
    max_abs_diff,
    one_process,
    records,
    torchrun,
)

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "accelerate" / "fsdp.yaml"
LORA = ["algo=jbond"]
FULL = ["algo=jbond", "model.finetune=full"]
BOND = ["algo=bond", "algo.k=4"]  # Monte-Carlo quantiles against the base cache (sampled from π_ref)


def _sharded(run: Path) -> None:
    """The run was sharded (its last start, a resume's being in meta.json's ``resumes``): each of the 2
    processes held about half of the model's weight values."""
    meta = json.loads((run / "meta.json").read_text())
    assert (meta.get("resumes") or [meta])[-1]["sharded"] == "fsdp2"
    held = [json.loads((run / f"shards_rank{r}.json").read_text()) for r in (0, 1)]
    assert held[0]["whole"] == held[1]["whole"] == held[0]["local"] + held[1]["local"]
    assert all(h["local"] < 0.6 * h["whole"] for h in held)


@pytest.mark.slow
def test_fsdp_two_processes_equal_unsharded_training(lm_args, tmp_path):
    common = [a for a in lm_args if not a.startswith("run_dir")] + ["train.steps=3", "train.batch_prompts=4"]
    fsdp = [*common, "train.fsdp=true"]
    names = ("lora", "full", "full_replicas", "bond", "resumed", "from_one", "one", "one_bond", "kept", "kept_full")
    d = {name: tmp_path / name for name in names}
    # J-BOND with LoRA interrupted after 1 step in one unsharded process, resumed by the sharded processes
    interrupted_one_process([*fsdp, *LORA, f"run_dir={d['from_one']}"], stop_after=1)
    out = torchrun(
        [
            [*fsdp, *LORA, f"run_dir={d['lora']}"],
            [*fsdp, *FULL, f"run_dir={d['full']}"],
            [*common, *FULL, f"run_dir={d['full_replicas']}"],  # the same without sharding
            [*fsdp, *BOND, f"run_dir={d['bond']}"],
            # fsdp_reshard_after_forward: false (gathered weights kept between forwards until resharded)
            [*fsdp, *LORA, f"run_dir={d['kept']}", "worker.reshard_after_forward=false"],
            [*fsdp, *FULL, f"run_dir={d['kept_full']}", "worker.reshard_after_forward=false"],
            # stopped after 1 step (a checkpoint gathered from the shards: weights and Adam moments) and
            # resumed by the same sharded processes
            [*fsdp, *LORA, f"run_dir={d['resumed']}", "worker.stop_after=1"],
            [*fsdp, *LORA, f"run_dir={d['resumed']}", "resume=true"],
            [*fsdp, *LORA, f"run_dir={d['from_one']}", "resume=true"],
        ]
    )
    assert "MULTI_CPU" in out
    for name in ("lora", "full", "bond", "resumed", "from_one", "kept", "kept_full"):
        _sharded(d[name])
        # whole tensors, gathered in every process; the same update everywhere
        assert max_abs_diff(torch.load(d[name] / "weights_rank0.pt"), torch.load(d[name] / "weights_rank1.pt")) == 0
    assert not (d["full_replicas"] / "shards_rank0.json").exists()

    # LoRA: one unsharded process, same global batch. As in test_distributed.py, generation and log-probs
    # run on differently padded batches, so values agree to rounding (measured: about 1.5e-6).
    one = one_process([*common, *LORA, f"run_dir={d['one']}"])
    for name in ("lora", "resumed", "from_one", "kept"):
        assert max_abs_diff(one, torch.load(d[name] / "weights_rank0.pt")) <= 1e-4, name
        assert_records_close(records(d["one"]), records(d[name]), atol=1e-4)
    one_bond = one_process([*common, *BOND, f"run_dir={d['one_bond']}"])
    assert max_abs_diff(one_bond, torch.load(d["bond"] / "weights_rank0.pt")) <= 1e-4
    assert_records_close(records(d["one_bond"]), records(d["bond"]), atol=1e-4)

    # Full fine-tuning: sharded = full replicas on the same 2 processes (measured: weights within 1.2e-7,
    # metrics within 2e-6, but the gradient norm, about 35, once 2.3e-5 apart: float32 rounding of a sum over
    # every weight's gradient, summed in another order by the sharded norm; hence a relative 1e-6 besides).
    # Against one process both layouts differ by up to about lr = 1e-3 in a few
    # embedding entries: Adam normalises gradients that are ~0 in one layout and rounding noise in the
    # other, a property of data parallelism with full fine-tuning, not of sharding.
    full_replicas = torch.load(d["full_replicas"] / "weights_rank0.pt")
    assert any(k.startswith("anchor.") for k in full_replicas)
    for name in ("full", "kept_full"):
        assert max_abs_diff(full_replicas, torch.load(d[name] / "weights_rank0.pt")) <= 1e-5
        assert_records_close(records(d["full_replicas"]), records(d[name]), atol=1e-5, rtol=1e-6)

    # A sharded run's checkpoint is laid out as an unsharded one's: the same weight keys and whole shapes,
    # the optimiser's per-parameter state as whole tensors.
    (plain, plain_state), (sharded, sharded_state) = (RunLog(str(d[n])).load_checkpoint() for n in ("one", "lora"))
    assert {k: v.shape for k, v in plain.items()} == {k: v.shape for k, v in sharded.items()}
    shapes = [
        {i: {k: tuple(v.shape) for k, v in s.items()} for i, s in state["optimizer"]["state"].items()}
        for state in (plain_state, sharded_state)
    ]
    assert shapes[0] == shapes[1]
    assert all(type(v) is torch.Tensor for s in sharded_state["optimizer"]["state"].values() for v in s.values())


@pytest.mark.slow
def test_fsdp_base_cache_step_that_leaves_a_process_no_prompt_runs_in_lockstep(lm_args, tmp_path):
    """BOND's base cache on sharded weights, in a step whose one missing prompt is drawn by process 0 (k
    samples) while process 1, with none of its own, runs a discarded 1-sample generation: both must run as
    many forwards (each gathers the sharded weights), or they wait for each other for ever. The run ends as
    one unsharded process's does."""
    common = [a for a in lm_args if not a.startswith("run_dir")]
    common += ["train.steps=4", "train.batch_prompts=6", "train.eval_every=4", *BOND]
    cfg = load_config([*common, "device=cpu", f"run_dir={tmp_path / 'probe'}"])
    prompts = build(cfg)[1].train_prompts
    seen, missing = set(), []
    for step in range(4):
        batch = prompts_for_step(prompts, step, 6, cfg.seed)
        missing.append(len({p for p in batch if p not in seen}))
        seen.update(batch)
    assert missing[-1] == 1  # the last step's one new prompt falls to one of the 2 processes
    run = tmp_path / "fsdp"
    out = launch([[*common, "train.fsdp=true", f"run_dir={run}"]], timeout=300)
    assert out.returncode == 0, out.stderr[-4000:]
    _sharded(run)
    w0 = torch.load(run / "weights_rank0.pt")
    assert max_abs_diff(w0, torch.load(run / "weights_rank1.pt")) == 0
    one = one_process([*common, f"run_dir={tmp_path / 'one'}"])
    assert max_abs_diff(one, w0) <= 1e-4
    assert_records_close(records(tmp_path / "one"), records(run), atol=1e-4)


@pytest.mark.slow
def test_shipped_fsdp_config_launches_a_sharded_run(lm_args, tmp_path):
    """`accelerate launch --config_file configs/accelerate/fsdp.yaml` with device=cpu: accelerate itself
    keeps no FSDP state on CPU; rlhf_zoo reads the exported settings and shards the policy."""
    run, one = tmp_path / "launched", tmp_path / "one"
    args = [a for a in lm_args if not a.startswith("run_dir")] + LORA
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIG), "-m", "rlhf_zoo"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [*cmd, "train", *args, "device=cpu", f"run_dir={run}"], capture_output=True, text=True, timeout=600, env=env
    )
    assert out.returncode == 0, out.stderr[-3000:]
    meta = json.loads((run / "meta.json").read_text())
    assert meta["processes"] == 2 and meta["sharded"] == "fsdp2"
    one_process([*args, f"run_dir={one}"])
    assert "sharded" not in json.loads((one / "meta.json").read_text())
    assert_records_close(records(one), records(run), atol=1e-4)


class _Shard:
    """Process 1 of 2 (collectives faked: process 0 drew the one missing prompt)."""

    rank, world = 1, 2

    def __init__(self, part):
        self.part = part

    def gather_objects(self, obj):
        return [self.part, obj]


class _Entry:
    def to(self, device):
        return self


class _ShardedPolicy:
    device = "cpu"
    anchor_version = 0

    def __init__(self, sharded):
        self.sharded = sharded
        self.calls = []

    def sample(self, prompts, n, *, role, generator):
        self.calls.append((list(prompts), n, role))


@pytest.mark.parametrize("sharded", [False, True])
def test_a_sharded_process_without_cache_prompts_still_samples_in_lockstep(sharded):
    """Sharded weights are gathered by every forward (a collective): when a step's missing base-cache
    prompts leave a process none of its own, it still runs one generation (discarded), as its peer does."""
    entry = (_Entry(), torch.zeros(2))
    cache = BaseCache(k=2)
    policy = _ShardedPolicy(sharded)
    got = cache.get(policy, "ref", ["p", "p"], None, Streams(0, 0), None, _Shard({("p", "ref", 0): entry}))
    assert got == [entry] and ("p", "ref", 0) in cache.entries
    assert policy.calls == ([(["p"], 1, "ref")] if sharded else [])
