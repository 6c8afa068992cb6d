"""The training loop's contract beyond the numbers: what a failure, a stop signal and the phases do.

- A failure in a step's rollout keeps the last completed step resumable, and its costs (and base cache)
  hold only completed steps'; a failed evaluation is redone when the run resumes, so the resumed run's
  metrics and summary equal an uninterrupted run's; a failure after the step changed the weights writes
  no (torn) checkpoint.
- SIGTERM, as schedulers send it, stops at a step boundary with a checkpoint, exit code 143 and a
  one-line message naming resume=true; the resumed run's metrics equal an uninterrupted run's.
- The loss is computed inside the ``update`` phase (so a probe on that phase, as ``profile``'s FLOP
  counter, sees the forward pass, the loss and the backward pass).
"""

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rlhf_zoo.config import load_config
from rlhf_zoo.rewards.base import RewardError
from rlhf_zoo.train import Interrupted, Trainer, build
from tests.runtime.resume_helpers import metrics_rows
from tests.training.helpers import recorded


def _trainer(run_dir, *args):
    cfg = load_config([*args, f"run_dir={run_dir}", "train.progress=false"])
    return Trainer(cfg, *build(cfg))


def _loss_fails_at(tr, call: int, error: type[BaseException] = RuntimeError) -> None:
    """Make ``tr``'s ``call``-th loss (1-based, counting every minibatch of every step) raise ``error``."""
    loss, calls = tr.algo.loss, {"n": 0}

    def failing(batch):
        calls["n"] += 1
        if calls["n"] == call:
            raise error("out of memory")
        return loss(batch)

    tr.algo.loss = failing


class FailingReward:
    """The task's proxy reward, raising from its ``fail_at``-th call on."""

    def __init__(self, inner, fail_at):
        self.inner, self.calls, self.fail_at, self.name = inner, 0, fail_at, "failing"

    def score(self, prompts, completions):
        self.calls += 1
        if self.calls >= self.fail_at:
            raise RuntimeError("the reward server went away")
        return self.inner.score(prompts, completions)


# the one line of FailingReward's error: where in its code it raised, to debug from
RAISED = (
    "reward 'failing' raised RuntimeError: the reward server went away "
    f"(at {__file__}:{FailingReward.score.__code__.co_firstlineno + 3} in score)"
)


def test_a_failed_rollout_keeps_the_last_step_and_its_costs(tmp_path):
    args = ["algo=reinforce", "train.steps=6", "train.eval_every=100", "train.batch_prompts=8"]
    clean = _trainer(tmp_path / "clean", *args, "train.steps=2")
    clean.fit()
    failing = _trainer(tmp_path / "fail", *args)
    # proxy calls: 1 for the step-0 evaluation (of the enumerated completions), then 1 per step: step 3 fails
    failing.task.proxy = FailingReward(failing.task.proxy, fail_at=4)
    with pytest.raises(RewardError, match="went away"):
        failing.fit()
    _, state = failing.log.load_checkpoint()
    assert state["step"] == 2
    _, done = clean.log.load_checkpoint()
    assert state["costs"].completions == done["costs"].completions > 0
    assert state["costs"].reward_calls == done["costs"].reward_calls
    assert state["costs"].tokens == done["costs"].tokens


def test_a_bad_reward_mid_run_says_how_to_continue_from_its_checkpoint(tmp_path, cli):
    """A reward that failed at step 3 said only "reward 'failing' raised RuntimeError: ...": not that steps 1
    and 2 were kept in a checkpoint, nor how to continue from it once the reward is fixed (run again, the
    command said only "already holds a run")."""
    failing = _trainer(tmp_path / "r", "algo=reinforce", "train.steps=6", "train.eval_every=100")
    failing.task.proxy = FailingReward(failing.task.proxy, fail_at=4)  # step 3's
    with pytest.raises(RewardError) as e:
        failing.fit()
    assert str(e.value) == (
        f"{RAISED}; the run stopped after step 2, "
        f"whose checkpoint {tmp_path / 'r'} holds: fix that, then add resume=true to continue from it"
    )


def test_a_failure_after_the_weights_changed_writes_no_checkpoint(tmp_path):
    tr = _trainer(tmp_path / "r", "algo=ppo_lite", "train.steps=3", "algo.minibatches=2", "train.batch_prompts=4")
    _loss_fails_at(tr, 2)  # step 1's second minibatch: its first has already updated the weights
    with pytest.raises(RuntimeError, match="out of memory"):
        tr.fit()
    assert not tr.log.has_checkpoint()


def test_a_failure_in_the_first_step_leaves_no_checkpoint_and_its_own_error(tmp_path):
    """A reward failing in step 1 stops a run that has completed no step: there is nothing to keep (resume=true
    starts it over), so no checkpoint is written and the error does not say to continue from one."""
    tr = _trainer(tmp_path / "r", "algo=reinforce", "train.steps=4", "train.eval_every=100")
    tr.task.proxy = FailingReward(tr.task.proxy, fail_at=2)  # evaluation 0, then step 1's
    with pytest.raises(RewardError) as e:
        tr.fit()
    assert str(e.value) == RAISED
    assert not tr.log.has_checkpoint()


