"""benchmarks/throughput.py and benchmarks/trl_agreement.py refuse bad arguments before they spend minutes
(throughput: every objective is measured before TRL; agreement: every run of ours before TRL's)."""

import pytest

import benchmarks.throughput as throughput
import benchmarks.trl_agreement as agreement
from rlhf_zoo.errors import UserError

TRL_REFUSES = [["train.lr_schedule=cosine"], ["model.top_p=0.9"]]


@pytest.mark.parametrize("bad", TRL_REFUSES)
def test_throughput_refuses_a_config_trl_cannot_run_before_measuring(bad, monkeypatch):
    measured = []
    monkeypatch.setattr(throughput, "profile_rows", lambda *a, **k: measured.append(a) or [{}])
    monkeypatch.setattr(throughput, "run_in_subprocess", lambda *a, **k: measured.append(a) or {})
    with pytest.raises(UserError):
        throughput.main(["algos=reinforce", "model.name=tiny", *bad])
    assert not measured


@pytest.mark.parametrize("bad", [["seeds=0"], ["seeds="], ["model.finetune=full"], *TRL_REFUSES])
def test_agreement_refuses_bad_arguments_before_training(bad, monkeypatch):
    """One seed has no sd and no Welch interval (the table crashed after every run); full fine-tuning's
    weights cannot load into our policy; a config TRL's RLOO cannot match: each failed only once our runs
    had finished."""
    ran = []
    monkeypatch.setattr(agreement.subprocess, "run", lambda *a, **k: ran.append(a))
    with pytest.raises(UserError):
        agreement.main(["model.name=tiny", "steps=1", *bad])
    assert not ran


@pytest.mark.parametrize("out", ["/proc/no/a.json", "{tmp}"])
def test_agreement_refuses_an_out_it_cannot_write_before_training(out, monkeypatch, tmp_path):
    """The JSON file was opened only after every run of both sides: a traceback then, the figures lost."""
    ran = []
    monkeypatch.setattr(agreement.subprocess, "run", lambda *a, **k: ran.append(a))
    with pytest.raises(UserError, match="trl_agreement: out="):
        agreement.main(["model.name=tiny", "steps=1", f"out={out.replace('{tmp}', str(tmp_path))}"])
    assert not ran


def test_throughput_verdict_names_the_k_both_sides_ran(monkeypatch, capsys):
    """``algo.samples=4`` runs our reinforce and TRL's RLOO with k = 4: the ratio's line must not say k=2."""
    keys = ["step_s", "generate_s", "reward_s", "logprobs_s", "update_s", "other_s", "completions_per_step"]
    row = {k: 1.0 for k in keys} | {"completions_per_s": 2.0, "peak_memory_gb": 1.0, "mfu_update": 0.5}
    row |= {"device": "cpu", "dtype": "float32", "threads": 1, "peak_flops": 1e9, "peak_flops_source": "test"}
    monkeypatch.setattr(throughput, "profile_rows", lambda algos, *a: [{**row, "algo": algos[0]}])
    monkeypatch.setattr(throughput, "run_in_subprocess", lambda *a: {**row, "algo": "trl", "completions_per_s": 1.0})
    assert throughput.main(["algos=reinforce", "model.name=tiny", "algo.samples=4"]) == 0
    verdict = [line for line in capsys.readouterr().out.splitlines() if "TRL RLOO" in line]
    assert verdict and "k=4" in verdict[0] and "k=2" not in verdict[0], verdict


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        # each was written (or failed: a traceback) only after every objective and TRL had been measured
        (["out=/proc/no/t.json"], "throughput: out=/proc/no/t.json: "),
        (["md={tmp}"], "throughput: md={tmp} is a directory"),
        (["rows={tmp}/f"], "rows={tmp}/f is a file"),
        # an IndexError traceback after an empty table
        (["algos=", "trl=false"], "throughput: algos lists nothing (algos=)"),
    ],
)
def test_throughput_refuses_an_output_it_cannot_write_before_measuring(bad, needle, monkeypatch, tmp_path):
    measured = []
    monkeypatch.setattr(throughput, "profile_rows", lambda *a, **k: measured.append(a) or [{}])
    monkeypatch.setattr(throughput, "run_in_subprocess", lambda *a, **k: measured.append(a) or {})
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError) as e:
        throughput.main(["algos=reinforce", "model.name=tiny", *(b.replace("{tmp}", str(tmp_path)) for b in bad)])
    assert needle.replace("{tmp}", str(tmp_path)) in str(e.value) and not measured


def test_throughput_names_itself_once_in_an_error_line():
    """``steps=x`` printed "throughput: throughput: steps must be an integer"."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    script = [sys.executable, str(root / "benchmarks" / "throughput.py"), "steps=x"]
    done = subprocess.run(script, capture_output=True, text=True, env=env)
    assert done.returncode == 2 and done.stderr == "throughput: steps must be an integer, got 'x'\n", done.stderr
