"""The registry's checks of a reward's name and options (``check_reward_spec``, ``build_reward``) and the options a
task sets itself (``task_set_options``), on the cases a config can hold: spaces, nulls, a file for a folder."""

from __future__ import annotations

import pytest

from rlhf_zoo.errors import UserError
from rlhf_zoo.rewards.registry import build_reward, check_reward_spec, task_set_options


def test_spaces_after_the_hf_prefix_are_not_part_of_the_model(tiny_regressor) -> None:
    """``task.proxy="hf: /models/classifier"``: the folder is checked and loaded without the space."""
    pytest.importorskip("transformers")
    spec = f"hf:  {tiny_regressor}"
    check_reward_spec(spec)
    assert build_reward(spec, device="cpu").source == str(tiny_regressor)


def test_a_name_with_spaces_around_it_is_the_name() -> None:
    """``task.proxy=" vader "``: the check accepts what the build accepts (both read the name stripped)."""
    pytest.importorskip("vaderSentiment")
    check_reward_spec(" vader ", {"text": "completion"})
    assert build_reward(" vader ").name == "vader"


def test_an_hf_reward_naming_a_file_is_told_to_name_its_folder(tmp_path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(UserError, match=r"model\.safetensors is a file, not a model's folder: name the folder"):
        check_reward_spec(f"hf:{tmp_path / 'model.safetensors'}")


def test_an_option_left_null_is_accepted_where_the_reward_takes_none(tmp_path) -> None:
    """``label: null`` (YAML) or ``task.proxy_options.label=null``: the default of an optional option, not a
    wrong type."""
    (tmp_path / "config.json").write_text("{}")
    check_reward_spec(f"hf:{tmp_path}", {"label": None, "negative_label": None, "name": None})
    with pytest.raises(UserError, match=r"option batch_size=None is not int"):
        check_reward_spec(f"hf:{tmp_path}", {"batch_size": None})


def test_several_unknown_options_are_named_in_order() -> None:
    """In name order, whatever order they were given in (the same line on every run)."""
    names = ["zeta", "alpha", "mu", "kappa", "delta", "omega"]
    listed = ", ".join(repr(n) for n in sorted(names))
    with pytest.raises(UserError, match=rf"has no option {listed}; its options: text, name$"):
        build_reward("vader", **dict.fromkeys(names, 1))


def test_a_python_reward_given_options_names_them(tmp_path) -> None:
    (tmp_path / "mine.py").write_text("def score(prompts, completions):\n    return [0.0] * len(completions)\n")
    spec = f"py:{tmp_path / 'mine.py'}:score"
    needle = r"takes no options \(got 'batch_size', 'text'\)$"
    with pytest.raises(UserError, match=needle):
        check_reward_spec(spec, {"text": "completion", "batch_size": 2})
    with pytest.raises(UserError, match=needle):
        build_reward(spec, text="completion", batch_size=2)


def test_a_name_starting_with_py_but_no_prefix_is_an_unknown_reward() -> None:
    """Only ``py:`` names a Python function: ``python_judge`` is an unknown name, listed with the known ones."""
    for check in (check_reward_spec, build_reward):
        with pytest.raises(UserError, match=r"unknown reward 'python_judge': known rewards are vader, "):
            check("python_judge")


def test_the_task_sets_the_device_and_the_build_of_the_rewards_that_take_them() -> None:
    """``task.reward_device`` reaches hf: and minilm_sentiment, ``task.build_gold`` minilm_sentiment alone; VADER and
    a Python function take neither; the name is read as build_reward reads it (spaces around it ignored)."""
    assert task_set_options(" hf:some/classifier ", "cuda:1", False) == {"device": "cuda:1"}
    assert task_set_options(" minilm_sentiment", "cpu", False) == {"device": "cpu", "build_if_missing": False}
    assert task_set_options("minilm_sentiment", "cpu", True) == {"device": "cpu", "build_if_missing": True}
    assert task_set_options("vader", "cpu", False) == {}
    assert task_set_options("py:mine.py:score", "cpu", False) == {}


def test_the_check_imports_a_python_reward_and_checks_its_function(tmp_path) -> None:
    """What a run would refuse when it builds the reward, the config's check refuses first: a missing file, a
    function that cannot take (prompts, completions)."""
    with pytest.raises(UserError, match=r"no such file .*gone\.py"):
        check_reward_spec(f"py:{tmp_path / 'gone.py'}:score")
    (tmp_path / "one.py").write_text("def score(completions):\n    return [0.0] * len(completions)\n")
    with pytest.raises(UserError, match=r"cannot be called as f\(prompts, completions\)"):
        check_reward_spec(f"py:{tmp_path / 'one.py'}:score")
