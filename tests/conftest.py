import os

import pytest
import torch

# Tiny tensors: one thread avoids thread-pool overhead (and contention on 2-core CI machines).
torch.set_num_threads(1)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def exact_task():
    from rlhf_zoo.tasks.exact import ExactTaskConfig, build_exact_task

    return build_exact_task(ExactTaskConfig())


@pytest.fixture
def cli(capsys):
    """Run ``rlhf-zoo ARGS...`` in this process: returns (exit code, stdout, stderr)."""
    from rlhf_zoo.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture
def tiny_lm(tmp_path):
    """Arguments of a fast ``task=sentiment`` run on the tiny random model (VADER proxy, no gold, one
    evaluation at step 0), without prompts: add ``task.prompts=...``."""
    return [
        "task=sentiment",
        "model.name=tiny",
        "task.gold=null",
        "model.max_new_tokens=6",
        "train.batch_prompts=2",
        "train.steps=0",
        "train.eval_prompts=2",
        "train.eval_samples=2",
        "train.eval_ref_samples=2",
        "train.progress=false",
        "train.checkpoint_every=0",
        "threads=1",
        f"run_dir={tmp_path}/run",
    ]


def write_jsonl(path, texts, column="text"):
    """A JSONL prompt file, one ``{column: text}`` per line."""
    import json

    path.write_text("".join(json.dumps({column: t}) + "\n" for t in texts))
    return path
