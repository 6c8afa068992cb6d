"""``rlhf-zoo bench suite=FILE.yaml``: a user's own suite, run and rendered like the built-in ones."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rlhf_zoo.bench.suite_file import load_suite_file

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "suite.yaml"


def _rows(page: str) -> list[list[str]]:
    return [[c.strip() for c in line.split("|")[1:-1]] for line in page.splitlines() if line.startswith("|")]


def _cells(page: str, first: str) -> list[str]:
    """The cells of the page's first table row that starts with ``first``."""
    return next(cells for cells in _rows(page) if cells[0] == first)


def test_the_example_suite_runs_renders_and_is_not_recomputed(cli, tmp_path):
    suite = load_suite_file(str(EXAMPLE))
    assert suite.name == "mini" and suite.exact and [s.tag for s in suite.sweeps] == ["best_of_n", "reinforce", "bond"]
    out = tmp_path / "runs"
    args = ("bench", f"suite={EXAMPLE}", f"out={out}", "seeds=0", "train.steps=6", "train.eval_every=3")
    code, printed, err = cli(*args)
    assert code == 0, err
    records = {p.parent.name: json.loads(p.read_text()) for p in (out / "mini").glob("*/record.json")}
    assert sorted(records) == sorted(
        ["best_of_n-n1-s0", "best_of_n-n2-s0", "best_of_n-n4-s0", "best_of_n-n8-s0", "reinforce-beta_RL0.1-s0",
         "reinforce-beta_RL1.0-s0", "bond-n2-s0", "bond-n4-s0"]
    )  # fmt: skip
    rec = records["reinforce-beta_RL0.1-s0"]
    assert {"task=exact", "algo.samples=2", "algo.baseline=loo", "algo.beta=0.1", "train.steps=6"} <= set(rec["args"])
    assert rec["summary"]["steps"] == 6 and (out / "mini" / "oracle.json").is_file()

    page = (out / "mini.md").read_text()  # beside the records: a user's suite never writes into docs/
    assert page.startswith("# Benchmark `mini`") and "60 steps of 32 prompts" in page  # the file's description
    assert re.search(r"\| runs +\| 8 \(8 configurations × 1 seed\(s\)\)", page)
    assert "KL = 0.25" in page and "KL = 2" not in page
    summary = json.loads((out / "mini" / "reinforce-beta_RL0.1-s0" / "summary.json").read_text())
    row = _cells(page, "0.1")  # REINFORCE's table: knob, seeds, proxy reward, gold reward, KL, ...
    assert row[1:3] == ["1", f"{summary['reward/proxy']:.3f}"]
    # the claims: (a)…(d) need sweeps this suite lacks and say so; (e1), (e2) read its Best-of-N sweep
    verdicts = [cells[3] for cells in _rows(page) if len(cells) == 5 and cells[2] == "mini"]
    assert verdicts == ["not run"] * 5 + ["**reproduced**"] * 2
    # and only its own rows: the built-in suites, run nowhere here, said "not run" twice per claim
    assert {cells[2] for cells in _rows(page) if len(cells) == 5 and cells[3] in verdicts} == {"mini"}
    for png in ("reward_vs_kl", "overoptimisation", "claims"):
        assert (out / "mini" / f"{png}.png").stat().st_size > 1000
    assert "Best-of-N" in printed and "beta_RL=0.1" in printed

    before = {p: p.stat().st_mtime_ns for p in (out / "mini").glob("*/record.json")}
    code, _, err = cli(*args)
    assert code == 0 and "0 point(s) run (0 resumed, 0 redone), 8 already finished" in err
    assert {p: p.stat().st_mtime_ns for p in (out / "mini").glob("*/record.json")} == before


