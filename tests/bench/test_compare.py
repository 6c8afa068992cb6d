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


def test_with_several_tasks_every_configuration_names_its_task_and_no_curve_joins_two(tmp_path):
    """Runs of REINFORCE on both tasks and of BOND on the testbed only: BOND's row named no task, so its testbed
    rewards read as if beside the language model's, and the plots drew one REINFORCE line from a testbed point to
    a language-model point (one membership per algorithm)."""
    from omegaconf import OmegaConf

    from rlhf_zoo.bench.records import group_records
    from rlhf_zoo.compare import _flat, label_runs
    from rlhf_zoo.config import load_config

    def record(algo, *args):
        cfg = load_config([f"algo={algo}", *args, f"run_dir={tmp_path}/r"])
        return {"config": _flat(OmegaConf.to_container(cfg)), "summary": {"algo": algo}, "seed": 0, "metrics": []}

    lm = ["task=sentiment", "model.name=tiny", "task.gold=null"]
    records = [record("reinforce", "task=exact"), record("reinforce", *lm), record("bond", "task=exact")]
    label_runs(records)
    assert [r["label"] for r in records] == ["reinforce task=exact", "reinforce task=sentiment", "bond task=exact"]
    curves = {m["sweep"] for r in records for m in r["memberships"]}
    assert curves == {"reinforce task=exact", "reinforce task=sentiment", "bond task=exact"}
    assert len(group_records(records)) == 3  # each its own curve


def test_a_bench_folders_best_of_n_pool_point_is_said_to_be_left_out(runs, tmp_path, capsys):
    """A bench's Best-of-N pool point (a record, no run) was missing from the table without a word, while compare
    names the unfinished runs it leaves out."""
    import shutil

    bench = tmp_path / "bench"
    shutil.copytree(runs / "a0", bench / "a0")
    (bench / "best_of_n-pool8-s0").mkdir()
    (bench / "best_of_n-pool8-s0" / "record.json").write_text(json.dumps({"id": "best_of_n-pool8-s0", "pool": {}}))
    capsys.readouterr()
    assert main(["compare", str(bench)]) == 0
    err = capsys.readouterr().err
    assert "left out 1 Best-of-N pool point(s) below" in err and "best_of_n-pool8-s0" in err, err


def test_a_folder_of_links_to_runs_is_searched_through_them(tmp_path, capsys):
    """Runs gathered into a folder by symbolic links (``ln -s ../runs/a mix/``) were not found: ``no finished run
    below mix``, though each link named on its own was compared. A link that leads back up is not followed twice."""
    from rlhf_zoo.compare import find_runs

    runs = tmp_path / "runs"
    for name in ("a", "b"):
        (runs / name).mkdir(parents=True)
        (runs / name / "summary.json").write_text("{}")
    mix = tmp_path / "mix"
    mix.mkdir()
    (mix / "a").symlink_to(runs / "a")
    (mix / "all").symlink_to(runs)
    (mix / "loop").symlink_to(mix)  # a cycle: walked once
    found = find_runs([str(mix)])
    assert sorted(p.resolve().name for p in found) == ["a", "b"], found


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


