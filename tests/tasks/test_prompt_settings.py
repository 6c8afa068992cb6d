"""Prompt settings that have no meaning for the sources given are refused in one line, before any work;
where they have a meaning they are honoured."""

from __future__ import annotations

import pytest

from tests.conftest import write_jsonl

pytest.importorskip("transformers")
pytest.importorskip("vaderSentiment")

PROMPTS = [f"review number {i} says the plot is thin" for i in range(20)]


@pytest.fixture
def no_weights(monkeypatch):
    """Fail the test if a model's weights are loaded."""
    import rlhf_zoo.policies.models as models

    monkeypatch.setattr(models, "load_model_and_tokenizer", lambda *a, **k: pytest.fail("a model was loaded"))


def _refused(cli, tmp_path, *args: str) -> str:
    """The one line of a run refused before any work."""
    code, _, err = cli("train", "algo=reinforce", *args)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()
    return lines[0]


# -- task.eval_fraction -----------------------------------------------------------------------------------


@pytest.mark.parametrize("sources", ["packaged", "eval file"])
def test_eval_fraction_without_a_hash_split_is_refused(cli, tiny_lm, tmp_path, no_weights, sources):
    if sources == "packaged":
        given = []
    else:
        given = [f"task.prompts={write_jsonl(tmp_path / 'p.jsonl', PROMPTS)}"]
        given.append(f"task.eval_prompts={write_jsonl(tmp_path / 'e.jsonl', PROMPTS[:4])}")
    line = _refused(cli, tmp_path, *tiny_lm, *given, "task.eval_fraction=0.3")
    assert "task.eval_fraction=0.3" in line and ("task.eval_prompts" if given else "packaged") in line


# -- task.prompt_split ------------------------------------------------------------------------------------


@pytest.mark.parametrize("sources", ["file", "packaged", "file and eval file"])
def test_prompt_split_without_a_dataset_that_has_splits_is_refused(cli, tiny_lm, tmp_path, no_weights, sources):
    given = {
        "file": [f"task.prompts={write_jsonl(tmp_path / 'p.jsonl', PROMPTS)}"],
        "packaged": [],
        "file and eval file": [
            f"task.prompts={write_jsonl(tmp_path / 'p.jsonl', PROMPTS)}",
            f"task.eval_prompts={write_jsonl(tmp_path / 'e.jsonl', PROMPTS[:4])}",
        ],
    }[sources]
    line = _refused(cli, tmp_path, *tiny_lm, *given, "task.prompt_split=test")
    assert "task.prompt_split=test" in line


def test_prompt_split_chooses_the_split_of_a_directory(tmp_path):
    from rlhf_zoo.config import load_config, validate
    from rlhf_zoo.tasks.sentiment import SentimentTaskConfig, load_prompt_sets

    folder = tmp_path / "reviews"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", PROMPTS)
    write_jsonl(folder / "test.jsonl", [f"a test review {i}" for i in range(10)])
    args = ["algo=bond", "task=sentiment", "task.gold=null", f"run_dir={tmp_path}/run"]
    validate(load_config([*args, f"task.prompts={folder}", "task.prompt_split=test"]))  # accepted
    sets = load_prompt_sets(SentimentTaskConfig(prompts=str(folder), prompt_split="test", eval_fraction=0.5))
    train, evals, _ = sets.train, sets.evals, sets.source
    assert sorted(train + evals) == sorted(f"a test review {i}" for i in range(10))


# -- prompt file formats ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "exists"), [("p.tsv", True), ("p.parquet", True), ("p.parquet", False)])
@pytest.mark.parametrize("key", ["prompts", "eval_prompts"])
def test_an_unsupported_prompt_file_is_refused_with_the_config(tmp_path, monkeypatch, name, exists, key):
    import rlhf_zoo.hub as hub
    from rlhf_zoo.config import load_config, validate
    from rlhf_zoo.errors import UserError

    monkeypatch.setattr(hub, "check_hub_dataset", lambda *a, **k: pytest.fail("looked up on the hub"))
    monkeypatch.chdir(tmp_path)
    if exists:
        (tmp_path / name).write_text("text\tlabel\na review\t1\n")
    given = {"prompts": write_jsonl(tmp_path / "p.jsonl", PROMPTS), key: name}
    args = ["algo=bond", "task=sentiment", "task.gold=null", f"run_dir={tmp_path}/run"]
    with pytest.raises(UserError) as info:
        validate(load_config([*args, *(f"task.{k}={v}" for k, v in given.items())]))
    line = str(info.value)
    assert f"task.{key}={name}" in line and ".jsonl" in line and "\n" not in line