SWEEP = "sweeps:\n  - {tag: r, algo: reinforce, knob: algo.beta, values: [0.1]}\n"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (None, "no such file"),
        ("- a\n", "mapping"),
        ("sweeps: [\n", "cannot read"),
        # said OmegaConf's "Structured config of type `SuiteSpec` has missing mandatory value: sweeps"
        ("", "suite file {path}: sweeps is missing: give it a value"),
        # said OmegaConf's "Key 'valuess' not in 'SweepSpec'. Did you mean: 'values'?": a class of the code, and
        # not which sweep
        ("foo: 1\n" + SWEEP, "unknown key 'foo'; the keys of a suite file are sweeps, name, description,"),
        ("seed: [1]\n" + SWEEP, "unknown key 'seed'; did you mean seeds?"),
        (
            "sweeps:\n  - {tag: r, algo: reinforce, knob: algo.beta, values: [1], extra: 2}\n",
            "unknown key 'sweeps[0].extra'; the keys of a sweep are tag, algo, knob, values,",
        ),
        (
            SWEEP + "  - {tag: s, algo: reinforce, knob: algo.beta, valuess: [1]}\n",
            "'sweeps[1].valuess'; did you mean values?",
        ),
        ("sweeps:\n  - {tag: r, algo: dpo, knob: algo.beta, values: [0.1]}\n", "unknown algorithm 'dpo'"),
        ("sweeps:\n  - {tag: r, algo: reinforce, knob: algo.beta}\n", "sweeps[0].values is missing: give it a value"),
        ("sweeps:\n  - {tag: r, algo: reinforce, knob: algo.beta, values: []}\n", "no values"),
        ("seeds: [a]\n" + SWEEP, "seeds[0]"),
        ("jobs: many\n" + SWEEP, "jobs"),
        ("sweeps:\n  - {tag: Big, algo: reinforce, knob: algo.beta, values: [1]}\n", "lower-case"),
        ("sweeps:\n  - {tag: bond, algo: bond, knob: algo.beta, values: [1]}\n", "claims read"),
        # a typo in a built-in tag's knob is a typo, not another sweep under the claims' tag
        ("sweeps:\n  - {tag: reinforce, algo: reinforce, knob: algo.bta, values: [1]}\n", "did you mean algo.beta?"),
        ("sweeps:\n  - {tag: r, algo: bond, knob: algo.zzz, values: [1]}\n", "`rlhf-zoo fields algo=bond` lists"),
        # the claims read the built-in tag as that algorithm's sweep: same knob, another algorithm is refused too
        ("sweeps:\n  - {tag: bond, algo: jbond, knob: algo.n, values: [2]}\n", "(algo bond, knob algo.n): keep those"),
        ("name: exact\n" + SWEEP, "built-in suite"),
        ("task_args: {task: nope}\n" + SWEEP, "unknown task 'nope'"),
        ("algo_args: {bond: {algo.k: 4}}\n" + SWEEP, "no sweep runs"),
        ("sweeps:\n  - {tag: r, algo: reinforce, knob: algo.bogus, values: [0.1]}\n", "bogus"),
        ("sweeps:\n  - {tag: r, algo: reinforce, knob: '', values: [0.1]}\n", "sweep r: knob is empty"),
        ("name: ../mine\n" + SWEEP, "name must be letters, digits, '_', '.' or '-' (it names a folder): '../mine'"),
        # "." and ".." passed: the suite's records, page and runs went into out= itself or its parent
        ("name: '..'\n" + SWEEP, "name must hold a letter, digit, '_' or '-' (it names a folder under out): '..'"),
        ("name: '.'\n" + SWEEP, "name must hold a letter, digit, '_' or '-' (it names a folder under out): '.'"),
        ("algo_args: {reinforce: [1]}\n" + SWEEP, "algo_args.reinforce must be a mapping"),
        # the point's own knob=value came after the fixed one: algo.beta: 0.3 was dropped without a word
        (
            "sweeps:\n  - {tag: r, algo: reinforce, knob: algo.beta, values: [0.1], fixed: {algo.beta: 0.3}}\n",
            "sweep r: fixed sets algo.beta, the sweep's knob (its values set it): remove it",
        ),
        # a knob written with a space around it is the same key: its fixed setting is lost all the same
        (
            "sweeps:\n  - {tag: r, algo: reinforce, knob: 'algo.beta ', values: [0.1], fixed: {algo.beta: 0.3}}\n",
            "sweep r: fixed sets algo.beta, the sweep's knob (its values set it): remove it",
        ),
        ("algo_args: {reinforce: {seed: 1}}\n" + SWEEP, "algo_args.reinforce seed: a suite cannot set it"),
        # algo_args come after a sweep's fixed settings, and the knob's value after both: dropped without a word
        (
            "algo_args: {reinforce: {algo.samples: 4}}\nsweeps:\n  - {tag: r, algo: reinforce, knob: algo.beta, "
            "values: [0.1], fixed: {algo.samples: 2}}\n",
            "sweep r: fixed sets algo.samples, which algo_args.reinforce sets too (and wins, as it comes after): keep",
        ),
        # a null key was OmegaConf's KeyValidationError traceback; an integer one "Key 1 (int) is incompatible with
        # (str) (key: fixed.1)", naming no sweep
        ("task_args: {null: 2}\n" + SWEEP, "task_args has a key that YAML reads as no name (null): write a key's"),
        # named as the file writes it (true), not as Python prints it (True)
        (
            "algo_args: {reinforce: {true: 1}}\n" + SWEEP,
            "algo_args.reinforce has a key that YAML reads as no name (true)",
        ),
        (
            "sweeps:\n  - {tag: r, algo: reinforce, knob: algo.beta, values: [0.1], fixed: {1: 2}}\n",
            "sweeps[0].fixed has a key that YAML reads as no name (1)",
        ),
        ("null: 1\n" + SWEEP, "the file has a key that YAML reads as no name (null)"),
        ("bon_pool: 4\n" + SWEEP, "bon_pool=4 pools the points of the sweep tagged best_of_n, and the suite has none"),
        # the pool is the sweep *tagged* best_of_n (the planner's key): a Best-of-N sweep under another tag runs
        # point by point, and the pool would be drawn for nothing
        (
            "bon_pool: 4\nsweeps:\n  - {tag: bon, algo: best_of_n, knob: algo.n, values: [1, 4]}\n",
            "bon_pool=4 pools the points of the sweep tagged best_of_n, and the suite has none",
        ),
        (
            SWEEP + "  - {tag: b, algo: bond, knob: algo.n, values: [2]}\n  - {tag: r, algo: bond, knob: algo.n, "
            "values: [4]}\n",
            "sweeps[2] has the tag 'r' of sweeps[0]: give each sweep its own tag",
        ),
        (
            "algo_args: {reinforce: {algo.beta: 2}}\n" + SWEEP,
            "algo_args.reinforce sets algo.beta, the knob of its sweeps (r; their values set it): remove it",
        ),
        # a sweep of another algorithm (bond, knob algo.n) takes no algo_args.reinforce: algo.beta is still lost on
        # every sweep of reinforce, and the message names only those
        (
            "algo_args: {reinforce: {algo.beta: 2}}\n"
            + SWEEP
            + "  - {tag: b, algo: bond, knob: algo.n, values: [2]}\n",
            "algo_args.reinforce sets algo.beta, the knob of its sweeps (r; their values set it): remove it",
        ),
        (
            "algo_args: {reinforce: {algo.beta: 2}}\nsweeps:\n  - {tag: r, algo: reinforce, knob: ' algo.beta', "
            "values: [0.1]}\n",
            "algo_args.reinforce sets algo.beta, the knob of its sweeps (r; their values set it): remove it",
        ),
        # said "suite file F: suite file F sets train.steps twice", naming the file twice and no section
        ("task_args: {train.steps: 3, train: {steps: 4}}\n" + SWEEP, "{path}: task_args sets train.steps twice"),
        ("algo_args: {reinforce: {algo.n: 3, algo: {n: 4}}}\n" + SWEEP, "algo_args.reinforce sets algo.n twice"),
        (
            "sweeps:\n  - {tag: r, algo: reinforce, knob: algo.beta, values: [1], fixed: {algo.n: 1, algo: {n: 2}}}\n",
            "{path}: sweep r: fixed sets algo.n twice",
        ),
        # a suite file (it has sweeps:) with a stray algo: is not sent to rlhf-zoo train: its key is unknown
        ("algo: bond\n" + SWEEP, "unknown key 'algo'; did you mean algo_args?"),
        # an experiment file said "unknown key 'algo'; did you mean algo_args?"
        (
            "algo: bond\ntask: exact\nsweep: {seed: [0, 1]}\n",
            "suite file {path} is an experiment file (its algo:, task:, sweep:; no sweeps:): run it with rlhf-zoo "
            "train config={path}",
        ),
    ],
)
def test_a_bad_suite_file_is_one_line_naming_it(cli, tmp_path, text, needle):
    path = tmp_path / "my.yaml"
    if text is not None:
        path.write_text(text)
    code, out, err = cli("bench", f"suite={path}", f"out={tmp_path}/runs", "progress=false")
    assert code == 2 and needle.format(path=path) in err and f"suite file {path}" in err, err
    assert len(err.strip().splitlines()) == 1 and not out and not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("task_args: {train.stepz: 3}\n" + SWEEP, "task_args: unknown key 'train.stepz'; did you mean train.steps?"),
        ("algo_args: {reinforce: {algo.bogus: 1}}\n" + SWEEP, "algo_args.reinforce: unknown key 'algo.bogus';"),
        (
            "sweeps:\n  - {tag: r, algo: reinforce, knob: algo.beta, values: [0.1], fixed: {algo.nosuch: 2}}\n",
            "sweep r: fixed: unknown key 'algo.nosuch';",
        ),
        ("sweeps:\n  - {tag: r, algo: reinforce, knob: algo.beta, values: [0.1, -5]}\n", "sweep r: algo.beta=-5: "),
        # in a later sweep than the first, named with that sweep
        (
            SWEEP + "  - {tag: s, algo: reinforce, knob: algo.beta, values: [0.2], fixed: {algo.nosuch: 2}}\n",
            "sweep s: fixed: unknown key 'algo.nosuch';",
        ),
    ],
)
def test_a_bad_key_or_value_in_a_suite_file_names_the_section_it_is_in(cli, tmp_path, text, needle):
    """An unknown key under algo_args or a sweep's fixed said only "suite file FILE: unknown key 'algo.bogus'",
    not which section nor which sweep or algorithm held it."""
    path = tmp_path / "my.yaml"
    path.write_text(text)
    code, out, err = cli("bench", f"suite={path}", f"out={tmp_path}/runs", "progress=false")
    assert code == 2 and f"suite file {path}: {needle}" in err, err
    assert len(err.strip().splitlines()) == 1 and not out and not (tmp_path / "runs").exists(), err