def test_a_bench_point_that_fails_mid_run_keeps_its_checkpoint_and_its_own_error(tmp_path):
    """A bench's or sweep's point (its run directory's lock taken by the caller) whose reward fails at step 3
    keeps step 2's checkpoint, but its error is the reward's own line: the bench says how to go on (the same
    command continues), not "add resume=true"."""
    from rlhf_zoo.runlog import RunLog

    args = ["algo=reinforce", "train.steps=6", "train.eval_every=100", "train.progress=false"]
    cfg = load_config([*args, f"run_dir={tmp_path / 'p'}"])
    lock = RunLog(tmp_path / "p").lock()  # as rlhf_zoo.bench.runner takes it before the model loads
    try:
        tr = Trainer(cfg, *build(cfg), held_lock=lock)
        tr.task.proxy = FailingReward(tr.task.proxy, fail_at=4)  # step 3's
        with pytest.raises(RewardError) as e:
            tr.fit()
    finally:
        lock.release()
    assert str(e.value) == RAISED
    assert tr.log.load_checkpoint()[1]["step"] == 2


def test_a_failed_write_to_the_run_directory_tries_no_checkpoint_after_it(tmp_path):
    """The disk fills as the step-2 evaluation's line is appended: the loop tries no checkpoint after it (on a
    full disk it fails alike, a second error chained to the first), and the error stays the write's own line."""
    from rlhf_zoo.runlog import WriteError

    tr = _trainer(tmp_path / "r", "algo=reinforce", "train.steps=4", "train.eval_every=2")
    log, full = tr.log.log, f"cannot write {tr.log.metrics_path}: No space left on device"

    def full_at_step_2(step, record):
        if step == 2:
            raise WriteError(full)
        return log(step, record)

    tr.log.log = full_at_step_2
    saves = recorded(tr, "save")
    with pytest.raises(WriteError) as e:
        tr.fit()
    assert saves == [] and not tr.log.has_checkpoint()
    assert str(e.value) == full


def test_the_loss_is_computed_inside_the_update_phase(tmp_path):
    tr = _trainer(tmp_path / "r", "algo=jbond", "train.steps=1")
    inside = {"now": False, "loss_calls_inside": 0, "loss_calls": 0}

    @contextlib.contextmanager
    def probe():
        inside["now"] = True
        yield
        inside["now"] = False

    tr.costs.probe("update", probe)
    loss = tr.algo.loss

    def watched(batch):
        inside["loss_calls"] += 1
        inside["loss_calls_inside"] += inside["now"]
        return loss(batch)

    tr.algo.loss = watched
    tr.fit()
    assert inside["loss_calls"] == inside["loss_calls_inside"] == 1


def test_a_step_weights_its_minibatches_metrics_by_their_size(tmp_path):
    """PPO-lite splits 3 prompts into minibatches of 1 and 2 prompts: the step's metrics are means over its
    prompts, so each minibatch's value counts by its size (a plain mean of the minibatches gave the one
    prompt of the first as much weight as the two of the second)."""
    tr = _trainer(tmp_path / "r", "algo=ppo_lite", "algo.epochs=1", "algo.minibatches=2", "train.batch_prompts=3")
    loss, seen = tr.algo.loss, []

    def sized(batch):
        total, m = loss(batch)
        size = batch.rewards.shape[0] // batch.group_size  # prompts in the minibatch
        seen.append((size, float(total.detach()), float(m["loss/pg"])))
        return total, {**m, "test/size": size}

    tr.algo.loss = sized
    tr.begin()
    m = tr.train_step()
    tr.end()
    assert [size for size, _, _ in seen] == [1, 2]
    assert m["test/size"] == pytest.approx(5 / 3)
    assert m["loss/total"] == pytest.approx(sum(n * v for n, v, _ in seen) / 3, rel=1e-12)
    assert m["loss/pg"] == pytest.approx(sum(n * v for n, _, v in seen) / 3, rel=1e-12)


def test_a_steps_gradient_norm_is_its_minibatches_norms_weighted_by_their_size(tmp_path):
    """``train/grad_norm`` of a step with minibatches of 1 and 2 prompts over 2 epochs is the mean of the 4
    updates' norms (before clipping) weighted by their prompts, as the step's other metrics; a plain mean of the
    updates, or the last update's norm, passed every test."""
    args = ["algo=ppo_lite", "algo.epochs=2", "algo.minibatches=2", "train.batch_prompts=3", "train.grad_clip=1e6"]
    tr = _trainer(tmp_path / "r", *args)
    sizes, norms = [], []
    loss, optimise = tr.algo.loss, tr.optimise

    def sized(batch):
        sizes.append(batch.rewards.shape[0] // batch.group_size)
        return loss(batch)

    def measured(total):
        norm = optimise(total)
        norms.append(norm)
        return norm

    tr.algo.loss, tr.optimise = sized, measured
    tr.begin()
    m = tr.train_step()
    tr.end()
    assert sizes == [1, 2, 1, 2] and len(set(norms)) == 4
    assert m["train/grad_norm"] == pytest.approx(sum(n * g for n, g in zip(sizes, norms, strict=True)) / 6, rel=1e-12)


def test_a_steps_reward_is_the_mean_proxy_reward_of_its_completions(tmp_path):
    """``train/reward_proxy`` of a step is the mean of the proxy rewards of its 2 prompts × 4 completions."""
    tr = _trainer(tmp_path / "r", "algo=reinforce", "algo.samples=4", "train.batch_prompts=2")
    score, scores = tr.task.proxy.score, []

    def recorded_score(prompts, completions):
        rewards = score(prompts, completions)
        scores.extend(float(r) for r in rewards)
        return rewards

    tr.task.proxy.score = recorded_score
    tr.begin()
    m = tr.train_step()
    tr.end()
    assert len(scores) == 8 and len(set(scores)) > 1, scores
    assert m["train/reward_proxy"] == pytest.approx(sum(scores) / 8, rel=1e-6)


SLOW_TRAIN = Path(__file__).with_name("slow_train.py")
ROOT = Path(__file__).resolve().parents[2]


def _train_cmd(run_dir, *extra):
    return [
        sys.executable,
        str(SLOW_TRAIN),
        "train",
        "algo=reinforce",
        "threads=1",
        "train.steps=40",
        "train.eval_every=10",
        "train.progress=false",
        f"run_dir={run_dir}",
        *extra,
    ]


def _run(cmd, **env):
    return subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT), **env})


