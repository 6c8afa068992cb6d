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


def test_a_reward_spec_is_checked_before_anything_loads(tmp_path, monkeypatch) -> None:
    """What the config's validation refuses (one line, no model loaded) rather than the run, minutes later."""
    from rlhf_zoo.rewards.registry import check_reward_spec

    for spec, needle in [("hf:", "names no model"), (f"hf:{tmp_path}/nowhere", "no such directory")]:
        with pytest.raises(UserError, match=needle):
            check_reward_spec(spec)
    with pytest.raises(UserError, match=r"option label=\[1\] is not"):
        check_reward_spec(f"hf:{tmp_path}", {"label": [1]})
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "classifier").mkdir()
    # a folder without a model said, when the run loaded it, "could not load the reward model ... (Unrecognized
    # model in ...); without network access pass a local directory": as if the folder were a hub id
    with pytest.raises(
        UserError, match=r"hf:~/classifier': .*classifier holds no Hugging Face model \(no config.json\)"
    ):
        check_reward_spec("hf:~/classifier")
    (tmp_path / "classifier" / "config.json").write_text("{}")
    check_reward_spec("hf:~/classifier")  # a folder under the home folder, ~ as written in a YAML file
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="HF_HUB_OFFLINE is set"):
        check_reward_spec("hf:nobody-zoo/not-a-cached-model")


def test_an_uncached_reward_model_is_not_offered_the_packaged_language_models(monkeypatch) -> None:
    """The offline hint of an hf: reward named "a packaged model ('tiny', 'smollm2-135m', ...)": those are
    causal LMs, which an hf: reward refuses (no classification head), and hf:tiny is looked up on the hub."""
    from rlhf_zoo.rewards.registry import check_reward_spec

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="HF_HUB_OFFLINE is set") as e:
        check_reward_spec("hf:nobody-zoo/not-a-cached-model")
    assert "tiny" not in str(e.value) and "sequence classifier" in str(e.value)


def test_a_python_reward_is_built_without_options(tmp_path) -> None:
    (tmp_path / "mine.py").write_text("def score(prompts, completions):\n    return [0.0] * len(completions)\n")
    with pytest.raises(UserError, match="takes no options"):
        build_reward(f"py:{tmp_path / 'mine.py'}:score", batch_size=2)


def test_the_model_of_an_hf_reward_is_named_by_its_spec_not_by_an_option(tmp_path) -> None:
    """``hf:PATH`` names the model; an option ``model_name_or_path`` would reach the class a second time (a
    TypeError when the run builds it), so the config's check refuses it as no option of the reward."""
    from rlhf_zoo.rewards.registry import check_reward_spec

    with pytest.raises(UserError, match="has no option 'model_name_or_path'"):
        check_reward_spec(f"hf:{tmp_path}", {"model_name_or_path": str(tmp_path)})
    with pytest.raises(UserError, match="has no option 'model_name_or_path'"):
        build_reward(f"hf:{tmp_path}", model_name_or_path=str(tmp_path))