def test_a_model_that_is_not_there_names_the_suite_file_or_the_command_line(cli, tmp_path):
    """``model.name: /no/such/dir`` in a suite file said only "model.name=/no/such/dir: no such directory", not
    which file (nor, given on the command line, that the file is fine)."""
    path = tmp_path / "my.yaml"
    path.write_text(f"task_args: {{task: sentiment, model.name: {tmp_path}/none}}\n" + SWEEP)
    code, out, err = cli("bench", f"suite={path}", f"out={tmp_path}/runs", "progress=false")
    assert code == 2 and f"suite file {path}: task_args: model.name={tmp_path}/none: no such directory" in err, err
    assert len(err.strip().splitlines()) == 1 and not out and not (tmp_path / "runs").exists(), err
    path.write_text("task_args: {task: sentiment}\n" + SWEEP)
    code, out, err = cli("bench", f"suite={path}", f"model.name={tmp_path}/none", f"out={tmp_path}/runs")
    assert code == 2 and "bench: an override on the command line: model.name=" in err, err


def test_algo_args_that_set_the_knob_of_only_some_sweeps_of_its_algorithm_are_kept(tmp_path):
    """The other sweeps of the algorithm take the setting: nothing is dropped for them."""
    path = tmp_path / "my.yaml"
    path.write_text(
        "algo_args: {reinforce: {algo.beta: 2}}\nsweeps:\n  - {tag: r, algo: reinforce, knob: algo.beta, values: [0.1]}"
        "\n  - {tag: s, algo: reinforce, knob: algo.samples, values: [2]}\n"
    )
    assert load_suite_file(str(path)).algo_args == {"reinforce": ("algo.beta=2",)}


