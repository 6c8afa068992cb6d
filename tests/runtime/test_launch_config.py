"""Launch settings: what `accelerate launch` exports is read, and what is not implemented is refused."""

import pytest


@pytest.mark.parametrize(
    ("var", "value", "what"),
    [
        # without FSDP_VERSION=2, accelerate's default is FSDP1, which is not implemented
        ("ACCELERATE_USE_FSDP", "true", "FSDP version 1"),
        ("ACCELERATE_USE_DEEPSPEED", "true", "DeepSpeed"),
        ("ACCELERATE_USE_MEGATRON_LM", "true", "Megatron-LM"),
        ("ACCELERATE_USE_MEGATRON_LM", "YES", "Megatron-LM"),  # a flag in any case
        ("ACCELERATE_USE_PARALLELISM_CONFIG", "true", "parallelism_config"),
        ("ACCELERATE_MIXED_PRECISION", "bf16", "sets mixed_precision: bf16 (its config or --mixed_precision)"),
        ("ACCELERATE_DYNAMO_BACKEND", "INDUCTOR", "dynamo_backend: inductor (its config's dynamo_config or --dyn"),
    ],
)
def test_accelerate_settings_that_are_not_implemented_are_refused(monkeypatch, tmp_path, cli, var, value, what):
    """What `accelerate launch` exports for FSDP, DeepSpeed, ... ends the run in one line (exit 2),
    in one process too, instead of being silently ignored."""
    monkeypatch.setenv(var, value)
    code, _, err = cli("train", "algo=reinforce", "task=exact", f"run_dir={tmp_path}/r", "train.steps=2")
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
    # unset: resharded after the forward (least memory); a class list as a user writes it; the policy's case
    loose = {"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2", "FSDP_AUTO_WRAP_POLICY": "transformer_based_wrap"}
    loose["FSDP_TRANSFORMER_CLS_TO_WRAP"] = "LlamaDecoderLayer, MistralDecoderLayer,"
    assert launch_settings(loose) == FSDPSettings(True, ("LlamaDecoderLayer", "MistralDecoderLayer"))
    for var, value, what in [
        ("FSDP_VERSION", "1", "FSDP version 1"),
        ("FSDP_OFFLOAD_PARAMS", "true", "fsdp_offload_params"),
        ("FSDP_ACTIVATION_CHECKPOINTING", "true", "fsdp_activation_checkpointing"),
        ("FSDP_ACTIVATION_CHECKPOINTING_OFFLOAD", "true", "fsdp_activation_checkpointing_offload"),
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


DEVICE_PROBE = """
import sys
from unittest import mock

with mock.patch("torch.cuda.is_available", return_value=True), mock.patch("torch.cuda.device_count", return_value=2):
    from rlhf_zoo.runtime import Runtime

    print(Runtime("cuda:1", log_with=sys.argv[1], project_dir=sys.argv[2]).device)
"""


@pytest.mark.parametrize("log_with", ["none", "tensorboard"])
def test_one_process_trains_on_the_named_device_with_or_without_trackers(tmp_path, log_with):
    """device=cuda:1 in one process is cuda:1 also when a tracker is on (which makes the runtime build an
    accelerate Accelerator, whose own device is the default GPU). Two GPUs are faked in a process of its own
    (nothing runs on them), so that accelerate's process-wide state stays out of this one."""
    import subprocess
    import sys

    cmd = [sys.executable, "-c", DEVICE_PROBE, log_with, str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "cuda:1"


@pytest.fixture
def process_group(tmp_path):
    """A real one-process gloo group in this process, as a launch makes; destroyed afterwards if still there."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/store", rank=0, world_size=1)
    yield dist
    if dist.is_initialized():
        dist.destroy_process_group()


def test_a_command_every_process_finished_destroys_the_process_group(process_group, tmp_path, cli):
    """Left to the interpreter's exit, a gloo group can abort a finished process (`terminate called without an
    active exception`, exit -6): the command destroys it."""
    code, _, err = cli("train", "algo=reinforce", "task=exact", f"run_dir={tmp_path}/r", "train.steps=2")
    assert code == 0, err
    assert not process_group.is_initialized()


def test_a_stop_every_process_took_part_in_destroys_the_process_group(process_group, tmp_path, cli, monkeypatch):
    from rlhf_zoo.train import Trainer

    def ctrl_c(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "train_step", ctrl_c)
    code, _, err = cli("train", "algo=reinforce", "task=exact", f"run_dir={tmp_path}/r", "train.steps=2")
    assert code == 130 and "resume=true" in err, err
    assert not process_group.is_initialized()


def test_an_error_leaves_the_process_group_to_the_launcher(process_group, tmp_path, cli):
    """After an error the other processes may be in a collective, which destroying the group would wait for."""
    code, _, err = cli("train", "algo=reinforce", "task=exact", f"run_dir={tmp_path}/r", "train.steps=-1")
    assert code == 2 and "train.steps" in err, err
    assert process_group.is_initialized()


def test_finishing_the_trackers_keeps_the_process_group(process_group, tmp_path):
    """A tracker's end is the training's, not the command's: the group stays for the command's next training."""
    from rlhf_zoo.runtime import Runtime

    rt = Runtime("cpu", log_with="tensorboard", project_dir=str(tmp_path))
    rt.start_trackers("run", {"seed": 0})
    rt.track({"reward": 1.0}, step=0)
    rt.end_trackers()
    assert process_group.is_initialized()
    assert list(tmp_path.rglob("events.out.tfevents.*"))


def test_a_forced_stop_leaves_the_process_group_to_the_launcher(process_group, tmp_path, cli, monkeypatch):
    """A second signal stops its own process at once, mid-step: the others may be in another collective, which a
    barrier would be matched against."""
    import signal

    from rlhf_zoo.signals import ForcedStop
    from rlhf_zoo.train import Trainer

    def second_ctrl_c(self):
        raise ForcedStop(signal.SIGINT)

    monkeypatch.setattr(Trainer, "train_step", second_ctrl_c)
    code, _, err = cli("train", "algo=reinforce", "task=exact", f"run_dir={tmp_path}/r", "train.steps=2")
    assert code == 130 and "again at step 0" in err, err
    assert process_group.is_initialized()
