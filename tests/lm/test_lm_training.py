"""Every objective through the one loop on a (tiny, random) language model."""

import json

import pytest
import torch

from rlhf_zoo.cli import main
from rlhf_zoo.config import load_config
from rlhf_zoo.rewards.base import CallableReward
from rlhf_zoo.train import Trainer, build
from tests.runtime.resume_helpers import interrupted_then_resumed, metrics_rows

ALGOS = ["best_of_n", "reinforce", "ppo_lite", "bond", "jbond", "iterative_bond", "rloo", "grpo"]


@pytest.mark.parametrize("algo", ALGOS)
def test_every_objective_trains_on_a_language_model(algo, lm_args, tmp_path):
    cfg = load_config([f"algo={algo}", *lm_args])
    algorithm, task, policy = build(cfg)
    before = [p.detach().clone() for p in policy.trainable_parameters()]
    summary = Trainer(cfg, algorithm, task, policy).fit()
    for key in ("algo", "task", "steps", "reward/proxy", "kl/exact", "length/mean", "quantile/log_mean"):
        assert key in summary, key
    assert ("kl/k1" in summary) == algorithm.trainable  # Best-of-N has no per-token KL: its kl/exact is an estimate
    assert summary["task"] == "sentiment"
    after = policy.trainable_parameters()
    moved = any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert moved == algorithm.trainable
    if algorithm.trainable:
        assert summary["kl/exact"] > 0
        assert summary["kl/estimator"] == "exact_token"
    else:
        assert summary["kl/estimator"] == "bon_quantile" and "bon/kl_bound" in summary
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == ([0, 3] if algorithm.trainable else [0])


def _train_bond_on_4_prompts(lm_args, *extra):
    """BOND for 4 steps on a pool of 4 training prompts (each prompt seen every step)."""
    cfg = load_config(
        ["algo=bond", *extra, *lm_args, "train.steps=4", "task.max_train_prompts=4", "train.eval_every=100"]
    )
    algorithm, task, policy = build(cfg)
    trainer = Trainer(cfg, algorithm, task, policy)
    trainer.fit()
    assert len(task.train_prompts) == 4
    return trainer, policy


def test_bond_reference_completions_are_drawn_once_per_prompt(lm_args):
    trainer, _ = _train_bond_on_4_prompts(lm_args, "algo.k=3", "algo.samples=2")
    assert len(trainer.cache.entries) == 4  # one entry per prompt, never regenerated
    # 4 steps × 4 prompts × 2 policy samples, plus 4 prompts × 3 cached reference samples once.
    assert trainer.costs.completions == 4 * 4 * 2 + 4 * 3


def test_iterative_bond_regenerates_its_cache_after_a_swap(lm_args):
    trainer, policy = _train_bond_on_4_prompts(lm_args, "algo.anchor_period=2", "algo.k=2")
    # anchor versions: 1 (start), 2 (after step 2), 3 (after step 4); samples for versions 1 and 2.
    assert policy.anchor_version == 3
    assert trainer.costs.completions == 4 * 4 * 2 + 2 * 4 * 2


def test_gold_reward_and_win_rate_are_measured(lm_args):
    cfg = load_config(["algo=jbond", *lm_args])
    algorithm, task, policy = build(cfg)
    task.gold = CallableReward(lambda ps, cs: [float(len(c)) for c in cs], name="length")
    summary = Trainer(cfg, algorithm, task, policy).fit()
    assert "reward/gold" in summary and 0.0 <= summary["win_rate/gold"] <= 1.0


def test_resumed_lm_run_equals_uninterrupted_run(lm_args, tmp_path):
    common = ["algo=jbond", *[a for a in lm_args if not a.startswith("run_dir")], "train.steps=4", "train.eval_every=2"]
    full, part = interrupted_then_resumed(common, tmp_path, stop_after=3)
    assert metrics_rows(part / "metrics.jsonl") == metrics_rows(full / "metrics.jsonl")


def _err(capsys, *args):
    code = main(["train", *args])
    err = capsys.readouterr().err
    return code, err


def test_empty_prompt_set_is_a_one_line_error(tmp_path, lm_args, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"text": ""}\n')
    code, err = _err(capsys, "algo=jbond", *lm_args, f"task.prompts={empty}")
    assert code == 2 and "no training prompts" in err and len(err.strip().splitlines()) == 1


def test_prompt_longer_than_the_limit_is_a_one_line_error(lm_args, capsys):
    code, err = _err(capsys, "algo=jbond", *lm_args, "model.max_prompt_tokens=3")
    assert code == 2 and "max_prompt_tokens" in err and "Traceback" not in err


def test_bad_model_setting_is_rejected_before_loading(lm_args, capsys):
    code, err = _err(capsys, "algo=jbond", *lm_args, "model.finetune=qlora")
    assert code == 2 and "finetune" in err


def test_missing_prompt_column_names_the_columns(lm_args, capsys):
    code, err = _err(capsys, "algo=jbond", *lm_args, "task.prompt_column=review")
    assert code == 2 and "text" in err


def test_reward_returning_nan_stops_with_one_line_and_keeps_the_run(lm_args, tmp_path):
    cfg = load_config(["algo=reinforce", *lm_args, "train.steps=3"])
    algorithm, task, policy = build(cfg)
    calls = {"n": 0}
    proxy = task.proxy

    def flaky(ps, cs):
        calls["n"] += 1
        out = proxy.score(ps, cs)
        if calls["n"] > 4:
            out[0] = float("nan")
        return out

    task.proxy = CallableReward(flaky, name="flaky")
    from rlhf_zoo.errors import UserError

    with pytest.raises(UserError, match="flaky.*nan"):
        Trainer(cfg, algorithm, task, policy).fit()
    assert (tmp_path / "run" / "metrics.jsonl").read_text().strip()  # the step-0 evaluation is kept


def test_missing_offline_package_names_the_install_command(lm_args, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "vaderSentiment", None)
    monkeypatch.setitem(sys.modules, "vaderSentiment.vaderSentiment", None)
    code, err = _err(capsys, "algo=jbond", *lm_args)
    assert code == 2 and "pip install" in err and "vaderSentiment" in err


def test_profile_prints_a_phase_split_per_objective(lm_args, capsys):
    from rlhf_zoo.profile import main as profile_main

    args = [a for a in lm_args if not a.startswith(("run_dir", "train.steps"))]
    assert profile_main(["algos=jbond,best_of_n", "steps=1", "warmup=0", *args]) == 0
    out = capsys.readouterr().out
    for word in ("generate", "reward", "log-probs", "update", "peak GiB", "jbond", "best_of_n"):
        assert word in out
