"""What a researcher brings is read as given or refused in one line: prompts (CSV cells, non-text columns),
rewards (multi-line errors), the reward device, sweep files (repeated values, strings YAML would misread),
and the command recorded in meta.json."""

from __future__ import annotations

import json
import shlex

import pytest

from tests.conftest import write_jsonl

pytest.importorskip("transformers")
pytest.importorskip("vaderSentiment")

PROMPTS = [f"review number {i} says the plot is thin" for i in range(20)]


def _one_line_error(code: int, err: str) -> str:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# -- task.reward_device -----------------------------------------------------------------------------------


def test_a_bad_reward_device_is_one_line_before_anything_loads(cli, tiny_lm, tmp_path):
    prompts = write_jsonl(tmp_path / "p.jsonl", PROMPTS)
    code, _, err = cli("train", "algo=reinforce", *tiny_lm, f"task.prompts={prompts}", "task.reward_device=gpu")
    assert "reward_device" in _one_line_error(code, err)
    assert not (tmp_path / "run" / "meta.json").exists()


def test_reward_device_cuda_without_cuda_is_one_line(cli, tiny_lm, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    prompts = write_jsonl(tmp_path / "p.jsonl", PROMPTS)
    # a gold MiniLM, which the reward device places (not built here: the device is refused before it loads)
    gold = ["task.gold=minilm_sentiment", "task.build_gold=false"]
    code, _, err = cli("train", "algo=reinforce", *tiny_lm, *gold, f"task.prompts={prompts}", "task.reward_device=cuda")
    assert "task.reward_device=cuda" in _one_line_error(code, err)


# -- a reward's error -------------------------------------------------------------------------------------


def test_a_reward_that_raises_a_multiline_message_is_one_line():
    from rlhf_zoo.rewards.base import CallableReward, RewardError, checked_score

    def bad(prompts, completions):
        raise ValueError("first line\nsecond line\nthird line")

    with pytest.raises(RewardError) as info:
        checked_score(CallableReward(bad, name="bad"), ["p"], ["c"])
    assert "\n" not in str(info.value) and "ValueError: first line" in str(info.value)


# -- prompt files -----------------------------------------------------------------------------------------


def test_a_prompt_column_of_chat_messages_is_refused_not_stringified(tmp_path):
    from rlhf_zoo.errors import UserError
    from rlhf_zoo.tasks.sentiment import SentimentTaskConfig, load_prompt_sets

    path = tmp_path / "chat.jsonl"
    rows = [{"text": [{"role": "user", "content": f"continue review {i}"}]} for i in range(20)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(UserError, match="holds list values, not text"):
        load_prompt_sets(SentimentTaskConfig(prompts=str(path)))


def test_csv_prompts_are_read_as_the_text_written(tmp_path):
    from rlhf_zoo.tasks.sentiment import SentimentTaskConfig, load_prompt_sets

    texts = ["NA", "null", "None", "nan", "007", "1.50", *PROMPTS]
    path = tmp_path / "p.csv"
    path.write_text("text\n" + "".join(f"{t}\n" for t in texts))
    sets = load_prompt_sets(SentimentTaskConfig(prompts=str(path), eval_fraction=0.5))
    train, evals, _ = sets.train, sets.evals, sets.source
    assert sorted(train + evals) == sorted(texts)
    numbers = tmp_path / "n.csv"
    numbers.write_text("text\n007\n1.50\n2\n")
    sets = load_prompt_sets(SentimentTaskConfig(prompts=str(numbers), eval_fraction=0.5))
    train, evals, _ = sets.train, sets.evals, sets.source
    assert sorted(train + evals) == ["007", "1.50", "2"]


@pytest.mark.parametrize("prompts", ["p.jsonl", "pdir"])
def test_paths_under_the_home_folder_are_read_as_the_shell_would_not_expand_them(
    cli, tiny_lm, tmp_path, monkeypatch, prompts
):
    """The shell leaves the ~ of ``task.prompts=~/p.jsonl`` as it is (``task.prompts`` is no variable name), and
    an experiment file's YAML too. The checks expanded it, the loaders did not: prompts (a file or a dataset
    folder) and ``model.name`` went to the hub as ids ("Repo id must use alphanumeric chars")."""
    from rlhf_zoo.policies import models

    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    tokenizer = models.build_tiny_tokenizer()
    models.build_tiny_model(tokenizer).save_pretrained(home / "model")
    tokenizer.save_pretrained(home / "model")
    (home / "pdir").mkdir()
    write_jsonl(home / "pdir" / "train.jsonl", PROMPTS)
    write_jsonl(home / "p.jsonl", PROMPTS)
    (home / "e.txt").write_text("".join(f"held out {i}\n" for i in range(3)))
    (home / "r.py").write_text("def score(prompts, completions):\n    return [1.0 for _ in completions]\n")
    args = [a for a in tiny_lm if a != "model.name=tiny"]
    args += [
        "model.name=~/model",
        f"task.prompts=~/{prompts}",
        "task.eval_prompts=~/e.txt",
        "task.proxy=py:~/r.py:score",
    ]
    code, _, err = cli("train", "algo=reinforce", *args)
    assert code == 0, err
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert meta["prompts"]["train"] == len(PROMPTS) and meta["prompts"]["eval_held_out"] == 3, meta["prompts"]


# -- sweep files ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sweep, args, needle",
    [
        ("  seed: [0, 0]\n", [], "twice"),
        ("  algo.beta: [0.1, 0.1]\n", [], "twice"),
        ("  algo.beta: [0.1, 0.5]\n", ["seed=1,01"], "seed=1,01 lists 1 and 01, one value"),
    ],
)
def test_a_repeated_sweep_value_is_one_line(cli, tmp_path, sweep, args, needle):
    path = tmp_path / "s.yaml"
    path.write_text(f"task: exact\nalgo: bond\ntrain: {{steps: 1}}\nsweep:\n{sweep}")
    code, _, err = cli("train", f"config={path}", f"out={tmp_path}/sw", *args)
    assert needle in _one_line_error(code, err)
    assert not (tmp_path / "sw").exists()


def test_a_sweep_file_reads_its_settings_as_a_single_run_does(tmp_path):
    from rlhf_zoo.bench.suites import expand
    from rlhf_zoo.config import compose
    from rlhf_zoo.sweep import plan_sweep

    path = tmp_path / "s.yaml"
    path.write_text(
        'task: sentiment\nalgo: bond\ntask.prompts: "data #1.jsonl"\ntask.prompt_column: "yes"\n'
        "train.lr: 1e-4\nsweep:\n  seed: [0, 1]\n"
    )
    single = compose([f"config={path}", "seed=0"])
    point = compose(list(expand(plan_sweep([f"config={path}"]).suite)[0].args))
    for key in ("prompts", "prompt_column"):
        assert point.task[key] == single.task[key]
    assert point.train.lr == single.train.lr == 1e-4


# -- meta.json --------------------------------------------------------------------------------------------


def test_the_recorded_command_reads_back_as_the_arguments_given(cli, tiny_lm, tmp_path):
    prompts = write_jsonl(tmp_path / "my prompts.jsonl", PROMPTS)
    args = ["train", "algo=reinforce", *tiny_lm, f"task.prompts={prompts}", "task.eval_fraction=0.5"]
    code, _, err = cli(*args)
    assert code == 0, err
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert shlex.split(meta["command"]) == ["rlhf-zoo", *args]
