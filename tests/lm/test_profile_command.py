"""``rlhf-zoo profile`` around its figures (rlhf_zoo/profile.py): the steps it times, the rows it reports, the
objectives' processes and the command's checks. Each test here was written against a mutant of profile.py that
every earlier test let through."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from rlhf_zoo import profile
from rlhf_zoo.errors import UserError


def _row(**changes):
    """A complete row as an objective's process returns it (the table, the header lines and out= read these)."""
    keys = ["step_s", "generate_s", "reward_s", "logprobs_s", "update_s", "other_s", "completions_per_step"]
    row = {k: 1.0 for k in keys} | {"completions_per_s": 2.0, "peak_memory_gb": 1.0, "mfu_update": 0.5}
    row |= {"algo": "reinforce", "device": "cpu", "threads": 1, "peak_flops": 1e9, "peak_flops_source": "test"}
    return row | changes


# ---------------------------------------------------------------- the steps it times


def test_the_plain_fine_tuning_step_is_one_step_of_the_mean_token_nll_of_its_own_samples(monkeypatch):
    """``sft``'s update: the gradient of the mean negative log-likelihood over the response tokens of the batch it
    just sampled (not their sum, and not added to the step before's), then an optimiser step that moves π."""
    import copy

    import rlhf_zoo.rollout as rollout_module

    subject = profile._Subject.build(["algo=sft", "task=exact", "train.batch_prompts=4"])
    trainer = subject.trainer
    drawn, grads = [], []
    real_sample, real_step = rollout_module.sample, trainer.opt.step

    def sample(*args, **kwargs):
        drawn.append(real_sample(*args, **kwargs))
        return drawn[-1]

    def step(*args, **kwargs):
        grads.append([p.grad.clone() for p in trainer.policy.parameters() if p.grad is not None])
        return real_step(*args, **kwargs)

    monkeypatch.setattr(rollout_module, "sample", sample)
    monkeypatch.setattr(trainer.opt, "step", step)
    for i in range(2):
        before = copy.deepcopy(trainer.policy)
        subject.step(i)
        rollout = drawn[-1]
        mask = rollout.response_mask
        nll = -(before.logprobs(rollout, role="policy") * mask).sum() / mask.sum()
        expected = torch.autograd.grad(nll, [p for p in before.parameters() if p.requires_grad])
        assert len(grads[-1]) == len(expected) > 0
        for got, want in zip(grads[-1], expected, strict=True):
            torch.testing.assert_close(got, want)
        moved = [not torch.equal(a, b) for a, b in zip(before.parameters(), trainer.policy.parameters(), strict=True)]
        assert any(moved)  # the optimiser stepped
    assert not torch.equal(drawn[0].completion_ids, drawn[1].completion_ids)  # two batches, two gradients


def test_best_of_n_steps_draw_n_samples_for_the_prompts_of_each_step(monkeypatch):
    """Best-of-N's "step" produces the outputs of the step's prompts from ``algo.n`` reference samples each: its
    completions per step are batch × n, and each timed step draws for the prompts the training loop's step of the
    same number would (not the first step's again)."""
    import rlhf_zoo.rollout as rollout_module
    from rlhf_zoo.train import prompts_for_step

    seen = []
    real = rollout_module.best_of_n_outputs

    def outputs(policy, task, prompts, n, per_prompt, **kwargs):
        seen.append((list(prompts), n))
        return real(policy, task, prompts, n, per_prompt, **kwargs)

    monkeypatch.setattr(rollout_module, "best_of_n_outputs", outputs)
    row = profile.worker(["algo=best_of_n", "task=exact", "train.batch_prompts=3", "algo.n=5", "steps=2", "warmup=1"])
    assert row["completions_per_step"] == 3 * 5
    subject = profile._Subject.build(["algo=best_of_n", "task=exact", "train.batch_prompts=3", "algo.n=5"])
    train_prompts, seed = subject.trainer.task.train_prompts, subject.trainer.cfg.seed
    assert seen == [(prompts_for_step(train_prompts, i, 3, seed), 5) for i in range(3)]
    assert seen[1][0] != seen[2][0]


def test_a_position_is_counted_from_input_embeddings_too_and_never_after_close():
    """A forward given ``inputs_embeds`` [rows, length, width] runs on rows × length positions (not on every
    number of the embeddings); once closed, the counter no longer watches the model."""

    class Model(torch.nn.Module):
        def forward(self, input_ids=None, inputs_embeds=None):
            return inputs_embeds.sum()

    model = Model()
    counter = profile.UpdateFlops(model)
    with counter.probe():
        model(inputs_embeds=torch.ones(3, 5, 8))
    assert counter.counted_positions == 3 * 5
    counter.counting = False
    with counter.probe():
        model(inputs_embeds=torch.ones(2, 7, 8))
    assert counter.timed_positions == 2 * 7
    counter.close()
    with counter.probe():
        model(inputs_embeds=torch.ones(2, 7, 8))
    assert counter.timed_positions == 2 * 7


