"""The runtime in one process (no launcher): the device it picks, the trackers it checks and feeds, the launch
settings it reads, and its collective helpers, which in one process hand their input back unchanged."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
import torch

from rlhf_zoo.errors import MissingPackageError, UserError
from rlhf_zoo.runtime import (
    DEVICE,
    Runtime,
    check_launch_config,
    end_process_group,
    launched_rank,
    launched_world_size,
    resolve_device,
)

FSDP2 = {"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2"}


@pytest.fixture
def no_launch(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process started without a launcher: none of the variables torchrun or accelerate export."""
    for var in ("WORLD_SIZE", "RANK", "ACCELERATE_USE_FSDP", "ACCELERATE_MIXED_PRECISION", "ACCELERATE_DYNAMO_BACKEND"):
        monkeypatch.delenv(var, raising=False)


@pytest.mark.parametrize("cuda", [True, False])
def test_auto_is_cuda_where_there_is_one_and_the_cpu_otherwise(monkeypatch, cuda):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert resolve_device("auto") == torch.device("cuda" if cuda else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")  # named: whatever there is


def test_a_named_gpu_is_taken_as_named_and_refused_in_one_line_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError) as e:
        resolve_device("cuda:1", key="task.reward_device")
    assert str(e.value) == "task.reward_device=cuda:1 but no CUDA device is available: use task.reward_device=cpu"
    assert "device=cuda but" in str(pytest.raises(UserError, resolve_device, "cuda").value)


def test_mps_without_an_apple_gpu_is_refused_in_one_line(monkeypatch):
    """device=mps on a machine without one ran until the policy's first tensor moved there: torch's RuntimeError
    "PyTorch is not linked with support for mps devices", a traceback after the run directory was written."""
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(UserError) as e:
        resolve_device("mps")
    assert str(e.value) == "device=mps but no MPS device (Apple GPU) is available: use device=cpu"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("mps") == torch.device("mps")


@pytest.mark.parametrize("name", ["auto", "cpu", "mps", "cuda", "cuda:0", "cuda:12"])
def test_the_device_names_a_setting_may_give(name):
    assert DEVICE.fullmatch(name)


@pytest.mark.parametrize("name", ["gpu", "cuda:", "cuda:x", "cpu:0", "CUDA", "cuda:1,2", ""])
def test_what_is_not_a_device_name(name):
    assert not DEVICE.fullmatch(name)


def test_without_a_launcher_the_world_is_one_process_of_rank_0(monkeypatch, no_launch):
    assert (launched_world_size(), launched_rank()) == (1, 0)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    assert (launched_world_size(), launched_rank()) == (4, 3)


def test_accelerate_settings_are_read_in_any_case_and_spacing_and_from_the_environment(monkeypatch, no_launch):
    """``mixed_precision`` and ``dynamo_backend`` of ``no`` pass however written; anything else is refused, and
    without a mapping the process's environment is read."""
    check_launch_config({"ACCELERATE_MIXED_PRECISION": " No ", "ACCELERATE_DYNAMO_BACKEND": "no\n"})
    with pytest.raises(UserError, match="mixed_precision: fp16"):
        check_launch_config({"ACCELERATE_MIXED_PRECISION": " FP16"})
    with pytest.raises(UserError, match="dynamo_backend: eager"):
        check_launch_config({"ACCELERATE_DYNAMO_BACKEND": "EAGER"})
    check_launch_config()
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "1")
    with pytest.raises(UserError, match="DeepSpeed"):
        check_launch_config()
    with pytest.raises(UserError, match="DeepSpeed"):
        Runtime("cpu")


def test_ending_the_process_group_without_one_does_nothing():
    """A command run without a launcher has no group: ending it neither fails nor makes one."""
    import torch.distributed as dist

    assert not dist.is_initialized()
    end_process_group()
    assert not dist.is_initialized()


def test_one_process_is_the_main_one_and_wraps_nothing(no_launch):
    rt = Runtime("cpu")
    assert (rt.rank, rt.world, rt.is_main, rt.distributed) == (0, 1, True, False)
    assert rt.device == torch.device("cpu") and rt.accelerator is None
    assert rt.fsdp is None and rt.sharded is False


def test_the_collective_helpers_hand_one_process_its_own_values(no_launch):
    """Gathered rows are this process's rows, gathered objects a list of this one, a flag or stop signal is
    this process's, metrics and counts are as given (no averaging or summing over a group of one)."""
    rt = Runtime("cpu")
    x = torch.arange(6.0).view(3, 2)
    assert torch.equal(rt.gather(x), x)
    assert rt.gather_objects({"a": 1}) == [{"a": 1}]
    assert (rt.any_process(True), rt.any_process(False)) == (True, False)
    assert (rt.any_signal(15), rt.any_signal(None)) == (15, None)
    metrics = {"loss": 0.5, "count": 3, "flag": True, "name": "x"}
    assert rt.mean_metrics(dict(metrics)) == metrics
    assert rt.sum_ints({"tokens": 7, "calls": 2}) == {"tokens": 7, "calls": 2}
    rt.barrier()  # no group to wait for