def test_an_unfinished_run_below_a_folder_is_left_out_aloud(runs, tmp_path, capsys):
    """A run still running, or killed (no ``summary.json``, a torn last line in ``metrics.jsonl``), below a
    folder was left out of the table without a word: the table read as if the folder held one run."""
    import shutil

    shutil.copytree(runs / "a0", tmp_path / "done")
    shutil.copytree(runs / "r0", tmp_path / "killed")
    (tmp_path / "killed" / "summary.json").unlink()
    metrics = tmp_path / "killed" / "metrics.jsonl"
    metrics.write_text(metrics.read_text()[:-20])
    capsys.readouterr()
    assert main(["compare", str(tmp_path)]) == 0
    out = capsys.readouterr()
    assert "| jbond" in out.out and "reinforce" not in out.out
    assert "left out 1 unfinished run" in out.err and str(tmp_path / "killed") in out.err
    # named on its own, or the only run below a folder: one line that says why
    shutil.rmtree(tmp_path / "done")
    for path in (tmp_path / "killed", tmp_path):
        assert main(["compare", str(path)]) == 2
        err = capsys.readouterr().err
        assert "not finished" in err or "1 unfinished" in err
        assert str(tmp_path / "killed") in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize(
    ("name", "text", "said"),
    [
        ("summary.json", "[1, 2]", "summary.json is a JSON list"),
        ("config.yaml", "", "config.yaml is not a run's resolved config"),  # was: seed 0, every key None
        ("config.yaml", "[1, 2]", "config.yaml is not a run's resolved config"),
        ("config.yaml", "seed: [1]\nalgo: {name: bond}\n", "config.yaml is not a run's resolved config"),
        ("config.yaml", "seed: true\nalgo: {name: bond}\n", "config.yaml is not a run's resolved config"),
        ("config.yaml", "seed: 0\ntrain: {steps: 6}\n", "config.yaml is not a run's resolved config"),  # no algo
        ("metrics.jsonl", '{"step": 0}\n[1, 2]\n', "metrics.jsonl holds a JSON list in its line 2"),
        ("metrics.jsonl", '{"step": 0}\n{"step": 6, "rew', "metrics.jsonl line 2 does not parse"),
        # a string metric was a silent NaN in the table, a 400-digit one an OverflowError traceback, and a step
        # that is not a number a ValueError traceback when the plots were drawn (out=)
        ("summary.json", '{"reward/proxy": "0.5"}', "summary.json holds '0.5' for reward/proxy, not a number"),
        ("summary.json", '{"reward/gold": true}', "summary.json holds True for reward/gold, not a number"),
        (
            "summary.json",
            '{"kl/exact": 1' + "0" * 400 + "}",
            "summary.json holds 1000000000000000000000000000000000000...",
        ),
        ("metrics.jsonl", '{"step": 0}\n{"step": "6"}\n', "metrics.jsonl line 2 has step '6', not an integer"),
        ("metrics.jsonl", '{"step": 0}\n{"step": true}\n', "metrics.jsonl line 2 has step True, not an integer"),
        # said "config.yaml does not parse: FileNotFoundError: [Errno 2] No such file or directory: ..."
        ("config.yaml", None, "config.yaml is missing (a finished run's folder holds summary.json and config.yaml)"),
        ("config.yaml", "dir", "config.yaml is a directory, not a file"),
    ],
)
def test_a_run_file_that_is_not_what_a_run_writes_is_one_line(runs, tmp_path, capsys, name, text, said):
    """A summary.json that parses into a list, a metrics.jsonl line that does, a config.yaml with no seed (or
    not an integer one): each ended in a traceback (``'list' object has no attribute 'get'``), or, an empty
    config.yaml, was read as seed 0 with every setting None."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(runs / "a0", run)
    if text is None:
        (run / name).unlink()
    elif text == "dir":
        (run / name).unlink()
        (run / name).mkdir()
    else:
        (run / name).write_text(text)
    capsys.readouterr()
    assert main(["compare", str(run)]) == 2
    err = capsys.readouterr().err
    assert said in err and str(run) in err and len(err.strip().splitlines()) == 1, err


def test_a_folder_is_searched_at_every_depth_for_runs(runs, tmp_path):
    """A bench's runs lie two folders below its own (bench_runs/quick/<sweep>/<point>): each is found."""
    import shutil

    from rlhf_zoo.compare import find_runs

    for place in ("quick/jbond/a0", "quick/jbond/a1", "quick/r0"):
        shutil.copytree(runs / place.rsplit("/", 1)[-1], tmp_path / place)
    found = find_runs([str(tmp_path / "quick")])
    assert sorted(p.relative_to(tmp_path).as_posix() for p in found) == [
        "quick/jbond/a0",
        "quick/jbond/a1",
        "quick/r0",
    ]