# ---------------------------------------------------------------- the rows


def _subject(device: str) -> profile._Subject:
    trainer = SimpleNamespace(
        rt=SimpleNamespace(device=torch.device(device)),
        policy=SimpleNamespace(),
        cfg=SimpleNamespace(algo=SimpleNamespace(name="jbond")),
    )
    return profile._Subject(trainer, sft=False, load_s=0.5)


def test_a_gpu_rows_peak_memory_is_the_allocators_peak_in_gib(monkeypatch):
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda *a, **k: 3 * 2**30)
    monkeypatch.setattr(profile, "peak_flops", lambda device, dtype: (1e12, "test"))
    timing = profile._Timing(wall=2.0, sec=dict.fromkeys(profile.PHASES, 0.25), completions=8.0, update_flops=1e9)
    row = _subject("cuda").figures(timing)
    assert row["peak_memory_gb"] == 3.0 and row["device"] == "cuda"


def test_time_outside_the_phases_is_never_negative(monkeypatch):
    """The phases' clocks and the step's are read at different moments: when the phases add up to a hair more than
    the step, the time outside them is 0, not a negative share of the step."""
    monkeypatch.setattr(profile, "peak_flops", lambda device, dtype: (1e12, "test"))
    timing = profile._Timing(wall=1.0, sec=dict.fromkeys(profile.PHASES, 0.26), completions=8.0, update_flops=1e9)
    assert _subject("cpu").figures(timing)["other_s"] == 0.0
    timing = profile._Timing(wall=1.5, sec=dict.fromkeys(profile.PHASES, 0.25), completions=8.0, update_flops=1e9)
    assert _subject("cpu").figures(timing)["other_s"] == pytest.approx(0.5)


# ---------------------------------------------------------------- the objectives' processes


def test_the_figures_are_read_from_the_processs_last_line(tmp_path):
    """A library may print to stdout before the figures: they are the last line."""
    script = tmp_path / "chatty.py"
    script.write_text("import json\nprint('loading weights ...')\nprint(json.dumps({'algo': 'bond'}))\n")
    assert profile.run_in_subprocess(str(script), []) == {"algo": "bond"}


def test_an_error_line_from_a_process_that_crashed_is_not_taken_for_bad_input(tmp_path):
    """Exit code 2 after an error line is the user's input (one line); a crash with another code keeps its whole
    message, even when an error line came before it."""
    script = tmp_path / "crash.py"
    script.write_text(f"import sys\nprint({profile.ERROR_LINE!r} + 'a', file=sys.stderr)\nraise SystemExit(1)\n")
    with pytest.raises(RuntimeError, match="rlhf-zoo: error: a"):
        profile.run_in_subprocess(str(script), [])
    script.write_text(f"import sys\nprint({profile.ERROR_LINE!r} + 'a bad value', file=sys.stderr)\nsys.exit(2)\n")
    with pytest.raises(UserError, match="^a bad value$"):
        profile.run_in_subprocess(str(script), [])


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_an_interrupted_profile_leaves_no_objective_running(tmp_path):
    """Ctrl-C while an objective's process runs: the process is killed and reaped, not left computing."""
    script = tmp_path / "slow.py"
    pid_file = tmp_path / "pid"
    script.write_text(f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(60)\n")

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 1.5)
        t0 = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            profile.run_in_subprocess(str(script), [])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert time.monotonic() - t0 < 30
    pid = int(pid_file.read_text())
    assert not Path(f"/proc/{pid}").exists()  # neither running nor a zombie


def test_the_bar_counts_every_objectives_steps_once(monkeypatch):
    """One bar over all objectives: the second objective's first step is step warmup + steps + 1 of the bar."""
    import tqdm.auto

    positions = []

    class Bar:
        def __init__(self, total, **kwargs):
            self.total, self.n = total, 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, k):
            self.n += k
            positions.append(self.n)

        def set_postfix_str(self, s):
            pass

        @staticmethod
        def write(s, file=None):
            pass

    def process(target, args, on_progress):
        for n in (1, 2, 3):
            on_progress(n)
        return _row()

    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    monkeypatch.setattr(profile, "run_in_subprocess", process)
    rows = profile.profile_rows(["bond", "jbond"], ["task=exact"], steps=2, warmup=1)
    assert len(rows) == 2
    assert [p for i, p in enumerate(positions) if p not in positions[:i]] == [1, 2, 3, 4, 5, 6]


# ---------------------------------------------------------------- the command


def test_a_negative_warmup_is_refused(monkeypatch):
    ran = []
    monkeypatch.setattr(profile, "profile_rows", lambda *a: ran.append(a) or [])
    with pytest.raises(UserError, match="warmup must be >= 0"):
        profile.main(["algos=reinforce", "task=exact", "warmup=-1"])
    assert ran == []


