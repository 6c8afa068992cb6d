"""Which text a reward model reads: the completion alone, or the prompt followed by it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from rlhf_zoo.errors import UserError

TextMode = Literal["completion", "prompt+completion"]
TEXT_MODES: tuple[str, ...] = ("completion", "prompt+completion")


def check_text_mode(text: str, allowed: Sequence[str] = TEXT_MODES) -> str:
    """``text`` if it is one of ``allowed``, else a ``UserError`` listing them."""
    if text not in allowed:
        raise UserError(f"unknown reward text mode {text!r}: use one of {', '.join(map(repr, allowed))}")
    return text


def reward_texts(prompts: Sequence[str], completions: Sequence[str], text: str) -> list[str]:
    """The strings a reward scores.

    ``"completion"``: ``completions[i]``; ``"prompt+completion"``: ``prompts[i] + completions[i]``
    (plain concatenation: a completion continues its prompt and carries its own leading space).
    """
    check_text_mode(text)
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
    if text == "completion":
        return [str(c) for c in completions]
    return [f"{p}{c}" for p, c in zip(prompts, completions, strict=True)]
