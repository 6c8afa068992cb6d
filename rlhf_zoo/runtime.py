"""Device placement and data parallelism, through ``accelerate`` only.

One process (the default): the device is ``cpu``/``cuda`` and nothing is wrapped. Several processes
(``accelerate launch --num_processes N`` or ``torchrun``): each process takes its share of every
step's prompts (``prompts[rank::world]``, see :mod:`rlhf_zoo.shard`) and, after each backward pass,
the trainable gradients are averaged across processes with ``accelerator.reduce`` before the
optimiser step, so every process applies the same update and holds the same weights. Gradients are
reduced explicitly rather than through a DDP wrapper because one step runs several forward passes
(completions and forward-term targets) before one backward pass.

With the same global batch, N processes give the result of one (up to float rounding): every draw
uses per-prompt generators keyed by the prompt's global position (:mod:`rlhf_zoo.rng`), every process
holds an equal share so the mean of the processes' mean losses is the global mean loss, batch-level
statistics (batch-mean baselines) are computed on the gathered global batch, the base cache is shared,
and metrics are averaged across processes (cost counters summed). Only the main process writes.

The model is never passed to ``accelerator.prepare``. Besides full replicas, the language-model
policy can be sharded with FSDP2 (:mod:`rlhf_zoo.fsdp`: ``train.fsdp=true``, or an accelerate config
with ``distributed_type: FSDP`` and ``fsdp_version: 2``, whose settings :attr:`Runtime.fsdp` holds);
its sharded gradients are reduce-scattered by FSDP in backward, and :meth:`Runtime.average_gradients`
skips them. An accelerate config that selects DeepSpeed, Megatron-LM, a parallelism config, mixed
precision, a dynamo backend or an FSDP setting that is not implemented is refused with a one-line
error (:func:`check_launch_config`) rather than silently ignored (docs/scaling.md).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from rlhf_zoo.errors import byte_size
from rlhf_zoo.io import truthy
from rlhf_zoo.shard import interleave

DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")  # what device= (and task.reward_device=) may name


def resolve_device(device: str, key: str = "device") -> torch.device:
    """``device`` (``auto``: CUDA if there is one) as a torch device; ``key`` names the setting in the error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        from rlhf_zoo.errors import UserError

        raise UserError(f"{key}={device} but no CUDA device is available: use {key}=cpu")
    if device == "mps" and not torch.backends.mps.is_available():  # was torch's RuntimeError once a tensor moved
        from rlhf_zoo.errors import UserError

        raise UserError(f"{key}=mps but no MPS device (Apple GPU) is available: use {key}=cpu")
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


def launched_rank() -> int:
    """This process's rank under a launcher (``RANK``, as torchrun and accelerate set it); 0 otherwise."""
    return int(os.environ.get("RANK", "0"))


# What `accelerate launch` exports for settings this runtime does not implement.
UNSUPPORTED_LAUNCH = {
    "ACCELERATE_USE_DEEPSPEED": "DeepSpeed (distributed_type: DEEPSPEED)",
    "ACCELERATE_USE_MEGATRON_LM": "Megatron-LM (distributed_type: MEGATRON_LM)",
    "ACCELERATE_USE_PARALLELISM_CONFIG": "a parallelism_config (tensor/context parallelism)",
}


def check_launch_config(env: Mapping[str, str] | None = None) -> None:
    """Refuse the accelerate settings that rlhf_zoo would otherwise silently ignore (one-line UserError)."""
    from rlhf_zoo.errors import UserError

    env = os.environ if env is None else env
    for var, what in UNSUPPORTED_LAUNCH.items():
        if truthy(env.get(var)):
            raise UserError(
                f"the accelerate config selects {what}, which rlhf_zoo does not implement (it would train full "
                "replicas with plain data parallelism): use distributed_type: MULTI_GPU or FSDP (docs/scaling.md)"
            )
    precision = (env.get("ACCELERATE_MIXED_PRECISION") or "no").strip().lower()
    if precision != "no":
        raise UserError(
            f"the accelerate launch sets mixed_precision: {precision} (its config or --mixed_precision), which "
            "rlhf_zoo does not apply: set mixed_precision: 'no' and choose the model's precision with model.dtype "
            "(docs/scaling.md)"
        )
    dynamo = (env.get("ACCELERATE_DYNAMO_BACKEND") or "no").strip().lower()
    if dynamo != "no":
        raise UserError(
            f"the accelerate launch sets dynamo_backend: {dynamo} (its config's dynamo_config or --dynamo_backend), "
            "which rlhf_zoo does not apply: leave it out (docs/scaling.md)"
        )
    from rlhf_zoo.fsdp import launch_settings

    launch_settings(env)  # refuses the FSDP settings that are not implemented


