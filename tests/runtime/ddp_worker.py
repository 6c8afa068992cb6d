"""Run trainings in every process of a group, saving each process's final weights.

python -m torch.distributed.run --nproc_per_node 2 tests/runtime/ddp_worker.py key=value ... [-- key=value ...]

Each ``--``-separated group of overrides is one run (one process group for all of them, so several
short runs share one launch); each process writes ``<run_dir>/weights_rank<r>.pt`` (its policy's
state dict: trainable and anchor weights), and for a policy sharded with FSDP
``<run_dir>/shards_rank<r>.json``, how many values of the model's weights the process holds.
Two options that are not config keys: ``worker.stop_after=N`` stops that run like Ctrl-C after N
steps (every process takes part in saving the checkpoint) and writes no weights, for a later run of
the group to resume; ``worker.fail_at=N``: the last process's proxy reward fails (a one-line
``RewardError``) in step N while the others go on, as a reward that fails on one prompt would;
``worker.sigterm_at=N``: the first process alone sends itself SIGTERM as step N begins (as a scheduler
may signal one process), and each process writes the exit code its ``Interrupted`` carries to
``<run_dir>/stopped_rank<r>.txt``; ``worker.reshard_after_forward=false`` shards that run as an accelerate config
with ``fsdp_reshard_after_forward: false`` would.
"""

import json
import os
import signal
import sys
from pathlib import Path

import torch

from rlhf_zoo.config import load_config
from rlhf_zoo.fsdp import FSDPSettings
from rlhf_zoo.runtime import Runtime, end_process_group
from rlhf_zoo.train import Interrupted, Trainer, build


def stop_after(trainer: Trainer, steps: int) -> None:
    original = trainer.train_step

    def step():
        if trainer.step == steps:
            raise KeyboardInterrupt
        return original()

    trainer.train_step = step


def sigterm_at(trainer: Trainer, step: int) -> None:
    original = trainer.train_step

    def signalled_step():
        if trainer.step == step and trainer.rt.rank == 0:
            os.kill(os.getpid(), signal.SIGTERM)
        return original()

    trainer.train_step = signalled_step


def fail_at(trainer: Trainer, step: int) -> None:
    from rlhf_zoo.rewards.base import RewardError

    proxy, original = trainer.task.proxy, trainer.task.proxy.score

    def score(prompts, completions):
        if trainer.rt.rank == trainer.rt.world - 1 and trainer.step == step:
            raise RewardError(f"worker.fail_at={step}: the proxy reward failed in process {trainer.rt.rank}")
        return original(prompts, completions)

    proxy.score = score


torch.set_num_threads(1)
runs: list[list[str]] = [[]]
for arg in sys.argv[1:]:
    if arg == "--":
        runs.append([])
    else:
        runs[-1].append(arg)
rt = None
launched = None
for args in runs:
    stop = [int(a.split("=", 1)[1]) for a in args if a.startswith("worker.stop_after=")]
    cfg = load_config([a for a in args if not a.startswith("worker.")])
    if rt is None:
        rt = Runtime(cfg.device)
        launched = rt.fsdp
    keep_gathered = "worker.reshard_after_forward=false" in args
    rt.fsdp = FSDPSettings(reshard_after_forward=False) if keep_gathered else launched
    algo, task, policy = build(cfg, rt)
    trainer = Trainer(cfg, algo, task, policy, runtime=rt)
    fail = [int(a.split("=", 1)[1]) for a in args if a.startswith("worker.fail_at=")]
    if fail:
        fail_at(trainer, fail[0])
    term = [int(a.split("=", 1)[1]) for a in args if a.startswith("worker.sigterm_at=")]
    if term:
        sigterm_at(trainer, term[0])
        try:
            trainer.fit()
        except Interrupted as e:
            Path(f"{cfg.run_dir}/stopped_rank{rt.rank}.txt").write_text(str(e.exit_code))
            continue
    if stop:
        stop_after(trainer, stop[0])
        try:
            trainer.fit()
        except Interrupted:
            continue
        raise SystemExit(f"{cfg.run_dir}: worker.stop_after={stop[0]} did not stop the run")
    trainer.fit()
    weights = {k: v.detach().cpu() for k, v in policy.state_dict().items()}
    torch.save(weights, f"{cfg.run_dir}/weights_rank{rt.rank}.pt")
    if getattr(policy, "sharded", False):
        from rlhf_zoo.fsdp import local

        policy.reshard()  # with reshard_after_forward=false the modules may still hold gathered copies
        params = list(policy.model.parameters())
        held = {"local": sum(local(p).numel() for p in params), "whole": sum(p.numel() for p in params)}
        Path(f"{cfg.run_dir}/shards_rank{rt.rank}.json").write_text(json.dumps(held))
# flushed: the launcher's check that every process got here must not depend on how the process ends
print(f"rank {rt.rank} of {rt.world} on {rt.accelerator.distributed_type if rt.accelerator else 'single'}", flush=True)
end_process_group()  # as the command does: a group left to the exit can abort a finished process
