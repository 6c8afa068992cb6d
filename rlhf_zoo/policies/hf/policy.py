""":class:`HFPolicy`: a causal LM behind the :class:`~rlhf_zoo.policies.base.Policy` protocol, and
:func:`build_hf_policy`. The class ties the parts together: which module computes each role
(:mod:`~rlhf_zoo.policies.hf.weights`), sampling (:mod:`~rlhf_zoo.policies.hf.generation`), scoring
(:mod:`~rlhf_zoo.policies.hf.scoring`), FSDP sharding, and checkpoints.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from rlhf_zoo.errors import UserError
from rlhf_zoo.functional.kl import chosen_logprobs, exact_token_kl
from rlhf_zoo.policies.base import Role, Rollout, check_role
from rlhf_zoo.policies.hf import generation
from rlhf_zoo.policies.hf.config import HFPolicyConfig
from rlhf_zoo.policies.hf.scoring import chunk_logprobs
from rlhf_zoo.policies.hf.tokens import PromptEncoder, eos_token_ids
from rlhf_zoo.policies.hf.weights import (
    Anchor,
    attach_lora,
    check_checkpoint_state,
    checkpoint_state,
    frozen_copy,
    load_checkpoint_state,
)
from rlhf_zoo.policies.sampling import uniform_source


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """Temporarily switch off dropout (sampling and frozen roles are never noised)."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