def test_a_bad_seed_on_the_command_line_is_not_blamed_on_the_suite_file(cli, tmp_path):
    """``seeds=99999999999999999999`` said "suite file FILE.yaml: seed must lie between ...": the file has no
    such seed."""
    path = tmp_path / "my.yaml"
    path.write_text(SWEEP)
    code, out, err = cli("bench", f"suite={path}", "seeds=99999999999999999999", f"out={tmp_path}/runs")
    assert code == 2 and "bench: an override on the command line: seed must lie between" in err, err
    assert "suite file" not in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "runs").exists()


def test_a_suite_file_that_is_a_directory_is_said_to_be_one(cli, tmp_path):
    """``suite=runs.yaml`` naming a directory said "no such file" of a path that is there."""
    (tmp_path / "my.yaml").mkdir()
    code, _, err = cli("bench", f"suite={tmp_path}/my.yaml", f"out={tmp_path}/runs", "progress=false")
    assert code == 2 and f"suite file {tmp_path}/my.yaml: is a directory, not a YAML file" in err, err


def test_a_bad_override_on_the_command_line_is_not_blamed_on_the_suite_file(cli, tmp_path):
    """``rlhf-zoo bench suite=FILE.yaml train.stps=3``: the typo is the command line's, and the file is fine.
    The error said "suite file FILE.yaml: Key 'stps' not in 'TrainConfig'", sending the user to a file that
    holds no such key."""
    path = tmp_path / "my.yaml"
    path.write_text(SWEEP)
    code, out, err = cli("bench", f"suite={path}", "train.stps=3", f"out={tmp_path}/runs", "progress=false")
    assert code == 2 and "stps" in err and "command line" in err and "suite file" not in err, err
    assert len(err.strip().splitlines()) == 1 and not out and not (tmp_path / "runs").exists()
    # a bad key in the file is still the file's, with or without (good) overrides on the command line
    path.write_text("sweeps:\n  - {tag: r, algo: reinforce, knob: algo.bogus, values: [0.1]}\n")
    code, _, err = cli("bench", f"suite={path}", "train.steps=3", f"out={tmp_path}/runs", "progress=false")
    assert code == 2 and "bogus" in err and f"suite file {path}" in err, err


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("task_args: [task, exact]\n" + SWEEP, "task_args must be a mapping"),
        ("algo_args: [1]\n" + SWEEP, "algo_args must be a mapping"),
        ("kl_budgets: {a: 1}\n" + SWEEP, "kl_budgets must be a list"),
        ("seeds: [[0]]\n" + SWEEP, "seeds[0] must be a single value"),
        ("seeds: [0, {a: 1}]\n" + SWEEP, "seeds[1] must be a single value"),
        ("kl_budgets: [[1]]\n" + SWEEP, "kl_budgets[0] must be a single value"),
        ("sweeps: {a: 1}\n", "sweeps must be a list"),
        ("sweeps:\n  - {tag: r, algo: reinforce, knob: algo.beta, values: [0.1], fixed: [1, 2]}\n",
         "sweeps[0].fixed must be a mapping"),
        ("sweeps:\n  - {tag: r, algo: reinforce, knob: algo.beta, values: {a: 1}}\n",
         "sweeps[0].values must be a list"),
        # said "Invalid type assigned: int is not a subclass of SweepSpec. value: 5 (key: sweeps[0])"
        ("sweeps:\n  - 5\n", "sweeps[0] must be a mapping of a sweep's keys (tag, algo, knob, values, ...), got 5"),
        ("sweeps:\n  - null\n", "sweeps[0] must be a mapping of a sweep's keys"),
        (SWEEP + "  - [r, reinforce]\n", "sweeps[1] must be a mapping of a sweep's keys"),
    ],
)  # fmt: skip
def test_a_suite_file_value_of_the_wrong_kind_is_one_line_naming_its_key(cli, tmp_path, text, needle):
    """A list where the suite wants a mapping (or the reverse) ended in OmegaConf's traceback "TypeError:
    Cannot merge incompatible container types", naming neither the file nor the key; a list inside the list of
    seeds was taken as a seed."""
    path = tmp_path / "my.yaml"
    path.write_text(text)
    code, out, err = cli("bench", f"suite={path}", f"out={tmp_path}/runs", "progress=false")
    assert code == 2 and needle in err and f"suite file {path}" in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and not out, err