# gloo's transport errors (``gloo::IoException``), which a collective raises as a plain RuntimeError prefixed by
# their source file: the connection to another process closed or reset (it is gone), or no answer within the
# group's timeout. gloo's assertions ("[enforce fail at .../gloo/transport/tcp/pair.cc:446] ...", a collective
# that differs between the processes among them) are bugs, and do not match.
_GLOO_IO = re.compile(
    r"\[(?!enforce fail)[^\]\n]*gloo/transport/[^\]\n]*\] "
    r"((?:Connection closed by peer|Socket closed|Socket unexpectedly closed|Read error|Read timeout"
    r"|Write timeout|writev|Timed out waiting)[^\n]*)"
)
# torch's own (NCCL's failures and timeouts, the rendezvous store's lost connection or timeouts); their base
# class, DistError, is not one (it is raised for misuse too).
_DIST_ERRORS = ("DistBackendError", "DistNetworkError", "DistStoreError")


def communication_failure(e: BaseException) -> str | None:
    """If ``e`` is a collective's failure to reach another process of the group (gone: killed, out of memory, or
    failed with its own error; or not answering within the group's timeout), what it says, in short
    (``Connection closed by peer [127.0.0.1]:9644``); None for any other error, which keeps its traceback."""
    import torch.distributed as dist

    if dist.is_available() and isinstance(e, tuple(getattr(dist, n) for n in _DIST_ERRORS if hasattr(dist, n))):
        from rlhf_zoo.errors import one_line

        return one_line(e)
    if type(e) is RuntimeError and (m := _GLOO_IO.search(str(e))):
        return m.group(1).split(". ")[0]  # without gloo's advice ("This is typically caused by ... GLHF!")
    return None


_CPU_OOM = re.compile(r"can't allocate memory: you tried to allocate (\d+) bytes")
_GPU_OOM = re.compile(r"Tried to allocate ([\d.]+ [KMGTP]?i?B)")


def out_of_memory(e: BaseException) -> str | None:
    """If ``e`` is a failed allocation (torch's CPU allocator, an accelerator's ``torch.OutOfMemoryError``,
    Python's ``MemoryError``), what was asked for, in short (``the CPU allocator was asked for 4.7 TiB at
    once``); None for any other error, which keeps its traceback."""
    if isinstance(e, torch.OutOfMemoryError):
        m = _GPU_OOM.search(str(e))
        return f"the GPU was asked for {m.group(1)} more" if m else "on the GPU"
    if type(e) is RuntimeError and (m := _CPU_OOM.search(str(e))):
        return f"the CPU allocator was asked for {byte_size(float(m.group(1)))} at once"
    if isinstance(e, MemoryError):
        return "Python's MemoryError"
    return None


