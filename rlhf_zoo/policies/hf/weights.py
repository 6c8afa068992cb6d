"""The weights behind each role of an :class:`~rlhf_zoo.policies.hf.HFPolicy`: π's LoRA adapter, frozen
copies, and π_anchor (:class:`Anchor`) with its moving average.

- **LoRA** (Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", arXiv 2106.09685, 2021),
  through PEFT (:func:`attach_lora`): π = base + adapter ``"default"``; π_ref = the same model with
  adapters disabled; π_anchor = a second adapter ``"anchor"`` on the same base, made active only for
  the duration of an anchor forward. The anchor costs one more set of adapter weights, and an anchor
  forward never touches π's tensors (so a pending autograd graph of π stays valid).
- **Full fine-tuning**: π_ref and π_anchor are :func:`frozen_copy` s of the model.

Everything here works on plain and on FSDP-sharded weights alike: the anchor's update is elementwise, so
it runs on each process's local shards (:func:`rlhf_zoo.fsdp.local` is the identity on plain tensors).
"""

from __future__ import annotations

import contextlib
import copy
import re
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from rlhf_zoo.errors import UserError
from rlhf_zoo.fsdp import full, local, local_shard_of
from rlhf_zoo.functional.ema import ema_
from rlhf_zoo.policies.hf.config import HFPolicyConfig

POLICY_ADAPTER = "default"  # PEFT's name for the first adapter
ANCHOR_ADAPTER = "anchor"


def attach_lora(model: nn.Module, cfg: HFPolicyConfig) -> nn.Module:
    """``model`` wrapped by PEFT with π's adapter (``cfg.lora_*``); only the adapter is trainable.

    B = 0 at initialisation, so π = π_ref exactly until the first step; the A matrices draw from torch's
    global RNG. Raises :class:`UserError` when the target modules do not exist in this architecture.
    """
    from peft import LoraConfig, get_peft_model

    targets: Any = list(cfg.lora_target_modules)
    if targets == ["all-linear"]:
        targets = "all-linear"
    else:
        # PEFT adapts a module whose name is a target or ends with "." + a target, and ignores a target that
        # matches nothing as long as another one matches: a misspelt name would silently train fewer weights.
        names = [name for name, _ in model.named_modules()]
        missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
        if missing:
            raise UserError(
                f"model.lora_target_modules: {', '.join(missing)} names no module of {cfg.name!r}; use this "
                "architecture's linear module names (e.g. q_proj, v_proj for Llama), or ['all-linear']"
            )
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
        bias="none",
        task_type="CAUSAL_LM",
    )
    try:
        with warnings.catch_warnings():
            # PEFT 0.21 probes a property that transformers 5 deprecates; nothing to act on.
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            return get_peft_model(model, lora)
    except ValueError as e:
        raise UserError(
            f"cannot attach LoRA adapters to {cfg.name!r} ({e}); set lora_target_modules "
            "to this architecture's linear module names, or to ['all-linear']"
        ) from e


