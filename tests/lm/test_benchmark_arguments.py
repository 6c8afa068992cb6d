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