def test_a_key_twice_in_a_suite_file_is_one_line_naming_it_and_its_line(cli, tmp_path):
    """It said "cannot read it: ConstructorError: while constructing a mapping", naming neither key nor line."""
    path = tmp_path / "my.yaml"
    path.write_text("seeds: [0]\n" + SWEEP + "seeds: [1]\n")
    code, out, err = cli("bench", f"suite={path}", f"out={tmp_path}/runs", "progress=false")
    assert code == 2 and f"suite file {path}" in err and "key 'seeds' appears twice (line 4; first at line 1)" in err
    assert len(err.strip().splitlines()) == 1 and not out, err


def test_a_yaml_syntax_error_in_a_suite_file_says_what_and_where(cli, tmp_path):
    path = tmp_path / "my.yaml"
    path.write_text("seeds: [0\n" + SWEEP)
    code, out, err = cli("bench", f"suite={path}", f"out={tmp_path}/runs", "progress=false")
    needle = "YAML syntax error at line 2, column 7: expected ',' or ']', but got ':' (while parsing a flow sequence"
    assert code == 2 and f"suite file {path}" in err and needle in err, err
    assert len(err.strip().splitlines()) == 1 and not out, err


def test_render_only_without_records_repeats_the_command_that_makes_them(cli, tmp_path):
    """It said "run `rlhf-zoo bench suite=my` first": the suite's name, not its file, and without the out= and
    seeds= the records were asked under, so the command it gave made other records (or none: no suite 'my')."""
    path = tmp_path / "my.yaml"
    path.write_text(SWEEP)
    code, out, err = cli(
        "bench", f"suite={path}", "render_only=true", f"out={tmp_path}/runs", "seeds=3", "progress=false"
    )
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"run `rlhf-zoo bench suite={path} out={tmp_path}/runs seeds=3 progress=false` first" in err, err


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("jobs: 0\n" + SWEEP, "jobs must be >= 1, got 0"),
        ("bon_pool: -1\n" + SWEEP, "bon_pool must be >= 0 (0: no pool), got -1"),
        # the smallest pool refused: 2**63 (a pool of 2**63 - 1 still fits torch's int64)
        (f"bon_pool: {2**63}\n" + SWEEP, f"bon_pool must be < 2**63 (reference samples per prompt), got {2**63}"),
        (
            "bon_pool: 99999999999999999999\n" + SWEEP,
            "bon_pool must be < 2**63 (reference samples per prompt), got 9999",
        ),
        ("sweeps: []\n", "sweeps must list at least one sweep"),
        ("seeds: []\n" + SWEEP, "seeds must list at least one seed"),
        ("seeds: [0, 1, 0]\n" + SWEEP, "seeds lists seed 0 twice"),
        ("seeds: [3, 1, 4, 1]\n" + SWEEP, "seeds lists seed 1 twice"),  # the seed repeated, not the first
        ("kl_budgets: [0.5, 0]\n" + SWEEP, "kl_budgets must be > 0, got 0.0"),
        ("kl_budgets: [-1]\n" + SWEEP, "kl_budgets must be > 0, got -1.0"),
        ("kl_budgets: [0.5, .inf]\n" + SWEEP, "kl_budgets must be > 0, got inf"),
        ("kl_budgets: [.nan]\n" + SWEEP, "kl_budgets must be > 0, got nan"),
        ("kl_budgets: [0.5, 1, 0.5]\n" + SWEEP, "kl_budgets lists 0.5 twice"),
        (
            "sweeps:\n  - {tag: r, algo: reinforce, knob: algo.beta, values: [0.1, 0.5, 0.1]}\n",
            "sweep r: values lists 0.1 twice",
        ),
        # null and 'null' are both algo.beta=null on the command line: one point, twice
        (
            "sweeps:\n  - {tag: r, algo: reinforce, knob: algo.beta, values: [null, 'null']}\n",
            "sweep r: values lists null twice",
        ),
        (
            "sweeps:\n  - {tag: r, algo: reinforce, knob: algo.beta, values: [1, 0.5, 1.0]}\n",
            "sweep r: values lists 1 and 1.0, one value in the tables: keep one",
        ),
    ],
)
def test_a_bad_count_in_a_suite_file_is_one_line_naming_its_key(cli, tmp_path, text, needle):
    """jobs: 0 and bon_pool: -1 said "needs at least one seed, jobs >= 1 and bon_pool >= 0" (which one?), a seed
    listed twice was refused later without the file's name, a KL budget <= 0 was taken, and an empty list of
    sweeps ended in a traceback (IndexError) after the task's oracle was asked for the first point; a KL budget
    listed twice made two columns of the same numbers, and a value listed twice was taken (a sweep of rlhf-zoo
    train refuses it); so were 1 and 1.0, two points that the tables pool as one value, whose page then refused
    the two records of seed 0 (and a bench run again after one was deleted ran it again)."""
    path = tmp_path / "my.yaml"
    path.write_text(text)
    code, out, err = cli("bench", f"suite={path}", f"out={tmp_path}/runs", "render_only=true")
    assert code == 2 and f"suite file {path}: {needle}" in err, err
    assert len(err.strip().splitlines()) == 1 and not out, err