def test_a_run_started_over_in_a_finished_runs_directory_is_not_read_as_finished(runs, tmp_path, capsys):
    """``rlhf-zoo train ... run_dir=DONE resume=true`` with no checkpoint there (a sweep's runs keep none)
    starts over at step 0: it rewrites config.yaml at once, summary.json only at its end. Compared while it
    ran, or after it was stopped, the directory read as a finished run of the new config with the old run's
    numbers (a ``reinforce`` row holding jbond's rewards)."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(runs / "a0", run)  # jbond, seed 0, 6 steps
    config = (runs / "r0" / "config.yaml").read_text().replace("steps: 6", "steps: 600")
    (run / "config.yaml").write_text(config)  # reinforce: what the new run writes first
    capsys.readouterr()
    assert main(["compare", str(run)]) == 2
    err = capsys.readouterr().err
    assert "summary.json is not the run of its config.yaml" in err and "'jbond', config.yaml 'reinforce'" in err
    assert "train.steps 600" in err and len(err.strip().splitlines()) == 1, err


def test_a_run_started_over_with_another_seed_is_not_pooled_as_that_seed(runs, tmp_path, capsys):
    """A seed-0 run's folder started over as seed 7 (config.yaml rewritten first) read as a finished seed 7 with
    seed 0's numbers: beside the real seed 0 it counted one result twice and narrowed the interval."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(runs / "a0", run)  # jbond, seed 0
    (run / "config.yaml").write_text((run / "config.yaml").read_text().replace("seed: 0", "seed: 7"))
    capsys.readouterr()
    assert main(["compare", str(runs / "a0"), str(run)]) == 2
    err = capsys.readouterr().err
    assert "summary.json is not the run of its config.yaml" in err and "seed 0, config.yaml 7" in err, err


@pytest.mark.parametrize("out", ["afile", "afile/sub"])
def test_an_out_that_is_a_file_is_one_line_before_the_table(runs, tmp_path, capsys, out):
    """``out=`` naming a file (or a folder below one) printed the table, then a traceback
    (``FileExistsError``, ``NotADirectoryError``) from writing compare.csv."""
    (tmp_path / "afile").write_text("mine\n")
    capsys.readouterr()
    assert main(["compare", str(runs), f"out={tmp_path}/{out}"]) == 2
    printed = capsys.readouterr()
    assert printed.out == "" and f"out={tmp_path}/{out}" in printed.err
    assert len(printed.err.strip().splitlines()) == 1, printed.err
    assert (tmp_path / "afile").read_text() == "mine\n"


def test_a_seed_whose_metric_is_nan_or_missing_is_left_out_of_the_mean_aloud(capsys):
    """A diverged seed (``reward/proxy: NaN``) or one without the metric is dropped from the mean, and the cell
    says so with ``(k/n)`` as the bench pages do (the CSV with its seeds column), and stderr names the seed. It
    once read ``seeds 2`` with the other seed's value as the mean and no word of it."""
    import math

    from rlhf_zoo.compare import table

    def record(seed, **summary):
        return {"label": "bond", "seed": seed, "run_dir": f"runs/bond-s{seed}", "summary": {"steps": 6, **summary}}

    runs = [record(0, **{"reward/proxy": 0.5, "reward/gold": 0.2, "kl/exact": 0.1}),
            record(1, **{"reward/proxy": math.nan, "kl/exact": 0.3}),
            record(2, **{"reward/proxy": 0.7, "reward/gold": 0.4, "kl/exact": 0.2})]  # fmt: skip
    runs.append({**record(3, **{"reward/proxy": math.nan}), "label": "jbond"})  # its only seed diverged
    capsys.readouterr()
    headers, md, rows = table(runs)
    at = {h: i for i, h in enumerate(headers)}
    csv_at = {h: 3 * (i - 3) + 3 for h, i in at.items() if i >= 3}  # CSV: mean, ci95, seeds per metric
    bond, jbond = md[0], md[1]
    assert bond[at["reward/proxy"]] == "0.600 ± 1.271 (2/3)"  # seeds 0 and 2: mean 0.6, t*_1·s/√2 = 12.706·0.1
    assert bond[at["reward/gold"]] == "0.300 ± 1.271 (2/3)"
    mean, half, k = rows[0][csv_at["reward/proxy"] : csv_at["reward/proxy"] + 3]
    assert (mean, half, k) == (pytest.approx(0.6), pytest.approx(1.2706, abs=1e-4), 2)
    assert bond[at["kl/exact"]] == "0.200 ± 0.248"  # all three seeds: no mark
    assert rows[0][csv_at["kl/exact"] + 2] == 3
    assert jbond[at["reward/proxy"]] == "NaN" and math.isnan(rows[1][csv_at["reward/proxy"]])  # no seed has it
    assert jbond[at["reward/gold"]] == "—" and rows[1][csv_at["reward/gold"] + 2] == 0  # not a metric of jbond
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "compare: bond: reward/proxy is NaN or missing in seed(s) 1 (runs/bond-s1) of 3: its mean is over the other 2"
        " (2/3)",
        "compare: bond: reward/gold is NaN or missing in seed(s) 1 (runs/bond-s1) of 3: its mean is over the other 2"
        " (2/3)",
    ]