def test_sigterm_checkpoints_and_the_resumed_run_equals_an_uninterrupted_one(tmp_path):
    # 0.1 s a reward call: the 40 steps take 4 s, so the signal comes while the run is training
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SLOW_REWARD_S": "0.1"}
    proc = subprocess.Popen(_train_cmd(tmp_path / "part"), stderr=subprocess.PIPE, text=True, env=env)
    metrics = tmp_path / "part" / "metrics.jsonl"
    deadline = time.time() + 120
    while not metrics.is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be signalled"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    message = err.strip().splitlines()
    assert len(message) == 1 and "SIGTERM" in message[0] and "resume=true" in message[0], err
    stopped_at = torch.load(tmp_path / "part" / "checkpoint" / "state.pt", weights_only=False)["step"]
    assert 0 < stopped_at < 40

    resumed = _run(_train_cmd(tmp_path / "part", "resume=true"))
    assert resumed.returncode == 0, resumed.stderr
    full = _run(_train_cmd(tmp_path / "full"))
    assert full.returncode == 0, full.stderr
    assert metrics_rows(tmp_path / "part" / "metrics.jsonl") == metrics_rows(tmp_path / "full" / "metrics.jsonl")
    a = json.loads((tmp_path / "part" / "summary.json").read_text())
    b = json.loads((tmp_path / "full" / "summary.json").read_text())
    for key in ("reward/proxy", "kl/exact", "cost/completions", "cost/reward_calls", "steps"):
        assert a[key] == b[key], key


def test_kill_9_loses_at_most_the_checkpoint_interval(tmp_path):
    """A SIGKILL (no handler runs) mid-run: the periodic checkpoint survives, ``resume=true`` continues
    from it, and the finished run equals an uninterrupted one."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SLOW_REWARD_S": "0.1"}
    cmd = _train_cmd(tmp_path / "part", "train.checkpoint_every=5")
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    metrics = tmp_path / "part" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:  # wait for the step-20 evaluation
        if metrics.is_file() and any(json.loads(x)["step"] >= 20 for x in metrics.read_text().splitlines()):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.kill()
    proc.communicate(timeout=60)
    stopped_at = torch.load(tmp_path / "part" / "checkpoint" / "state.pt", weights_only=False)["step"]
    assert 15 <= stopped_at < 40  # at most one checkpoint interval (5 steps) before the step-20 evaluation

    resumed = _run([*cmd, "resume=true"])
    assert resumed.returncode == 0, resumed.stderr
    assert f"from step {stopped_at}" in resumed.stderr
    full = _run(_train_cmd(tmp_path / "full", "train.checkpoint_every=5"))
    assert full.returncode == 0, full.stderr
    assert metrics_rows(tmp_path / "part" / "metrics.jsonl") == metrics_rows(tmp_path / "full" / "metrics.jsonl")


def test_resume_says_what_it_does(tmp_path, capsys):
    from rlhf_zoo.cli import main

    args = ["train", "algo=reinforce", "train.steps=4", "train.progress=false", "train.eval_every=2"]
    assert main([*args, f"run_dir={tmp_path}/typo", "resume=true"]) == 0
    err = capsys.readouterr().err
    assert "nothing to resume" in err and "step 0" in err
    assert main([*args, f"run_dir={tmp_path}/typo", "resume=true", "train.steps=6"]) == 2  # another config
    assert "differs" in capsys.readouterr().err


def test_a_run_resumes_whichever_way_its_run_dir_is_written(tmp_path, monkeypatch):
    """resume=true continues the run of the directory it names: with a trailing slash (a shell's completion
    adds one), as a relative or an absolute path, or after the directory moved. Each was refused, the saved
    config's run_dir text differing from the command line's. Found by resuming killed runs."""
    args = ["algo=reinforce", "train.steps=4", "train.eval_every=2", "train.batch_prompts=4"]
    stopped = _trainer(tmp_path / "r", *args)
    _loss_fails_at(stopped, 3, KeyboardInterrupt)  # stopped at step 2, with a checkpoint
    with pytest.raises(Interrupted):
        stopped.fit()
    monkeypatch.chdir(tmp_path)
    for spelling in (f"{tmp_path}/r/", "r", "./r/"):
        again = _trainer(spelling, *args, "resume=true")
        again.begin()  # not refused
        assert again.step == 2
        again.end()
    (tmp_path / "r").rename(tmp_path / "moved")
    resumed = _trainer("moved", *args, "resume=true")
    resumed.fit()
    assert resumed.saved_step == 4
    whole = _trainer(tmp_path / "whole", *args)
    whole.fit()
    assert metrics_rows(tmp_path / "moved" / "metrics.jsonl") == metrics_rows(tmp_path / "whole" / "metrics.jsonl")


def test_a_run_started_over_takes_away_the_summary_of_the_run_before(tmp_path):
    """resume=true with no checkpoint in a finished run's directory (a sweep's runs keep none) starts over at
    step 0: the run before's summary.json stayed until the new run finished, so one that failed or was stopped
    on the way left a directory that read as finished (``rlhf-zoo compare``) beside a cut metrics.jsonl. And
    with a config of its own (``algo=...``, ``seed=1``) it started over too, so the directory held the new config
    and the old run's numbers: without a checkpoint as with one, resume=true refuses another config."""
    import shutil

    from rlhf_zoo.errors import UserError

    args = ["algo=reinforce", "train.steps=4", "train.eval_every=2", "train.batch_prompts=4"]
    _trainer(tmp_path / "r", *args).fit()
    shutil.rmtree(tmp_path / "r" / "checkpoint")
    config = (tmp_path / "r" / "config.yaml").read_text()
    for other in ("seed=1", "algo=bond"):
        with pytest.raises(UserError, match=f"differs from this run's config \\({other.split('=')[0]}"):
            _trainer(tmp_path / "r", *args, other, "resume=true").fit()
        assert (tmp_path / "r" / "config.yaml").read_text() == config and (tmp_path / "r" / "summary.json").exists()
    again = _trainer(tmp_path / "r", *args, "resume=true")
    again.task.proxy = FailingReward(again.task.proxy, fail_at=3)  # evaluation 0, step 1, step 2 fails
    with pytest.raises(RewardError, match="went away"):
        again.fit()
    assert not (tmp_path / "r" / "summary.json").exists()


