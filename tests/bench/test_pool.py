"""Best-of-N from one pool in the bench: one pool point per seed, its record read as one Best-of-N
evaluation per n, and the page, plots and claims (e1, e2) reading it."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from rlhf_zoo.bench.claims import check_all
from rlhf_zoo.bench.records import FORMAT, expand_pool, group_records, load_records, read_record
from rlhf_zoo.bench.render import render_suite
from rlhf_zoo.bench.runner import point_dir, run_suite
from rlhf_zoo.bench.suites import BEST_OF_N, REINFORCE, Suite, expand
from rlhf_zoo.evaluate_pool import pool_curve, pool_summary
from tests.bench.helpers import META, synth_record, write_records
from tests.evaluation.test_evaluate_pool import _pool


def _suite(**kw) -> Suite:
    return Suite(
        name=kw.pop("name", "poolsuite"),
        description="test",
        task_args=("task=sentiment",),
        sweeps=(BEST_OF_N.over(1, 2, 4, 8), REINFORCE.over(0.1)),
        seeds=(0, 1),
        budget="seconds",
        bon_pool=kw.pop("bon_pool", 8),
        **kw,
    )


def test_a_pool_suite_has_one_best_of_n_point_per_seed():
    points = expand(_suite())
    pools = [p for p in points if p.pool]
    assert [p.id for p in pools] == ["best_of_n-pool8-s0", "best_of_n-pool8-s1"]
    (m,) = pools[0].memberships
    assert m["values"] == [1, 2, 4, 8] and m["pool"] == 8 and m["sweep"] == "best_of_n"
    assert "algo=best_of_n" in pools[0].args and not any(a.startswith("algo.n=") for a in pools[0].args)
    assert sum(1 for p in points if not p.pool) == 2  # the trained points are unchanged
    with pytest.raises(ValueError, match="bon_pool"):
        _suite(bon_pool=4)  # n = 8 cannot come from a pool of 4


def test_a_pool_point_takes_the_sweeps_fixed_overrides_and_the_command_lines():
    """``bench suite=quick model.name=tiny`` draws the pool from the model the trained points train, and a suite
    file's Best-of-N sweep with fixed overrides draws it with them: after the task's, before the seed."""
    suite = _suite()
    fixed = replace(suite, sweeps=(replace(suite.sweeps[0], fixed=("train.eval_samples=3",)), *suite.sweeps[1:]))
    (pool,) = [p for p in expand(fixed, seeds=[0], extra=["model.name=tiny"]) if p.pool]
    assert pool.args == ("task=sentiment", "algo=best_of_n", "train.eval_samples=3", "model.name=tiny", "seed=0")


def _pool_record(seed: int, m: int = 8, values=(1, 2, 4, 8)) -> dict:
    return {
        "format": FORMAT,
        "suite": "poolsuite",
        "id": f"best_of_n-pool{m}-s{seed}",
        "label": "pool",
        "seed": seed,
        "args": ["algo=best_of_n", f"seed={seed}"],
        "memberships": [
            {
                "sweep": "best_of_n",
                "objective": "Best-of-N",
                "knob": "algo.n",
                "knob_label": "n",
                "value": m,
                "values": list(values),
                "pool": m,
                "frontier": "sweep",
                "order": 0,
            }
        ],
        "bench_command": "rlhf-zoo bench suite=poolsuite",
        "meta": META,
        "summary": {"kl/estimator": "bon_pool"},
        "pool": pool_summary(pool_curve(_pool(m=m, seed=seed)), m, 5),
        "metrics": [],
        "wall_s": 3.0,
        "finished": "2026-01-02T03:09:00+0000",
    }


def test_a_pool_record_reads_as_one_best_of_n_evaluation_per_n():
    rec = _pool_record(0)
    got = expand_pool(rec)
    assert [r["memberships"][0]["value"] for r in got] == [1, 2, 4, 8]
    curve = rec["pool"]["curve"]
    for r in got:
        n = r["memberships"][0]["value"]
        assert r["summary"]["reward/gold"] == curve[str(n)]["reward/gold"]
        assert r["summary"]["kl/estimator"] == "bon_pool"
    assert [r["wall_s"] for r in got] == [3.0, None, None, None]  # the pool's time, counted once
    plain = synth_record("reinforce", 0.1, 0, {"reward/proxy": 0.1, "kl/exact": 0.2})
    assert expand_pool(plain) == [plain]


def test_the_page_and_the_claims_read_the_pool(tmp_path):
    recs = [_pool_record(s) for s in (0, 1, 2)]
    recs += [
        synth_record("reinforce", 0.1, s, {"reward/proxy": 0.3, "reward/gold": 0.2, "kl/exact": 1.0}, order=1)
        for s in (0, 1, 2)
    ]
    suite_dir = tmp_path / "poolsuite"
    write_records(suite_dir, recs)
    groups = group_records(load_records(suite_dir))
    assert sorted(groups["best_of_n"]) == [1, 2, 4, 8] and len(groups["best_of_n"][8].records) == 3
    checks = check_all(groups, exact=False)
    assert checks["e2"].status == "reproduced" and "pool" in checks["e2"].numbers
    assert "pool" in checks["e1"].numbers and checks["e1"].status != "not run"
    text = render_suite("poolsuite", tmp_path, tmp_path / "docs").read_text()
    assert "one pool of M reference samples" in text
    assert re.search(r"\| runs +\| 6 \(2 configurations × 3 seed\(s\)\)", text)  # a pool is one run, not one per n
    assert (tmp_path / "docs" / "poolsuite" / "reward_vs_kl.png").is_file()
    bon_rows = [line for line in text.splitlines() if line.startswith("| 8 ") or line.startswith("| 2 ")]
    assert bon_rows, "the Best-of-N table has a row per n"


def test_the_runner_draws_the_pool_on_the_tiny_model_and_never_redraws_it(prompts_file, tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    pytest.importorskip("peft")
    pytest.importorskip("vaderSentiment")
    import rlhf_zoo.bench.runner as runner

    suite = Suite(
        name="tinypool",
        description="test",
        task_args=(
            "task=sentiment",
            "model.name=tiny",
            f"task.prompts={prompts_file}",
            "task.gold=null",
            "task.eval_fraction=0.25",
            "model.max_new_tokens=5",
            "train.eval_prompts=3",
            "threads=1",
        ),
        sweeps=(BEST_OF_N.over(1, 2, 4),),
        seeds=(0,),
        budget="seconds",
        bon_pool=4,
    )
    report = run_suite(suite, tmp_path, progress=False)
    (p,) = expand(suite)
    assert report.ran == [p.id]
    rec = read_record(point_dir(tmp_path, p))
    assert rec["pool"]["pool_size"] == 4 and rec["pool"]["prompts"] == 3
    assert sorted(rec["pool"]["curve"], key=int) == ["1", "2", "3", "4"]
    for row in rec["pool"]["curve"].values():
        assert row["kl/exact"] <= row["bon/kl_bound"] + 1e-12
    spent = rec["pool"]["costs"]  # 3 prompts × 4 samples, scored once by the proxy (no gold)
    assert spent["cost/completions"] == 12 and spent["cost/reward_calls"] == 12
    assert spent["cost/tokens"] == round(12 * rec["pool"]["curve"]["1"]["length/mean"]) > 0  # Best-of-1: pool mean
    assert spent["time/generate_s"] > 0 and "time/reward_s" in spent  # scoring 12 texts may round to 0.0 s
    # the pool's meta names the libraries that drew it (the page's versions row)
    import torch
    import transformers

    versions = rec["meta"]["versions"]
    assert versions["torch"] == torch.__version__ and versions["transformers"] == transformers.__version__
    calls = []
    monkeypatch.setattr(runner, "run_pool_point", lambda *a, **k: calls.append(a))
    assert run_suite(suite, tmp_path, progress=False).skipped == [p.id] and calls == []
    text = render_suite("tinypool", tmp_path, tmp_path / "docs").read_text()
    assert "Best-of-N" in text


def test_a_pool_record_in_the_records_folder_reads_as_the_full_one(tmp_path):
    from rlhf_zoo.bench.records import read_point_record, write_point_record

    rec = _pool_record(0, m=16, values=(1, 2, 4, 16))
    path = write_point_record(tmp_path, rec)
    assert path == tmp_path / "poolsuite" / "best_of_n-pool16-s0.json" and path.stat().st_size < 5000
    back = read_point_record(path)
    assert sorted(back["pool"]["curve"], key=int) == [str(n) for n in range(1, 17)]  # every n ≤ M is kept
    for mine, theirs in zip(expand_pool(back), expand_pool(rec), strict=True):
        assert mine["id"] == theirs["id"] and mine["memberships"] == theirs["memberships"]
        assert mine["summary"].keys() == theirs["summary"].keys()
        for k, v in theirs["summary"].items():
            assert mine["summary"][k] == (pytest.approx(v, rel=1e-5) if isinstance(v, float) else v), k


def test_a_larger_pool_replaces_the_smaller_pools_record_of_its_seed(tmp_path, monkeypatch):
    """``bon_pool`` 4 → 8: the pool of 4 (``best_of_n-pool4-s0``) stayed beside the new one, both read as
    Best-of-1, 2 and 4 of seed 0, and the page refused ("... are both seed 0"). A pool's arguments do not hold
    its size, so the old pool must not pass for the new one's run either: it is replaced, and the new one drawn."""
    import rlhf_zoo.bench.runner as runner
    from rlhf_zoo.bench.records import record_path, write_point_record

    records = tmp_path / "records"
    suite = replace(_suite(bon_pool=8), sweeps=(BEST_OF_N.over(1, 2, 4, 8),), seeds=(0,))
    (point,) = expand(suite)
    write_point_record(records, {**_pool_record(0, m=4, values=(1, 2, 4)), "args": list(point.args)})
    drawn = []
    monkeypatch.setattr(runner, "run_pool_point", lambda p, *a, **k: drawn.append(p.id))
    report = run_suite(suite, tmp_path, progress=False, validate=False, records=records)
    assert drawn == [point.id] == ["best_of_n-pool8-s0"] and report.redone == [point.id] and report.renamed == []
    assert not record_path(records, "poolsuite", "best_of_n-pool4-s0").exists()
