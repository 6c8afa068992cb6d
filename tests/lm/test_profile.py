"""``rlhf-zoo profile``'s figures (rlhf_zoo/profile.py): what each row measures."""

import pytest

from rlhf_zoo import profile
from tests.lm.test_memory import _weight_copies


@pytest.mark.parametrize("finetune", ["full", "lora"])
def test_sft_baseline_holds_one_copy_of_the_weights(finetune, lm_args, monkeypatch):
    """``sft`` is the memory baseline "plain fine-tuning": no reference, anchor or quantiles. It is built as
    ``reinforce``, whose full-fine-tuning policy keeps a frozen reference copy; the baseline must not hold it,
    or its peak memory (and J-BOND's ratio to it) counts a copy of the weights plain fine-tuning never has."""
    seen = []
    real = profile._sft_step

    def counted(trainer, prompts, step):
        real(trainer, prompts, step)
        shape = trainer.policy.model.get_input_embeddings().weight.shape
        per_model = len({p.data_ptr() for p in trainer.policy.model.parameters() if p.shape == shape})
        seen.append(_weight_copies(trainer, shape) / per_model)

    monkeypatch.setattr(profile, "_sft_step", counted)
    args = [a for a in lm_args if not a.startswith(("run_dir", "train.steps"))]
    row = profile.worker(["algo=sft", *args, f"model.finetune={finetune}", "steps=1", "warmup=1"])
    assert row["algo"] == "sft" and row["completions_per_step"] == 2 * 4
    assert seen == [1, 1]


def test_on_a_gpu_every_phase_waits_for_its_kernels_before_its_clock_stops(monkeypatch):
    """CUDA runs kernels asynchronously: a phase's clock stopped at the last launch leaves its unfinished work
    to whichever later phase first waits for the device (the reference pass's to the update, the optimiser
    step's to the next generation). The probes the worker registers on a GPU wait inside every phase."""
    import time

    import torch

    from rlhf_zoo.rollout import Costs

    waits = []

    def synchronize(device=None):  # stands for the kernels still running when the phase's code returns
        time.sleep(0.05)
        waits.append(device)

    monkeypatch.setattr(torch.cuda, "synchronize", synchronize)
    costs, counter = Costs(), profile.UpdateFlops()
    profile.register_probes(costs, torch.device("cuda:0"), counter)
    for phase in profile.PHASES:
        with costs.timed(phase):
            torch.ones(4, 4) @ torch.ones(4, 4)
        assert costs.seconds[phase] >= 0.05, phase
    assert counter.flops == 2 * 4**3 and len(waits) == len(profile.PHASES)  # the update's matmul only
    profile.register_probes(costs, torch.device("cpu"), None)  # on a CPU: no waiting, no counting
    with costs.timed("update"):
        torch.ones(4, 4) @ torch.ones(4, 4)
    assert len(waits) == len(profile.PHASES) and counter.flops == 2 * 4**3


def test_the_timed_updates_flops_follow_their_own_lengths_not_the_warm_ups():
    """The counter runs on the warm-up updates only (it slows what it counts). The timed updates' FLOPs were
    the warm-up's per step, so an MFU whose timed completions ran longer (or shorter) than the warm-up's was
    off by that ratio; they are now the counted FLOPs per token position times the timed positions."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from rlhf_zoo.rollout import Costs

    model = torch.nn.Sequential(torch.nn.Embedding(16, 8), torch.nn.Linear(8, 16))

    def update(length: int) -> None:
        model(torch.zeros(3, length, dtype=torch.long)).sum().backward()

    costs, counter = Costs(), profile.UpdateFlops(model)
    profile.register_probes(costs, torch.device("cpu"), counter)
    with costs.timed("update"):
        update(5)  # warm-up: counted
    counter.counting = False
    for length in (9, 13):  # timed, longer completions
        with costs.timed("generate"):
            model(torch.zeros(3, 40, dtype=torch.long))  # not an update: not counted
        with costs.timed("update"):
            update(length)
    counter.close()
    exact = 0
    for length in (9, 13):
        with FlopCounterMode(display=False) as mode:
            update(length)
        exact += mode.get_total_flops()
    assert counter.flops_of_timed() == pytest.approx(exact)
    assert counter.flops_of_timed() != pytest.approx(2 * counter.flops)  # what the warm-up's per step gives


def test_profile_out_is_written_atomically(tmp_path, monkeypatch, capsys):
    """``profile out=FILE`` writes through a temporary file renamed into place, as every other output: a
    failing write (a full disk, here at the flush) leaves the previous FILE whole. It opened FILE itself, so
    such a write truncated the previous figures to a torn file."""
    import errno
    import json
    import os

    import pytest

    keys = ["step_s", "generate_s", "reward_s", "logprobs_s", "update_s", "other_s", "completions_per_step"]
    row = {k: 1.0 for k in keys} | {"completions_per_s": 2.0, "peak_memory_gb": 1.0, "mfu_update": 0.5}
    row |= {"algo": "reinforce", "device": "cpu", "threads": 1, "peak_flops": 1e9, "peak_flops_source": "test"}
    monkeypatch.setattr(profile, "profile_rows", lambda *a: [row])
    out = tmp_path / "profile.json"
    assert profile.main(["algos=reinforce", f"out={out}"]) == 0
    assert json.loads(out.read_text())["rows"] == [row]
    before = out.read_text()

    def full_disk(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full_disk)
    monkeypatch.setattr(profile, "profile_rows", lambda *a: [row | {"step_s": 2.0}])
    with pytest.raises(OSError):
        profile.main(["algos=reinforce", f"out={out}"])
    assert out.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["profile.json"]  # no temporary file left