# -- the packaged prompts as the evaluation set -----------------------------------------------------------


def test_packaged_evaluation_prompts_beside_a_prompt_file(tmp_path, monkeypatch):
    import rlhf_zoo.data.hutto as hutto
    from rlhf_zoo.tasks.sentiment import SentimentTaskConfig, load_prompt_sets

    asked = []

    def packaged(split, n_words=None, **kw):
        asked.append((split, n_words))
        return [f"packaged {split} snippet {i}" for i in range(5)]

    monkeypatch.setattr(hutto, "prompt_texts", packaged)
    path = write_jsonl(tmp_path / "p.jsonl", PROMPTS)
    sets = load_prompt_sets(SentimentTaskConfig(prompts=str(path), eval_prompts="hutto"))
    train, evals, source = sets.train, sets.evals, sets.source
    assert sorted(train) == sorted(PROMPTS) and asked == [("eval", 6)]
    assert evals == [f"packaged eval snippet {i}" for i in range(5)] and "packaged" in source


# -- task.prompt_column -----------------------------------------------------------------------------------


@pytest.mark.parametrize("evals", [None, "hutto"])
def test_prompt_column_with_only_the_packaged_prompts_is_refused(cli, tiny_lm, tmp_path, no_weights, evals):
    given = [f"task.eval_prompts={evals}"] if evals else []
    line = _refused(cli, tmp_path, *tiny_lm, *given, "task.prompt_column=review")
    assert "task.prompt_column=review" in line and "packaged" in line


def test_prompt_column_names_the_column_of_an_evaluation_file_beside_packaged_prompts(tmp_path):
    from rlhf_zoo.config import load_config, validate

    evals = write_jsonl(tmp_path / "e.jsonl", PROMPTS, column="review")
    args = ["algo=bond", "task=sentiment", "task.gold=null", f"run_dir={tmp_path}/run"]
    validate(load_config([*args, f"task.eval_prompts={evals}", "task.prompt_column=review"]))  # accepted


def test_a_text_file_beside_a_file_of_another_column_is_read_whole(tmp_path):
    """task.prompt_column names the JSONL file's column; the .txt evaluation file has one column, text (it said
    "'e.txt' has no column 'prompt'", though the README pairs a train.jsonl with an eval.txt)."""
    from rlhf_zoo.tasks.sentiment import SentimentTaskConfig, load_prompt_sets

    train = write_jsonl(tmp_path / "p.jsonl", PROMPTS, column="prompt")
    evals = tmp_path / "e.txt"
    evals.write_text("".join(f"held out review {i} is long\n" for i in range(5)))
    sets = load_prompt_sets(SentimentTaskConfig(prompts=str(train), eval_prompts=str(evals), prompt_column="prompt"))
    assert sorted(sets.train) == sorted(PROMPTS) and sets.evals == [f"held out review {i} is long" for i in range(5)]


@pytest.mark.parametrize("evals", [None, "hutto", "TXT"])
def test_prompt_column_with_only_text_files_is_refused(cli, tiny_lm, tmp_path, no_weights, evals):
    """A .txt file (and the packaged prompts) have no column to choose: task.prompt_column would be ignored."""
    train = tmp_path / "p.txt"
    train.write_text("".join(f"{p}\n" for p in PROMPTS))
    given = [f"task.eval_prompts={train if evals == 'TXT' else evals}"] if evals else []
    line = _refused(cli, tmp_path, *tiny_lm, f"task.prompts={train}", *given, "task.prompt_column=review")
    assert "task.prompt_column=review has no meaning here" in line and ".txt file's one column is text" in line
    assert (" have no columns to choose" if evals else " has no columns to choose") in line, line  # one or two sources
