"""PromptEncoder (rlhf_zoo.policies.hf.tokens) on its own: the prompts it refuses."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from rlhf_zoo.errors import UserError  # noqa: E402
from rlhf_zoo.policies.hf import HFPolicyConfig  # noqa: E402
from rlhf_zoo.policies.hf.tokens import PromptEncoder  # noqa: E402

CPU = torch.device("cpu")


class OneIdPerCharacter:
    """A tokenizer that adds no special tokens: one id per character (its code point), so a prompt of k characters
    has exactly k tokens."""

    def __init__(self, bos=None):
        self.bos_token_id = bos

    def __call__(self, texts, **kw):
        return {"input_ids": [[ord(ch) for ch in text] for text in texts]}


def encoder(bos=None, pad=0, **cfg) -> PromptEncoder:
    return PromptEncoder(OneIdPerCharacter(bos), HFPolicyConfig(**cfg), pad_token_id=pad, eos_token_ids=[2, 9])


def test_a_non_string_anywhere_in_the_list_is_refused_naming_it():
    """Every prompt is checked, the first as well as a later one, and None too (a null in a prompt file; the check
    took None for 'nothing found' and handed it to the tokenizer, whose TypeError named no prompt): refused in
    words, not handed to the tokenizer."""
    for prompts in ([3, "ok"], ["ok", None], ["ok", "fine", b"bytes"]):
        bad = next(p for p in prompts if not isinstance(p, str))
        with pytest.raises(UserError, match=f"must be strings, got {type(bad).__name__}"):
            encoder().encode(prompts, CPU)
