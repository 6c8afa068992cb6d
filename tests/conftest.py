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