def test_jobs_0_on_the_command_line_is_refused_even_with_render_only(cli, tmp_path):
    code, out, err = cli("bench", "suite=exact", "jobs=0", "render_only=true", f"out={tmp_path}/runs")
    assert code == 2 and "bench: jobs must be >= 1, got 0" in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize(
    ("sweep", "task_args", "needle"),
    [
        ("knob: seed, values: [1, 2]", "{}", "sweep r: knob seed: a suite cannot set it"),
        ("knob: algo, values: [bond, jbond]", "{}", "sweep r: knob algo: a suite cannot set it"),
        ("knob: run_dir, values: [a, b]", "{}", "sweep r: knob run_dir: a suite cannot set it"),
        ("knob: algo.beta, values: [0.1], fixed: {seed: 5}", "{}", "sweep r: fixed seed: a suite cannot set it"),
        ("knob: algo.beta, values: [0.1]", "{seed: 3}", "task_args seed: a suite cannot set it"),
        ("knob: algo.beta, values: [0.1]", "{algo: bond}", "task_args algo: a suite cannot set it"),
        ("knob: algo.beta, values: [0.1]", "{resume: true}", "task_args resume: a suite cannot set it"),
        ("knob: algo.beta, values: [0.1]", "{config: exp.yaml}", "task_args config: a suite cannot set it"),
        # the command line reads ' seed=3' as seed=3: a space around the key does not let it through
        ("knob: algo.beta, values: [0.1]", "{' seed': 3}", "task_args seed: a suite cannot set it"),
    ],
)
def test_a_key_the_bench_sets_itself_is_refused_in_a_suite_file(cli, tmp_path, sweep, task_args, needle):
    """Each point's own seed=, algo=, run_dir= and resume= come after the file's, so the file's were silently
    ignored: a knob of seed ran one point for all its values, a fixed seed ran the suite's seeds, task_args'
    algo ran the sweep's; a config= file's content is no part of a point's arguments, so editing it redid
    nothing."""
    path = tmp_path / "my.yaml"
    path.write_text(f"task_args: {task_args}\nsweeps:\n  - {{tag: r, algo: reinforce, {sweep}}}\n")
    code, out, err = cli("bench", f"suite={path}", f"out={tmp_path}/runs", "progress=false")
    assert code == 2 and f"suite file {path}: {needle}" in err, err
    assert len(err.strip().splitlines()) == 1 and not out and not (tmp_path / "runs").exists(), err


def _edit_run(cli, tmp_path, path, text):
    """Write the suite file, run it; (stderr, the ids of its records, the mtimes of its runs' metrics)."""
    path.write_text(text)
    out = tmp_path / "runs"
    code, _, err = cli("bench", f"suite={path}", f"out={out}", "progress=false")
    assert code == 0, err
    ids = sorted(p.stem for p in (out / "records" / "my").glob("*-s*.json"))
    mtimes = {p.parent.name: p.stat().st_mtime_ns for p in (out / "my").glob("*/metrics.jsonl")}
    return err, ids, mtimes


FAST_SUITE = "task_args: {task: exact, threads: 1, train.steps: 2, train.eval_every: 1, train.progress: false}\n"


def test_a_new_knob_label_keeps_the_finished_points_under_their_new_ids(cli, tmp_path):
    """A point's id holds its knob's label: a new knob_label ran every point again under new ids, and the page
    then refused to render ("cannot pool the records of r b=0.1: r-b0.1-s0 and r-beta0.1-s0 are both seed 0")."""
    path = tmp_path / "my.yaml"
    sweep = "sweeps:\n  - {tag: r, algo: reinforce, knob: algo.beta, values: [0.1, 0.5]%s}\n"
    _, ids, before = _edit_run(cli, tmp_path, path, FAST_SUITE + sweep % "")
    assert ids == ["r-beta0.1-s0", "r-beta0.5-s0"]
    err, ids, after = _edit_run(cli, tmp_path, path, FAST_SUITE + sweep % ", knob_label: b")
    assert "0 point(s) run" in err and "2 already finished (2 kept under a new id)" in err, err
    assert ids == ["r-b0.1-s0", "r-b0.5-s0"] and sorted(after) == ids
    assert sorted(after.values()) == sorted(before.values())  # moved, not run again
    page = (tmp_path / "runs" / "my.md").read_text()
    assert _cells(page, "0.1")[:2] == ["0.1", "1"] and _cells(page, "r")[1] == "sweep over b"