def test_comparing_again_into_one_out_leaves_no_plot_of_the_runs_before(runs, tmp_path, capsys):
    """Runs without a gold reward draw no gold-vs-proxy plot: compared into an ``out=`` that an earlier compare
    had written, its gold_vs_proxy.png (of other runs) stayed beside the new table, as if it were theirs."""
    import shutil

    assert main(["compare", str(runs), f"out={tmp_path}/cmp"]) == 0
    assert (tmp_path / "cmp" / "gold_vs_proxy.png").is_file()
    run = tmp_path / "no-gold"
    shutil.copytree(runs / "r0", run)
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({k: v for k, v in summary.items() if "gold" not in k}))
    capsys.readouterr()
    assert main(["compare", str(run), f"out={tmp_path}/cmp"]) == 0
    assert not (tmp_path / "cmp" / "gold_vs_proxy.png").exists()
    assert (tmp_path / "cmp" / "reward_vs_kl.png").is_file()
    assert "no-gold" in (tmp_path / "cmp" / "compare.md").read_text()


def test_one_run_named_twice_by_two_spellings_is_one_run(runs, tmp_path, monkeypatch, capsys):
    """``rlhf-zoo compare runs /abs/path/runs/a0`` (or a link to the folder) named one run directory twice,
    spelled differently: refused as two runs of one seed ("name only one of them"), though it was one."""
    (tmp_path / "link").symlink_to(runs)
    monkeypatch.chdir(runs.parent)
    capsys.readouterr()
    assert main(["compare", runs.name, str(runs / "a0"), str(tmp_path / "link"), f"out={tmp_path}/cmp"]) == 0
    rows = {r["configuration"]: r for r in csv.DictReader((tmp_path / "cmp" / "compare.csv").open())}
    assert rows["jbond algo.gamma=0.0"]["seeds"] == "2" and rows["reinforce"]["seeds"] == "1"
    assert (tmp_path / "cmp" / "compare.md").read_text().count("a0`") == 1


def test_compare_into_a_run_directory_is_refused(runs, capsys):
    """``out=`` naming a run directory wrote compare.md, compare.csv and the plots in among the run's own files."""
    capsys.readouterr()
    before = sorted(p.name for p in (runs / "a0").iterdir())
    assert main(["compare", str(runs), f"out={runs / 'a0'}"]) == 2
    out, err = capsys.readouterr()
    assert f"out={runs / 'a0'} is a run directory: name another folder" in err and not out, err
    assert sorted(p.name for p in (runs / "a0").iterdir()) == before


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


def test_a_configuration_is_named_by_every_setting_in_which_it_differs():
    """Runs of one algorithm that differ in two settings: each configuration's name gives both, so that two
    configurations sharing one of the values are two rows, not one row pooling the seeds of both."""
    from rlhf_zoo.bench.records import group_records
    from rlhf_zoo.compare import label_runs, table

    def record(seed, beta, lr):
        config = {"algo.name": "bond", "task.name": "exact", "seed": seed, "algo.beta": beta, "train.lr": lr}
        return {"config": config, "summary": {"steps": 6}, "seed": seed, "run_dir": f"r{seed}"}

    records = [record(0, 0.1, 0.5), record(1, 0.1, 0.05), record(2, 0.5, 0.5)]
    label_runs(records)
    assert [r["label"] for r in records] == [
        "bond algo.beta=0.1 train.lr=0.5",
        "bond algo.beta=0.1 train.lr=0.05",
        "bond algo.beta=0.5 train.lr=0.5",
    ]
    _, md, _ = table(records)
    assert [(row[0], row[1]) for row in md] == [(r["label"], "1") for r in records]
    assert len(group_records(records)["bond"]) == 3  # the plots: one point per configuration, not one for all


