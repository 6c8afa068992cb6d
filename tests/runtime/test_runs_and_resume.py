"""The command line, run directories, config validation, and interruption/resume."""

import json
import subprocess
import sys

import pytest

from rlhf_zoo.cli import main
from rlhf_zoo.config import ConfigError, load_config
from tests.runtime.resume_helpers import interrupted_then_resumed, metrics_rows


def _cli(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_train_writes_config_metrics_and_summary(tmp_path, capsys):
    run_dir = tmp_path / "run"
    code, out, _ = _cli(
        capsys,
        "train",
        "algo=bond",
        "task=exact",
        "seed=1",
        f"run_dir={run_dir}",
        "train.steps=20",
        "train.eval_every=10",
        "train.progress=false",
    )
    assert code == 0
    assert (run_dir / "config.yaml").is_file() and (run_dir / "meta.json").is_file()
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [0, 10, 20]
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("algo", "task", "steps", "reward/proxy", "kl/exact", "kl/to_bon", "kl/from_bon", "bon/kl_ref"):
        assert key in summary, key
    assert summary["algo"] == "bond" and summary["steps"] == 20
    assert "seed: 1" in (run_dir / "config.yaml").read_text()


def test_reinforce_summary_has_kl_to_optimal(tmp_path, capsys):
    code, _, _ = _cli(
        capsys, "train", "algo=reinforce", f"run_dir={tmp_path}/r", "train.steps=5", "train.progress=false"
    )
    assert code == 0
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert "kl/to_optimal" in summary and summary["kl/to_optimal"] >= 0


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["algo=dpo"], "bond"),  # the message lists the known names
        (["algo=bond", "task=imdb"], "exact"),
        (["algo=bond", "algo.bogus=1"], "bogus"),
        (["algo=bond", "algo.n=four"], "algo.n"),
        (["algo=bond", "train.stepz=3"], "stepz"),
        (["algo=bond", "algo.n=1"], "n >= 2"),
        (["algo=bond", "train.lr=-1"], "train.lr"),
        (["algo=bond", "oops"], "key=value"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, needle):
    code, _, err = _cli(capsys, "train", *args, f"run_dir={tmp_path}/x")
    assert code == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "x").exists()  # rejected before any work


def test_presets_are_configs_of_registered_algorithms():
    cfg = load_config(["algo=vbon"])
    assert cfg.algo.name == "bond" and cfg.algo.beta == 1.0
    cfg = load_config(["algo=rloo", "algo.samples=8"])
    assert cfg.algo.name == "reinforce" and cfg.algo.baseline == "loo" and cfg.algo.samples == 8
    cfg = load_config(["algo=iterative_bond"])
    assert cfg.algo.anchor_period > 0
    with pytest.raises(ConfigError):
        load_config(["algo=rloo", "algo.name=bond"])


def test_quantiles_auto_resolves_to_exact_on_the_testbed():
    assert load_config(["algo=bond"]).algo.quantiles == "exact"
    assert load_config(["algo=bond", "algo.quantiles=mc"]).algo.quantiles == "mc"


def test_existing_run_dir_is_not_overwritten(tmp_path, capsys):
    args = ["train", "algo=best_of_n", f"run_dir={tmp_path}/b", "train.progress=false"]
    assert _cli(capsys, *args)[0] == 0
    before = (tmp_path / "b" / "metrics.jsonl").read_text()
    code, _, err = _cli(capsys, *args)
    assert code == 2 and "resume=true" in err
    assert (tmp_path / "b" / "metrics.jsonl").read_text() == before


def test_python_dash_m_entry_point(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "rlhf_zoo",
            "train",
            "algo=jbond",
            f"run_dir={tmp_path}/j",
            "train.steps=3",
            "train.progress=false",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "j" / "summary.json").read_text())["algo"] == "jbond"


@pytest.mark.parametrize("algo", ["bond", "jbond", "ppo_lite", "iterative_bond"])
def test_resumed_run_equals_uninterrupted_run(tmp_path, algo):
    """Interrupt after 7 steps (Ctrl-C), resume: the metrics file equals an uninterrupted run's."""
    common = [
        f"algo={algo}",
        "train.steps=12",
        "train.eval_every=4",
        "train.progress=false",
        "seed=3",
        "algo.quantiles=mc" if algo in ("bond", "iterative_bond") else "train.checkpoint_every=0",
    ]
    if algo == "iterative_bond":
        common.append("algo.anchor_period=5")
    full, part = interrupted_then_resumed(common, tmp_path, stop_after=7)
    assert metrics_rows(part / "metrics.jsonl") == metrics_rows(full / "metrics.jsonl")
    a = json.loads((tmp_path / "part" / "summary.json").read_text())
    b = json.loads((tmp_path / "full" / "summary.json").read_text())
    assert a["kl/exact"] == b["kl/exact"] and a["reward/proxy"] == b["reward/proxy"]


def test_metrics_also_go_to_tensorboard(tmp_path, capsys):
    code, _, err = _cli(
        capsys,
        "train",
        "algo=reinforce",
        f"run_dir={tmp_path}/tb",
        "train.steps=4",
        "train.eval_every=2",
        "train.progress=false",
        "train.log_with=tensorboard",
    )
    assert code == 0, err
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = list((tmp_path / "tb").rglob("events.out.tfevents.*"))
    assert events
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    assert [e.step for e in acc.Scalars("kl/exact")] == [0, 2, 4]