def test_a_renamed_tag_keeps_the_finished_points_under_their_new_ids(cli, tmp_path):
    """A point's id starts with its sweep's tag: renaming the tag ran every point again under new ids, and the
    old tag's records stayed on the page as a second curve of the same runs."""
    path = tmp_path / "my.yaml"
    sweep = "sweeps:\n  - {tag: %s, algo: reinforce, knob: algo.beta, values: [0.1, 0.5]}\n"
    _, ids, before = _edit_run(cli, tmp_path, path, FAST_SUITE + sweep % "r")
    err, ids, after = _edit_run(cli, tmp_path, path, FAST_SUITE + sweep % "rl")
    assert "0 point(s) run" in err and "2 already finished (2 kept under a new id)" in err, err
    assert ids == ["rl-beta0.1-s0", "rl-beta0.5-s0"] and sorted(after) == ids
    assert sorted(after.values()) == sorted(before.values())  # moved, not run again
    page = (tmp_path / "runs" / "my.md").read_text()
    assert "2 of the 2 planned points have records" in page and "other record" not in page
    assert _cells(page, "rl")[1] == "sweep over beta" and "| r " not in page


def test_the_records_of_a_dropped_sweep_are_named_on_the_page(cli, tmp_path):
    """A sweep taken out of the suite file leaves its records, which the page still shows (records accumulate):
    the page said "1 other record(s) (other seeds, sweeps or settings)" without saying which."""
    path = tmp_path / "my.yaml"
    sweep = "  - {tag: %s, algo: reinforce, knob: algo.beta, values: [%s]}\n"
    _edit_run(cli, tmp_path, path, FAST_SUITE + "sweeps:\n" + sweep % ("r", "0.1") + sweep % ("old", "0.7"))
    _edit_run(cli, tmp_path, path, FAST_SUITE + "sweeps:\n" + sweep % ("r", "0.1"))
    page = (tmp_path / "runs" / "my.md").read_text()
    assert (
        "1 of the 1 planned points have records, and 1 other record(s) (other seeds, sweeps or settings) are shown; "
        "records of sweeps the suite does not have (a tag dropped?): old (1)"
    ) in page


def test_a_value_rewritten_as_another_number_is_redone_and_replaces_its_record(cli, tmp_path):
    """values: [1] → [1.0] is another argument (algo.beta=1.0) under another id, but the same place on the
    page: both records stayed, and the page refused to render (two records of seed 0 for beta=1)."""
    path = tmp_path / "my.yaml"
    sweep = "sweeps:\n  - {tag: r, algo: reinforce, knob: algo.beta, values: [%s]}\n"
    _edit_run(cli, tmp_path, path, FAST_SUITE + sweep % "1")
    err, ids, _ = _edit_run(cli, tmp_path, path, FAST_SUITE + sweep % "1.0")
    assert "1 point(s) run (0 resumed, 1 redone)" in err and "kept under a new id" not in err, err
    assert ids == ["r-beta1.0-s0"] and [p.name for p in (tmp_path / "runs" / "my").glob("r-*")] == ["r-beta1.0-s0"]
    assert "1 of the 1 planned points have records" in (tmp_path / "runs" / "my.md").read_text()


def test_kl_budgets_are_columns_in_increasing_kl_whatever_order_they_are_written_in(tmp_path):
    """``kl_budgets: [1.0, 0.25, 0.5]`` made the matched-KL tables' columns KL = 1, 0.25, 0.5."""
    path = tmp_path / "my.yaml"
    path.write_text("kl_budgets: [1.0, 0.25, 0.5]\n" + SWEEP)
    assert load_suite_file(str(path)).kl_budgets == (0.25, 0.5, 1.0)