def end_process_group() -> None:
    """Destroy the default process group, if a launch made one; a no-op otherwise.

    Every process calls it at the end of a command that all of them finished (or stopped at the same step).
    Left to the interpreter's exit, gloo's worker threads may be torn down after Python's and the process
    then aborts with ``terminate called without an active exception`` (exit -6) although its work is done;
    NCCL warns that the group was not destroyed. Not called after an error: the other processes may still be
    in a collective, which destroying the group would wait for.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()  # no process tears its side down while another still finishes its last collective
        dist.destroy_process_group()


class Runtime:
    """The process's place in the (possibly 1-process) group, and the collective operations."""

    def __init__(self, device: str = "auto", log_with: str = "none", project_dir: str | None = None):
        check_launch_config()
        from rlhf_zoo.fsdp import launch_settings

        # FSDP asked for by the accelerate config (None: not); train.fsdp asks for it too (prepare_policy).
        self.fsdp = launch_settings()
        self.sharded = False  # set by prepare_policy
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
            self.rank = self.accelerator.process_index
            self.world = self.accelerator.num_processes
            # Several processes: each its own (local rank's) device. One process (trackers only): the device
            # named, which accelerate's (the default GPU for any cuda:N) is not.
            self.device = self.accelerator.device if self.world > 1 else dev
        else:
            self.device = resolve_device(device)
            self.rank, self.world = 0, 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    # -- the Shard protocol (rlhf_zoo.shard) --------------------------------------------------------
    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """This process's rows → the global rows in global order (every process holds as many rows)."""
        if not self.distributed:
            return x
        out = self.accelerator.gather(x.detach().to(self.device).contiguous())
        return interleave(out, self.world).to(x.device)

    def gather_objects(self, obj: Any) -> list[Any]:
        """One picklable object per process, by rank (CPU tensors only: NCCL cannot pickle others)."""
        if not self.distributed:
            return [obj]
        from accelerate.utils import gather_object

        return gather_object([obj])

    def average_gradients(self, params: Sequence[torch.nn.Parameter]) -> None:
        if not self.distributed:
            return
        from rlhf_zoo.fsdp import is_sharded

        # Sharded (FSDP) gradients were already reduce-scattered (averaged) in backward. The rest go into one
        # all-reduce of the same size on every process: a gradient that is None here (its parameter unused in
        # this process's forward) counts as zeros, and one flag per parameter says which processes had one, so
        # that a parameter with no gradient on any process keeps none.
        kept = [p for p in params if not is_sharded(p)]
        if not kept:
            return
        dtype = kept[0].dtype  # the widest of the gradients' dtypes (float32 beside bfloat16: float32)
        for p in kept:
            dtype = torch.promote_types(dtype, p.grad.dtype if p.grad is not None else p.dtype)
        parts = [
            (p.grad if p.grad is not None else torch.zeros_like(p, dtype=dtype)).reshape(-1).to(dtype) for p in kept
        ]
        flags = torch.tensor([float(p.grad is not None) for p in kept], dtype=dtype, device=parts[0].device)
        flat = self.accelerator.reduce(torch.cat([*parts, flags]), reduction="mean")
        had = flat[-len(kept) :] > 0
        offset = 0
        for i, p in enumerate(kept):
            n = p.numel()
            avg = flat[offset : offset + n].view_as(p)
            offset += n
            if p.grad is not None:
                p.grad.copy_(avg)
            elif had[i]:
                p.grad = avg.to(p.dtype).clone()

    def device_mesh(self):
        """A 1-D device mesh over every process (for FSDP)."""
        from rlhf_zoo.fsdp import device_mesh

        return device_mesh(self.device)

    # -- the policy's weights and the optimiser, plain or sharded -------------------------------------
    def prepare_policy(self, policy: Any, fsdp: bool, anchor: bool, task: str) -> bool:
        """Shard the policy with FSDP2 if the launch (``distributed_type: FSDP``) or ``fsdp``
        (``train.fsdp``) asks for it and there are several processes (one process has nothing to shard
        with). ``anchor``: the policy will keep an anchor copy (it cannot be added once sharded).
        Returns whether the policy is sharded (also :attr:`sharded`)."""
        from rlhf_zoo.fsdp import FSDPSettings

        settings = self.fsdp or (FSDPSettings() if fsdp else None)
        if settings is None or not self.distributed:
            return False
        if not hasattr(policy, "shard"):
            from rlhf_zoo.errors import UserError

            asked = "drop train.fsdp" if self.fsdp is None else "use distributed_type: MULTI_GPU, not FSDP"
            raise UserError(
                f"FSDP shards the language-model policy; task={task} has none to shard: {asked} (docs/scaling.md)"
            )
        policy.shard(settings, self.device_mesh(), anchor=anchor)
        self.sharded = True
        return True

    def clip_grad_norm(self, params: Sequence[torch.nn.Parameter], max_norm: float) -> float:
        """Clip the gradients' global norm to ``max_norm``; returns the norm before clipping (over the
        whole model: sharded gradients' norm is a DTensor, made whole)."""
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        if self.sharded:
            from rlhf_zoo.fsdp import full

            norm = full(norm)
        return float(norm)

    def optimizer_state(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """``optimizer.state_dict()``, in the unsharded layout also when the weights are sharded."""
        if not self.sharded:
            return optimizer.state_dict()
        from rlhf_zoo.fsdp import full_optimizer_state

        return full_optimizer_state(optimizer.state_dict())

    def load_optimizer_state(self, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        """Load an (unsharded-layout) optimiser state, re-sharding it where the weights are sharded."""
        optimizer.load_state_dict(state)
        if self.sharded:
            from rlhf_zoo.fsdp import shard_optimizer_state

            shard_optimizer_state(optimizer)

    def any_process(self, flag: bool) -> bool:
        """True in every process if ``flag`` is true in any (a stop request must stop them all at the
        same step, or the others would wait forever in the next collective)."""
        if not self.distributed:
            return flag
        value = torch.tensor([float(flag)], device=self.device)
        return bool(self.accelerator.reduce(value, reduction="sum").item() > 0)

    def any_signal(self, signum: int | None) -> int | None:
        """The stop signal of any process, in every process (None: none received one): a scheduler may
        signal one process only, and every process must stop at the same step and name that signal (the
        higher number where processes received different ones)."""
        if not self.distributed:
            return signum
        value = torch.tensor([float(signum or 0)], device=self.device)
        received = int(self.accelerator.reduce(value, reduction="max").item())
        return received or None

    def mean_metrics(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """Average the numeric metrics across processes; strings pass through. Every metric is a mean
        over a process's equal share of prompts, so the mean over processes is the global mean."""
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
        """Finish the trackers (their files flushed). The process group is left as it is: it belongs to the
        command, which may run more than one training (:func:`end_process_group`)."""
        if self.log_with != "none":
            for tracker in self.accelerator.trackers:
                tracker.finish()

    def barrier(self) -> None:
        if self.distributed:
            self.accelerator.wait_for_everyone()
