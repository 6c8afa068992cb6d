"""Where a user's prompts are read from: which files of a prompt folder count as its data (those datasets reads)."""

from __future__ import annotations

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
