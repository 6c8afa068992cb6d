"""rlhf_zoo.fsdp's pieces on their own: the settings read from a launch, the units a model is sharded into, and
the one collective that keeps processes in step. Each test was written against a mutant of fsdp.py that every
earlier test (the sharded training runs included) let through."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from rlhf_zoo.fsdp import FSDPSettings, device_mesh, is_sharded, launch_settings, shard_model

ROOT = Path(__file__).resolve().parents[2]
FSDP2 = {"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2"}


def test_launch_values_are_read_whatever_their_case():
    """A value set by hand or written by YAML as ``True``/``False`` reads as the boolean; the state-dict type and
    wrap policy in lower case as their upper-case names."""
    assert launch_settings({**FSDP2, "FSDP_RESHARD_AFTER_FORWARD": "False"}).reshard_after_forward is False
    assert launch_settings({**FSDP2, "FSDP_RESHARD_AFTER_FORWARD": "TRUE"}).reshard_after_forward is True
    lower = {**FSDP2, "FSDP_STATE_DICT_TYPE": "full_state_dict", "FSDP_AUTO_WRAP_POLICY": "transformer_based_wrap"}
    assert launch_settings(lower) == FSDPSettings()


class Block(nn.Module):
    def __init__(self, inner: bool = False) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.inner = Block() if inner else None

    def forward(self, x):
        x = self.lin(x)
        return self.inner(x) if self.inner is not None else x


class Net(nn.Module):
    _no_split_modules = ["Linear"]  # what the model would have sharded: the settings' classes win

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = Block(), Block()

    def forward(self, x):
        return self.b(self.a(x))


@pytest.fixture
def one_process(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/store", rank=0, world_size=1)
    yield device_mesh(torch.device("cpu"))
    dist.destroy_process_group()


@pytest.mark.parametrize("reshard", [True, False])
def test_the_named_classes_are_the_units_and_keep_their_parameters_as_the_settings_say(one_process, reshard):
    """``wrap_classes`` (fsdp_transformer_layer_cls_to_wrap) name the units, over the model's own
    ``_no_split_modules``; every unit, the blocks as the root, frees its gathered parameters after a forward
    or keeps them, as ``reshard_after_forward`` says."""
    model = Net()
    units = shard_model(model, FSDPSettings(reshard_after_forward=reshard, wrap_classes=("Block",)), one_process)
    assert units == [model.a, model.b, model]
    assert is_sharded(model.a.lin.weight) and is_sharded(model.b.lin.weight)
    model(torch.ones(2, 4))
    assert is_sharded(model.a.lin.weight) == is_sharded(model.b.lin.weight) == reshard


def test_a_model_of_a_wrap_class_is_its_own_root_not_one_of_its_blocks(one_process):
    model = Block(inner=True)
    units = shard_model(model, FSDPSettings(wrap_classes=("Block",)), one_process)
    assert units == [model.inner, model]


ANY_PROCESS = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import torch, torch.distributed as dist
    from rlhf_zoo.fsdp import any_process

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    device = torch.device("cpu")
    flags = any_process(rank == 0, device), any_process(rank == 1, device), any_process(False, device)
    Path(sys.argv[1], f"rank{rank}").write_text(" ".join(map(str, flags)))  # not stdout: the processes share it
    dist.destroy_process_group()
    """
)


def test_a_flag_raised_in_one_process_is_raised_in_every_process(tmp_path):
    script = tmp_path / "any_process.py"
    script.write_text(ANY_PROCESS)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)]
    out = subprocess.run([*cmd, str(tmp_path)], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert [(tmp_path / f"rank{r}").read_text() for r in (0, 1)] == ["True True False"] * 2
