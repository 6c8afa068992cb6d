"""Fixtures for the benchmark tests: a tiny exact suite and a local prompt file for the language-model
suite on the tiny model (synthetic records are in :mod:`tests.bench.helpers`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlhf_zoo.bench.suites import Suite, Sweep


@pytest.fixture
def tiny_exact_suite() -> Suite:
    """Two sweeps on the testbed, 5 steps: runs in a fraction of a second per point."""
    return Suite(
        name="tinyexact",
        description="test",
        task_args=("task=exact", "threads=1", "train.steps=5", "train.eval_every=5", "train.progress=false"),
        sweeps=(
            Sweep("reinforce", "REINFORCE", "reinforce", "algo.beta", (0.1, 1.0), fixed=("algo.samples=2",)),
            Sweep("best_of_n", "Best-of-N", "best_of_n", "algo.n", (2,)),
        ),
        seeds=(0, 1),
        budget="seconds",
        exact=True,
    )


WORDS = (
    "the film was a quiet and honest look at a family that never quite learns to talk "
    "about what matters until it is far too late for any of them to change"
).split()


@pytest.fixture(scope="session")
def prompts_file(tmp_path_factory) -> Path:
    """A local JSONL prompt source, so the language-model suite needs no download."""
    path = tmp_path_factory.mktemp("bench_prompts") / "prompts.jsonl"
    path.write_text("".join(json.dumps({"text": " ".join(WORDS[i : i + 8])}) + "\n" for i in range(24)))
    return path
