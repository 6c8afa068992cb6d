"""Run trainings in every process of a group, saving each process's final weights.

python -m torch.distributed.run --nproc_per_node 2 tests/ddp_worker.py key=value ... [-- key=value ...]

Each ``--``-separated group of overrides is one run (one process group for all of them, so several
short runs share one launch); each process writes ``<run_dir>/weights_rank<r>.pt`` (its policy's
state dict: trainable and anchor weights).
"""

import sys

import torch

from rlhf_zoo.config import load_config
from rlhf_zoo.runtime import Runtime
from rlhf_zoo.train import Trainer, build

torch.set_num_threads(1)
runs: list[list[str]] = [[]]
for arg in sys.argv[1:]:
    if arg == "--":
        runs.append([])
    else:
        runs[-1].append(arg)
rt = None
for args in runs:
    cfg = load_config(args)
    rt = rt or Runtime(cfg.device)
    algo, task, policy = build(cfg, rt)
    Trainer(cfg, algo, task, policy, runtime=rt).fit()
    weights = {k: v.detach().cpu() for k, v in policy.state_dict().items()}
    torch.save(weights, f"{cfg.run_dir}/weights_rank{rt.rank}.pt")
print(f"rank {rt.rank} of {rt.world} on {rt.accelerator.distributed_type if rt.accelerator else 'single'}")