def test_a_suite_files_fields_are_the_suites_and_what_it_leaves_out_has_its_default(tmp_path):
    """Every field the file sets reaches the suite (jobs, resumable, the pool, a sweep's label, frontier, fixed
    overrides, an objective); left out, the name is the file's stem, a sweep's objective its tag, the seeds [0].
    Whether the suite is exact follows from its task (the testbed by default), which the task's own keys
    (task.proxy) beside it do not change. A ``.yml`` file is a suite file too."""
    from rlhf_zoo.bench.suite_file import get_suite

    path = tmp_path / "my.yml"
    path.write_text(
        "description: d\nbudget: b\njobs: 3\nresumable: true\nbon_pool: 4\nseeds: [2, 5]\n"
        "task_args: {task: sentiment, task.proxy: vader}\nsweeps:\n"
        "  - {tag: best_of_n, algo: best_of_n, knob: algo.n, values: [1, 4], objective: Best-of-N}\n"
        "  - {tag: r, algo: reinforce, knob: algo.beta, values: [0.1], knob_label: b, frontier: paths,"
        " fixed: {algo.samples: 2}}\n"
    )
    suite = get_suite(str(path))
    assert (suite.name, suite.description, suite.budget, suite.seeds) == ("my", "d", "b", (2, 5))
    assert (suite.jobs, suite.resumable, suite.bon_pool, suite.exact) == (3, True, 4, False)
    bon, r = suite.sweeps
    assert (bon.objective, r.objective, r.label, r.frontier) == ("Best-of-N", "r", "b", "paths")
    assert r.fixed == ("algo.samples=2",)
    path.write_text(SWEEP)
    suite = get_suite(str(path))
    assert (suite.seeds, suite.jobs, suite.resumable, suite.bon_pool, suite.exact) == ((0,), 1, False, 0, True)
    assert suite.budget == "not stated"
    path.write_text(SWEEP + "resumable: true\n")
    assert get_suite(str(path)).resumable
    # on a language model, a run is minutes: resumable unless the file says otherwise
    lm = "task_args: {task: sentiment}\nsweeps:\n  - {tag: r, algo: reinforce, knob: algo.beta, values: [0.1]}\n"
    path.write_text(lm)
    assert get_suite(str(path)).resumable
    path.write_text(lm + "resumable: false\n")
    assert not get_suite(str(path)).resumable


def test_a_suite_file_run_with_the_default_out_keeps_its_page_beside_its_records(cli, tmp_path, monkeypatch):
    """Run from the repository root without out=, a user's suite writes its runs, records and page under
    ./bench_runs, never into the committed docs/benchmarks of the built-in suites."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my.yaml").write_text(FAST_SUITE + SWEEP)
    code, _, err = cli("bench", "suite=my.yaml", "progress=false")
    assert code == 0, err
    assert (tmp_path / "bench_runs" / "my.md").is_file() and (tmp_path / "bench_runs" / "records" / "my").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench_runs", "my.yaml"]


def test_a_suite_file_is_checked_alike_from_any_current_folder(cli, tmp_path, monkeypatch):
    """The points' configurations were built with run_dir=unused, which the config's check looked for in the
    current folder: run from one that held a file named ``unused`` (or that could not be written), every bench
    run failed with "suite file F: task_args: run_dir=unused is a file, not a directory", blaming a file that
    was fine, and a file's real error was named as that one."""
    from rlhf_zoo.bench.suite_file import validate_suite_file

    monkeypatch.chdir(tmp_path)
    (tmp_path / "unused").write_text("")
    (tmp_path / "runs").write_text("")  # nor does the default run_dir, runs/<algo>-<task>-s<seed>, matter
    path = tmp_path / "my.yaml"
    path.write_text(SWEEP)
    validate_suite_file(load_suite_file(str(path)), str(path))  # no error: every point builds
    path.write_text("sweeps:\n  - {tag: r, algo: reinforce, knob: algo.beta, values: [0.1], fixed: {algo.nosuch: 2}}\n")
    code, out, err = cli("bench", f"suite={path}", f"out={tmp_path}/out", "progress=false")
    assert code == 2 and f"suite file {path}: sweep r: fixed: unknown key 'algo.nosuch'" in err, err


def test_a_suite_file_under_the_home_folder_is_read_from_a_tilde_path(tmp_path, monkeypatch):
    """``suite=~/my.yaml`` quoted (or written in a script) reaches the bench unexpanded: it is the file in the
    home folder, not "no such file"."""
    from rlhf_zoo.bench.suite_file import get_suite

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "my.yaml").write_text(SWEEP)
    suite = get_suite("~/my.yaml")
    assert suite.name == "my" and [s.tag for s in suite.sweeps] == ["r"]


def test_a_null_in_a_suite_file_is_a_null_in_its_points(tmp_path):
    """``task.gold: null`` (no gold reward) reaches each point's arguments as null, not as the text "None"."""
    from rlhf_zoo.bench.suites import expand
    from rlhf_zoo.config import BUILD_ONLY_RUN_DIR, load_config

    path = tmp_path / "my.yaml"
    path.write_text("task_args: {task: sentiment, task.gold: null}\n" + SWEEP)
    (point,) = expand(load_suite_file(str(path)))
    assert load_config([*point.args, BUILD_ONLY_RUN_DIR]).task.gold is None


def test_a_sweep_may_run_a_preset_of_an_algorithm(tmp_path):
    """``algo: rloo`` (rlhf_zoo/configs/algo/rloo.yaml, REINFORCE with its settings) is as good a sweep's algorithm as
    a registered one, as on the command line (algo=rloo)."""
    from rlhf_zoo.config import presets

    assert "rloo" in presets("algo")
    path = tmp_path / "my.yaml"
    path.write_text("sweeps:\n  - {tag: l, algo: rloo, knob: algo.beta, values: [0.1]}\n")
    assert [s.algo for s in load_suite_file(str(path)).sweeps] == ["rloo"]
