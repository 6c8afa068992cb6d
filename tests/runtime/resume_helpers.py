"""Interrupt a run with Ctrl-C after some steps, resume it, and compare with an uninterrupted run."""

import json

import pytest

from rlhf_zoo.config import load_config
from rlhf_zoo.train import Interrupted, Trainer, build


def metrics_rows(path):
    """metrics.jsonl without the wall-clock fields."""
    return [
        {k: v for k, v in json.loads(x).items() if not k.startswith("time/")} for x in path.read_text().splitlines()
    ]


def interrupt_after(trainer: Trainer, stop_after: int) -> None:
    """Run ``trainer.fit()`` and press Ctrl-C after ``stop_after`` steps (a checkpoint is saved)."""
    original, calls = trainer.train_step, {"n": 0}

    def interrupting_step():
        if calls["n"] == stop_after:
            raise KeyboardInterrupt
        calls["n"] += 1
        return original()

    trainer.train_step = interrupting_step
    with pytest.raises(Interrupted):
        trainer.fit()


def interrupted_then_resumed(common: list[str], tmp_path, stop_after: int):
    """Run ``common`` uninterrupted into tmp_path/full, and interrupted after ``stop_after`` steps then
    resumed into tmp_path/part; returns the two run directories."""
    full = load_config([*common, f"run_dir={tmp_path}/full"])
    Trainer(full, *build(full)).fit()
    part = load_config([*common, f"run_dir={tmp_path}/part"])
    interrupt_after(Trainer(part, *build(part)), stop_after)
    resumed = load_config([*common, f"run_dir={tmp_path}/part", "resume=true"])
    Trainer(resumed, *build(resumed)).fit()
    return tmp_path / "full", tmp_path / "part"