def test_an_out_file_that_cannot_be_written_is_refused_before_any_objective_runs(tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(profile, "profile_rows", lambda *a: ran.append(a) or [_row()])
    (tmp_path / "a file").write_text("")
    with pytest.raises(UserError, match="out"):
        profile.main(["algos=reinforce", "task=exact", f"out={tmp_path / 'a file' / 'profile.json'}"])
    assert ran == []


def test_the_plain_fine_tuning_baseline_passes_the_configuration_check(monkeypatch):
    """``sft`` is no algorithm of the registry: it is checked as the reinforce it is built as."""
    monkeypatch.setattr(profile, "profile_rows", lambda *a: [_row(algo="sft")])
    assert profile.main(["algos=sft", "task=exact"]) == 0


def test_a_failed_objective_fails_the_command_and_says_why(monkeypatch, capsys):
    def fail(*a):
        raise RuntimeError("rlhf_zoo.profile algo=bond failed:\nout of memory")

    monkeypatch.setattr(profile, "profile_rows", fail)
    assert profile.main(["algos=bond", "task=exact"]) == 1
    assert "out of memory" in capsys.readouterr().err


def test_out_holds_every_objectives_row(tmp_path, monkeypatch, capsys):
    rows = [_row(algo="bond"), _row(algo="jbond", step_s=3.0)]
    monkeypatch.setattr(profile, "profile_rows", lambda *a: rows)
    out = tmp_path / "profile.json"
    assert profile.main(["algos=bond,jbond", "task=exact", f"out={out}"]) == 0
    saved = json.loads(out.read_text())
    assert saved["rows"] == rows and saved["args"] == ["algos=bond,jbond", "task=exact", f"out={out}"]


def test_on_a_gpu_a_phase_waits_for_its_own_kernels_after_its_work_not_before(monkeypatch):
    """The wait is for the kernels the phase itself launched: it comes after the phase's work, inside its clock (a
    wait before the work would time the previous phase's unfinished kernels here and leave this one's to the next)."""
    from rlhf_zoo.rollout import Costs

    events = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: events.append(("wait", device)))
    costs = Costs()
    profile.register_probes(costs, torch.device("cuda:0"), profile.UpdateFlops())
    for phase in profile.PHASES:
        with costs.timed(phase):
            events.append(("work", phase))
    device = torch.device("cuda:0")
    assert events == [e for p in profile.PHASES for e in (("work", p), ("wait", device))]


def test_the_plain_fine_tuning_baseline_draws_the_samples_of_the_training_steps_of_the_same_number(monkeypatch):
    """Each ``sft`` step samples π as the training loop's step of the same number does (its per-prompt random
    streams keyed by the seed and the step), so that step after step it fine-tunes on fresh draws like a run, not
    on the first step's random numbers again."""
    import rlhf_zoo.rollout as rollout_module

    drawn: list[tuple[str, list[int]]] = []
    real = rollout_module.sample

    def sample(policy, prompts, n, role, generator, costs):
        if role == "policy":
            drawn.append((list(prompts), [g.initial_seed() for g in generator]))
        return real(policy, prompts, n, role, generator, costs)

    monkeypatch.setattr(rollout_module, "sample", sample)
    runs = {}
    for algo in ("sft", "reinforce"):
        drawn.clear()
        subject = profile._Subject.build([f"algo={algo}", "task=exact", "train.batch_prompts=4"])
        for i in range(3):
            subject.step(i)
        runs[algo] = list(drawn)
    assert len(runs["sft"]) == 3 and runs["sft"] == runs["reinforce"]
    assert runs["sft"][0][1] != runs["sft"][1][1]


def test_the_plain_fine_tuning_baselines_configuration_is_checked_before_any_objective_runs(monkeypatch):
    """``sft`` is checked too (as the reinforce it is built as): a bad key beside ``algos=sft`` is refused before
    minutes of profiling, not found by the baseline's own process at its turn."""
    from rlhf_zoo.config import ConfigError

    ran = []
    monkeypatch.setattr(profile, "profile_rows", lambda *a: ran.append(a) or [_row(algo="sft")])
    with pytest.raises(ConfigError, match="train.nosuch"):
        profile.main(["algos=sft", "task=exact", "train.nosuch=1"])
    assert ran == []


def test_a_process_that_ends_on_bad_input_is_its_last_error_line(tmp_path):
    """Exit code 2 after an error line: the error is the line it ended with, not an earlier one it wrote (one it
    got past, a warning-like error of something it ran)."""
    script = tmp_path / "retried.py"
    script.write_text(
        "import sys\n"
        f"print({profile.ERROR_LINE!r} + 'an earlier line', file=sys.stderr)\n"
        "print('more output', file=sys.stderr)\n"
        f"print({profile.ERROR_LINE!r} + 'the bad value', file=sys.stderr)\n"
        "sys.exit(2)\n"
    )
    with pytest.raises(UserError, match="^the bad value$"):
        profile.run_in_subprocess(str(script), [])
