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


def test_prompt_plus_completion_scores_the_two_strings_run_together() -> None:
    """A completion continues its prompt (it carries its own leading space): the text scored is the plain
    concatenation, here a word split across the two ("wonder" + "ful"), never joined with a space."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    expected = analyzer.polarity_scores("The film was wonderful")["compound"]
    assert expected > 0.5 and analyzer.polarity_scores("The film was wonder ful")["compound"] < expected
    got = VaderReward(text="prompt+completion").score(["The film was wonder", "Sad"], ["ful", ""])
    assert got.tolist() == pytest.approx([expected, analyzer.polarity_scores("Sad")["compound"]])


def test_reward_texts_refuses_unequal_lengths_and_unknown_modes_in_every_mode() -> None:
    """The texts are paired row by row: a prompt list of another length is an error even where only the
    completions are read, and a mode that is neither of the two is refused, not read as the joined one."""
    from rlhf_zoo.rewards._text import reward_texts

    assert reward_texts(["p1", "p2"], [" a", " b"], "completion") == [" a", " b"]
    assert reward_texts(["p1", "p2"], [" a", " b"], "prompt+completion") == ["p1 a", "p2 b"]
    for mode in ("completion", "prompt+completion"):
        with pytest.raises(ValueError, match="1 prompts for 2 completions"):
            reward_texts(["p1"], [" a", " b"], mode)
    with pytest.raises(UserError, match="unknown reward text mode 'pair'"):
        reward_texts(["p1"], [" a"], "pair")
