"""VADER as a reward: sign on obvious texts, range, text modes."""

from __future__ import annotations

import pytest
import torch

from rlhf_zoo.errors import UserError
from rlhf_zoo.rewards import checked_score

pytest.importorskip("vaderSentiment")

from rlhf_zoo.rewards.vader import VaderReward  # noqa: E402


def test_sign_on_obvious_texts() -> None:
    r = VaderReward()
    pos = ["I love this wonderful, brilliant film!", "Great acting and a beautiful story."]
    neg = ["This was a terrible, boring, awful mess.", "I hated every horrible minute."]
    s = checked_score(r, [""] * 4, pos + neg)
    assert s.dtype == torch.float32 and s.shape == (4,)
    assert (s[:2] > 0.5).all() and (s[2:] < -0.5).all()
    assert (s.abs() <= 1).all()
    assert r.score([], []).shape == (0,)


def test_completion_only_vs_prompt_plus_completion() -> None:
    prompts, completions = ["The movie was not"], [" good at all"]
    alone = VaderReward().score(prompts, completions)
    joined = VaderReward(text="prompt+completion").score(prompts, completions)
    assert alone.item() > 0 > joined.item()  # the prompt's negation only counts when joined


def test_bad_text_mode() -> None:
    with pytest.raises(UserError, match="prompt\\+completion"):
        VaderReward(text="prompt")  # type: ignore[arg-type]
