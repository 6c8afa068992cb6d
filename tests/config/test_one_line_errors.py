"""Bad input through the command line ends in one line on stderr and exit code 2, never a traceback."""

import pytest

from rlhf_zoo import cli

LM = ["train", "algo=reinforce", "task=sentiment", "model.name=tiny", "task.gold=null", "train.steps=1"]


def _one_line(capsys, code):
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    ("name", "content", "column"),
    [("empty.jsonl", "", "text"), ("header.csv", "text\n", "text"), ("blank.txt", "\n\n  \n", "text")],
)
def test_a_prompt_file_without_prompts(tmp_path, capsys, name, content, column):
    path = tmp_path / name
    path.write_text(content)
    code = cli.main([*LM, f"task.prompts={path}", f"task.prompt_column={column}", f"run_dir={tmp_path}/r"])
    assert name in _one_line(capsys, code)


@pytest.mark.parametrize("where", ["/proc/no/such/dir", "file"])
def test_a_run_dir_that_cannot_be_written(tmp_path, capsys, where):
    if where == "file":
        where = tmp_path / "a_file"
        where.write_text("x")
    code = cli.main(["train", "algo=reinforce", f"run_dir={where}"])
    assert "run_dir" in _one_line(capsys, code)


def test_a_prompt_file_that_does_not_parse_says_why(tmp_path, capsys):
    """A JSONL file with a broken line: the error line said only "DatasetGenerationError: An error occurred
    while generating the dataset"; why (the JSON parse error and its row) was in a log line of datasets."""
    path = tmp_path / "broken.jsonl"
    path.write_text('{"text": "a fine prompt"}\n{bad json\n')
    code = cli.main([*LM, f"task.prompts={path}", f"run_dir={tmp_path}/r"])
    err = capsys.readouterr().err
    assert code == 2, err
    line = next(x for x in err.splitlines() if x.startswith("rlhf-zoo: error:"))
    assert "broken.jsonl" in line and "JSON parse error" in line, err
