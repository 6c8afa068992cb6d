"""Where a user's prompts are read from: which files of a prompt folder count as its data (those datasets reads),
a folder whose name ends like a file, a file under ``~`` or named without a folder, and the edges of the messages
for a file that holds no prompts or other values than text."""

from __future__ import annotations

import json

import pytest

from rlhf_zoo.errors import UserError
from rlhf_zoo.tasks.sentiment import SentimentTaskConfig, check_sentiment_task, load_prompt_sets
from tests.conftest import write_jsonl

pytest.importorskip("datasets")

PROMPTS = [f"review number {i} says the plot is thin" for i in range(6)]


def _read(folder) -> list[str]:
    """The checks pass on ``folder`` and its prompts load (the packaged held-out prompts are not read)."""
    cfg = SentimentTaskConfig(prompts=str(folder), eval_prompts=str(folder), gold=None)
    check_sentiment_task(cfg)
    return sorted(load_prompt_sets(cfg).train)


# -- which files of a folder are its data ---------------------------------------------------------------------


def test_json_and_jsonl_files_in_one_folder_are_one_format(tmp_path) -> None:
    """datasets reads a folder's .json and .jsonl files together (one JSON builder): not "several formats"."""
    write_jsonl(tmp_path / "a.jsonl", PROMPTS[:3])
    (tmp_path / "b.json").write_text(json.dumps([{"text": t} for t in PROMPTS[3:]]))
    assert _read(tmp_path) == sorted(PROMPTS)


def test_a_sub_folder_named_like_a_file_of_another_format_is_no_file(tmp_path) -> None:
    """Only files count toward a folder's formats: a sub-folder ``old.txt`` of JSONL files is read with the rest."""
    write_jsonl(tmp_path / "a.jsonl", PROMPTS[:3])
    (tmp_path / "old.txt").mkdir()
    write_jsonl(tmp_path / "old.txt" / "b.jsonl", PROMPTS[3:])
    assert _read(tmp_path) == sorted(PROMPTS)


def test_a_hidden_file_of_another_format_is_not_a_prompt_file(tmp_path) -> None:
    """datasets leaves hidden files out (``.notes.txt``): they are no second format beside the JSONL prompts."""
    write_jsonl(tmp_path / "a.jsonl", PROMPTS)
    (tmp_path / ".notes.txt").write_text("a note to myself\n")
    assert _read(tmp_path) == sorted(PROMPTS)


def test_a_folder_whose_name_ends_like_a_file_is_read_as_a_folder(tmp_path) -> None:
    """``reviews.jsonl/`` holding ``train.jsonl`` is a dataset folder, read as one, not opened as a file."""
    folder = tmp_path / "reviews.jsonl"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", PROMPTS)
    assert _read(folder) == sorted(PROMPTS)


def test_prompt_split_chooses_the_split_of_a_folder_whose_name_ends_like_a_file(tmp_path) -> None:
    """A folder ``reviews.jsonl/`` is read by split like any dataset folder: ``task.prompt_split=test`` has a meaning
    there (the check refused it, calling the folder "a file", while reading honoured it)."""
    folder = tmp_path / "reviews.jsonl"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", PROMPTS[:2])
    write_jsonl(folder / "test.jsonl", PROMPTS[2:])
    cfg = SentimentTaskConfig(prompts=str(folder), eval_prompts=str(folder), prompt_split="test", gold=None)
    check_sentiment_task(cfg)
    assert sorted(load_prompt_sets(cfg).train) == sorted(PROMPTS[2:])


@pytest.mark.parametrize(
    ("name", "kind"), [("prompts.foo", ".foo files are"), ("prompts", "a file without a suffix is")]
)
def test_a_file_of_another_kind_under_the_home_folder_is_refused(tmp_path, monkeypatch, name, kind) -> None:
    """``task.prompts=~/prompts.foo`` (the shell leaves the ~): the file there is refused as a file of another
    kind, as it is when named by its full path, not taken for a dataset folder."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    (home / name).write_text("a review\n")
    with pytest.raises(UserError, match=f"^task.prompts=~/{name}: {kind} not read as prompts: use a .jsonl"):
        check_sentiment_task(SentimentTaskConfig(prompts=f"~/{name}", gold=None))


def test_files_in_folders_that_datasets_skips_are_not_prompt_files(tmp_path) -> None:
    """datasets skips hidden folders and those whose name begins with ``__``: a folder of JSONL prompts with a
    Jupyter checkpoint's CSV copy was refused as "several formats (.csv, .jsonl), of which one would be read",
    though datasets reads its JSONL prompts and nothing else. Where the folder itself lies does not matter: inside
    a hidden folder, a second format beside the prompts is still refused."""
    folder = tmp_path / ".data" / "prompts"
    folder.mkdir(parents=True)
    write_jsonl(folder / "a.jsonl", PROMPTS)
    for skipped in (".ipynb_checkpoints/a-checkpoint.csv", "__pycache__/b.csv", "sub/.cache/c.txt"):
        (folder / skipped).parent.mkdir(parents=True, exist_ok=True)
        (folder / skipped).write_text("text\na copy\n")
    assert _read(folder) == sorted(PROMPTS)
    (folder / "b.csv").write_text("text\nanother review\n")
    with pytest.raises(UserError, match=r"several formats \(\.csv, \.jsonl\)"):
        check_sentiment_task(SentimentTaskConfig(prompts=str(folder), gold=None))


# -- the messages at their edges ------------------------------------------------------------------------------


def test_a_json_file_of_one_empty_record_holds_no_prompts(tmp_path) -> None:
    path = tmp_path / "p.json"
    path.write_text("[{}]\n")
    with pytest.raises(UserError, match=r"^task\.prompts=.*p\.json holds no prompts \(it holds \[\{\}\]\)$"):
        load_prompt_sets(SentimentTaskConfig(prompts=str(path)))


def test_a_value_that_is_not_text_is_shown_whole_up_to_sixty_characters(tmp_path) -> None:
    """The row's value is shown as written up to 60 characters, and cut to 57 and "..." beyond."""
    path = tmp_path / "p.jsonl"
    for value, shown in ((["x" * 56], repr(["x" * 56])), (["x" * 57], repr(["x" * 57])[:57] + "...")):
        assert len(repr(value)) in (60, 61)
        path.write_text(json.dumps({"text": value}) + "\n")
        with pytest.raises(UserError) as info:
            load_prompt_sets(SentimentTaskConfig(prompts=str(path)))
        assert f"(row 1: {shown});" in str(info.value)


