"""docs/metrics.md explains every key a run writes: a new metric without a line there fails here."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rlhf_zoo.algorithms.registry import known_algorithms
from rlhf_zoo.config import presets

ROOT = Path(__file__).resolve().parents[2]
GLOSSARY = ROOT / "docs" / "metrics.md"


def glossary_keys() -> set[str]:
    """The keys of the glossary's tables: the first cell of each row, in backquotes."""
    rows = re.findall(r"^\| `([^`]+)` \|", GLOSSARY.read_text(), flags=re.MULTILINE)
    assert len(rows) == len(set(rows)), "a key is explained twice"
    return set(rows)


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict[str, set[str]]:
    """Every key that summary.json and metrics.jsonl get from a short run of each algorithm and preset on
    the testbed (gradient clipping on, so that train/grad_norm is written too), by run."""
    from rlhf_zoo.cli import main

    out: dict[str, set[str]] = {}
    for algo in [*known_algorithms(), *presets("algo")]:
        run_dir = tmp_path_factory.mktemp(algo) / "run"
        args = ["train", f"algo={algo}", "train.steps=2", "train.eval_every=1", "train.grad_clip=1.0",
                "train.progress=false", f"run_dir={run_dir}"]  # fmt: skip
        assert main(args) == 0, algo
        keys = set(json.loads((run_dir / "summary.json").read_text()))
        for line in (run_dir / "metrics.jsonl").read_text().splitlines():
            keys |= set(json.loads(line))
        out[algo] = keys
    return out


def test_every_key_a_run_writes_is_in_the_glossary(written):
    documented = glossary_keys()
    for algo, keys in written.items():
        assert not keys - documented, f"{algo} writes keys docs/metrics.md lacks: {sorted(keys - documented)}"


def test_every_key_in_the_glossary_is_written_by_some_run(written):
    stale = glossary_keys() - set().union(*written.values())
    assert not stale, f"docs/metrics.md explains keys no run writes: {sorted(stale)}"


def test_the_readme_links_the_glossary():
    assert "(docs/metrics.md)" in (ROOT / "README.md").read_text()


def test_the_oracle_s_distances_come_from_the_runs_the_glossary_names(written):
    """kl/to_bon: BOND without anchor swaps and Best-of-N (not iterative BOND, which the page said too);
    kl/to_optimal: REINFORCE and PPO-lite with kl_in=reward and β > 0 (not grpo, whose KL is in the loss)."""
    assert sorted(a for a, keys in written.items() if "kl/to_bon" in keys) == ["best_of_n", "bon_sft", "bond", "vbon"]
    assert sorted(a for a, keys in written.items() if "kl/to_optimal" in keys) == ["ppo_lite", "reinforce", "rloo"]
    assert all("frontier/gap" in keys for keys in written.values())
