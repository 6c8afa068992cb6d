"""Sharded training of the language-model policy with FSDP2 (``torch.distributed.fsdp.fully_shard``).

Asked for by ``train.fsdp=true`` or by an accelerate config with ``distributed_type: FSDP`` and
``fsdp_version: 2`` (``accelerate launch`` exports ``ACCELERATE_USE_FSDP`` and the ``FSDP_*``
settings, read by :func:`launch_settings`). rlhf_zoo shards the model itself: it never passes the
model to ``accelerator.prepare`` (one step runs several forward passes before one backward, and the
policy owns three roles), so the settings it cannot honour are refused in one line instead.

What is sharded (:meth:`rlhf_zoo.policies.hf.HFPolicy.shard`): every transformer block (the model's
``_no_split_modules`` classes, or ``fsdp_transformer_layer_cls_to_wrap``) and the causal LM around
them, each its own ``fully_shard`` unit; with LoRA that is the base model holding both adapters
(π's and the anchor's), with full fine-tuning the trainable model and the frozen reference and
anchor copies, each sharded as a model of its own. Parameters become DTensors sharded on dim 0 over
the processes; FSDP2 all-gathers a unit's parameters for its forward and backward and reduce-scatters
(averages) the gradients, so the explicit gradient all-reduce of plain data parallelism skips them.

This module imports nothing from torch.distributed until a function needs it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from rlhf_zoo.errors import UserError
from rlhf_zoo.io import truthy


@dataclass(frozen=True)
class FSDPSettings:
    """How to shard. ``reshard_after_forward``: free a unit's gathered parameters after its forward
    (gather again for backward; True: least memory). ``wrap_classes``: the class names of the
    modules sharded as units of their own (empty: the model's ``_no_split_modules``)."""

    reshard_after_forward: bool = True
    wrap_classes: tuple[str, ...] = ()


def _refuse(what: str) -> UserError:
    return UserError(f"the accelerate config sets {what}, which rlhf_zoo's FSDP does not implement (docs/scaling.md)")


def launch_settings(env: Mapping[str, str] | None = None) -> FSDPSettings | None:
    """The FSDP settings an ``accelerate launch`` exported (None: the launch did not ask for FSDP).

    Raises a one-line :class:`UserError` for what is not implemented: FSDP1, parameter offloading,
    activation checkpointing, RAM-efficient loading, ignored modules, a size-based or no wrap
    policy, sharded state dicts.
    """
    env = os.environ if env is None else env
    if not truthy(env.get("ACCELERATE_USE_FSDP")):
        return None
    version = (env.get("FSDP_VERSION") or "1").strip()
    if version != "2":
        raise UserError(
            f"the accelerate config selects FSDP version {version}: rlhf_zoo implements FSDP2 only, "
            "set fsdp_version: 2 in fsdp_config (docs/scaling.md)"
        )
    for var, what in [
        ("FSDP_OFFLOAD_PARAMS", "fsdp_offload_params: true"),
        ("FSDP_ACTIVATION_CHECKPOINTING", "fsdp_activation_checkpointing: true"),
        ("FSDP_ACTIVATION_CHECKPOINTING_OFFLOAD", "fsdp_activation_checkpointing_offload: true"),
        ("FSDP_CPU_RAM_EFFICIENT_LOADING", "fsdp_cpu_ram_efficient_loading: true"),
    ]:
        if truthy(env.get(var)):
            raise _refuse(what)
    if env.get("FSDP_IGNORED_MODULES"):
        raise _refuse("fsdp_ignored_modules")
    wrap = (env.get("FSDP_AUTO_WRAP_POLICY") or "TRANSFORMER_BASED_WRAP").strip().upper()
    if wrap != "TRANSFORMER_BASED_WRAP":
        raise _refuse(f"fsdp_auto_wrap_policy: {wrap} (only TRANSFORMER_BASED_WRAP)")
    state_dict = (env.get("FSDP_STATE_DICT_TYPE") or "FULL_STATE_DICT").strip().upper()
    if state_dict != "FULL_STATE_DICT":
        raise _refuse(f"fsdp_state_dict_type: {state_dict} (checkpoints hold full tensors: FULL_STATE_DICT)")
    reshard = (env.get("FSDP_RESHARD_AFTER_FORWARD") or "true").strip().lower()
    if reshard not in ("true", "false"):
        raise _refuse(f"fsdp_reshard_after_forward: {reshard} (FSDP2 takes true or false)")
    classes = tuple(c.strip() for c in (env.get("FSDP_TRANSFORMER_CLS_TO_WRAP") or "").split(",") if c.strip())
    return FSDPSettings(reshard_after_forward=reshard == "true", wrap_classes=classes)


def device_mesh(device: torch.device):
    """A 1-D mesh over every process of the (already initialised) default process group."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    return init_device_mesh(device.type, (dist.get_world_size(),))


def any_process(flag: bool, device: torch.device) -> bool:
    """True in every process if ``flag`` is true in any (a collective of the default process group)."""
    import torch.distributed as dist

    value = torch.tensor([int(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def shard_model(model: nn.Module, settings: FSDPSettings, mesh: Any) -> list[nn.Module]:
    """``fully_shard`` every block of ``model`` whose class is a wrap class, then ``model`` itself;
    returns the sharded modules (the root last)."""
    from torch.distributed.fsdp import fully_shard

    classes = set(settings.wrap_classes or getattr(model, "_no_split_modules", None) or ())
    blocks = [m for m in model.modules() if m is not model and type(m).__name__ in classes]
    if not blocks:
        names = ", ".join(sorted(classes)) or "none"
        raise UserError(
            f"FSDP: no module of {type(model).__name__} is of a class to shard ({names}): "
            "set fsdp_transformer_layer_cls_to_wrap to its transformer block class (docs/scaling.md)"
        )
    for block in blocks:
        fully_shard(block, mesh=mesh, reshard_after_forward=settings.reshard_after_forward)
    # Explicit for the root too: a root left unsharded after a no-gradient forward (sampling, the
    # frozen roles) would keep serving its gathered copy after the sharded weights change.
    fully_shard(model, mesh=mesh, reshard_after_forward=settings.reshard_after_forward)
    return [*blocks, model]


def is_sharded(t: Tensor) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(t, DTensor)


def local(t: Tensor) -> Tensor:
    """This process's shard of a DTensor (a view: in-place ops change the parameter); other tensors as they are."""
    return t.to_local() if is_sharded(t) else t


def full(t: Tensor) -> Tensor:
    """The whole tensor of a DTensor (a collective: every process must call it, in the same order)."""
    return t.full_tensor() if is_sharded(t) else t


def local_shard_of(param: Tensor, whole: Tensor) -> Tensor:
    """This process's shard of ``whole`` (the full tensor of ``param``), laid out like ``param``'s local
    tensor; computed from ``whole`` in every process, no communication. ``whole`` itself (on ``param``'s
    device) when ``param`` is not sharded."""
    from torch.distributed.tensor import distribute_tensor

    whole = whole.detach().to(local(param).device)
    if not is_sharded(param):
        return whole
    return distribute_tensor(whole, param.device_mesh, param.placements, src_data_rank=None).to_local()


def full_optimizer_state(state: dict[str, Any]) -> dict[str, Any]:
    """``optimizer.state_dict()`` with every DTensor replaced by its whole tensor on CPU: the layout of
    an unsharded run's optimizer state, so checkpoints move between sharded and plain runs."""
    return {
        **state,
        "state": {
            i: {k: full(v).cpu() if is_sharded(v) else v for k, v in s.items()} for i, s in state["state"].items()
        },
    }


def shard_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """After ``optimizer.load_state_dict`` of a whole-tensor state: turn each per-parameter tensor of a
    sharded parameter's shape into a DTensor holding this process's shard, as the parameter is."""
    from torch.distributed.tensor import DTensor

    for group in optimizer.param_groups:
        for p in group["params"]:
            if not is_sharded(p) or p not in optimizer.state:
                continue
            st = optimizer.state[p]
            for k, v in list(st.items()):
                if torch.is_tensor(v) and not is_sharded(v) and tuple(v.shape) == tuple(p.shape):
                    shard = local_shard_of(p, v)
                    st[k] = DTensor.from_local(shard, p.device_mesh, p.placements, shape=p.shape, stride=p.stride())