def test_two_runs_on_one_run_dir_are_refused(tmp_path, capsys):
    from rlhf_zoo.cli import main
    from rlhf_zoo.runlog import RunLog

    held = RunLog(tmp_path / "r").lock()  # another run holds the directory
    try:
        code = main(["train", "algo=reinforce", "train.steps=2", "train.progress=false", f"run_dir={tmp_path}/r"])
        err = capsys.readouterr().err
        assert code == 2 and "in use by another run" in err and len(err.strip().splitlines()) == 1
    finally:
        held.release()
    assert main(["train", "algo=reinforce", "train.steps=2", "train.progress=false", f"run_dir={tmp_path}/r"]) == 0


def test_a_run_still_going_is_said_to_be_in_use_not_to_need_resume(tmp_path, capsys):
    """A second start on a folder whose run is still going said "already holds a run: pass resume=true", and the
    resume=true it advised was then refused as "in use": the first answer is now the second."""
    from rlhf_zoo.cli import main
    from rlhf_zoo.runlog import RunLog

    args = ["train", "algo=reinforce", "train.steps=2", "train.progress=false", f"run_dir={tmp_path}/r"]
    assert main(args) == 0
    capsys.readouterr()
    held = RunLog(tmp_path / "r").lock()  # it is running again (resumed elsewhere)
    try:
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "in use by another run" in err and "resume=true" not in err, err
    finally:
        held.release()
    assert main(args) == 2 and "already holds a run: pass resume=true" in capsys.readouterr().err  # not running


class FailsOnce(FailingReward):
    """The task's proxy reward, raising on its ``fail_at``-th call only (a transient fault)."""

    def score(self, prompts, completions):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("the reward server went away")
        return self.inner.score(prompts, completions)


# proxy calls with steps=4, eval_every=2: evaluation 0 (1), step 1 (2), step 2 (3), evaluation 2 (4),
# step 3 (5), step 4 (6), evaluation 4 (7)
@pytest.mark.parametrize("fail_at", [4, 7], ids=["a middle evaluation", "the final evaluation"])
def test_a_failed_evaluation_is_redone_when_the_run_resumes(tmp_path, fail_at):
    args = ["algo=reinforce", "train.steps=4", "train.eval_every=2", "train.batch_prompts=4"]
    clean = _trainer(tmp_path / "clean", *args)
    clean_summary = clean.fit()
    failing = _trainer(tmp_path / "fail", *args)
    failing.task.proxy = FailsOnce(failing.task.proxy, fail_at=fail_at)
    with pytest.raises(RewardError, match="went away"):
        failing.fit()
    resumed = _trainer(tmp_path / "fail", *args, "resume=true")
    summary = resumed.fit()
    assert metrics_rows(tmp_path / "fail" / "metrics.jsonl") == metrics_rows(tmp_path / "clean" / "metrics.jsonl")
    untimed = lambda s: {k: v for k, v in s.items() if not k.startswith("time/")}  # noqa: E731
    assert untimed(summary) == untimed(clean_summary)


