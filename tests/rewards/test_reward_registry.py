"""build_reward: known names, unknown names and options."""

from __future__ import annotations

import pytest

from rlhf_zoo.errors import UserError
from rlhf_zoo.rewards import RewardModel, build_reward, known_rewards


def test_known_names() -> None:
    assert known_rewards() == [
        "vader",
        "minilm_sentiment",
        "hf:<model id or path>",
        "py:<file.py or module>:<function>",
    ]


def test_unknown_name_lists_known() -> None:
    with pytest.raises(UserError) as info:
        build_reward("gpt4_judge")
    msg = str(info.value)
    assert "gpt4_judge" in msg
    assert all(n in msg for n in ("vader", "minilm_sentiment", "hf:<model id or path>"))


def test_empty_hf_spec() -> None:
    with pytest.raises(UserError, match="names no model"):
        build_reward("hf:")


def test_unknown_option() -> None:
    with pytest.raises(UserError, match="'colour'.*text"):
        build_reward("vader", colour="red")
    with pytest.raises(UserError, match="'colour'"):
        build_reward("hf:some/model", colour="red")


def test_vader_by_name() -> None:
    pytest.importorskip("vaderSentiment")
    r = build_reward(" vader ", text="prompt+completion")
    assert isinstance(r, RewardModel) and r.name == "vader"
    assert r.score(["I am"], [" happy"]).item() > 0


def test_gold_not_built_names_prepare() -> None:
    with pytest.raises(UserError, match="rlhf-zoo prepare"):
        build_reward("minilm_sentiment", build_if_missing=False)