def test_a_setting_only_a_later_run_has_names_its_configuration():
    """The settings compared are those of every run of the algorithm and task, not only the first run's: a run
    that sets a key the first run lacks is another configuration, not a second seed of the first."""
    from rlhf_zoo.compare import label_runs, table

    base = {"algo.name": "bond", "task.name": "exact"}
    records = [
        {"config": {**base, "seed": 0}, "summary": {"steps": 6}, "seed": 0, "run_dir": "r0"},
        {"config": {**base, "seed": 1, "algo.extra": 2}, "summary": {"steps": 6}, "seed": 1, "run_dir": "r1"},
    ]
    label_runs(records)
    assert [r["label"] for r in records] == ["bond algo.extra=None", "bond algo.extra=2"]
    _, md, _ = table(records)
    assert [(row[0], row[1]) for row in md] == [("bond algo.extra=None", "1"), ("bond algo.extra=2", "1")]


def test_compare_md_lists_every_run_with_its_configuration_and_seed(runs, tmp_path, capsys):
    """compare.md ends with the runs behind the table: each run directory once, its configuration and seed."""
    capsys.readouterr()
    assert main(["compare", str(runs), f"out={tmp_path}/cmp"]) == 0
    listed = (tmp_path / "cmp" / "compare.md").read_text().split("Runs:\n\n")[1].splitlines()
    assert listed == [
        f"- `{runs / 'a0'}`: jbond algo.gamma=0.0, seed 0",
        f"- `{runs / 'a1'}`: jbond algo.gamma=0.0, seed 1",
        f"- `{runs / 'g0'}`: jbond algo.gamma=1.0, seed 0",
        f"- `{runs / 'r0'}`: reinforce, seed 0",
    ]


def test_a_misspelt_option_is_refused_not_ignored(runs, tmp_path, capsys):
    """``oot=cmp`` for ``out=cmp``: one line naming it and exit 2, not the table printed and nothing written."""
    capsys.readouterr()
    assert main(["compare", str(runs), f"oot={tmp_path}/cmp"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and f"unknown option 'oot={tmp_path}/cmp'" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "cmp").exists()


def test_a_run_folder_with_an_equals_sign_in_its_name_is_a_run_not_an_option(runs, tmp_path, capsys, monkeypatch):
    """Folders named after a setting (``beta=0.1``) are runs, given with a path (``sweep/beta=0.1``) or from the
    folder that holds them; ``out=`` stays an option."""
    import shutil

    shutil.copytree(runs / "r0", tmp_path / "sweep" / "beta=0.1")
    shutil.copytree(runs / "a0", tmp_path / "sweep" / "gamma=0")
    capsys.readouterr()
    assert main(["compare", f"{tmp_path}/sweep/beta=0.1", f"{tmp_path}/sweep/gamma=0", f"out={tmp_path}/cmp"]) == 0
    rows = {r["configuration"]: r for r in csv.DictReader((tmp_path / "cmp" / "compare.csv").open())}
    assert set(rows) == {"jbond", "reinforce"}
    monkeypatch.chdir(tmp_path / "sweep")
    assert main(["compare", "beta=0.1"]) == 0
    assert "| reinforce" in capsys.readouterr().out


def test_a_preset_is_named_as_the_command_line_named_it(tmp_path, capsys):
    """``algo=rloo`` and ``algo=grpo`` runs were rows named ``reinforce`` and ``ppo_lite``: the preset is now the
    name, where the run's command line (meta.json) gave one that makes the run's algorithm."""
    args = ["train", "task=exact", "train.steps=2", "train.eval_every=2", "train.progress=false"]
    for algo in ("rloo", "grpo", "bond"):
        assert main([*args, f"algo={algo}", f"run_dir={tmp_path}/{algo}"]) == 0
    meta = json.loads((tmp_path / "bond" / "meta.json").read_text())
    meta["command"] = "rlhf-zoo train algo=rloo 'unclosed"  # hand-edited: the algorithm's name stands
    (tmp_path / "bond" / "meta.json").write_text(json.dumps(meta))
    capsys.readouterr()
    assert main(["compare", str(tmp_path)]) == 0
    rows = [line.split("|")[1].strip() for line in capsys.readouterr().out.splitlines()[2:]]
    assert sorted(rows) == ["bond", "grpo", "rloo"]


@pytest.mark.parametrize("below", [False, True])
def test_a_run_stopped_before_its_first_evaluation_is_unfinished(tmp_path, capsys, below):
    """A run killed in its first minutes has written config.yaml and meta.json but no metrics.jsonl yet: named on its
    own it is refused as unfinished, and below a folder it is left out aloud, like a run stopped later."""
    from rlhf_zoo.compare import find_runs
    from rlhf_zoo.errors import UserError

    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "summary.json").write_text("{}")
    (tmp_path / "killed").mkdir()
    for name in ("config.yaml", "meta.json"):
        (tmp_path / "killed" / name).write_text("{}")
    if below:
        assert find_runs([str(tmp_path)]) == [tmp_path / "done"]
        assert f"left out 1 unfinished run(s) below {tmp_path}" in capsys.readouterr().err
    else:
        with pytest.raises(UserError, match="is a run that has not finished"):
            find_runs([str(tmp_path / "killed")])