class HFPolicy:
    """A causal LM behind the :class:`~rlhf_zoo.policies.base.Policy` protocol.

    Attributes:
        cfg: the :class:`HFPolicyConfig` it was built from.
        model: the trainable ``nn.Module`` (a PEFT model for LoRA, the model itself for full fine-tuning).
        tokenizer: the Hugging Face tokenizer.
        device: where the weights live and where every returned tensor is.
        training: True in training mode (the default), see :meth:`train`.
        pad_token_id: the id used for prompt (left) and completion (right) padding.
        eos_token_ids: the ids that end a completion.
    """

    _collect_eos_ids = staticmethod(eos_token_ids)  # rlhf_zoo.bench.trl_reference stops TRL on the same ids

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        cfg: HFPolicyConfig | None = None,
        device: str | torch.device = "cpu",
    ):
        """Wrap an already loaded ``model``/``tokenizer``; see :func:`build_hf_policy`.

        For LoRA, the adapter's random initialisation draws from torch's global RNG (seed it,
        or use :func:`build_hf_policy`, which does).
        """
        self.cfg = cfg or HFPolicyConfig()
        self.device = torch.device(device)
        self.tokenizer = tokenizer
        self.eos_token_ids: list[int] = eos_token_ids(model, tokenizer)  # a UserError when there is none
        if tokenizer.pad_token_id is None:
            # Many causal LMs have no pad token; EOS is safe because masks, not ids, mark padding. The tokenizer's
            # EOS comes first; a tokenizer without one pads with the checkpoint's generation EOS.
            tokenizer.pad_token = tokenizer.convert_ids_to_tokens(self.eos_token_ids[0])
        self.pad_token_id: int = int(tokenizer.pad_token_id)
        self._eos = torch.tensor(self.eos_token_ids, device=self.device)
        self._prompts = PromptEncoder(tokenizer, self.cfg, self.pad_token_id, self.eos_token_ids)
        model.generation_config = generation.neutral_generation_config(tokenizer, self.eos_token_ids, self.pad_token_id)
        self._keeps_logits = "logits_to_keep" in inspect.signature(model.forward).parameters

        model.to(self.device)
        self._lora = self.cfg.finetune == "lora"
        self._ref_model: nn.Module | None = None  # full fine-tuning: a frozen copy (LoRA: adapters off)
        if self._lora:
            self.model = attach_lora(model, self.cfg)
        else:
            model.requires_grad_(True)
            self.model = model
            self._ref_model = frozen_copy(model)
        # (name, parameter) of everything the optimiser updates, fixed at construction (and at sharding).
        self._trainable: list[tuple[str, nn.Parameter]] = [
            (n, p) for n, p in self.model.named_parameters() if p.requires_grad
        ]
        self._anchor = Anchor(self.model, self._lora, self.device)
        self._fsdp_units: list[nn.Module] = []  # the fully_shard units, see shard()
        self.training = True
        self.train(True)

    # ------------------------------------------------------------------ roles

    @contextlib.contextmanager
    def _role(self, role: str) -> Iterator[nn.Module]:
        """The module that computes ``role``, with the right adapter state for the duration.
        Reference and anchor always run in eval mode and with gradients off."""
        check_role(role)
        if role == "policy":
            yield self.model
            return
        if role == "ref":
            ctx = self.model.disable_adapter() if self._lora else contextlib.nullcontext()
            module = self.model if self._lora else self._ref_model
        else:
            self._ensure_anchor()
            ctx = self._anchor.active()
            module = self._anchor.model
        assert module is not None
        with ctx, eval_mode(module), torch.no_grad():
            yield module

    # ------------------------------------------------------------------ prompts and sampling

    def encode_prompts(self, prompts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """Tokenise (once per prompt) and left-pad: ([B, P] ids, [B, P] mask), on :attr:`device`; a
        :class:`UserError` for an empty list, a non-string prompt, or one over ``max_prompt_tokens``."""
        return self._prompts.encode(prompts, self.device)

    def tokenize_prompts(self, prompts: Sequence[str], known: dict[str, list[int]] | None = None) -> list[int]:
        """Tokenise every prompt of a set now, in batches, so that sampling finds them cached: their token
        counts (chat template included). ``known``: ids already made by this model's tokenizer files under this
        config (the task's prompt-fit check), taken as they are (:meth:`PromptEncoder.adopt`). No length check:
        :meth:`encode_prompts` makes it when a prompt is used."""
        if known:
            self._prompts.adopt(known)
        return self._prompts.token_counts(prompts)

    @torch.no_grad()
    def sample(
        self,
        prompts: Sequence[str],
        n: int,
        *,
        role: Role = "policy",
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
    ) -> Rollout:
        """n completions per prompt from ``role``, prompt-major, with their sampling log-probs.

        One batched ``generate`` call with KV cache: rows ``i*n .. i*n+n-1`` continue prompt i.
        Randomness: one CPU ``generator`` for the batch, or one generator per prompt (prompt i's
        completions then depend only on generator i, not on the rest of the batch), or torch's
        global RNG when None (:mod:`rlhf_zoo.policies.sampling`).
        A completion stops at its first EOS (kept, and covered by ``response_mask``) or at
        ``max_new_tokens``; later positions hold the pad id. Texts are decoded without special
        tokens. Always runs in eval mode (no dropout).
        """
        check_role(role)
        if int(n) < 1:
            raise UserError(f"n (samples per prompt) must be at least 1, got {n}")
        from transformers import LogitsProcessorList

        prompts = list(prompts) if not isinstance(prompts, str) else prompts
        unique_ids, unique_mask = self.encode_prompts(prompts)
        prompt_ids = unique_ids.repeat_interleave(n, dim=0)
        prompt_mask = unique_mask.repeat_interleave(n, dim=0)
        gen_cfg = generation.sampling_generation_config(
            self.cfg, self.eos_token_ids, self.pad_token_id, self.tokenizer.bos_token_id, compile_=not self.sharded
        )
        uniforms = uniform_source(generator, len(prompts), n)
        sampler = generation.TokenSampler(self.cfg.temperature, self.cfg.top_p, uniforms)
        # Sharded weights are gathered by every forward, a collective: every process must run as many
        # forwards, so a process whose completions have all ended keeps stepping until all have.
        synced = {"synced_gpus": True} if self.sharded else {}
        shared = n > 1 and self.cfg.share_prompts and self.cfg.generation_cache == "dynamic"
        if self.sharded:
            # The shared prompt pass is a forward of its own: run it in every process if any runs it, so that
            # a process drawing one discarded sample (the base cache) keeps step with one drawing k.
            from rlhf_zoo.fsdp import any_process

            shared = any_process(shared, self.device)
        with self._role(role) as module, eval_mode(module):
            extra: dict[str, Any] = {}
            if shared and unique_ids.shape[1] > 1:
                extra["past_key_values"] = generation.prefill(module, unique_ids, unique_mask, n, self._keeps_logits)
            sequences = module.generate(
                input_ids=prompt_ids,
                attention_mask=prompt_mask,
                generation_config=gen_cfg,
                logits_processor=LogitsProcessorList([sampler]),
                **synced,
                **extra,
            )
        completion = sequences[:, prompt_ids.shape[1] :]
        sample_logp = sampler.finish(completion)
        completion, response_mask = generation.cut_at_eos(completion, self._eos, self.pad_token_id)
        sample_logp = sample_logp.masked_fill(response_mask == 0, 0.0)
        lengths = response_mask.sum(1).tolist()
        texts = [
            self.tokenizer.decode(row[:k].tolist(), skip_special_tokens=True)
            for row, k in zip(completion, lengths, strict=True)
        ]
        return Rollout(
            prompts=[p for p in prompts for _ in range(n)],
            prompt_ids=prompt_ids,
            prompt_mask=prompt_mask,
            completion_ids=completion,
            response_mask=response_mask,
            sample_logp=sample_logp,
            texts=texts,
            group_size=int(n),
        )

    # ------------------------------------------------------------------ scoring

    def _rows(self, rollout: Rollout, start: int, stop: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(prompt_ids, prompt_mask, completion_ids, response_mask) of rows start..stop−1, on :attr:`device`."""
        d = self.device
        return (
            rollout.prompt_ids[start:stop].to(d),
            rollout.prompt_mask[start:stop].to(d),
            rollout.completion_ids[start:stop].to(d),
            rollout.response_mask[start:stop].to(d),
        )

    def _chunk_logprobs(self, module: nn.Module, rows: tuple[Tensor, ...], full: bool) -> Tensor:
        """One micro-batch's [n, T] (``full``: [n, T, V]) log-probs under ``module``."""
        return chunk_logprobs(
            module,
            *rows,
            temperature=self.cfg.temperature,
            full=full,
            share_prompts=self.cfg.share_prompts,
            keeps_logits=self._keeps_logits,
        )

    def logprobs(self, rollout: Rollout, *, role: Role = "policy", full: bool = False) -> Tensor:
        """Per-token log-probs of the rollout's completion tokens under ``role``: [N, T].

        ``full=True`` returns the full-vocabulary log-softmax, [N, T, V] (V may exceed the
        tokenizer's size when the embedding matrix is padded). Masked positions hold finite
        junk (0). Gradients flow only for ``role="policy"``, in training mode, with grad enabled.
        Forward passes are micro-batched by ``logprob_batch_size`` rows.
        """
        check_role(role)
        grad = role == "policy" and self.training and torch.is_grad_enabled()
        outs = []
        step = self.cfg.logprob_batch_size
        with torch.set_grad_enabled(grad):
            for start in range(0, len(rollout), step):
                with self._role(role) as m:
                    outs.append(self._chunk_logprobs(m, self._rows(rollout, start, start + step), full))
        return torch.cat(outs, dim=0)

    @torch.no_grad()
    def token_kl(
        self, rollout: Rollout, p_role: Role = "policy", q_role: Role = "ref", *, with_logprobs: bool = False
    ) -> Tensor | tuple[Tensor, Tensor, Tensor]:
        """Exact-token KL Σ_t KL(p(·|x,y<t) ‖ q(·|x,y<t)) per row, [N] (ALGORITHMS.md §1).

        The reported KL of every table. Computed with :func:`~rlhf_zoo.functional.kl.
        exact_token_kl` one micro-batch at a time, so [N, T, V] is never held for the whole
        batch. No gradient; the policy runs in eval mode (a measurement, no dropout).
        ``with_logprobs=True`` also returns both roles' per-token log-probs of the completion
        tokens ([N, T] each), taken from the same forward passes (for the k1 / k3 estimates).
        """
        check_role(p_role)
        check_role(q_role)
        kls, lps, lqs = [], [], []
        step = self.cfg.logprob_batch_size
        with eval_mode(self.model):
            for start in range(0, len(rollout), step):
                rows = self._rows(rollout, start, start + step)
                with self._role(p_role) as m:
                    lp = self._chunk_logprobs(m, rows, full=True)
                with self._role(q_role) as m:
                    lq = self._chunk_logprobs(m, rows, full=True)
                kls.append(exact_token_kl(lp, lq, rows[3]))
                if with_logprobs:
                    lps.append(chosen_logprobs(lp, rows[2]))
                    lqs.append(chosen_logprobs(lq, rows[2]))
                del lp, lq
        if with_logprobs:
            return torch.cat(kls), torch.cat(lps), torch.cat(lqs)
        return torch.cat(kls)

    # ------------------------------------------------------------------ anchor

    @property
    def has_anchor(self) -> bool:
        return self._anchor.in_use

    @property
    def anchor_version(self) -> int:
        """Bumped by every :meth:`update_anchor`."""
        return self._anchor.version

    def _ensure_anchor(self) -> None:
        """Bring the anchor into use equal to π, if it is not in use yet (its version is left as it is)."""
        if self._anchor.in_use:
            return
        if not self._anchor.built:
            if self.sharded:
                raise UserError(
                    "this sharded (FSDP) policy was built without an anchor, and one cannot be added to sharded weights"
                )
            self._anchor.build(self._trainable)
        self._anchor.in_use = True
        self._anchor.update(1.0)
        self.reshard()  # no unit may keep serving a gathered copy of the old anchor

    def update_anchor(self, eta: float) -> None:
        """θ_anchor ← (1 − η)·θ_anchor + η·θ over the trainable weights (η = 1: hard swap).

        ALGORITHMS.md §5 (iterative BOND, hard swaps) and §6.5 (J-BOND, EMA with η = 0.02).
        The first call creates the anchor equal to π, whatever η: algorithms that need an anchor call
        ``update_anchor(1.0)`` before the first optimiser step, so that it starts as π = π_ref
        (ALGORITHMS.md §5–§6). Increments :attr:`anchor_version`.
        """
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"eta must lie in [0, 1], got {eta}")
        self._ensure_anchor()
        self._anchor.update(eta)
        self.reshard()
        self._anchor.version += 1

    # ------------------------------------------------------------------ training plumbing

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The LoRA adapter weights of π, or all of π's weights for full fine-tuning."""
        return [p for _, p in self._trainable]

    def num_parameters(self, trainable_only: bool = False) -> int:
        params = self.trainable_parameters() if trainable_only else list(self.model.parameters())
        return sum(p.numel() for p in params)

    def train(self, mode: bool = True) -> HFPolicy:
        """Training mode: dropout on (LoRA dropout, if any) and gradients through π's log-probs."""
        self.training = mode
        self.model.train(mode)
        return self

    def eval(self) -> HFPolicy:
        return self.train(False)

    @property
    def sharded(self) -> bool:
        """True once :meth:`shard` has sharded the weights over the processes (FSDP2)."""
        return bool(self._fsdp_units)

    def shard(self, settings: Any, mesh: Any, anchor: bool) -> None:
        """Shard the weights over the processes of ``mesh`` with FSDP2 (:mod:`rlhf_zoo.fsdp`); call once,
        before the optimiser is built (the trainable parameters become DTensors).

        ``anchor``: build the anchor's weights now (a LoRA adapter, or a frozen copy for full
        fine-tuning), since none can be added to sharded weights later; it comes into use (= π) at the
        first :meth:`update_anchor`, as without sharding. Units: every transformer block and the causal LM
        around them; with LoRA the base model holding both adapters (the PEFT wrapper only dispatches to
        it, and ``generate`` calls the causal LM's forward), with full fine-tuning the trainable model,
        the frozen reference and the anchor copy, each a model of its own. Parameter names do not change,
        so checkpoints hold the same keys as unsharded ones. Sampling, the anchor's update and checkpoints
        then work on the shards through :func:`~rlhf_zoo.fsdp.local` / :func:`~rlhf_zoo.fsdp.full`.
        """
        from rlhf_zoo.fsdp import shard_model

        if self.sharded:
            raise RuntimeError("the policy is already sharded")
        if self.cfg.compile_generation == "on":
            raise UserError("model.compile_generation=on is not supported with FSDP (generation is never compiled)")
        if anchor and not self._anchor.built:
            self._anchor.build(self._trainable)
        names = [n for n, _ in self._trainable]
        if self._lora:
            models = [self.model.get_base_model()]
        else:
            models = [m for m in (self.model, self._ref_model, self._anchor.model) if m is not None]
        units: list[nn.Module] = []
        for m in models:
            units += shard_model(m, settings, mesh)
        self._fsdp_units = units
        self._trainable = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        if [n for n, _ in self._trainable] != names:
            raise RuntimeError("sharding changed the trainable parameters")
        if self._anchor.built:
            self._anchor.bind(self._trainable)  # now, while every unit holds its shards

    def reshard(self) -> None:
        """Free every gathered (unsharded) copy of the weights, so the next forward gathers the current
        shards (needed after the shards change outside an optimiser step: anchor updates, loading).
        Nothing to do on plain weights."""
        for unit in self._fsdp_units:
            unit.reshard()

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Tensor]:
        """π's trainable weights (``policy.<name>``), the anchor's (``anchor.<name>``, if it is in use)
        and ``meta.anchor_version``: whole, detached, contiguous CPU tensors with no shared storage, ready
        for ``safetensors.torch.save_file``. The frozen base is not included."""
        return checkpoint_state(self._trainable, self._anchor)

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore what :meth:`state_dict` saved (strict: every key and every shape must match; a refused
        checkpoint is a :class:`UserError` and leaves the policy, its anchor included, as it was)."""
        label = f"{self.cfg.name!r}, {self.cfg.finetune}"
        with_anchor = any(k.startswith("anchor.") for k in state)
        check_checkpoint_state(state, self._trainable, with_anchor, label)  # before anything changes
        if with_anchor:
            self._ensure_anchor()
        else:
            self._anchor.in_use = False  # its weights (if built) stay, out of use
        self.reshard()
        load_checkpoint_state(state, self._trainable, self._anchor, label)

    def __repr__(self) -> str:
        return (
            f"HFPolicy(name={self.cfg.name!r}, finetune={self.cfg.finetune!r}, "
            f"device={self.device}, "
            f"trainable={self.num_parameters(True):,}/{self.num_parameters():,}, "
            f"anchor={'v' + str(self.anchor_version) if self.has_anchor else 'none'})"
        )


def build_hf_policy(cfg: HFPolicyConfig | None = None, device: str | torch.device = "cpu", seed: int = 0) -> HFPolicy:
    """Load ``cfg.name`` and wrap it as an :class:`HFPolicy` on ``device``.

    ``seed`` fixes every random initialisation (the tiny model's weights, the LoRA A matrices)
    through a forked RNG, so building never consumes the caller's global RNG stream.
    """
    from rlhf_zoo.policies.models import load_model_and_tokenizer

    cfg = cfg or HFPolicyConfig()
    devices = [torch.device(device)] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        model, tokenizer = load_model_and_tokenizer(cfg.name, seed=seed, dtype=cfg.dtype)
        return HFPolicy(model, tokenizer, cfg, device=device)
