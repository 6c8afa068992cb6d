"""A reward's options from the config (``task.proxy_options`` / ``task.gold_options``): passed to its class,
checked by name and type before anything loads, and no setting at all while left empty."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from rlhf_zoo.errors import UserError
from rlhf_zoo.tasks.sentiment import SentimentTaskConfig, build_sentiment_task, check_sentiment_task
from tests.conftest import write_jsonl

pytest.importorskip("transformers")
pytest.importorskip("vaderSentiment")

PROMPTS = [f"the film number {i} was" for i in range(20)]


def test_options_reach_a_hugging_face_reward(tmp_path, tiny_classifier: Path) -> None:
    from rlhf_zoo.rewards.hf import HFSequenceReward

    options = {"label": "POS", "negative_label": "NEG", "text": "pair", "max_length": 16}
    cfg = SentimentTaskConfig(
        prompts=str(write_jsonl(tmp_path / "p.jsonl", PROMPTS)),
        proxy=f"hf:{tiny_classifier}",
        proxy_options=options,
        gold=None,
    )
    check_sentiment_task(cfg)
    task = build_sentiment_task(cfg, None)
    reward = task.proxy
    assert (reward.label, reward.negative_label, reward.text, reward.max_length) == (2, 0, "pair", 16)
    direct = HFSequenceReward(tiny_classifier, label=2, negative_label=0, text="pair", max_length=16)
    prompts, completions = ["a film", "a play"], [" was great", " was dull"]
    assert reward.score(prompts, completions).tolist() == direct.score(prompts, completions).tolist()
    # without a label, a 3-label classifier is refused, naming the option that chooses one
    with pytest.raises(UserError, match="3 labels"):
        build_sentiment_task(replace(cfg, proxy_options={}), None)


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"proxy_options": {"colour": "red"}}, "no option 'colour'"),
        ({"proxy_options": {"text": "pair"}}, "text='pair' is not 'completion' | 'prompt+completion'"),
        ({"gold_options": {"batch_size": "x"}}, "batch_size='x' is not int"),
        ({"gold_options": {"batch_size": True}}, "batch_size=True is not int"),
        ({"proxy_options": {"device": "cpu"}}, "'device' is set by the task"),
        ({"gold_options": {"build_if_missing": False}}, "'build_if_missing' is set by the task"),
        ({"gold": None, "gold_options": {"text": "completion"}}, "there is no gold reward"),
    ],
)
def test_bad_options_are_refused_before_anything_loads(change, needle) -> None:
    with pytest.raises(UserError, match=needle) as info:
        check_sentiment_task(replace(SentimentTaskConfig(), **change))
    assert "\n" not in str(info.value)


def test_a_python_reward_takes_no_options(tmp_path) -> None:
    (tmp_path / "mine.py").write_text("def score(prompts, completions):\n    return [0.0] * len(completions)\n")
    cfg = SentimentTaskConfig(proxy=f"py:{tmp_path / 'mine.py'}:score", proxy_options={"text": "completion"})
    with pytest.raises(UserError, match="takes no options"):
        check_sentiment_task(cfg)


def test_options_of_the_right_kind_pass_the_check() -> None:
    check_sentiment_task(
        SentimentTaskConfig(proxy_options={"text": "prompt+completion"}, gold_options={"batch_size": 8})
    )


def test_empty_options_are_no_setting_of_a_record() -> None:
    from rlhf_zoo.bench.runner import settings_of
    from rlhf_zoo.config import load_config

    plain = settings_of(load_config(["task=sentiment", "algo=reinforce"]))
    assert not any("options" in k for k in plain)
    given = settings_of(load_config(["task=sentiment", "algo=reinforce", "task.proxy_options.text=prompt+completion"]))
    assert given == {**plain, "task.proxy_options.text": "prompt+completion"}


def test_an_option_on_the_command_line_is_one_line(cli, tmp_path) -> None:
    code, _, err = cli(
        "train", "algo=reinforce", "task=sentiment", "task.gold_options.batch_size=x", f"run_dir={tmp_path}/r"
    )
    assert code == 2 and err.strip().splitlines() == [
        "rlhf-zoo: error: task.gold: reward 'minilm_sentiment': option batch_size='x' is not int"
    ], err
