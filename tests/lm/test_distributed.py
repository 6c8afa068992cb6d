"""A real 2-process group on CPU (gloo, through accelerate) on the tiny language model: identical
weights in both processes, gathered metrics, the result of one process with the same global batch,
a 1-process checkpoint resumed by 2 processes, and a process killed mid-run: the other ends with one line
naming the checkpoint that resume=true continues from."""

import json
import re

import pytest
import torch

from tests.runtime.distributed_helpers import (
    assert_records_close,
    interrupted_one_process,
    max_abs_diff,
    one_process,
    records,
    torchrun,
)

RUNS = {
    "jbond": ["algo=jbond"],
    # Monte-Carlo quantiles against the base cache (split across processes and exchanged)
    "bond": ["algo=bond", "algo.k=4"],
}


@pytest.mark.slow
def test_two_processes_equal_one_process_on_a_language_model(lm_args, tmp_path):
    common = [a for a in lm_args if not a.startswith("run_dir")] + ["train.steps=3", "train.batch_prompts=4"]
    two = {name: tmp_path / "two" / name for name in RUNS}
    # J-BOND stopped after 1 step in one process (the held-out reference completions are drawn and
    # checkpointed by then), then resumed by the 2 processes.
    resumed = [*common, *RUNS["jbond"], f"run_dir={tmp_path / 'resumed'}"]
    interrupted_one_process(resumed, stop_after=1)
    out = torchrun(
        [*([*common, *args, f"run_dir={two[name]}"] for name, args in RUNS.items()), [*resumed, "resume=true"]]
    )
    assert "MULTI_CPU" in out
    one = {}
    for name, args in RUNS.items():
        w0 = torch.load(two[name] / "weights_rank0.pt")
        assert max_abs_diff(w0, torch.load(two[name] / "weights_rank1.pt")) == 0.0
        summary = json.loads((two[name] / "summary.json").read_text())
        assert summary["processes"] == 2
        rows = [json.loads(x) for x in (two[name] / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in rows] == [0, 3]  # one line per evaluation, written once
        # One process, same global batch: the same completions and costs; generation and log-probs run
        # on differently padded batches in the two layouts, so float32 values agree to rounding, not bit
        # for bit (measured: weights within 3e-6, metrics within 2e-6; Adam can magnify a rounding
        # difference in a near-zero gradient up to a fraction of lr = 1e-3, hence the weights' bound).
        one[name] = one_process([*common, *args, f"run_dir={tmp_path / 'one' / name}"])
        assert max_abs_diff(one[name], w0) <= 1e-4, name
        assert_records_close(records(tmp_path / "one" / name), records(two[name]), atol=1e-4)
    # Each process sampled its half of every step's 4 prompts (1 sample each for J-BOND) plus 2 anchor
    # samples per prompt: the summed cost covers the whole global batch.
    assert json.loads((two["jbond"] / "summary.json").read_text())["cost/completions"] == 3 * 4 * (1 + 2)
    assert max_abs_diff(one["jbond"], torch.load(tmp_path / "resumed" / "weights_rank0.pt")) <= 1e-4
    assert_records_close(records(tmp_path / "one" / "jbond"), records(tmp_path / "resumed"), atol=1e-4)


@pytest.mark.slow
def test_with_dropout_a_two_process_run_resumes_as_it_would_have_run(lm_args, tmp_path):
    """LoRA dropout draws from each process's global generator, and the two processes' generators do not
    stay alike (their shares differ in shape). The checkpoint holds every process's generator by rank and
    each resumed process takes its own: it held the main process's only, so the resumed rank 1 dropped
    other units than the uninterrupted one and the weights went apart."""
    common = [a for a in lm_args if not a.startswith("run_dir")]
    common += ["algo=jbond", "model.lora_dropout=0.3", "train.steps=3", "train.eval_every=1"]
    full, part = tmp_path / "full", tmp_path / "part"
    torchrun(
        [
            [*common, f"run_dir={full}"],
            [*common, f"run_dir={part}", "worker.stop_after=2"],
            [*common, f"run_dir={part}", "resume=true"],
        ]
    )
    for rank in (0, 1):
        w_full, w_part = torch.load(full / f"weights_rank{rank}.pt"), torch.load(part / f"weights_rank{rank}.pt")
        assert max_abs_diff(w_full, w_part) == 0.0, rank
    assert records(full) == records(part)
    state = torch.load(part / "checkpoint" / "state.pt", weights_only=False)
    assert sorted(state["torch_rng"]) == [0, 1]  # every process's generator, by rank


# A proxy reward that kills its own process (SIGKILL, as the OOM killer does) in the process of rank
# $KILL_RANK once $KILL_ONCE_EXISTS exists (the run's first checkpoint): in the step after it, every time.
KILLING_REWARD = """
import os, signal

def score(prompts, completions):
    if os.environ.get("RANK") == os.environ.get("KILL_RANK") and os.path.exists(os.environ["KILL_ONCE_EXISTS"]):
        os.kill(os.getpid(), signal.SIGKILL)
    return [float(len(c.split())) for c in completions]
"""


@pytest.mark.slow
def test_a_killed_process_leaves_the_other_one_line_naming_the_checkpoint_to_resume_from(lm_args, tmp_path):
    """Rank 0 (the process that writes the run directory) is killed in step 3, after the checkpoint of step 2:
    the other process's next collective fails. It printed gloo's traceback ("RuntimeError: [.../pair.cc:553]
    Connection closed by peer ... GLHF!"); it ends with one line naming the lost process and the checkpoint,
    and the run resumed with resume=true finishes."""
    import os
    import subprocess
    import sys

    from tests.runtime.distributed_helpers import ROOT

    reward = tmp_path / "killing_reward.py"
    reward.write_text(KILLING_REWARD)
    run = tmp_path / "run"
    args = [a for a in lm_args if not a.startswith("run_dir")]
    args += ["algo=reinforce", "train.steps=6", "train.checkpoint_every=2", f"task.proxy=py:{reward}:score"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "rlhf_zoo"]
    cmd += ["train", *args, "device=cpu", f"run_dir={run}"]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    kill = {"KILL_RANK": "0", "KILL_ONCE_EXISTS": str(run / "checkpoint" / "state.pt")}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**env, **kill})
    assert out.returncode != 0
    line = (
        "rlhf-zoo: error: the other process of this run (rank 0) stopped at step 2 (killed, out of memory?, or failed "
        "with its own error above), so this one (rank 1) stops too ("
    )
    assert out.stderr.count(line) == 1, out.stderr[-4000:]
    assert f"{run} holds the checkpoint of step 2: add resume=true to continue from it\n" in out.stderr
    assert "GLHF" not in out.stderr and "[rank1]" not in out.stderr, out.stderr[-4000:]  # no traceback of gloo's
    # torchrun's summary: rank 1 exited with 1 (torchrun's SIGTERM to it, once rank 0 had ended, ended it with -15
    # while it printed that line or exited)
    assert re.search(r"rank +: 1 \(local_rank: 1\)\n +exitcode +: 1 \(pid", out.stderr), out.stderr[-4000:]
    assert torch.load(run / "checkpoint" / "state.pt", weights_only=False)["step"] == 2
    resumed = subprocess.run([*cmd, "resume=true"], capture_output=True, text=True, timeout=300, env=env)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert f"resuming {run} from step 2" in resumed.stderr
    assert json.loads((run / "summary.json").read_text())["steps"] == 6
