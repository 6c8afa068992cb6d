"""``config=FILE.yaml``: an experiment file with the command line's keys, composed with overrides."""

from __future__ import annotations

import pytest
import yaml


def _resolved(run_dir):
    return yaml.safe_load((run_dir / "config.yaml").read_text())


def _write(path, text):
    path.write_text(text)
    return path


def test_a_file_sets_what_the_command_line_would_and_the_command_line_wins(cli, tmp_path):
    exp = _write(
        tmp_path / "exp.yaml",
        "algo: bond\nseed: 3\nalgo.beta: 0.25\ntrain:\n  steps: 2\n  eval_every: 1\n  progress: false\n",
    )
    code, _, err = cli("train", f"config={exp}", "train.eval_every=2", f"run_dir={tmp_path}/a")
    assert code == 0, err
    cfg = _resolved(tmp_path / "a")
    assert cfg["algo"]["name"] == "bond" and cfg["task"]["name"] == "exact"
    assert (cfg["seed"], cfg["algo"]["beta"], cfg["train"]["steps"]) == (3, 0.25, 2)
    assert cfg["train"]["eval_every"] == 2  # the command line over the file
    # the task's tuned default for bond (rlhf_zoo/configs/task/exact/bond.yaml) still applies
    assert cfg["algo"]["samples"] == 4
    # algo= on the command line picks another algorithm; the file's algo.* settings then apply to it.
    code, _, err = cli("train", f"config={exp}", "algo=jbond", "train.steps=0", f"run_dir={tmp_path}/j")
    assert code == 0, err
    assert _resolved(tmp_path / "j")["algo"] == {**_resolved(tmp_path / "j")["algo"], "name": "jbond", "beta": 0.25}
    code, _, err = cli("train", f"config={exp}", "algo=best_of_n", f"run_dir={tmp_path}/b")
    assert code == 2 and "unknown key 'algo.beta'" in err and "fields algo=best_of_n" in err  # Best-of-N has none


def test_nested_algo_mapping_and_a_preset(cli, tmp_path):
    exp = _write(tmp_path / "exp.yaml", "algo: {name: rloo, samples: 8}\ntrain: {steps: 0, progress: false}\n")
    code, _, err = cli("train", f"config={exp}", f"run_dir={tmp_path}/a")
    assert code == 0, err
    algo = _resolved(tmp_path / "a")["algo"]
    assert (algo["name"], algo["baseline"], algo["samples"]) == ("reinforce", "loo", 8)


def test_a_saved_config_reruns_as_it_is(cli, tmp_path):
    code, _, err = cli("train", "algo=jbond", "algo.gamma=1.0", "train.steps=2", "train.eval_every=1",
                       "train.progress=false", f"run_dir={tmp_path}/a")  # fmt: skip
    assert code == 0, err
    code, _, err = cli("train", f"config={tmp_path}/a/config.yaml", f"run_dir={tmp_path}/b")
    assert code == 0, err
    first, second = _resolved(tmp_path / "a"), _resolved(tmp_path / "b")
    assert {**first, "run_dir": None} == {**second, "run_dir": None}


def test_a_resumed_runs_saved_config_reruns_from_the_start_not_as_a_resume(cli, tmp_path):
    """``resume=true`` is what a start did, not a setting of the run: the config.yaml that a resumed start
    writes re-runs the run elsewhere from step 0 without a resume's message, and still resumes its own."""
    args = ["algo=bond", "train.steps=2", "train.progress=false", f"run_dir={tmp_path}/a"]
    code, _, err = cli("train", *args, "resume=true")  # nothing to resume yet: starts at step 0
    assert code == 0 and "nothing to resume" in err, err
    assert _resolved(tmp_path / "a")["resume"] is False
    code, out, err = cli("train", f"config={tmp_path}/a/config.yaml", f"run_dir={tmp_path}/b")
    assert code == 0 and "nothing to resume" not in out + err, out + err
    assert {**_resolved(tmp_path / "a"), "run_dir": None} == {**_resolved(tmp_path / "b"), "run_dir": None}
    code, _, err = cli("train", f"config={tmp_path}/a/config.yaml", "resume=true")
    assert code == 0, err


