"""Sampling completions with ``generate``: the logits processor that draws each token, the generation
configs, the shared-prompt prefill and the cut at the first EOS (used by :meth:`HFPolicy.sample
<rlhf_zoo.policies.hf.HFPolicy.sample>`).

``generate`` runs *greedy* here: :class:`TokenSampler` draws every token itself (the inverse CDF of
:mod:`rlhf_zoo.policies.sampling`, one uniform per row from the prompt's own generator) and hands
greedy a one-hot score. Every option of ``generate`` that changes logits is therefore switched off, in
the model's defaults too (:func:`neutral_generation_config`): the distribution sampled must be exactly
``softmax(logits / temperature)`` (top-p truncated), the one :mod:`~rlhf_zoo.policies.hf.scoring`
scores.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from rlhf_zoo.functional.kl import chosen_logprobs
from rlhf_zoo.policies.hf.config import HFPolicyConfig
from rlhf_zoo.policies.sampling import inverse_cdf, nucleus


class TokenSampler:
    """A logits processor that draws each step's token itself and records its log-probability.

    At every step it takes the raw logits [B, V], forms ``logp = log_softmax(logits / temperature)``,
    draws the token by inverting the CDF of the (top-p-truncated) distribution at one uniform per row
    (``uniforms(rows)``, see :func:`rlhf_zoo.policies.sampling.uniform_source`), records log p(token)
    (untruncated), and returns scores that are 0 at the drawn token and −inf elsewhere, so that greedy
    decoding picks it. It must see raw logits: the generation config adds no processor before it.
    """

    def __init__(self, temperature: float, top_p: float, uniforms: Callable[[int], Tensor]):
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
            probs = nucleus(probs, self.top_p)
        tok = inverse_cdf(probs, self.uniforms(scores.shape[0]))
        self.steps.append(chosen_logprobs(logp, tok))
        return torch.full_like(scores, float("-inf")).scatter_(1, tok[:, None], 0.0)

    def finish(self, completion_ids: Tensor) -> Tensor:
        """[B, T] log-probs of ``completion_ids`` (the T generated tokens)."""
        return torch.stack(self.steps[: completion_ids.shape[1]], dim=1)


def neutral_generation_config(tokenizer: Any, eos_token_ids: list[int], pad_token_id: int) -> Any:
    """The model's ``generation_config``: special token ids and nothing else.

    ``generate`` fills every option the caller leaves unset from ``model.generation_config`` (e.g. a
    checkpoint's repetition penalty or top_k=50). Any of those would make the sampled distribution differ
    from the one the policy scores, so the checkpoint's defaults are replaced by this.
    """
    from transformers import GenerationConfig

    return GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=eos_token_ids, pad_token_id=pad_token_id)


def sampling_generation_config(
    cfg: HFPolicyConfig, eos_token_ids: list[int], pad_token_id: int, bos_token_id: int | None, compile_: bool
) -> Any:
    """Greedy decoding over :class:`TokenSampler`'s one-hot scores, up to ``cfg.max_new_tokens``.

    The options that sample (temperature, top-k/p) and the common ones that change logits (repetition
    penalty, n-gram ban, minimum length) are set explicitly. transformers fills every option left ``None``
    here from ``model.generation_config``, so the others (suppressed tokens, a sequence bias, a forced EOS,
    ...) stay neutral only because :class:`~rlhf_zoo.policies.hf.HFPolicy` replaces that config with
    :func:`neutral_generation_config` when it wraps the model: change it afterwards and sampling changes
    with it. ``compile_=False`` forbids compiling the decoding step whatever ``cfg.compile_generation``
    says (sharded weights).
    """
    from transformers import GenerationConfig

    opts: dict[str, Any] = {}
    if cfg.generation_cache == "static":
        opts["cache_implementation"] = "static"
    if cfg.compile_generation == "off" or not compile_:
        opts["disable_compile"] = True
    elif cfg.compile_generation == "on":
        from transformers import CompileConfig

        compile_config = CompileConfig()
        compile_config._compile_all_devices = True  # transformers compiles on GPUs only by default
        opts["compile_config"] = compile_config
    return GenerationConfig(
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
        max_new_tokens=cfg.max_new_tokens,
        eos_token_id=eos_token_ids,
        pad_token_id=pad_token_id,
        bos_token_id=bos_token_id,
        use_cache=True,
        **opts,
    )


def prefill(module: nn.Module, ids: Tensor, mask: Tensor, n: int, keeps_logits: bool) -> Any:
    """The KV cache of every prompt but its last token, computed once per prompt ([B, P] left-padded ids
    and mask) and repeated for its n rows; ``generate`` then starts from the last prompt token (prefix
    caching: the k samples of a prompt share one prompt pass)."""
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    kwargs: dict[str, Any] = {"logits_to_keep": 1} if keeps_logits else {}
    out = module(
        input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=positions[:, :-1], use_cache=True, **kwargs
    )
    cache = out.past_key_values
    cache.batch_repeat_interleave(n)
    return cache


def cut_at_eos(completion: Tensor, eos: Tensor, pad_token_id: int) -> tuple[Tensor, Tensor]:
    """Keep each row's tokens up to and including its first EOS: ([N, T] ids with pad after, [N, T] mask).

    ``eos`` holds every id that ends a completion; a row without one keeps all T tokens.
    """
    t = completion.shape[1]
    is_eos = torch.isin(completion, eos.to(completion.device))
    # argmax returns the first maximal index; rows without EOS keep all T tokens.
    no_eos = torch.full((completion.shape[0],), t - 1, device=completion.device)
    last = torch.where(is_eos.any(1), is_eos.long().argmax(1), no_eos)
    positions = torch.arange(t, device=completion.device)
    mask = (positions[None, :] <= last[:, None]).long()
    return completion.masked_fill(mask == 0, pad_token_id), mask