def test_a_failure_after_the_base_cache_filled_leaves_it_to_the_resumed_step(tmp_path):
    # Iterative BOND with Monte-Carlo quantiles draws k samples per prompt of each new anchor (after
    # the swap at step 2) into its cache during step 3's rollout; a loss that then fails before the
    # weights change must not leave them (unpaid) in the checkpoint
    args = ["algo=bond", "algo.quantiles=mc", "algo.k=4", "algo.anchor_period=2", "train.steps=4"]
    args += ["train.eval_every=100", "train.batch_prompts=4"]
    clean = _trainer(tmp_path / "clean", *args)
    clean_summary = clean.fit()
    failing = _trainer(tmp_path / "fail", *args)
    _loss_fails_at(failing, 3)  # step 3's
    with pytest.raises(RuntimeError, match="out of memory"):
        failing.fit()
    assert failing.log.load_checkpoint()[1]["step"] == 2
    summary = _trainer(tmp_path / "fail", *args, "resume=true").fit()
    costs = [k for k in clean_summary if k.startswith(("cost/", "eval_cost/"))]
    assert costs and {k: summary[k] for k in costs} == {k: clean_summary[k] for k in costs}
    assert metrics_rows(tmp_path / "fail" / "metrics.jsonl") == metrics_rows(tmp_path / "clean" / "metrics.jsonl")


def _sigterm_in_step(trainer, at_step: int, times: int):
    """``trainer`` whose step that ends at ``at_step`` sends this process SIGTERM ``times`` times."""
    step = trainer.train_step

    def signalled():
        metrics = step()
        if trainer.step == at_step:
            for _ in range(times):
                os.kill(os.getpid(), signal.SIGTERM)
        return metrics

    trainer.train_step = signalled
    return trainer


def test_a_run_stopped_after_its_last_step_resumes_to_the_same_summary(tmp_path):
    """SIGTERM during the last step: the run stops with a checkpoint at ``train.steps``, and the resumed
    run only writes the summary, from the last line of metrics.jsonl. That summary must equal an
    uninterrupted run's (it carried the line's ``step`` key besides ``steps``)."""
    args = ["algo=reinforce", "train.steps=4", "train.eval_every=2", "threads=1"]
    clean_summary = _trainer(tmp_path / "clean", *args).fit()
    stopped = _sigterm_in_step(_trainer(tmp_path / "part", *args), 4, times=1)
    with pytest.raises(Interrupted):
        stopped.fit()
    summary = _trainer(tmp_path / "part", *args, "resume=true").fit()
    written = json.loads((tmp_path / "part" / "summary.json").read_text())
    untimed = lambda s: {k: v for k, v in s.items() if not k.startswith("time/")}  # noqa: E731
    assert untimed(summary) == untimed(written) == untimed(clean_summary)


@pytest.mark.parametrize(("every", "last"), [(2, 2), (0, None)], ids=["a periodic checkpoint", "no checkpoint yet"])
def test_a_second_signal_says_no_checkpoint_was_written_and_which_one_remains(tmp_path, every, last):
    """SIGTERM twice during a step stops without a checkpoint (:mod:`rlhf_zoo.signals`). The message and
    the exit code must say so: it claimed "SIGINT at step 3; checkpoint saved" with exit code 130 while
    the run directory held step 2's checkpoint, or none at all (found with ``kill -TERM`` twice)."""
    args = ["algo=reinforce", "train.steps=8", "train.eval_every=4", "threads=1", f"train.checkpoint_every={every}"]
    tr = _sigterm_in_step(_trainer(tmp_path / "r", *args), 3, times=2)
    with pytest.raises(Interrupted) as stopped:
        tr.fit()
    message = str(stopped.value)
    assert stopped.value.exit_code == 143 and message.startswith("SIGTERM"), message
    assert "without a checkpoint" in message and "checkpoint saved" not in message, message
    state = tmp_path / "r" / "checkpoint" / "state.pt"
    if last is None:
        assert not state.exists() and "none" in message, message
    else:
        assert torch.load(state, weights_only=False)["step"] == last and f"step {last}" in message, message
    assert "resume=true" in message


def test_a_second_signal_after_a_resume_names_the_checkpoint_it_resumed_from(tmp_path):
    """Resumed from step 2's checkpoint, then SIGTERM twice in step 4 (no checkpoint written since): the message
    names step 2's, which the run directory holds (it said it held none, and to start the run over)."""
    from tests.runtime.resume_helpers import interrupt_after

    args = ["algo=reinforce", "train.steps=8", "train.eval_every=4", "train.checkpoint_every=0"]
    interrupt_after(_trainer(tmp_path / "r", *args), 2)  # Ctrl-C: step 2's checkpoint
    tr = _sigterm_in_step(_trainer(tmp_path / "r", *args, "resume=true"), 4, times=2)
    with pytest.raises(Interrupted) as stopped:
        tr.fit()
    assert stopped.value.forced and stopped.value.last_checkpoint == 2, str(stopped.value)
    assert str(stopped.value).endswith(f"{tmp_path / 'r'} holds the one of step 2: add resume=true to continue from it")