def test_unknown_tracker_is_rejected(tmp_path, capsys):
    code, _, err = _cli(capsys, "train", "algo=bond", f"run_dir={tmp_path}/x", "train.log_with=mlflowz")
    assert code == 2 and "log_with" in err


@pytest.mark.parametrize(
    ("var", "value", "what"),
    [
        # without FSDP_VERSION=2, accelerate's default is FSDP1, which is not implemented
        ("ACCELERATE_USE_FSDP", "true", "FSDP version 1"),
        ("ACCELERATE_USE_DEEPSPEED", "true", "DeepSpeed"),
        ("ACCELERATE_USE_MEGATRON_LM", "true", "Megatron-LM"),
        ("ACCELERATE_USE_PARALLELISM_CONFIG", "true", "parallelism_config"),
        ("ACCELERATE_MIXED_PRECISION", "bf16", "mixed_precision: bf16"),
        ("ACCELERATE_DYNAMO_BACKEND", "INDUCTOR", "dynamo_backend: inductor"),
    ],
)
def test_accelerate_settings_that_are_not_implemented_are_refused(monkeypatch, tmp_path, capsys, var, value, what):
    """What `accelerate launch` exports for FSDP, DeepSpeed, ... ends the run in one line (exit 2),
    in one process too, instead of being silently ignored."""
    monkeypatch.setenv(var, value)
    code, _, err = _cli(capsys, "train", "algo=reinforce", "task=exact", f"run_dir={tmp_path}/r", "train.steps=2")
    assert code == 2 and what in err and "docs/scaling.md" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_accelerate_defaults_are_accepted():
    from rlhf_zoo.runtime import check_launch_config

    check_launch_config({"ACCELERATE_USE_FSDP": "false", "ACCELERATE_MIXED_PRECISION": "no"})
    check_launch_config({"ACCELERATE_DYNAMO_BACKEND": "NO", "ACCELERATE_USE_DEEPSPEED": "False"})
    check_launch_config({})


def test_fsdp2_launch_settings_are_read_and_unimplemented_ones_refused():
    from rlhf_zoo.errors import UserError
    from rlhf_zoo.fsdp import FSDPSettings, launch_settings
    from rlhf_zoo.runtime import check_launch_config

    # what `accelerate launch` (accelerate 1.15) exports for configs/accelerate/fsdp.yaml
    env = {
        "ACCELERATE_DYNAMO_BACKEND": "NO",
        "ACCELERATE_MIXED_PRECISION": "no",
        "ACCELERATE_USE_FSDP": "true",
        "FSDP_ACTIVATION_CHECKPOINTING": "false",
        "FSDP_ACTIVATION_CHECKPOINTING_OFFLOAD": "false",
        "FSDP_AUTO_WRAP_POLICY": "TRANSFORMER_BASED_WRAP",
        "FSDP_CPU_RAM_EFFICIENT_LOADING": "false",
        "FSDP_FORWARD_PREFETCH": "false",
        "FSDP_MIN_NUM_PARAMS": "100000000",
        "FSDP_OFFLOAD_PARAMS": "false",
        "FSDP_RESHARD_AFTER_FORWARD": "true",
        "FSDP_SHARDING_STRATEGY": "FULL_SHARD",
        "FSDP_STATE_DICT_TYPE": "FULL_STATE_DICT",
        "FSDP_SYNC_MODULE_STATES": "true",
        "FSDP_USE_ORIG_PARAMS": "true",
        "FSDP_VERSION": "2",
    }
    check_launch_config(env)
    assert launch_settings(env) == FSDPSettings(reshard_after_forward=True, wrap_classes=())
    assert launch_settings({}) is None and launch_settings({"ACCELERATE_USE_FSDP": "false"}) is None
    custom = {**env, "FSDP_RESHARD_AFTER_FORWARD": "false", "FSDP_TRANSFORMER_CLS_TO_WRAP": "LlamaDecoderLayer"}
    assert launch_settings(custom) == FSDPSettings(reshard_after_forward=False, wrap_classes=("LlamaDecoderLayer",))
    for var, value, what in [
        ("FSDP_VERSION", "1", "FSDP version 1"),
        ("FSDP_OFFLOAD_PARAMS", "true", "fsdp_offload_params"),
        ("FSDP_ACTIVATION_CHECKPOINTING", "true", "fsdp_activation_checkpointing"),
        ("FSDP_CPU_RAM_EFFICIENT_LOADING", "true", "fsdp_cpu_ram_efficient_loading"),
        ("FSDP_IGNORED_MODULES", "lm_head", "fsdp_ignored_modules"),
        ("FSDP_AUTO_WRAP_POLICY", "SIZE_BASED_WRAP", "SIZE_BASED_WRAP"),
        ("FSDP_STATE_DICT_TYPE", "SHARDED_STATE_DICT", "SHARDED_STATE_DICT"),
        ("FSDP_RESHARD_AFTER_FORWARD", "full_shard", "fsdp_reshard_after_forward"),
        ("ACCELERATE_MIXED_PRECISION", "bf16", "mixed_precision"),
    ]:
        with pytest.raises(UserError, match="docs/scaling.md") as e:
            check_launch_config({**env, var: value})
        assert what in str(e.value) and "\n" not in str(e.value)
