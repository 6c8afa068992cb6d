"""``rlhf-zoo compare``: finished runs side by side, seeds pooled, through the command line."""

import csv
import json

import pytest

from rlhf_zoo.cli import main

COMMON = ["task=exact", "train.steps=6", "train.eval_every=3", "train.progress=false"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for name, args in {
        "a0": ["algo=jbond", "seed=0"],
        "a1": ["algo=jbond", "seed=1"],
        "g0": ["algo=jbond", "seed=0", "algo.gamma=1.0"],
        "r0": ["algo=reinforce", "seed=0"],
    }.items():
        assert main(["train", *args, *COMMON, f"run_dir={root}/{name}"]) == 0
    return root


def _summary(path, key):
    return json.loads((path / "summary.json").read_text())[key]


def test_compare_pools_seeds_and_names_what_differs(runs, tmp_path, capsys):
    capsys.readouterr()
    assert main(["compare", str(runs), f"out={tmp_path}/cmp"]) == 0
    printed = capsys.readouterr().out
    rows = {r["configuration"]: r for r in csv.DictReader((tmp_path / "cmp" / "compare.csv").open())}
    assert set(rows) == {"jbond algo.gamma=0.0", "jbond algo.gamma=1.0", "reinforce"}
    pooled = rows["jbond algo.gamma=0.0"]
    assert pooled["seeds"] == "2"
    expected = (_summary(runs / "a0", "kl/exact") + _summary(runs / "a1", "kl/exact")) / 2
    assert float(pooled["kl/exact mean"]) == pytest.approx(expected, rel=1e-12)
    assert float(pooled["kl/exact ci95"]) > 0  # two seeds that differ
    single = rows["reinforce"]
    assert float(single["reward/proxy mean"]) == pytest.approx(_summary(runs / "r0", "reward/proxy"), rel=1e-12)
    assert single["reward/proxy ci95"] == ""  # one seed: no interval
    assert "| jbond algo.gamma=1.0" in printed
    for png in ("reward_vs_kl.png", "gold_vs_proxy.png"):
        assert (tmp_path / "cmp" / png).stat().st_size > 0


def test_compare_without_runs_is_one_line(tmp_path, capsys):
    assert main(["compare", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no finished run" in err and len(err.strip().splitlines()) == 1


def test_compare_refuses_the_same_seed_of_a_configuration_twice(runs, tmp_path, capsys):
    """A copy of a run (the same configuration and seed) is not another seed: pooled, seed 0 would count
    twice and narrow the interval (and the plots, one record per seed, would show another mean)."""
    import shutil

    shutil.copytree(runs / "a0", tmp_path / "a0-again")
    capsys.readouterr()
    assert main(["compare", str(runs), str(tmp_path / "a0-again")]) == 2
    err = capsys.readouterr().err
    assert "seed 0" in err and "a0-again" in err and len(err.strip().splitlines()) == 1


def test_runs_of_several_tasks_are_named_by_their_task_not_by_every_key_one_task_lacks(tmp_path):
    """``rlhf-zoo compare runs/`` over the README's runs (task=exact and task=sentiment ones): each
    configuration was named by every key in which it differed from the other runs of its algorithm, a key
    that one task's config lacks counting as ``None``, so an exact run's row read
    ``bond ... model.chat_template=None model.compile_generation=None ...`` (every model.* key, every
    sentiment task key) and a sentiment run's listed every model.* value: rows thousands of characters
    wide. A configuration is now named by its task (when the runs span several) and the settings in which
    it differs from the runs of its algorithm on that task."""
    from omegaconf import OmegaConf

    from rlhf_zoo.compare import _flat, label_runs
    from rlhf_zoo.config import load_config

    def record(*args):
        cfg = load_config(["algo=bond", *args, f"run_dir={tmp_path}/r"])
        return {"config": _flat(OmegaConf.to_container(cfg)), "summary": {"algo": "bond"}, "seed": 0}

    lm = ["task=sentiment", "model.name=tiny", "task.gold=null"]
    records = [record("task=exact", "algo.beta=0.1"), record("task=exact", "algo.beta=0.5"),
               record(*lm), record(*lm, "model.lora_r=4")]  # fmt: skip
    label_runs(records)
    assert [r["label"] for r in records] == [
        "bond task=exact algo.beta=0.1",
        "bond task=exact algo.beta=0.5",
        "bond task=sentiment model.lora_r=8",
        "bond task=sentiment model.lora_r=4",
    ]
    # one task: named as before, by what differs
    exact = [record("task=exact", "algo.beta=0.1"), record("task=exact", "algo.beta=0.5")]
    label_runs(exact)
    assert [r["label"] for r in exact] == ["bond algo.beta=0.1", "bond algo.beta=0.5"]


def test_the_seeds_column_counts_the_distinct_seeds():
    """The Markdown table's ``seeds`` column listed the seeds (``0,1,5``) while the CSV's counted the runs:
    both count the distinct seeds pooled in the row."""
    from rlhf_zoo.compare import table

    def record(seed, run_dir):
        return {"label": "bond", "seed": seed, "run_dir": run_dir, "summary": {"steps": 6, "reward/proxy": 1.0}}

    headers, md, rows = table([record(0, "a"), record(1, "b"), record(5, "c")])
    assert headers[1] == "seeds" and md[0][1] == "3" and rows[0][1] == 3


def test_a_run_whose_config_yaml_does_not_parse_is_one_line(tmp_path, capsys):
    run = tmp_path / "r"
    run.mkdir()
    (run / "summary.json").write_text("{}")
    (run / "config.yaml").write_text("seed: 0\ntrain: {steps: 1\nalgo: x\n")
    assert main(["compare", str(run)]) == 2
    err = capsys.readouterr().err
    assert "YAML syntax error at line 3" in err and str(run) in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("where", ["/proc/no/such/dir", "file"])
def test_compare_to_an_unwritable_out_is_one_line(runs, tmp_path, capsys, where):
    """``out=`` that cannot be written (a file, /proc) ended in a FileExistsError / FileNotFoundError traceback
    after the table was printed."""
    if where == "file":
        where = tmp_path / "a_file"
        where.write_text("x")
    capsys.readouterr()
    assert main(["compare", str(runs / "a0"), f"out={where}"]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("rlhf-zoo: error: out=") and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and not out


def test_settings_that_cannot_change_the_results_do_not_split_a_configuration(tmp_path, capsys):
    """Two seeds of one configuration, one run with ``train.progress=false`` (as a sweep's points are), were
    two configurations "train.progress=False" and "train.progress=True" of one seed each: the progress bar,
    the trackers and the checkpoint cadence cannot change a run's numbers (``records.NO_EFFECT``)."""
    args = ["train", "algo=reinforce", "task=exact", "train.steps=2", "train.eval_every=2"]
    assert main([*args, "seed=0", "train.progress=false", f"run_dir={tmp_path}/s0"]) == 0
    assert main([*args, "seed=1", "train.checkpoint_every=1", f"run_dir={tmp_path}/s1"]) == 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path), f"out={tmp_path}/cmp"]) == 0
    rows = list(csv.DictReader((tmp_path / "cmp" / "compare.csv").open()))
    assert [(r["configuration"], r["seeds"]) for r in rows] == [("reinforce", "2")]


def test_a_count_column_is_printed_as_a_whole_number(runs, capsys):
    """cost/completions printed "4800.000 ± 0.000" below 10,000 and "25,600 ± 0" above, in one column."""
    capsys.readouterr()
    assert main(["compare", str(runs)]) == 0
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("| jbond algo.gamma=0.0")]
    cell = lines[0].rstrip(" |").rsplit("|", 1)[-1].strip()
    (count,) = {_summary(runs / r, "cost/completions") for r in ("a0", "a1")}  # the same for both seeds
    assert count < 10_000 and cell == f"{count:,.0f} ± 0", cell