def test_a_saved_config_run_from_another_folder_says_where_its_relative_paths_start(cli, tmp_path, monkeypatch):
    """A run's config.yaml keeps its paths as written (``task.prompts: p.jsonl``); used as ``config=`` from
    another folder the file was not found, with no word of the folder the run ran in (meta.json's ``cwd``)."""
    import json

    run = tmp_path / "there" / "run"
    run.mkdir(parents=True)
    _write(tmp_path / "there" / "p.jsonl", '{"text": "a prompt"}\n')
    _write(run / "config.yaml", "algo: reinforce\ntask: sentiment\ntask.prompts: p.jsonl\n")
    _write(run / "meta.json", json.dumps({"cwd": str(tmp_path / "there")}))
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("train", "config=there/run/config.yaml", f"run_dir={tmp_path}/b")
    assert code == 2 and not out and len(err.strip().splitlines()) == 1, err
    assert "task.prompts=p.jsonl: no such file or directory (the run that saved there/run/config.yaml ran in " in err
    assert f"{tmp_path / 'there'}, where its relative paths start: run from there)" in err
    (run / "meta.json").unlink()  # a config file that no run saved: the error alone
    code, _, err = cli("train", "config=there/run/config.yaml", f"run_dir={tmp_path}/b")
    assert code == 2 and err.strip().endswith("task.prompts=p.jsonl: no such file or directory"), err


def test_the_saved_run_s_folder_is_named_only_from_elsewhere_and_found_through_a_home_path(cli, tmp_path, monkeypatch):
    """Run from the folder the run ran in, "run from there" would send the user where they are: the error alone.
    ``config=~/...``, or a config= among load_config's defaults, finds the meta.json beside the file as the file
    itself is found."""
    import json

    there = tmp_path / "there"
    (there / "run").mkdir(parents=True)
    _write(there / "run" / "config.yaml", "algo: reinforce\ntask: sentiment\ntask.prompts: p.jsonl\n")
    _write(there / "run" / "meta.json", json.dumps({"cwd": str(there)}))
    monkeypatch.chdir(there)
    code, _, err = cli("train", "config=run/config.yaml", f"run_dir={tmp_path}/b")
    assert code == 2 and err.strip().endswith("task.prompts=p.jsonl: no such file or directory"), err
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("train", "config=~/there/run/config.yaml", f"run_dir={tmp_path}/b")
    assert code == 2 and f"(the run that saved ~/there/run/config.yaml ran in {there}, where its" in err, err
    # a config file given among a caller's defaults (load_config's second argument) is the run's as well
    from rlhf_zoo.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=r"\(the run that saved there/run/config.yaml ran in "):
        load_config([f"run_dir={tmp_path}/b"], {"config": "there/run/config.yaml"})


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (None, "no such file"),
        ("- algo\n- bond\n", "mapping"),
        ("algo: [bond\n", "cannot read"),
        ("algo: bond\ntrain.stepz: 3\n", "stepz"),
        ("algo: bond\nalgo.beta: 0.5\nalgo: {beta: 0.1}\n", "twice"),
        ("algo: bond\nconfig: other.yaml\n", "do not nest"),
        ("task: exact\n", "name an algorithm (config="),
        ("algo: dpo\n", "exp.yaml: unknown algorithm 'dpo'"),
        # a value of the file refused: named no file, though a wrong key or type in it did
        ("algo: {name: bond, n: 0}\ntask: exact\n", "exp.yaml: algo.n must be >= 2 for BOND, got 0"),
        ("algo: bond\nalgo.beta: -0.5\n", "exp.yaml: algo.beta must lie in [0, 1], got -0.5"),
        # the same key dotted and nested: YAML sees two keys, and the later one won silently
        ("algo.beta: 0.5\nalgo: {name: bond, beta: 0.1}\n", "sets algo.beta twice"),
        ("algo: bond\nseed: 1\nseed.x: 2\n", "seed.x lies under a key that holds a value"),
        # an alias inside what it names was a RecursionError traceback
        ("algo: bond\ntrain: &t {steps: *t}\n", "train.steps holds itself (an alias inside what it names, line 2)"),
        # a suite file said "name an algorithm: algo=NAME ..."
        ("sweeps:\n  - {tag: r, algo: bond, knob: algo.beta, values: [0.1]}\n", "is a suite file (its sweeps:): run"),
        ("name: s\nalgo: bond\nsweeps: []\n", "is a suite file (its sweeps:): run"),
        # sweep: misspelt beside a run's settings: it was a "suite file", or "name an algorithm" for a swept algo
        ("algo: bond\nsweeps: {seed: [0, 1]}\n", "exp.yaml: unknown key 'sweeps'; did you mean sweep? (a suite"),
        ("task: exact\nsweps: {algo: [bond, jbond]}\n", "exp.yaml: unknown key 'sweps'; did you mean sweep?\n"),
        ("algo: bond\nsweps: {seed: [0, 1]}\n", "exp.yaml: unknown key 'sweps'; did you mean sweep?\n"),
        ("algo: bond\nsteps: 3\n", "unknown key 'steps'; did you mean train.steps?"),  # not sweep
        ("steps: 3\n", "name an algorithm (config="),  # the file named: it names none
        # a list for one value said only "could not be converted to Integer"
        ("algo: bond\nseed: [0, 1]\n", "(key: seed); to run each of several, list them under sweep: {seed: [0, 1]}"),
        # a list of algorithms or tasks said: unknown algorithm "['bond', 'jbond']", naming no file
        (
            "algo: [bond, jbond]\n",
            'exp.yaml: algo takes one name, got ["bond", "jbond"]; to run each of several, list them under sweep: '
            "(sweep: {algo: [bond, jbond]})",
        ),
        ("algo: {name: [bond]}\n", 'exp.yaml: algo.name takes one name, got ["bond"]'),
        # an empty mapping is a value like any other, not a key left out (the run would take the default)
        ("algo: {}\n", "exp.yaml: algo takes one name, got {}"),
        ("algo: bond\nseed: {}\n", "could not be converted to Integer (key: seed)"),
        ("algo: bond\ntask: [exact, sentiment]\n", 'exp.yaml: task takes one name, got ["exact", "sentiment"]'),
        # said "algo.name and task.name are chosen with algo=NAME and task=NAME", naming no file
        ("algo: bond\nalgo.name: jbond\n", "exp.yaml names the algo twice (algo: bond and algo.name: jbond): keep one"),
        ("task: exact\ntask.name: sentiment\n", "exp.yaml names the task twice (task: exact and task.name:"),
        # said "Value 'date' is not a supported primitive type (key: run_dir)"
        ("algo: bond\nrun_dir: 2026-01-01\n", "exp.yaml: run_dir: YAML reads 2026-01-01 as a date: quote it ('2026"),
        ("algo: bond\ntrain: {steps: 2026-01-01}\n", "exp.yaml: train.steps: YAML reads 2026-01-01 as a date"),
    ],
)
def test_a_bad_file_is_one_line_before_any_work(cli, tmp_path, text, needle):
    exp = tmp_path / "exp.yaml"
    if text is not None:
        exp.write_text(text)
    code, _, err = cli("train", f"config={exp}", f"run_dir={tmp_path}/run")
    assert code == 2 and needle in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_a_value_refused_from_the_command_line_does_not_name_the_file(cli, tmp_path):
    exp = tmp_path / "exp.yaml"
    exp.write_text("algo: bond\nalgo.n: 0\n")
    code, _, err = cli("train", f"config={exp}", "algo.n=1", f"run_dir={tmp_path}/run")
    assert code == 2 and err == "rlhf-zoo: error: algo.n must be >= 2 for BOND, got 1\n", err
    code, _, err = cli("train", f"config={exp}", "algo=dpo", f"run_dir={tmp_path}/run")
    assert code == 2 and err.startswith("rlhf-zoo: error: unknown algorithm 'dpo'"), err


