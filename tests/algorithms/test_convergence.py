"""Convergence on the testbed with the default settings (the targets of benchmarks/convergence.py)."""

import pytest

from benchmarks.convergence import checks, train_exact


@pytest.mark.slow
def test_every_objective_meets_its_exact_target(tmp_path):
    results = {}
    for label, args in [
        ("bond n=4 beta=0.5 (exact quantiles)", ["algo=bond"]),
        ("reinforce beta_RL=0.5", ["algo=reinforce"]),
        ("ppo_lite beta_RL=0.5", ["algo=ppo_lite"]),
        ("jbond gamma=0", ["algo=jbond"]),
        ("jbond gamma=1", ["algo=jbond", "algo.gamma=1.0"]),
    ]:
        first, summary, _ = train_exact(args, tmp_path)
        results[label] = summary
        outcome = checks(label, first, summary, results)
        assert outcome, label
        failed = [d for d, ok in outcome if not ok]
        assert not failed, (label, failed)


def test_the_script_refuses_arguments_it_would_ignore(monkeypatch, capsys):
    """It takes no options: ``python benchmarks/convergence.py seed=1`` trained seed 0 and printed its table
    as if the argument had been applied."""
    import sys

    import benchmarks.convergence as convergence

    trained = []
    monkeypatch.setattr(convergence, "train_exact", lambda *a, **k: trained.append(a) or pytest.fail("trained"))
    monkeypatch.setattr(sys, "argv", ["benchmarks/convergence.py", "seed=1"])
    assert convergence.main() == 2
    assert not trained and "seed=1" in capsys.readouterr().err
