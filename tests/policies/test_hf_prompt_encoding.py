"""PromptEncoder (rlhf_zoo.policies.hf.tokens) on its own: what a refused prompt's message tells the user, the
dtype of the masks it hands to sampling and scoring, the chat turn a prompt becomes, and the empty prompt of a
tokenizer whose BOS id is 0."""

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


def test_a_too_long_prompt_of_exactly_80_characters_is_quoted_whole_with_its_token_count():
    """The refusal quotes a prompt of up to 80 characters whole (81 and more: its first 77 and "...") and says how
    many tokens it has, so the user knows how far to shorten it or raise the limit."""
    enc = encoder(max_prompt_tokens=10)
    eighty = "abcdefghij" * 8
    with pytest.raises(UserError) as err:
        enc.encode([eighty], CPU)
    assert repr(eighty) in str(err.value)
    assert "has 80 tokens, more than max_prompt_tokens=10" in str(err.value)
    longer = eighty + "k"
    with pytest.raises(UserError) as err:
        enc.encode(["ok", longer], CPU)
    assert repr(longer[:77] + "...") in str(err.value) and "has 81 tokens" in str(err.value)


def test_a_non_string_anywhere_in_the_list_is_refused_naming_it():
    """Every prompt is checked, the first as well as a later one, and None too (a null in a prompt file; the check
    took None for 'nothing found' and handed it to the tokenizer, whose TypeError named no prompt): refused in
    words, not handed to the tokenizer."""
    for prompts in ([3, "ok"], ["ok", None], ["ok", "fine", b"bytes"]):
        bad = next(p for p in prompts if not isinstance(p, str))
        with pytest.raises(UserError, match=f"must be strings, got {type(bad).__name__}"):
            encoder().encode(prompts, CPU)


def test_prompt_masks_are_integer_like_the_response_mask():
    """Sampling hands the encoder's mask to generate and into the rollout beside response_mask: 0/1 integers (long),
    not booleans, so that rollouts of prompt and response masks concatenate and take arithmetic alike."""
    ids, mask = encoder(pad=5).encode(["ab", "c"], CPU)
    assert ids.dtype == mask.dtype == torch.long
    assert ids.tolist() == [[97, 98], [5, 99]] and mask.tolist() == [[1, 1], [0, 1]]
    assert (1 - mask).tolist() == [[0, 0], [1, 0]]  # a bool mask refuses this subtraction


def test_an_empty_prompt_conditions_on_a_bos_whose_id_is_zero():
    """A BOS id of 0 is a BOS id (only a tokenizer without one falls back to EOS): 0 is not 'no BOS'."""
    ids, mask = encoder(bos=0, pad=5).encode(["", "ab"], CPU)
    assert ids.tolist() == [[5, 0], [97, 98]] and mask.tolist() == [[0, 1], [1, 1]]


def test_a_chat_prompt_is_one_user_turn_with_the_assistant_prefix():
    """With chat_template=True each prompt is the *user's* turn (a template that renders roles shows it), followed
    by the generation prompt, and the template's own special tokens are not doubled by the tokenizer's."""
    from rlhf_zoo.policies import models

    tokenizer = models.build_tiny_tokenizer()
    tokenizer.chat_template = (
        "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant:{% endif %}"
    )
    enc = PromptEncoder(tokenizer, HFPolicyConfig(chat_template=True), pad_token_id=0, eos_token_ids=[2])
    ids, mask = enc.encode(["hi"], CPU)
    assert tokenizer.decode(ids[0][mask[0].bool()].tolist()) == "<s>user: hi\nassistant:"