def test_an_experiment_file_that_is_a_directory_is_said_to_be_one(cli, tmp_path):
    """``config=DIR`` said "no such file" of a path that is there."""
    (tmp_path / "exp.yaml").mkdir()
    code, _, err = cli("train", f"config={tmp_path}/exp.yaml", f"run_dir={tmp_path}/run")
    assert code == 2 and f"config={tmp_path}/exp.yaml: is a directory, not a YAML file" in err, err


@pytest.mark.parametrize("extra", [[], ["seed=0,1"]])
@pytest.mark.parametrize("arg", ["config=", "config= "])
def test_an_empty_config_is_said_to_be_empty(cli, tmp_path, extra, arg):
    """``config=`` (an unset shell variable) said "config=: is a directory, not a YAML file" (Path("") is the
    current folder); a blank one (``"config= $EXP"``, EXP unset) is as empty, not "no such file"."""
    code, _, err = cli("train", "algo=bond", arg, *extra, f"run_dir={tmp_path}/run")
    assert code == 2 and "config is empty (config=): give it an experiment file FILE.yaml" in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        # said OmegaConf's "Key 'stps' not in 'TrainConfig'. Did you mean: 'steps'? (key: train.stps)", without
        # the file, where the command line's train.stps=3 names the key meant
        ("algo: bond\ntask: exact\ntrain: {stps: 3}\n", "unknown key 'train.stps'; did you mean train.steps?"),
        ("algo: {name: bond, bta: 0.5}\ntask: exact\n", "unknown key 'algo.bta'; did you mean algo.beta?"),
        ("algo: bond\ntask: exact\nalgo.bta: 0.5\n", "unknown key 'algo.bta'; did you mean algo.beta?"),
        # a wrong type did not name the file either
        ("algo: bond\ntask: exact\ntrain: {steps: ten}\n", "'ten' of type 'str' could not be converted to Integer"),
    ],
)
def test_a_bad_key_or_value_in_a_section_of_the_file_names_the_file(cli, tmp_path, text, needle):
    exp = tmp_path / "exp.yaml"
    exp.write_text(text)
    code, _, err = cli("train", f"config={exp}", "train.steps=2", f"run_dir={tmp_path}/run")
    assert code == 2 and err.startswith(f"rlhf-zoo: error: config={exp}: ") and needle in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        # a repeated key: YAML keeps the last, so ``seed: 1`` then ``seed: 2`` ran seed 2, silently
        ("task: exact\nseed: 1\nseed: 2\n", "key 'seed' appears twice (line 3; first at line 2)"),
        ("task: exact\ntrain:\n  steps: 1\n  eval_every: 1\n  steps: 2\n",
         "key 'train.steps' appears twice (line 5; first at line 3)"),
        ("task: exact\nsweep:\n  seed: [0, 1]\n  seed: [2]\n", "key 'sweep.seed' appears twice (line 4"),
        # a syntax error: it said only "cannot read it: ParserError: while parsing a flow mapping"
        ("task: exact\ntrain: {steps: 1\nseed: 2\n",
         "YAML syntax error at line 3, column 5: expected ',' or '}', but got ':' (while parsing a flow mapping "
         "started at line 2)"),
        ("task: exact\n  seed: 2\n", "YAML syntax error at line 2, column 7: mapping values are not allowed here"),
    ],
)  # fmt: skip
def test_an_experiment_file_that_does_not_read_is_one_line_naming_the_problem_and_its_line(cli, tmp_path, text, needle):
    """A key written twice or a YAML syntax error: one error line that says what and where, nothing run."""
    exp = _write(tmp_path / "exp.yaml", text)
    code, out, err = cli("train", "algo=bond", f"config={exp}", f"run_dir={tmp_path}/a")
    assert code == 2 and needle in err and f"config={exp}" in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "a").exists()