def test_one_process_keeps_its_gradients_as_they_are(no_launch):
    rt = Runtime("cpu")
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(3))
    a.grad = torch.tensor([1.0, -2.0])
    rt.average_gradients([a, b])
    assert torch.equal(a.grad, torch.tensor([1.0, -2.0])) and b.grad is None


def test_clipping_returns_the_norm_before_it_and_scales_to_the_limit(no_launch):
    """Gradients (3, 4): norm 5, clipped to norm 1 they are (0.6, 0.8); under the limit they stay."""
    rt = Runtime("cpu")
    p = torch.nn.Parameter(torch.zeros(2))
    p.grad = torch.tensor([3.0, 4.0])
    assert rt.clip_grad_norm([p], 1.0) == pytest.approx(5.0)
    assert torch.allclose(p.grad, torch.tensor([0.6, 0.8]))
    assert rt.clip_grad_norm([p], 10.0) == pytest.approx(1.0)
    assert torch.allclose(p.grad, torch.tensor([0.6, 0.8]))


def test_the_optimiser_state_round_trips_unsharded(no_launch):
    rt = Runtime("cpu")
    p = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.Adam([p], lr=0.1)
    p.grad = torch.tensor([1.0, 2.0])
    opt.step()
    state = rt.optimizer_state(opt)
    assert torch.equal(state["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    fresh = torch.optim.Adam([torch.nn.Parameter(torch.ones(2))], lr=0.5)
    rt.load_optimizer_state(fresh, state)
    assert fresh.param_groups[0]["lr"] == 0.1
    assert torch.equal(fresh.state_dict()["state"][0]["exp_avg_sq"], state["state"][0]["exp_avg_sq"])


class Shardable:
    """A policy that records whether it was asked to shard."""

    def __init__(self) -> None:
        self.sharded_with: Any = None

    def shard(self, settings: Any, mesh: Any, anchor: bool) -> None:
        self.sharded_with = settings


@pytest.mark.parametrize("launch", [{}, FSDP2])
def test_one_process_has_nothing_to_shard_with(monkeypatch, no_launch, launch):
    """``train.fsdp=true`` or an FSDP2 launch config in one process: the policy stays whole (and a policy
    that cannot shard is no error), though the launch's settings are read."""
    for var, value in launch.items():
        monkeypatch.setenv(var, value)
    rt = Runtime("cpu")
    assert (rt.fsdp is not None) == bool(launch)
    policy = Shardable()
    assert rt.prepare_policy(policy, fsdp=True, anchor=False, task="sentiment") is False
    assert rt.prepare_policy(object(), fsdp=True, anchor=False, task="exact") is False
    assert policy.sharded_with is None and rt.sharded is False


@pytest.mark.parametrize(("launch", "asked"), [({}, "drop train.fsdp ("), (FSDP2, "distributed_type: MULTI_GPU, not")])
def test_a_policy_that_cannot_shard_is_refused_naming_what_asked_for_fsdp(monkeypatch, no_launch, launch, asked):
    """Of several processes, FSDP asked for by train.fsdp or by the launch's config, on a policy that cannot
    shard: the line tells the user to undo what they asked for, not the other."""
    for var, value in launch.items():
        monkeypatch.setenv(var, value)
    rt = Runtime("cpu")
    rt.rank, rt.world = 0, 2  # as process 0 of 2 holds them
    with pytest.raises(UserError, match=r"^FSDP shards the language-model policy; task=exact has none to shard: ") as e:
        rt.prepare_policy(object(), fsdp=not launch, anchor=False, task="exact")
    assert asked in str(e.value) and ("train.fsdp" in str(e.value)) == (not launch)


def test_an_unknown_or_missing_tracker_is_one_line(monkeypatch, no_launch):
    with pytest.raises(UserError, match=r"train.log_with='mlflow': use none, tensorboard, wandb"):
        Runtime("cpu", log_with="mlflow")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(MissingPackageError) as e:
        Runtime("cpu", log_with="wandb")
    assert e.value.package == "wandb" and "train.log_with=wandb" in str(e.value)


def test_without_a_tracker_tracking_does_nothing(no_launch):
    rt = Runtime("cpu", log_with="none")
    rt.start_trackers("run", {"seed": 0})
    rt.track({"loss": 1.0}, step=3)
    rt.end_trackers()
    assert rt.accelerator is None


def test_tensorboard_gets_the_numeric_metrics_at_their_step(tmp_path, no_launch):
    """Numbers (ints and floats) are logged at the step given; flags and text are not (a tracker takes scalars)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rt = Runtime("cpu", log_with="tensorboard", project_dir=str(tmp_path))
    assert rt.device == torch.device("cpu") and (rt.rank, rt.world) == (0, 1)
    rt.start_trackers("run", {"seed": 0})
    rt.track({"reward": 1.5, "tokens": 7, "stopped": True, "algo": "bond"}, step=4)
    rt.track({"reward": 2.5}, step=6)
    rt.end_trackers()
    acc = EventAccumulator(str(tmp_path / "run"))
    acc.Reload()
    assert sorted(acc.Tags()["scalars"]) == ["reward", "tokens"]
    assert [(e.step, e.value) for e in acc.Scalars("reward")] == [(4, 1.5), (6, 2.5)]
    assert [(e.step, e.value) for e in acc.Scalars("tokens")] == [(4, 7.0)]


def test_the_main_process_is_rank_0_and_a_group_is_more_than_one(no_launch):
    rt = Runtime("cpu")
    rt.rank, rt.world = 1, 2  # as process 1 of 2 would hold them
    assert (rt.is_main, rt.distributed) == (False, True)


class Tracker:
    def __init__(self, calls: list[tuple[Any, ...]]) -> None:
        self.calls = calls

    def finish(self) -> None:
        self.calls.append(("finish",))


class Trackers:
    """The tracker side of an accelerate Accelerator, recording what it is handed."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.trackers = [Tracker(self.calls), Tracker(self.calls)]

    def init_trackers(self, name: str, config: dict[str, Any]) -> None:
        self.calls.append(("init", name, config))

    def log(self, values: dict[str, Any], step: int | None = None) -> None:
        self.calls.append(("log", values, step))


def test_any_tracker_is_started_fed_numbers_at_their_step_and_finished(no_launch):
    """W&B (not installed here) is driven as TensorBoard is: started with the run's name and settings, given the
    numeric metrics with their step, and every tracker finished at the end."""
    rt = Runtime("cpu")
    rt.log_with, rt.accelerator = "wandb", Trackers()
    rt.start_trackers("bond-exact", {"seed": 3})
    rt.track({"reward": 0.5, "tokens": 7, "stopped": False, "algo": "bond"}, step=9)
    rt.end_trackers()
    assert rt.accelerator.calls == [
        ("init", "bond-exact", {"seed": 3}),
        ("log", {"reward": 0.5, "tokens": 7}, 9),
        ("finish",),
        ("finish",),
    ]


class SameOnEveryProcess:
    """The reduction of a group whose every process holds this process's values: the mean is the values."""

    def reduce(self, x: torch.Tensor, reduction: str) -> torch.Tensor:
        assert reduction == "mean"
        return x.clone()


def test_gradients_are_averaged_in_the_widest_of_their_dtypes(no_launch):
    """A float32 gradient beside a bfloat16 one goes through the all-reduce in float32: 1 + 2⁻¹² (below bfloat16's
    resolution at 1) comes back as it was, not rounded to 1; a parameter without a gradient anywhere keeps none.
    Two processes holding the same gradients are simulated (the real group is test_average_gradients')."""
    rt = Runtime("cpu")
    rt.world, rt.accelerator = 2, SameOnEveryProcess()
    half, full, unused = (torch.nn.Parameter(torch.zeros(2, dtype=d)) for d in (torch.bfloat16, torch.float32, None))
    half.grad = torch.ones(2, dtype=torch.bfloat16)
    full.grad = torch.full((2,), 1 + 2**-12)
    rt.average_gradients([half, full, unused])
    assert full.grad.dtype == torch.float32 and full.grad.tolist() == [1 + 2**-12] * 2
    assert half.grad.dtype == torch.bfloat16 and half.grad.tolist() == [1.0, 1.0]
    assert unused.grad is None


class OverRanks:
    """The reduction of a group of processes holding ``values`` (one per rank) of the reduced scalar."""

    def __init__(self, values: list[float]):
        self.values = values

    def reduce(self, x: torch.Tensor, reduction: str) -> torch.Tensor:
        ops = {"sum": sum, "max": max, "min": min}
        return torch.tensor([float(ops[reduction](self.values))], dtype=x.dtype)


@pytest.mark.parametrize(("received", "named"), [((15, 0), 15), ((0, 2), 2), ((2, 15), 15), ((0, 0), None)], ids=str)
def test_every_process_names_the_signal_any_one_received(no_launch, received, named):
    """A scheduler may signal one process only: every process stops naming that signal (the higher number where
    they received different ones: SIGTERM's 143 over Ctrl-C's 130). A minimum passed the one two-process test, in
    which every process had received the same signal."""
    rt = Runtime("cpu")
    rt.world, rt.accelerator = 2, OverRanks([float(s) for s in received])
    assert rt.any_signal(received[0] or None) == named


@pytest.mark.parametrize(("flags", "any_of"), [((True, False), True), ((False, True), True), ((False, False), False)])
def test_a_flag_of_one_process_is_every_processs(no_launch, flags, any_of):
    """A stop (or a time-based checkpoint) that one process asks for is every process's, at the same step."""
    rt = Runtime("cpu")
    rt.world, rt.accelerator = 2, OverRanks([float(f) for f in flags])
    assert rt.any_process(flags[0]) is any_of
