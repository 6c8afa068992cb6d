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
