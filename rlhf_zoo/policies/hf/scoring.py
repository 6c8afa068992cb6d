"""Per-token log-probs of given completions under a causal LM: one micro-batch at a time (used by
:meth:`HFPolicy.logprobs <rlhf_zoo.policies.hf.HFPolicy.logprobs>` and ``token_kl``).

Shapes: n rows, P prompt positions (left padded), T completion positions (right padded), V vocabulary
entries. Log-probs are always ``log_softmax(logits / temperature)`` in float32, the distribution that
:mod:`~rlhf_zoo.policies.hf.generation` samples (top-p aside), so that importance ratios between
sampling and scoring are exactly 1 when nothing has changed.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rlhf_zoo.functional.kl import chosen_logprobs


def chunk_logprobs(
    module: nn.Module,
    prompt_ids: Tensor,
    prompt_mask: Tensor,
    completion_ids: Tensor,
    response_mask: Tensor,
    *,
    temperature: float,
    full: bool,
    share_prompts: bool,
    keeps_logits: bool,
) -> Tensor:
    """One forward over [prompt ; completion] → [n, T] log-probs of the completion tokens (``full``: the
    whole [n, T, V] log-softmax).

    Columns that are padding in every row are cut first (left of the prompts, right of the completions)
    and the result is padded back with zeros, so a micro-batch of short completions costs only its own
    length. ``share_prompts``: consecutive rows with the same prompt run it once
    (:func:`shared_prompt_logits`). ``keeps_logits``: the model's forward takes ``logits_to_keep``.
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
    groups = prompt_groups(prompt_ids, prompt_mask) if share_prompts else None
    completion = completion_ids[:, :t]
    if groups is not None:
        logits = shared_prompt_logits(module, prompt_ids, attention, position_ids, completion, *groups, keeps_logits)
    else:
        kwargs: dict[str, Any] = {"use_cache": False}
        if keeps_logits:
            kwargs["logits_to_keep"] = t + 1  # only the positions that predict completion tokens
        input_ids = torch.cat([prompt_ids, completion], dim=1)
        out = module(input_ids=input_ids, attention_mask=attention, position_ids=position_ids, **kwargs)
        # Position (last prompt token + j) predicts completion token j.
        logits = out.logits[:, -(t + 1) : -1].float()
    if temperature != 1.0:
        logits = logits / temperature
    if not full:
        # log p(token) = logit(token) − logsumexp(logits): never writes the [n, t, V] log-softmax
        # (the chosen-token gather works on logits as on log-probs).
        return F.pad(chosen_logprobs(logits, completion) - torch.logsumexp(logits, dim=-1), (0, t_full - t))
    return F.pad(torch.log_softmax(logits, dim=-1), (0, 0, 0, t_full - t))


def prompt_groups(prompt_ids: Tensor, prompt_mask: Tensor) -> tuple[Tensor, Tensor] | None:
    """(first row of each run of identical consecutive prompts [G], each row's run [n]), or None when no
    prompt repeats (then one plain forward is cheapest)."""
    if prompt_ids.shape[0] < 2 or prompt_ids.shape[1] < 2:
        return None
    same = (prompt_ids[1:] == prompt_ids[:-1]).all(1) & (prompt_mask[1:] == prompt_mask[:-1]).all(1)
    if not bool(same.any()):
        return None
    starts = torch.cat([torch.ones(1, dtype=torch.bool, device=same.device), ~same])
    return starts.nonzero().squeeze(1), starts.long().cumsum(0) - 1


def shared_prompt_logits(
    module: nn.Module,
    prompt_ids: Tensor,
    attention: Tensor,
    position_ids: Tensor,
    completion_ids: Tensor,
    firsts: Tensor,
    run: Tensor,
    keeps_logits: bool,
) -> Tensor:
    """[n, t, V] float32 logits predicting ``completion_ids`` [n, t], with each distinct prompt run once.

    Rows that continue the same prompt (k samples per prompt) share its forward pass: the prompt's keys
    and values are computed for the first row of each run (``firsts``) and indexed out to the others
    (``run``: each row's run; an index, so gradients flow back to the shared pass), then the completions
    run against that cache. Saves (k − 1)/k of the prompt tokens' compute, forward and backward.
    ``attention`` and ``position_ids`` cover [prompt ; completion], [n, P + t].
    """
    p, t = prompt_ids.shape[1], completion_ids.shape[1]
    kwargs: dict[str, Any] = {"logits_to_keep": 1} if keeps_logits else {}
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
