"""Run one training in every process of a group, then save this process's trainable weights.

python -m torch.distributed.run --nproc_per_node 2 tests/lm/ddp_worker.py key=value ...
"""

import sys

import torch

from rlhf_zoo.config import load_config
from rlhf_zoo.runtime import Runtime
from rlhf_zoo.train import Trainer, build

torch.set_num_threads(1)
cfg = load_config(sys.argv[1:])
rt = Runtime(cfg.device)
algo, task, policy = build(cfg, rt)
Trainer(cfg, algo, task, policy, runtime=rt).fit()
torch.save([p.detach().cpu() for p in policy.trainable_parameters()], f"{cfg.run_dir}/weights_rank{rt.rank}.pt")
print(f"rank {rt.rank} of {rt.world} on {rt.accelerator.distributed_type if rt.accelerator else 'single'}")