def frozen_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` in eval mode, with no gradient and no ``requires_grad``."""
    copy_ = copy.deepcopy(model)
    copy_.requires_grad_(False)
    for p in copy_.parameters():
        p.grad = None
    return copy_.eval()


class Anchor:
    """π_anchor: a second LoRA adapter on π's model, or a frozen copy of π (full fine-tuning).

    Its weights are *built* once (:meth:`build`; a sharded policy builds them before sharding, since none
    can be added to sharded weights), and are *in use* from the moment they are set equal to π until a
    checkpoint without an anchor is loaded (the weights then stay, out of use). :attr:`pairs` holds
    (π's parameter name, anchor tensor, π's tensor) for every trainable weight, fixed by :meth:`bind`.

    Attributes:
        in_use: the anchor exists for the policy (``HFPolicy.has_anchor``).
        version: bumped by every update (``HFPolicy.anchor_version``); caches of anchor samples key on it.
    """

    def __init__(self, model: nn.Module, lora: bool, device: torch.device):
        self._model = model  # π's model (the PEFT model with LoRA)
        self._lora = lora
        self._device = device
        self._copy: nn.Module | None = None  # full fine-tuning: the frozen copy
        self._pairs: list[tuple[str, Tensor, Tensor]] = []
        self.in_use = False
        self.version = 0

    @property
    def built(self) -> bool:
        return ANCHOR_ADAPTER in self._model.peft_config if self._lora else self._copy is not None

    @property
    def model(self) -> nn.Module | None:
        """The module that holds the anchor's weights (π's model with LoRA; None until built)."""
        return self._model if self._lora else self._copy

    @property
    def pairs(self) -> list[tuple[str, Tensor, Tensor]]:
        """(π's name, anchor tensor, π's tensor) for every trainable weight; empty while out of use."""
        return self._pairs if self.in_use else []

    def build(self, trainable: list[tuple[str, nn.Parameter]]) -> None:
        """Create the anchor's weights (values arbitrary until :meth:`update` with η = 1) and bind them."""
        if self._lora:
            lora = copy.deepcopy(self._model.peft_config[POLICY_ADAPTER])
            # The new adapter's random init is overwritten when the anchor is set to π; fork the RNG so
            # that creating the anchor does not shift the caller's sampling stream.
            with torch.random.fork_rng(devices=[self._device] if self._device.type == "cuda" else []):
                self._model.add_adapter(ANCHOR_ADAPTER, lora)
            # add_adapter leaves "default" active; make sure only π's weights are trainable.
            self._model.set_adapter(POLICY_ADAPTER)
        else:
            self._copy = frozen_copy(self._model)
        self.bind(trainable)

    def bind(self, trainable: list[tuple[str, nn.Parameter]]) -> None:
        """Pair each of π's trainable weights with its anchor counterpart. Called by :meth:`build` and again
        after sharding, which replaces every parameter (fixed while every FSDP unit holds its shards: between
        a unit's forward and its resharding, its modules hold gathered copies)."""
        params = dict(self.model.named_parameters())
        pairs = []
        for name, p in trainable:
            # PEFT names adapter weights "...lora_A.<adapter>.weight"; a frozen copy keeps π's names.
            anchor_name = re.sub(rf"\.{POLICY_ADAPTER}(?=\.|$)", f".{ANCHOR_ADAPTER}", name) if self._lora else name
            if (self._lora and anchor_name == name) or anchor_name not in params:
                raise RuntimeError(f"trainable weight {name!r} has no anchor counterpart")
            params[anchor_name].requires_grad_(False)
            pairs.append((name, params[anchor_name], p))
        self._pairs = pairs

    def update(self, eta: float) -> None:
        """θ_anchor ← (1 − η)·θ_anchor + η·θ, elementwise on each process's shards (an anchor weight and its
        π weight are sharded alike); η = 1 sets the anchor to π exactly (``torch.lerp``)."""
        ema_([local(a) for _, a, _ in self._pairs], [local(p) for _, _, p in self._pairs], eta)

    @contextlib.contextmanager
    def active(self) -> Iterator[nn.Module]:
        """The module that computes π_anchor, for the duration of the block."""
        if not self._lora:
            assert self._copy is not None
            yield self._copy
            return
        self._model.set_adapter(ANCHOR_ADAPTER, inference_mode=True)
        try:
            yield self._model
        finally:
            # set_adapter also makes the active adapter trainable again (and the anchor frozen),
            # restoring exactly the state before the call.
            self._model.set_adapter(POLICY_ADAPTER)


def checkpoint_state(trainable: list[tuple[str, nn.Parameter]], anchor: Anchor) -> dict[str, Tensor]:
    """``policy.<name>`` for π's trainable weights, ``anchor.<name>`` for the anchor's (if in use) and
    ``meta.anchor_version``: whole, detached, contiguous CPU tensors with no shared storage. Sharded
    weights are gathered whole in every process, one weight at a time (a collective each)."""

    def whole(t: Tensor) -> Tensor:
        return full(t.detach()).to("cpu", copy=True).contiguous()

    out = {f"policy.{n}": whole(p) for n, p in trainable}
    out.update({f"anchor.{n}": whole(a) for n, a, _ in anchor.pairs})
    out["meta.anchor_version"] = torch.tensor(anchor.version, dtype=torch.long)
    return out


def check_checkpoint_state(
    state: dict[str, Tensor], trainable: list[tuple[str, nn.Parameter]], with_anchor: bool, label: str
) -> None:
    """Raise a :class:`UserError` naming the policy (``label``) unless ``state`` holds exactly the keys of
    :func:`checkpoint_state` (the anchor's when ``with_anchor``), each tensor of its weight's whole shape.
    Changes nothing, so a refused checkpoint leaves the policy as it was."""
    expected = {f"policy.{n}" for n, _ in trainable} | {"meta.anchor_version"}
    if with_anchor:
        expected |= {f"anchor.{n}" for n, _ in trainable}
    missing, unexpected = sorted(expected - state.keys()), sorted(state.keys() - expected)
    if missing or unexpected:
        raise UserError(
            f"checkpoint does not match this policy ({label}): "
            f"missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
            f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}"
        )
    # copy_ would broadcast a [1, d] tensor into an [r, d] weight without a word (a rank-1 LoRA checkpoint
    # into a rank-r policy); a sharded weight's .shape is its whole shape, as the checkpoint stores it.
    wrong = [
        f"{prefix}.{n}: {tuple(state[f'{prefix}.{n}'].shape)} vs {tuple(p.shape)}"
        for n, p in trainable
        for prefix in (("policy", "anchor") if with_anchor else ("policy",))
        if tuple(state[f"{prefix}.{n}"].shape) != tuple(p.shape)
    ]
    if wrong:
        raise UserError(
            f"checkpoint does not match this policy ({label}): tensor shape differs for "
            f"{wrong[:3]}{'...' if len(wrong) > 3 else ''}"
        )


def load_checkpoint_state(
    state: dict[str, Tensor], trainable: list[tuple[str, nn.Parameter]], anchor: Anchor, label: str
) -> None:
    """Copy :func:`checkpoint_state`'s whole tensors into π's and the anchor's weights (the anchor must be in
    use exactly when ``state`` holds it). Each process keeps its own shard, with no communication.
    Strict: a missing or unexpected key, or a tensor of another shape, is a :class:`UserError` naming the
    policy (``label``), raised before any weight changes (:func:`check_checkpoint_state`)."""
    check_checkpoint_state(state, trainable, anchor.in_use, label)
    with torch.no_grad():
        for name, p in trainable:
            local(p).copy_(local_shard_of(p, state[f"policy.{name}"]))
        for name, a, _ in anchor.pairs:
            local(a).copy_(local_shard_of(a, state[f"anchor.{name}"]))
    anchor.version = int(state["meta.anchor_version"])
