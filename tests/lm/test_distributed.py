"""A real 2-process group on CPU (gloo, through accelerate) on the tiny language model: identical
weights in both processes, gathered metrics, the result of one process with the same global batch,
and a 1-process checkpoint resumed by 2 processes."""

import json

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
