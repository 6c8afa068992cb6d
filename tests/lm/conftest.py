import json

import pytest

WORDS = (
    "the film was a quiet and honest look at a family that never quite learns to talk "
    "about what matters until it is far too late for any of them to change"
).split()


@pytest.fixture(scope="session")
def prompts_file(tmp_path_factory):
    """A local JSONL prompt source (read through `datasets`), so the LM tests need no download."""
    path = tmp_path_factory.mktemp("prompts") / "prompts.jsonl"
    rows = [{"text": " ".join(WORDS[i : i + 8])} for i in range(0, 24)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def lm_args(prompts_file, tmp_path):
    """A tiny-model sentiment run: random 2-layer Llama, VADER proxy, no gold."""
    return [
        "task=sentiment",
        "model.name=tiny",
        f"task.prompts={prompts_file}",
        "task.prompt_words=6",  # the prompts these tests were tuned on (a user's file is used whole by default)
        "task.gold=null",
        "task.eval_fraction=0.25",
        "model.max_new_tokens=8",
        "train.batch_prompts=4",
        "train.steps=3",
        "train.eval_every=3",
        "train.eval_prompts=4",
        "train.eval_samples=2",
        "train.eval_ref_samples=2",
        "train.progress=false",
        "train.lr=1e-3",
        "train.checkpoint_every=0",
        "seed=0",
        "threads=1",
        f"run_dir={tmp_path}/run",
    ]