def test_a_prompt_over_the_limit_is_shown_whole_up_to_sixty_characters() -> None:
    """The prompt named as too long is shown as written up to 60 characters, and cut to 57 and "..." beyond."""
    pytest.importorskip("transformers")
    from types import SimpleNamespace

    from rlhf_zoo.policies.models import build_tiny_tokenizer
    from rlhf_zoo.tasks.sentiment import check_prompts_fit

    cfg = SimpleNamespace(name="tiny", max_prompt_tokens=1, max_new_tokens=2, chat_template=False)
    for prompt, shown in (("a" * 60, "a" * 60), ("b" * 61, "b" * 57 + "...")):
        with pytest.raises(UserError, match=f"tokens: '{shown}' has "):
            check_prompts_fit([prompt], cfg, build_tiny_tokenizer(), context=None)


def test_files_of_other_columns_name_up_to_six_of_them(tmp_path) -> None:
    """A file of six columns (its text and five more) beside the prompts is named by all six, without the "..."
    that stands for a seventh and more."""
    write_jsonl(tmp_path / "a.jsonl", PROMPTS)
    (tmp_path / "b.jsonl").write_text(json.dumps({"text": "a review", **{f"column_{i}": i for i in range(5)}}) + "\n")
    with pytest.raises(UserError, match="its files do not all hold the same columns") as info:
        load_prompt_sets(SentimentTaskConfig(prompts=str(tmp_path)))
    assert ", ..." not in str(info.value) and all(f"column_{i}" in str(info.value) for i in range(5))


@pytest.mark.parametrize("content", ['[{"text": "a fine prompt"}]', '[{"text": "a fine prompt"},'])
def test_reading_a_prompt_file_leaves_the_logging_of_datasets_as_it_was(tmp_path, content) -> None:
    """datasets' log is quietened while a file loads (its "Failed to load JSON" line came before the error line),
    and set back afterwards, whether the file loads or not: a user's verbosity is theirs."""
    import datasets

    path = tmp_path / "p.json"
    path.write_text(content + "\n")
    level = datasets.logging.get_verbosity()
    datasets.logging.set_verbosity(datasets.logging.INFO)
    try:
        try:
            load_prompt_sets(SentimentTaskConfig(prompts=str(path), eval_prompts=str(path)))
        except UserError as e:
            assert "cannot load prompts" in str(e) and content.endswith(",")
        assert datasets.logging.get_verbosity() == datasets.logging.INFO
    finally:
        datasets.logging.set_verbosity(level)


def test_a_missing_prompt_file_named_without_a_folder_is_no_hub_id(tmp_path, monkeypatch) -> None:
    """``task.prompts=reviews.jsonl`` that is not in the working folder: no such file, never looked up on the hub
    as a dataset id."""
    import rlhf_zoo.hub as hub

    monkeypatch.setattr(hub, "check_hub_dataset", lambda *a, **k: pytest.fail("looked up on the hub"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="^task.prompts=reviews.jsonl: no such file or directory$"):
        check_sentiment_task(SentimentTaskConfig(prompts="reviews.jsonl", gold=None))


def test_reading_alone_refuses_a_file_of_another_format(tmp_path) -> None:
    """load_prompt_sets, called without the settings' check first, refuses a .tsv file too, in the check's words
    (datasets said it "couldn't find any data file" at a file that is there)."""
    path = tmp_path / "p.tsv"
    path.write_text("text\tlabel\na review\t1\n")
    with pytest.raises(UserError, match=f"^task.prompts={path}: .tsv files are not read as prompts"):
        load_prompt_sets(SentimentTaskConfig(prompts=str(path)))
