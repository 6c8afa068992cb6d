"""What a run lets you look at: ``samples.jsonl`` (completions and their rewards at every evaluation) and
TensorBoard (training metrics every step, evaluation metrics at evaluations, under ``run_dir/<algo>-<task>/``)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import write_jsonl
from tests.runtime.resume_helpers import interrupted_then_resumed


def _samples(run_dir):
    path = run_dir / "samples.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else None


def test_each_evaluation_saves_the_most_probable_completions_on_the_testbed(cli, tmp_path, exact_task):
    code, _, err = cli("train", "algo=bond", "train.steps=4", "train.eval_every=2", "train.save_samples=2",
                       "train.eval_samples=3", "train.progress=false", f"run_dir={tmp_path}/r")  # fmt: skip
    assert code == 0, err
    rows = _samples(tmp_path / "r")
    assert [r["step"] for r in rows] == [s for s in (0, 2, 4) for _ in range(2 * 3)]
    assert [(r["prompt"], r["sample"]) for r in rows[:6]] == [(x, j) for x in ("x0", "x1") for j in range(3)]
    for r in rows:
        assert list(r) == ["step", "sample", "prompt", "completion", "reward/proxy", "reward/gold", "prob"]
        key = (r["prompt"], r["completion"])
        assert r["reward/proxy"] == pytest.approx(exact_task.proxy.table[key])
        assert r["reward/gold"] == pytest.approx(exact_task.gold.table[key])
    for i in range(0, len(rows), 3):  # the most probable first, and at step 0 π = π_ref
        probs = [r["prob"] for r in rows[i : i + 3]]
        assert probs == sorted(probs, reverse=True) and 0 < probs[-1] <= probs[0] <= 1
    ref = exact_task.oracle.probs(exact_task.build_policy(0), "ref")
    top = ref[0].topk(3).values.tolist()
    assert [r["prob"] for r in rows[:3]] == pytest.approx(top)
    code, _, err = cli("train", "algo=bond", "train.steps=0", "train.save_samples=0", f"run_dir={tmp_path}/off")
    assert code == 0 and _samples(tmp_path / "off") is None


def test_language_model_samples_hold_the_evaluated_completions_and_their_rewards(cli, tiny_lm, tmp_path):
    rewards = tmp_path / "r.py"
    rewards.write_text("def length(prompts, completions):\n    return [len(c) / 10 for c in completions]\n")
    evals = write_jsonl(tmp_path / "e.jsonl", ["first held-out prompt", "second one", "third one"])
    prompts = write_jsonl(tmp_path / "p.jsonl", [f"train prompt {i}" for i in range(4)])
    code, _, err = cli("train", "algo=reinforce", *tiny_lm, f"task.prompts={prompts}", f"task.eval_prompts={evals}",
                       f"task.proxy=py:{rewards}:length", f"task.gold=py:{rewards}:length", "train.eval_prompts=3",
                       "train.eval_samples=2", "train.save_samples=2")  # fmt: skip
    assert code == 0, err
    rows = _samples(tmp_path / "run")
    assert [(r["step"], r["prompt"], r["sample"]) for r in rows] == [
        (0, p, j) for p in ("first held-out prompt", "second one") for j in range(2)
    ]
    assert all(r["reward/proxy"] == pytest.approx(len(r["completion"]) / 10) == r["reward/gold"] for r in rows)
    assert "prob" not in rows[0]


class _Killed(BaseException):
    """A process killed mid-run (kill -9): no checkpoint is written on the way out."""


def test_a_resumed_run_writes_the_samples_of_an_uninterrupted_one(tmp_path):
    from rlhf_zoo.config import load_config
    from rlhf_zoo.train import Trainer, build

    common = ["algo=jbond", "train.steps=6", "train.eval_every=2", "train.checkpoint_every=3", "train.progress=false"]
    full, part = interrupted_then_resumed(common, tmp_path / "ctrl_c", stop_after=3)
    assert (part / "samples.jsonl").read_text() == (full / "samples.jsonl").read_text()
    assert [r["step"] for r in _samples(full)] == [s for s in (0, 2, 4, 6) for _ in range(4 * 4)]

    # Killed in step 5: the last checkpoint is step 3's, but step 4's evaluation was written: it is dropped
    # on resume and written again, once.
    cfg = load_config([*common, f"run_dir={tmp_path}/killed"])
    trainer = Trainer(cfg, *build(cfg))
    step = trainer.train_step

    def killed_in_step_5():
        if trainer.step == 4:
            raise _Killed
        return step()

    trainer.train_step = killed_in_step_5
    with pytest.raises(_Killed):
        trainer.fit()
    assert {r["step"] for r in _samples(tmp_path / "killed")} == {0, 2, 4}
    cfg = load_config([*common, f"run_dir={tmp_path}/killed", "resume=true"])
    Trainer(cfg, *build(cfg)).fit()
    assert (tmp_path / "killed" / "samples.jsonl").read_text() == (full / "samples.jsonl").read_text()


def test_training_metrics_reach_tensorboard_every_step(cli, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    code, _, err = cli("train", "algo=reinforce", "train.steps=4", "train.eval_every=2", "train.progress=false",
                       "train.log_with=tensorboard", f"run_dir={tmp_path}/tb")  # fmt: skip
    assert code == 0, err
    logdir = tmp_path / "tb" / "reinforce-exact"  # what the README names: run_dir/<algo>-<task>/
    acc = EventAccumulator(str(logdir))
    acc.Reload()
    steps = {tag: [e.step for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    assert steps["train/reward_proxy"] == [1, 2, 3, 4] and steps["loss/pg"] == [1, 2, 3, 4]
    assert steps["kl/exact"] == [0, 2, 4] and steps["reward/proxy"] == [0, 2, 4]


@pytest.mark.slow
def test_two_processes_save_the_samples_of_one(tiny_lm, tmp_path):
    """Each process evaluates its share of the held-out prompts (positions r, r + 2, ...); the saved rows are
    gathered into one process's order. On the testbed every process holds the whole enumeration: once.
    (The language model is compared before training: after an update, weights that agree to float rounding
    can draw another token where a uniform falls on a boundary.)"""
    from tests.runtime.distributed_helpers import one_process, torchrun

    prompts = write_jsonl(tmp_path / "p.jsonl", [f"train prompt {i}" for i in range(4)])
    evals = write_jsonl(tmp_path / "e.jsonl", [f"held-out prompt {i}" for i in range(4)])
    lm = [a for a in tiny_lm if not a.startswith("run_dir")]
    lm += [f"task.prompts={prompts}", f"task.eval_prompts={evals}", "train.eval_prompts=4", "train.save_samples=3"]
    exact = ["algo=bond", "train.steps=2", "train.eval_every=2", "train.progress=false", "train.save_samples=3"]
    runs = {"lm": ["algo=reinforce", *lm], "exact": exact}
    torchrun([[*args, f"run_dir={tmp_path / 'two' / name}"] for name, args in runs.items()])
    for name, args in runs.items():
        one_process([*args, f"run_dir={tmp_path / 'one' / name}"])
        one, two = _samples(tmp_path / "one" / name), _samples(tmp_path / "two" / name)
        assert [(r["step"], r["prompt"], r["sample"], r["completion"]) for r in two] == [
            (r["step"], r["prompt"], r["sample"], r["completion"]) for r in one
        ]
        assert [r["reward/proxy"] for r in two] == pytest.approx([r["reward/proxy"] for r in one], abs=1e-5)
        assert len(one) == (1 * 3 * 2 if name == "lm" else 2 * 3 * 4)  # evaluations × 3 prompts × eval_samples
