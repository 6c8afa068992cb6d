"""``rlhf-zoo profile``'s figures (rlhf_zoo/profile.py): what each row measures."""

import sys
from pathlib import Path

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
    # its supervised step is timed and counted as the update phase
    assert row["update_s"] > 0 and row["update_flops"] > 0 and row["mfu_update"] > 0
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


def test_a_rows_seconds_are_per_timed_step_and_its_rates_and_shares_follow_from_them(monkeypatch):
    """The worker on the testbed under a clock that moves only when the policy samples (2 s), the proxy scores
    (1 s), the policy is scored (0.5 s: in ``update`` with gradient, in ``logprobs`` without) or a step's prompts
    are picked (0.25 s, in no phase): every figure of the row follows from the calls of the timed steps alone,
    per step (the warm-up's are not in it)."""
    import time

    import torch

    import rlhf_zoo.train as train_module
    from rlhf_zoo.policies.tabular import TabularPolicy
    from rlhf_zoo.tasks.exact import TableReward

    clock, calls = [0.0], []

    def ticking(method, seconds, phase):
        def call(*args, **kwargs):
            out = method(*args, **kwargs)
            clock[0] += seconds
            calls.append((phase() if callable(phase) else phase, seconds, len(out) if phase == "generate" else 0))
            return out

        return call

    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(TabularPolicy, "sample", ticking(TabularPolicy.sample, 2.0, "generate"))
    monkeypatch.setattr(TableReward, "score", ticking(TableReward.score, 1.0, "reward"))
    scored = ticking(TabularPolicy.logprobs, 0.5, lambda: "update" if torch.is_grad_enabled() else "logprobs")
    monkeypatch.setattr(TabularPolicy, "logprobs", scored)
    monkeypatch.setattr(train_module, "prompts_for_step", ticking(train_module.prompts_for_step, 0.25, "other"))
    monkeypatch.setattr(profile, "peak_flops", lambda device, dtype: (1e12, "test"))
    monkeypatch.setattr(profile.UpdateFlops, "flops_of_timed", lambda self: 6e9)  # of all the timed updates
    warmup, steps = 1, 2
    row = profile.worker(
        ["algo=reinforce", "task=exact", "train.batch_prompts=4", f"steps={steps}", f"warmup={warmup}"]
    )

    assert len(calls) % (warmup + steps) == 0  # every step makes the same calls
    timed = calls[len(calls) // (warmup + steps) * warmup :]
    expected = {p: sum(s for q, s, _ in timed if q == p) / steps for p in (*profile.PHASES, "other")}
    assert expected["update"] > 0 and expected["logprobs"] > 0 and expected["other"] > 0  # the reference is scored
    assert {p: row[f"{p}_s"] for p in expected} == pytest.approx(expected)
    assert row["step_s"] == pytest.approx(sum(expected.values()))
    completions = sum(n for _, _, n in timed) / steps
    assert row["completions_per_step"] == completions == 4 * 4  # batch_prompts × REINFORCE's samples
    assert row["completions_per_s"] == pytest.approx(completions / row["step_s"])
    assert row["generate_share"] == pytest.approx(expected["generate"] / row["step_s"])
    assert row["update_flops"] == pytest.approx(6e9 / steps)
    assert row["update_flops_per_s"] == pytest.approx(6e9 / steps / expected["update"])
    assert row["mfu_update"] == pytest.approx(row["update_flops_per_s"] / 1e12) and row["peak_flops"] == 1e12
    if sys.platform == "linux":  # the process's peak resident set, as the kernel reports it, in GiB
        status = Path("/proc/self/status").read_text().splitlines()
        peak_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
        assert row["peak_memory_gb"] == pytest.approx(peak_kib / 2**20, rel=0.1)


def test_without_a_model_the_timed_updates_flops_are_the_counted_ones_per_update():
    """The tabular testbed has no model to read token positions from: the timed updates then count as many
    FLOPs each as the counted (warm-up) updates did on average."""
    import torch

    from rlhf_zoo.rollout import Costs

    costs, counter = Costs(), profile.UpdateFlops()
    profile.register_probes(costs, torch.device("cpu"), counter)
    for _ in range(2):  # counted: 2·4³ FLOPs each
        with costs.timed("update"):
            torch.ones(4, 4) @ torch.ones(4, 4)
    counter.counting = False
    for _ in range(3):
        with costs.timed("update"):
            torch.ones(4, 4) @ torch.ones(4, 4)
    assert counter.flops == 2 * 2 * 4**3 and counter.flops_of_timed() == 3 * 2 * 4**3


def test_the_table_puts_each_figure_under_its_own_header():
    figures = {
        "step_s": 9.0,
        "generate_s": 1.0,
        "reward_s": 0.125,
        "logprobs_s": 3.0,
        "update_s": 4.0,
        "other_s": 0.875,
    }
    row = {"algo": "jbond", **figures, "completions_per_step": 32.0, "completions_per_s": 3.5, "generate_share": 0.25}
    row |= {"mfu_update": 0.125, "peak_memory_gb": 1.5}
    cells = dict(zip(profile.HEADERS, profile.table_rows([row])[0], strict=True))
    assert cells == {
        "objective": "jbond",
        "s/step": "9.00",
        "generate": "1.00",
        "reward": "0.125",
        "log-probs": "3.00",
        "update": "4.00",
        "other": "0.875",  # 3 significant digits below a second
        "completions/step": "32",
        "completions/s": "3.50",
        "generate share": "25%",
        "update MFU": "12.5%",
        "peak GiB": "1.50",
    }
    assert (
        dict(zip(profile.HEADERS, profile.table_rows([row | {"mfu_update": 0.0}])[0], strict=True))["update MFU"] == "-"
    )
    # a testbed step of 7 ms printed as 0.01 and each of its phases as 0
    fast = {k: v / 1000 for k, v in figures.items()}
    cells = dict(zip(profile.HEADERS, profile.table_rows([row | fast])[0], strict=True))
    assert [cells[k] for k in ("s/step", "generate", "reward", "other")] == ["0.009", "0.001", "0.000125", "0.000875"]


def test_every_objectives_configuration_is_checked_before_the_first_runs(monkeypatch):
    from rlhf_zoo.config import ConfigError

    ran = []
    monkeypatch.setattr(profile, "profile_rows", lambda *a: ran.append(a) or [])
    with pytest.raises(ConfigError, match="unknown algorithm 'nonexistent'"):
        profile.main(["algos=reinforce,nonexistent", "task=exact"])
    assert ran == []


def test_a_user_error_in_an_objectives_process_is_one_line(lm_args, capsys):
    """What only loading finds (here a prompt longer than ``model.max_prompt_tokens``, seen once the task reads
    its prompts) stops the objective's process: ``profile`` printed that process's whole traceback; it is now
    the command's one error line and exit code 2, as ``train`` gives."""
    from rlhf_zoo import cli

    args = [a for a in lm_args if not a.startswith(("run_dir", "train.steps"))]
    code = cli.main(["profile", "algos=reinforce", *args, "model.max_prompt_tokens=2", "steps=1", "warmup=0"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("rlhf-zoo: error: ") and "model.max_prompt_tokens=2" in err, err


def test_algo_is_refused_beside_algos(monkeypatch):
    """``algo=bond`` came after each objective's own ``algo=`` and won: every row profiled bond, under the
    objectives ``algos`` named (all five by default)."""
    from rlhf_zoo.errors import UserError

    ran = []
    monkeypatch.setattr(profile, "profile_rows", lambda *a: ran.append(a) or [])
    with pytest.raises(UserError, match="algos="):
        profile.main(["algos=reinforce", "algo=bond", "task=exact"])
    assert ran == []


def test_the_run_dir_profile_never_writes_is_not_checked(tmp_path, monkeypatch, capsys):
    """``profile`` writes no run directory, but checked the default one (``runs/<algo>-<task>-s<seed>`` under the
    current folder) as train would: in a folder that cannot hold it, profile refused to run, blaming a run_dir
    the user never set."""
    keys = ["step_s", "generate_s", "reward_s", "logprobs_s", "update_s", "other_s", "completions_per_step"]
    row = {k: 1.0 for k in keys} | {"completions_per_s": 2.0, "peak_memory_gb": 1.0, "mfu_update": 0.5}
    row |= {"algo": "reinforce", "device": "cpu", "threads": 1, "peak_flops": 1e9, "peak_flops_source": "test"}
    monkeypatch.setattr(profile, "profile_rows", lambda *a: [row])
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").write_text("a file where the default run directories would go")
    assert profile.main(["algos=reinforce", "task=exact"]) == 0
    assert "reinforce" in capsys.readouterr().out


def test_an_objectives_process_reports_each_step_as_it_goes_and_only_to_the_bar():
    """``profile_rows``'s bar moves with each warm-up and timed step of each objective's process (it stood still
    for minutes per objective); the progress lines are read, not kept with what the process said."""
    ticks = []
    row = profile.run_in_subprocess(
        "rlhf_zoo.profile", ["algo=reinforce", "task=exact", "steps=2", "warmup=1"], on_progress=ticks.append
    )
    assert ticks == [1, 2, 3]
    assert row["algo"] == "reinforce" and row["completions_per_step"] > 0


def test_progress_lines_stay_out_of_a_failed_process_s_message(tmp_path):
    """A process that fails after some steps: its message is what it said, without the progress lines."""
    script = tmp_path / "fails.py"
    script.write_text(
        "import sys\n"
        f"print({profile.PROGRESS_LINE!r} + '1/2', file=sys.stderr)\n"
        "print('boom', file=sys.stderr)\n"
        "sys.exit(3)\n"
    )
    ticks = []
    with pytest.raises(RuntimeError) as e:
        profile.run_in_subprocess(str(script), [], on_progress=ticks.append)
    assert ticks == [1]
    assert "boom" in str(e.value) and profile.PROGRESS_LINE not in str(e.value)


def test_profile_never_builds_nor_loads_the_gold_reward(lm_args, tmp_path, monkeypatch):
    """Only evaluations score the gold reward, and profile runs none: a first ``profile task=sentiment`` sat silent for
    minutes building the gold model (a walkthrough). With no gold model and ``task.build_gold=false`` a run would be
    refused, naming ``rlhf-zoo prepare``; the profile measures its row."""
    monkeypatch.setenv("RLHF_ZOO_CACHE", str(tmp_path / "empty-cache"))
    args = [a for a in lm_args if not a.startswith(("run_dir", "train.steps", "task.gold"))]
    row = profile.worker(["algo=reinforce", *args, "task.build_gold=false", "steps=1", "warmup=0"])
    assert row["algo"] == "reinforce" and row["completions_per_step"] == 2 * 4
    assert not (tmp_path / "empty-cache").exists()