def test_the_command_line_chooses_over_the_file_and_an_empty_file_sets_nothing(tmp_path, monkeypatch):
    """The command line's task= and algo= win over the file's, as every other key does; an empty file is no
    settings (not "must hold a mapping"); ``config=~/exp.yaml`` is read from the home folder (a YAML file or a
    quoted argument keeps the ``~``)."""
    from rlhf_zoo.config import compose

    exp = _write(tmp_path / "exp.yaml", "algo: jbond\ntask: sentiment\nseed: 4\n")
    cfg = compose([f"config={exp}", "task=exact", "algo=bond"])
    assert (cfg.task.name, cfg.algo.name, cfg.seed) == ("exact", "bond", 4)
    empty = _write(tmp_path / "empty.yaml", "")
    assert compose([f"config={empty}", "algo=bond"]).seed == 0
    monkeypatch.setenv("HOME", str(tmp_path))
    assert compose(["config=~/exp.yaml", "task=exact"]).algo.name == "jbond"


@pytest.mark.parametrize("command", ["train", "bench"])
def test_an_experiment_or_suite_file_that_is_not_utf8_says_so(cli, tmp_path, command):
    """A file saved as Latin-1 said "cannot read it: UnicodeDecodeError: 'utf-8' codec can't decode byte 0xe9 in
    position 23: invalid continuation byte"; a prompt file in the same case says what to do."""
    path = tmp_path / "exp.yaml"
    path.write_bytes(b"algo: bond\ndescription: caf\xe9\n")
    arg = f"config={path}" if command == "train" else f"suite={path}"
    code, _, err = cli(command, arg, f"out={tmp_path}/o" if command == "bench" else f"run_dir={tmp_path}/r")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "cannot read it: not UTF-8 text (byte 0xe9 at offset 27): save it as UTF-8" in err, err
