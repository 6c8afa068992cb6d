"""The main job (``make run``): the demo suite runs the five objectives, prints reward against KL, writes
its page and plot, and a second invocation recomputes nothing. Run on the tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlhf_zoo.bench.command import main
from rlhf_zoo.bench.suites import DEMO, expand

pytest.importorskip("transformers")
pytest.importorskip("peft")
pytest.importorskip("vaderSentiment")

ROOT = Path(__file__).resolve().parents[2]


def test_make_run_prepares_then_runs_the_demo_suite():
    text = (ROOT / "Makefile").read_text()
    body = text.split("\nrun:", 1)[1].split("\n\n", 1)[0]
    assert "rlhf-zoo prepare" in body and "rlhf-zoo bench suite=demo" in body


def test_demo_has_the_five_objectives_on_zoo_lm_with_the_pool():
    algos = {s.algo for s in DEMO.sweeps}
    assert algos == {"best_of_n", "reinforce", "ppo_lite", "bond", "jbond"}
    assert "model.name=zoo-lm" in DEMO.task_args and DEMO.bon_pool >= 16 and DEMO.resumable
    assert sum(1 for p in expand(DEMO) if p.pool) == len(DEMO.seeds)


def test_demo_runs_prints_the_table_and_never_recomputes(prompts_file, tmp_path, capsys, monkeypatch):
    tiny = [
        "model.name=tiny",
        "model.finetune=lora",
        f"task.prompts={prompts_file}",
        "task.gold=null",
        "task.eval_fraction=0.25",
        "model.max_new_tokens=4",
        "train.batch_prompts=2",
        "train.steps=2",
        "train.eval_every=2",
        "train.eval_prompts=2",
        "train.eval_ref_samples=2",
        "threads=1",
    ]
    out = tmp_path / "runs"
    assert main(["suite=demo", f"out={out}", "progress=false", *tiny]) == 0
    printed = capsys.readouterr().out
    for objective in ("Best-of-N", "REINFORCE", "PPO-lite", "BOND", "J-BOND"):
        assert objective in printed
    assert "KL(π‖π_ref)" in printed and "n=32" in printed
    assert (out / "demo.md").is_file() and (out / "demo" / "reward_vs_kl.png").is_file()
    finished = sorted(p.parent.name for p in (out / "demo").glob("*/record.json"))
    assert len(finished) == len(expand(DEMO))

    import rlhf_zoo.bench.runner as runner

    calls = []
    monkeypatch.setattr(runner, "run_point", lambda *a, **k: calls.append(a))
    assert main(["suite=demo", f"out={out}", "progress=false", *tiny]) == 0
    assert calls == []
    assert "0 point(s) run" in capsys.readouterr().err
