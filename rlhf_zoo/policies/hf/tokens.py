"""Text → token ids for an :class:`~rlhf_zoo.policies.hf.HFPolicy`: the ids that end a completion, and
prompts tokenised once, checked against the length limit and left padded (:class:`PromptEncoder`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from rlhf_zoo.errors import UserError
from rlhf_zoo.policies.hf.config import HFPolicyConfig


def eos_token_ids(model: nn.Module, tokenizer: Any) -> list[int]:
    """Every id that ends a completion: the tokenizer's EOS and the checkpoint's generation EOS ids (an
    instruct model often ends its turn with a token of its own), without repeats."""
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


class PromptEncoder:
    """Prompts → left-padded [B, P] ids and mask, each prompt tokenised once.

    A training run revisits its prompts (policy samples, reference samples for the cache, every
    evaluation), so :attr:`cache` (prompt → ids) is filled once per prompt; it is bounded by the prompt set.
    """

    def __init__(self, tokenizer: Any, cfg: HFPolicyConfig, pad_token_id: int, eos_token_ids: list[int]):
        self.tokenizer = tokenizer
        self.cfg = cfg
        self.pad_token_id = pad_token_id
        self.eos_token_ids = eos_token_ids
        self.cache: dict[str, list[int]] = {}

    def encode(self, prompts: Sequence[str], device: torch.device) -> tuple[Tensor, Tensor]:
        """([B, P] ids, [B, P] mask) on ``device``, left padded with the pad id.

        Raises :class:`UserError` for an empty list, a non-string prompt, or a prompt longer than
        ``max_prompt_tokens`` (silently truncating a prompt would change the task).
        """
        if isinstance(prompts, str) or not isinstance(prompts, Sequence):
            raise UserError(f"prompts must be a list of strings, got {type(prompts).__name__}")
        if len(prompts) == 0:
            raise UserError("sample() got an empty list of prompts")
        for p in prompts:  # None too: a search with next(..., None) took a None prompt for none found
            if not isinstance(p, str):
                raise UserError(f"prompts must be strings, got {type(p).__name__}: {p!r}")
        self.token_counts(prompts)
        rows: list[list[int]] = []
        limit = self.cfg.max_prompt_tokens
        for p in prompts:
            ids = self.cache[p]
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
        return ids_t.to(device), mask_t.to(device)

    def token_counts(self, prompts: Sequence[str], chunk: int = 4096) -> list[int]:
        """How many tokens each prompt takes as it will be encoded (chat template included), those not yet
        cached tokenised in batched tokenizer calls of ``chunk`` prompts (a file of 100,000 prompts: 25 calls, not
        100,000), without the padded tensors of :meth:`encode`, which for a whole prompt set would be as wide as
        its longest prompt. The one place where prompts are tokenised."""
        todo = [p for p in dict.fromkeys(prompts) if p not in self.cache]
        for i in range(0, len(todo), chunk):
            part = todo[i : i + chunk]
            texts, special = self._texts(part)
            for p, ids in zip(part, self.tokenizer(texts, add_special_tokens=special)["input_ids"], strict=True):
                self.cache[p] = self._not_empty(ids)
        return [len(self.cache[p]) for p in prompts]

    def adopt(self, ids: dict[str, list[int]]) -> None:
        """Take prompts' ids made by another encoder of the same tokenizer files and config (the task's
        prompt-fit check, before the weights load), so that they are not tokenised again; but the empty
        prompt's, whose id where the tokenizer gives none is an EOS id that this encoder may choose otherwise."""
        self.cache.update((p, v) for p, v in ids.items() if p)

    def _texts(self, prompts: Sequence[str]) -> tuple[list[str], bool]:
        """The texts to tokenise, and whether the tokenizer adds its special tokens (not where a chat template
        holds them)."""
        tok = self.tokenizer
        if not self.cfg.chat_template:
            return list(prompts), True
        if not getattr(tok, "chat_template", None):
            raise UserError(f"chat_template=True but {self.cfg.name!r} has no chat template")
        chat = [[{"role": "user", "content": p}] for p in prompts]
        return [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in chat], False

    def _not_empty(self, ids: Sequence[int]) -> list[int]:
        if ids:
            return list(ids)
        # An empty prompt with a tokenizer that adds no BOS: condition on BOS (or EOS).
        bos = self.tokenizer.bos_token_id
        return [int(bos if bos is not None else self.eos_token_ids[0])]