def test_the_unfinished_runs_left_out_are_named_up_to_three(tmp_path, capsys):
    from rlhf_zoo.compare import find_runs

    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "summary.json").write_text("{}")
    for count, end in ((3, "killed2"), (4, "killed2 and 1 more")):
        for i in range(count):
            (tmp_path / f"killed{i}").mkdir(exist_ok=True)
            (tmp_path / f"killed{i}" / "metrics.jsonl").write_text("")
        find_runs([str(tmp_path)])
        err = capsys.readouterr().err.strip()
        assert err.endswith(end) and f"left out {count} unfinished" in err, err


def test_a_folder_with_several_links_back_up_is_searched_once(tmp_path):
    """Links back up to the folder (``ln -s .. all``) are not walked again: with three of them, each path through
    them walked anew made 3^40 folders to visit (a search that never ended)."""
    import threading

    from rlhf_zoo.compare import find_runs

    (tmp_path / "runs" / "a").mkdir(parents=True)
    (tmp_path / "runs" / "a" / "summary.json").write_text("{}")
    for name in ("up1", "up2", "up3"):
        (tmp_path / "runs" / name).symlink_to(tmp_path / "runs")
    found = []
    search = threading.Thread(target=lambda: found.extend(find_runs([str(tmp_path / "runs")])), daemon=True)
    search.start()
    search.join(timeout=30)
    assert not search.is_alive() and [p.name for p in found] == ["a"]


def test_a_best_of_n_run_null_metrics_and_no_meta_json_are_a_finished_run(runs, tmp_path, capsys):
    """Best-of-N trains no step (its summary's ``steps`` is 0 whatever ``train.steps`` says), a run writes null for
    a metric it has no value of, and a run copied without its meta.json is still its summary and config: each is
    compared, not refused."""
    import shutil

    args = ["train", "algo=best_of_n", "task=exact", "train.steps=6", "train.progress=false"]
    assert main([*args, f"run_dir={tmp_path}/bon"]) == 0
    run = tmp_path / "null"
    shutil.copytree(runs / "r0", run)
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**summary, "reward/gold": None}))
    (run / "meta.json").unlink()
    capsys.readouterr()
    assert main(["compare", str(tmp_path)]) == 0
    rows = {line.split("|")[1].strip(): line for line in capsys.readouterr().out.splitlines()[2:]}
    assert set(rows) == {"best_of_n", "reinforce"}, rows
    assert "| —" in rows["reinforce"]  # its gold reward: none


def test_the_last_algo_on_a_command_line_names_the_run():
    """``algo=bond algo=rloo`` runs RLOO (the last value wins, as for every setting): the row is rloo."""
    from rlhf_zoo.compare import _chosen_algo

    assert _chosen_algo({"command": "rlhf-zoo train algo=bond algo=rloo"}, {"algo.name": "reinforce"}) == "rloo"


def test_a_path_that_names_no_run_is_said_to_be_none_not_a_misspelt_option(tmp_path, capsys):
    """``sweep/beta=0.1`` with a typo in its folder is a path (it has a ``/`` before its ``=``), not an option."""
    assert main(["compare", f"{tmp_path}/sweep/beta=0.1"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path}/sweep/beta=0.1 is not a run directory or a folder of runs" in err, err