class _FullDisk:
    """An appended file on a disk that fills: ``write`` writes half the text, then raises ENOSPC."""

    def __init__(self, f):
        self.f = f

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def write(self, text):
        import errno

        self.f.write(text[: len(text) // 2])
        self.f.flush()
        raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("where", ["checkpoint", "metrics"])
def test_a_full_disk_is_one_line(tmp_path, capsys, monkeypatch, where):
    """The disk fills during a periodic checkpoint (torch.save) or an appended line: one error line, exit
    code 2, and no torn line left. A full tmpfs printed four chained tracebacks (the failed checkpoint,
    then the failure path's second attempt at one), or one OSError traceback and half a line, which then
    stopped ``resume=true`` with a JSONDecodeError."""
    from pathlib import Path

    from rlhf_zoo.cli import main

    if where == "checkpoint":
        save, calls = torch.save, []

        def fails_the_second_time(*args, **kwargs):
            calls.append(1)
            if len(calls) >= 2:
                raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")
            return save(*args, **kwargs)

        monkeypatch.setattr(torch, "save", fails_the_second_time)
    else:
        opened, appends = Path.open, []

        def full_at_the_third_append(self, mode="r", *args, **kwargs):
            f = opened(self, mode, *args, **kwargs)
            if mode == "a":
                appends.append(self)
                if len(appends) >= 3:
                    return _FullDisk(f)
            return f

        monkeypatch.setattr(Path, "open", full_at_the_third_append)
    args = ["train", "algo=reinforce", "train.steps=6", "train.eval_every=2", "train.checkpoint_every=2"]
    code = main([*args, "train.progress=false", "threads=1", f"run_dir={tmp_path}/r"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "rlhf-zoo: error: cannot write" in err and str(tmp_path / "r") in err, err
    monkeypatch.undo()
    for name in ("metrics.jsonl", "samples.jsonl"):
        text = (tmp_path / "r" / name).read_text()
        assert text.endswith("\n") and all(json.loads(line) for line in text.splitlines()), name


def test_the_progress_bar_shows_the_reward_of_the_step_it_counts() -> None:
    """The bar's line after step k carries step k's reward (it showed step k-1's: the postfix was set
    after the update had already drawn the line)."""
    import io

    from tqdm import tqdm

    from rlhf_zoo.train import _advance

    out = io.StringIO()
    bar = tqdm(total=3, file=out, mininterval=0, miniters=1)
    for reward in (0.125, 0.5, 0.875):
        _advance(bar, {"train/reward_proxy": reward})
        line = out.getvalue().rsplit("\r", 1)[-1]
        assert f"reward={reward:.3f}" in line, line
    bar.close()


def test_a_checkpoint_is_written_every_checkpoint_every_steps_and_at_the_end(tmp_path):
    """5 steps with ``train.checkpoint_every=2``: checkpoints after steps 2 and 4, and the final one at 5 (a
    mutant that skipped the one before the last step lost that step to a kill)."""
    args = ["algo=reinforce", "train.steps=5", "train.checkpoint_every=2", "train.checkpoint_minutes=0"]
    tr = _trainer(tmp_path / "r", *args)
    saves = recorded(tr, "save")
    tr.fit()
    assert saves == [2, 4, 5]


def test_a_checkpoint_is_written_when_checkpoint_minutes_have_passed_since_the_last(tmp_path, monkeypatch):
    """``train.checkpoint_minutes=1`` with steps of 31 s (a fake clock): 62 s have passed after steps 2 and 4,
    so checkpoints then, and at the end. Caught: minutes read as hours (a kill lost up to 60 times the
    interval), and the clock not restarted by a checkpoint (one after every later step)."""
    from types import SimpleNamespace

    clock = {"now": 1000.0}
    fake = SimpleNamespace(monotonic=lambda: clock["now"], perf_counter=time.perf_counter)
    monkeypatch.setattr("rlhf_zoo.train.time", fake)
    args = ["algo=reinforce", "train.steps=5", "train.checkpoint_every=0", "train.checkpoint_minutes=1"]
    tr = _trainer(tmp_path / "r", *args)
    step = tr.train_step

    def slow_step():
        clock["now"] += 31.0
        return step()

    tr.train_step = slow_step
    saves = recorded(tr, "save")
    tr.fit()
    assert saves == [2, 4, 5]


def test_a_sigterm_mid_run_checkpoints_that_step_and_the_resumed_run_equals_an_uninterrupted_one(tmp_path):
    """In-process and fast (the subprocess test above is the end-to-end one): without periodic checkpoints,
    SIGTERM during step 3 stops after it with step 3's checkpoint (a stop that did not save lost the run),
    written once: the failure path wrote it a second time (Interrupted is an Exception), doubling the time a
    preempted job needs to stop."""
    args = ["algo=reinforce", "train.steps=6", "train.eval_every=2", "train.checkpoint_every=0"]
    _trainer(tmp_path / "full", *args).fit()
    tr = _sigterm_in_step(_trainer(tmp_path / "part", *args), 3, times=1)
    saves = recorded(tr, "save")
    with pytest.raises(Interrupted) as stopped:
        tr.fit()
    assert stopped.value.exit_code == 143 and not stopped.value.forced
    assert saves == [3]
    assert tr.log.load_checkpoint()[1]["step"] == 3
    _trainer(tmp_path / "part", *args, "resume=true").fit()
    assert metrics_rows(tmp_path / "part" / "metrics.jsonl") == metrics_rows(tmp_path / "full" / "metrics.jsonl")


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt], ids=["a failure", "a KeyboardInterrupt"])
def test_an_interruption_between_two_updates_of_a_later_step_keeps_the_last_checkpoint(tmp_path, error):
    """PPO-lite updates the weights 4 times a step (2 epochs × 2 minibatches). An error or a KeyboardInterrupt
    raised from step 2's second loss, after its first update, must not checkpoint those half-updated weights
    as step 1 (the test above it fails in step 1, where no checkpoint is written anyway): step 1's periodic
    checkpoint stays, and the resumed run equals an uninterrupted one."""
    args = ["algo=ppo_lite", "train.steps=4", "train.eval_every=2", "train.checkpoint_every=1"]
    args += ["algo.epochs=2", "algo.minibatches=2", "train.batch_prompts=4"]
    _trainer(tmp_path / "full", *args).fit()
    tr = _trainer(tmp_path / "part", *args)
    _loss_fails_at(tr, 6, error)  # step 2's second of four
    with pytest.raises(Interrupted if error is KeyboardInterrupt else RuntimeError) as stopped:
        tr.fit()
    if error is KeyboardInterrupt:
        assert stopped.value.forced and stopped.value.last_checkpoint == 1, str(stopped.value)
    assert tr.log.load_checkpoint()[1]["step"] == 1
    _trainer(tmp_path / "part", *args, "resume=true").fit()
    assert metrics_rows(tmp_path / "part" / "metrics.jsonl") == metrics_rows(tmp_path / "full" / "metrics.jsonl")


def test_each_evaluation_line_holds_the_mean_training_metrics_of_the_steps_since_the_one_before(tmp_path):
    """The ``train/*`` and loss metrics of an evaluation line average the steps since the previous evaluation
    (not every step so far, and not none), as the steps returned them."""
    tr = _trainer(tmp_path / "r", "algo=reinforce", "train.steps=6", "train.eval_every=2")
    step, per_step = tr.train_step, {}

    def recorded():
        m = step()
        per_step[tr.step] = m
        return m

    tr.train_step = recorded
    tr.fit()
    lines = tr.log.read_metrics()
    assert [line["step"] for line in lines] == [0, 2, 4, 6]
    for before, line in zip(lines, lines[1:], strict=False):
        steps = range(before["step"] + 1, line["step"] + 1)
        for key in ("train/reward_proxy", "loss/total"):
            assert line[key] == pytest.approx(sum(per_step[s][key] for s in steps) / len(steps), rel=1e-12), key


def test_the_policy_is_evaluated_in_eval_mode_and_trains_in_train_mode(tmp_path):
    """An evaluation puts the policy in eval mode (no dropout), and the steps after it back in train mode: left
    in eval mode, a policy with dropout trained without it after the first evaluation. Seen by the proxy reward:
    called by the step-0 evaluation, steps 1 and 2, then the step-2 evaluation."""
    tr = _trainer(tmp_path / "r", "algo=reinforce", "train.steps=2", "train.eval_every=2")
    score, modes = tr.task.proxy.score, []

    def watched(prompts, completions):
        modes.append(tr.policy.training)
        return score(prompts, completions)

    tr.task.proxy.score = watched
    tr.fit()
    assert modes == [False, True, True, False]


def test_the_optimiser_steps_with_gradients_clipped_to_grad_clip(tmp_path):
    """``train.grad_clip`` bounds the norm of the gradients the optimiser applies; ``train/grad_norm`` is the
    norm before clipping. A tiny bound makes every step clip."""
    clip = 1e-4
    tr = _trainer(tmp_path / "r", "algo=reinforce", "train.steps=3", f"train.grad_clip={clip}")
    tr.begin()
    applied = []

    def measured(opt, args, kwargs):
        grads = [p.grad for p in tr.policy.trainable_parameters() if p.grad is not None]
        applied.append(float(torch.linalg.vector_norm(torch.cat([g.reshape(-1) for g in grads]))))

    tr.opt.register_step_pre_hook(measured)
    norms = [tr.train_step()["train/grad_norm"] for _ in range(3)]
    tr.end()
    assert all(n > 100 * clip for n in norms), norms
    assert applied == pytest.approx([clip] * 3, rel=1e-3)


def test_weight_decay_shrinks_the_weights_by_lr_times_weight_decay_each_step(tmp_path):
    """AdamW decays the weights by ``train.lr × train.weight_decay`` beside its update: after one step of a run
    with ``train.weight_decay=0.5``, the weights are those of a run without (the default, 0) less that share of
    the initial weights. (AdamW's own default decays by 0.01: the setting unused, every run decayed.)"""
    lr, decay = 0.1, 0.5
    args = ["algo=reinforce", "train.steps=1", f"train.lr={lr}", "train.eval_every=100"]
    plain = _trainer(tmp_path / "plain", *args)
    decayed = _trainer(tmp_path / "decayed", *args, f"train.weight_decay={decay}")
    before = [p.detach().clone() for p in plain.policy.trainable_parameters()]
    plain.fit()
    decayed.fit()
    after = zip(before, plain.policy.trainable_parameters(), decayed.policy.trainable_parameters(), strict=True)
    for p0, a, b in after:
        assert torch.allclose(a.detach() - b.detach(), lr * decay * p0, atol=1e-6)
    assert any(p0.abs().max() > 0.1 for p0 in before)  # a difference to see


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_the_learning_rate_warms_up_then_decays_to_zero_at_the_last_step_and_resumes_where_it_was(tmp_path, schedule):
    """``train.warmup_steps=2`` then ``train.lr_schedule`` decaying to 0 at ``train.steps=10``: the warm-up
    rises in equal steps to ``train.lr`` (its first step already learns), linear decay falls by equal steps
    to reach 0 one step after the last, cosine falls as half a cosine period (symmetric about its middle, half
    the rate there); a run interrupted after step 5 resumes with the rates of an uninterrupted run."""
    from tests.runtime.resume_helpers import interrupt_after

    lr, warmup, steps = 0.01, 2, 10
    args = ["algo=reinforce", f"train.steps={steps}", f"train.lr={lr}", f"train.lr_schedule={schedule}"]
    args += [f"train.warmup_steps={warmup}", "train.eval_every=5"]

    def rates(tr):
        seen = []
        tr.opt.register_step_pre_hook(lambda opt, args, kwargs: seen.append(opt.param_groups[0]["lr"]))
        return seen

    full = _trainer(tmp_path / "full", *args)
    lrs = rates(full)
    full.fit()
    assert len(lrs) == steps
    assert lrs[:warmup] == pytest.approx([lr * (i + 1) / warmup for i in range(warmup)])
    decay = lrs[warmup:]  # n = 8 rates from lr towards 0
    n = len(decay)
    assert decay[0] == pytest.approx(lr)
    if schedule == "linear":
        assert [a - b for a, b in zip(decay, [*decay[1:], 0.0], strict=True)] == pytest.approx([lr / n] * n)
    else:
        assert decay[n // 2] == pytest.approx(lr / 2)
        assert [decay[j] + decay[n - j] for j in range(1, n)] == pytest.approx([lr] * (n - 1))
        # the shape itself: a linear decay is symmetric about its middle too (0.75·lr here, the cosine 0.854·lr)
        assert decay[n // 4] == pytest.approx(lr * (1 + math.cos(math.pi / 4)) / 2)
    part = _trainer(tmp_path / "part", *args)
    interrupt_after(part, 5)
    resumed = _trainer(tmp_path / "part", *args, "resume=true")
    later = rates(resumed)
    resumed.fit()
    assert later == pytest.approx(lrs[5:], rel=1e-12)


@pytest.mark.parametrize("warmup", [0, 3])
def test_the_constant_schedule_keeps_the_learning_rate_after_its_warm_up(tmp_path, warmup):
    """``train.lr_schedule=constant`` (the sentiment task's) steps at ``train.lr`` from the first step (without
    warm-up) or from the end of the warm-up to the last step: the decaying schedules' tests passed with a
    constant schedule that decayed as well."""
    lr, steps = 0.01, 6
    args = ["algo=reinforce", f"train.steps={steps}", f"train.lr={lr}", f"train.warmup_steps={warmup}"]
    args.append("train.lr_schedule=constant")
    tr = _trainer(tmp_path / "r", *args)
    seen = []
    tr.opt.register_step_pre_hook(lambda opt, args, kwargs: seen.append(opt.param_groups[0]["lr"]))
    tr.fit()
    assert seen == pytest.approx([lr * (i + 1) / warmup for i in range(warmup)] + [lr] * (steps - warmup))


def test_the_signal_handlers_of_before_the_run_come_back_after_it(tmp_path):
    """While a run trains, SIGINT and SIGTERM only ask it to stop; once it has ended (finished or failed), the
    handlers from before are back: Ctrl-C in the program that ran it (a sweep between points, a notebook)
    must interrupt again, not be swallowed."""
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    _trainer(tmp_path / "done", "algo=reinforce", "train.steps=2").fit()
    assert {s: signal.getsignal(s) for s in before} == before
    failing = _trainer(tmp_path / "failed", "algo=reinforce", "train.steps=4")
    failing.task.proxy = FailingReward(failing.task.proxy, fail_at=3)
    with pytest.raises(RewardError):
        failing.fit()
    assert {s: signal.getsignal(s) for s in before} == before


def test_a_diverged_loss_is_one_error_line_naming_the_step(tmp_path, capsys):
    """train.lr=1e308 makes the loss NaN at step 2: it was a FloatingPointError traceback, for a single run and for
    a sweep's point (which ended the sweep with it)."""
    from rlhf_zoo.cli import main

    run = ["algo=bond", "task=exact", "train.lr=1e308", "train.steps=3", "train.progress=false"]
    assert main(["train", *run, f"run_dir={tmp_path}/run"]) == 2
    err = capsys.readouterr().err
    assert "training diverged: the loss is nan at step 2 (train.lr=1e+308)" in err, err
    assert len(err.strip().splitlines()) == 1, err
    # not "add resume=true to continue": the resumed run, with the same train.lr, would diverge again
    assert err.strip().endswith("a smaller train.lr usually helps"), err


def test_an_infinite_loss_is_a_divergence_too(tmp_path):
    """A loss of +inf (its gradient may still be finite, so the optimiser would step on) stops the run as NaN
    does, naming the step."""
    from rlhf_zoo.train import Diverged

    tr = _trainer(tmp_path / "r", "algo=reinforce", "train.steps=3")
    loss = tr.algo.loss

    def infinite(batch):
        total, m = loss(batch)
        return total + float("inf"), m

    tr.algo.loss = infinite
    with pytest.raises(Diverged, match="^training diverged: the loss is inf at step 1 "):
        tr.fit()
