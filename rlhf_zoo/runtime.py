"""Device placement and data parallelism, through ``accelerate`` only.

One process (the default): the device is ``cpu``/``cuda`` and nothing is wrapped. Several processes
(``accelerate launch --num_processes N`` or ``torchrun``): each process takes its share of every
step's prompts (``prompts[rank::world]``), samples with its own RNG stream, and after each backward
pass the trainable gradients are averaged across processes with ``accelerator.reduce`` before the
optimiser step, so every process applies the same update and holds the same weights. Gradients are
reduced explicitly rather than through a DDP wrapper because one step runs several forward passes
(completions and forward-term targets) before one backward pass. Evaluation metrics are averaged
across processes and cost counters summed; only the main process writes the run directory.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, TypeVar

import torch

T = TypeVar("T")


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        from rlhf_zoo.errors import UserError

        raise UserError(f"device={device} but no CUDA device is available: use device=cpu")
    return torch.device(device)


TRACKERS = {"tensorboard": "tensorboard", "wandb": "wandb"}


def _check_tracker(log_with: str) -> None:
    import importlib.util

    from rlhf_zoo.errors import MissingPackageError, UserError

    if log_with not in TRACKERS:
        raise UserError(f"train.log_with={log_with!r}: use none, {', '.join(TRACKERS)}")
    if importlib.util.find_spec(TRACKERS[log_with]) is None:
        raise MissingPackageError(TRACKERS[log_with], f"train.log_with={log_with}")


def launched_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


class Runtime:
    """The process's place in the (possibly 1-process) group, and the collective operations."""

    def __init__(self, device: str = "auto", log_with: str = "none", project_dir: str | None = None):
        self.accelerator = None
        self.log_with = log_with
        if launched_world_size() > 1 or log_with != "none":
            from accelerate import Accelerator

            dev = resolve_device(device)
            kw: dict[str, Any] = {}
            if log_with != "none":
                _check_tracker(log_with)
                kw = {"log_with": log_with, "project_dir": project_dir}
            self.accelerator = Accelerator(cpu=dev.type == "cpu", **kw)
            self.device = self.accelerator.device
            self.rank = self.accelerator.process_index
            self.world = self.accelerator.num_processes
        else:
            self.device = resolve_device(device)
            self.rank, self.world = 0, 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def shard(self, items: Sequence[T]) -> list[T]:
        """This process's share of a list (all of it in one process)."""
        return list(items[self.rank :: self.world]) if self.distributed else list(items)

    def average_gradients(self, params: Sequence[torch.nn.Parameter]) -> None:
        if not self.distributed:
            return
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        flat = self.accelerator.reduce(flat, reduction="mean")
        offset = 0
        for g in grads:
            n = g.numel()
            g.copy_(flat[offset : offset + n].view_as(g))
            offset += n

    def mean_metrics(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """Average the numeric metrics across processes (equal shards); strings pass through."""
        if not self.distributed:
            return metrics
        keys = sorted(k for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
        values = torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64, device=self.device)
        values = self.accelerator.reduce(values, reduction="mean")
        out = dict(metrics)
        out.update({k: float(v) for k, v in zip(keys, values.tolist(), strict=True)})
        return out

    def sum_ints(self, counts: dict[str, int]) -> dict[str, int]:
        if not self.distributed:
            return counts
        keys = sorted(counts)
        values = torch.tensor([counts[k] for k in keys], dtype=torch.float64, device=self.device)
        values = self.accelerator.reduce(values, reduction="sum")
        return {k: int(v) for k, v in zip(keys, values.tolist(), strict=True)}

    def start_trackers(self, name: str, config: dict[str, Any]) -> None:
        """TensorBoard or W&B through accelerate's trackers (``train.log_with``); no-op for ``none``."""
        if self.log_with != "none":
            self.accelerator.init_trackers(name, config=config)

    def track(self, metrics: dict[str, Any], step: int) -> None:
        if self.log_with != "none":
            numeric = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            self.accelerator.log(numeric, step=step)

    def end_trackers(self) -> None:
        if self.log_with != "none":
            self.accelerator.end_training()

    def barrier(self) -> None:
        if self.distributed:
            self.accelerator.wait_for_everyone()
