"""Typed ``key=value`` options (:mod:`rlhf_zoo.options`) and the commands that declare them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pytest

from rlhf_zoo.bench.command import BenchOptions, parse
from rlhf_zoo.errors import UserError
from rlhf_zoo.options import pairs, set_away_from_default, split_options
from rlhf_zoo.profile import DEFAULT_ALGOS, ProfileOptions


@dataclass
class Opts:
    n: int = 1
    rate: float = 0.5
    flag: bool = False
    seeds: list[int] | None = None
    names: list[str] = field(default_factory=lambda: ["a"])
    path: str | None = None


def test_own_keys_are_converted_and_the_rest_passes_through_in_order():
    args = ["train.steps=5", "n=3", "flag=yes", "seeds=0, 2,", "names=x,y", "algo=bond", "rate=1e-3", "path=p"]
    opts, rest = split_options(args, Opts, "cmd")
    assert opts == Opts(n=3, rate=1e-3, flag=True, seeds=[0, 2], names=["x", "y"], path="p")
    assert rest == ["train.steps=5", "algo=bond"]
    assert split_options([], Opts, "cmd") == (Opts(), [])
    assert split_options(["n=1", "n=4"], Opts, "cmd")[0].n == 4  # the last one wins


def test_a_value_keeps_its_spaces_and_a_key_loses_them():
    """A value is the text the user wrote (a prompt prefix may end with a space); a key is a name."""
    opts, rest = split_options([" path = p ", "train.steps=5"], Opts, "cmd")
    assert opts.path == " p " and rest == ["train.steps=5"]
    assert pairs(["task.prefix=Review: ", " seed =1"], "train") == [("task.prefix", "Review: "), ("seed", "1")]


@pytest.mark.parametrize(
    ("arg", "needle"),
    [
        ("n=two", "cmd: n must be an integer, got 'two'"),
        ("n=1.5", "cmd: n must be an integer"),
        ("rate=fast", "cmd: rate must be a number"),
        ("flag=maybe", "cmd: flag must be true or false, got 'maybe'"),
        ("seeds=0,x", "cmd: seeds must be a comma-separated list of integers, got '0,x'"),
        ("oops", "cmd: expected key=value, got 'oops'"),
        ("=3", "cmd: expected key=value"),
        ("seeds=", "cmd: seeds lists nothing (seeds=)"),  # an unset shell variable: not the default seeds
        ("names=,", "cmd: names lists nothing (names=,)"),  # not the default names
    ],
)
def test_a_bad_value_or_a_missing_equals_is_one_line_naming_command_and_key(arg, needle):
    with pytest.raises(UserError) as e:
        split_options(["train.steps=5", arg], Opts, "cmd")
    assert needle in str(e.value) and len(str(e.value).splitlines()) == 1


def test_bench_and_profile_keep_their_option_names_and_defaults():
    opts, extra = parse(["suite=quick", "seeds=0,1", "only=bond,jbond_eta", "jobs=2", "model.name=tiny"])
    assert opts == BenchOptions(suite="quick", seeds=[0, 1], only=["bond", "jbond_eta"], jobs=2)
    assert (opts.out, opts.docs, opts.render, opts.render_only, opts.progress) == (
        "bench_runs",
        None,  # resolved by main: docs/benchmarks with the default out, else out itself
        True,
        False,
        True,
    )
    assert extra == ["model.name=tiny"]
    with pytest.raises(UserError, match="name a suite"):
        parse(["out=x"])
    prof, rest = split_options(["steps=3", "task=exact"], ProfileOptions, "profile")
    assert (prof.algos, prof.steps, prof.warmup, prof.out) == (list(DEFAULT_ALGOS), 3, 1, None)
    assert rest == ["task=exact"]


@pytest.mark.parametrize(
    ("command", "args", "needle"),
    [
        ("bench", ["suite=exact", "jobs=two"], "bench: jobs must be an integer"),
        ("bench", ["suite=exact", "render_only=maybe"], "bench: render_only must be true or false"),
        ("bench", ["suite=exact", "seeds=0,x"], "bench: seeds must be a comma-separated list of integers"),
        ("bench", ["suite=exact", "oops"], "bench: expected key=value"),
        ("bench", ["suite=exact", "only=,"], "bench: only lists nothing"),  # it ran every sweep
        ("profile", ["algos=reinforce", "steps=x"], "profile: steps must be an integer"),
        ("profile", ["algos=reinforce", "oops"], "profile: expected key=value"),
        # steps=0 ended in a ZeroDivisionError traceback from the worker that times the steps
        ("profile", ["algos=reinforce", "task=exact", "steps=0"], "profile: steps must be >= 1"),
        ("profile", ["algos=reinforce", "task=exact", "warmup=-1"], "profile: warmup must be >= 0"),
    ],
)
def test_command_line_reports_a_bad_option_in_one_line_with_exit_2(capsys, tmp_path, command, args, needle):
    from rlhf_zoo.cli import main

    # were the bad option accepted, bench fails fast on the unknown sweep (never runs a suite)
    guard = [f"out={tmp_path}", "only=nope"] if command == "bench" else []
    assert main([command, *args, *guard]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_the_bench_writes_only_where_it_is_pointed(tmp_path, monkeypatch, capsys):
    """With ``out=`` and no ``docs=``, the page goes under ``out``: a bench run from the repository
    root must not overwrite the committed pages in ./docs/benchmarks."""
    from rlhf_zoo.cli import main

    monkeypatch.chdir(tmp_path)
    args = ["bench", "suite=exact", f"out={tmp_path}/elsewhere", "only=best_of_n", "seeds=0", "jobs=1"]
    assert main([*args, "progress=false"]) == 0, capsys.readouterr().err
    assert (tmp_path / "elsewhere" / "exact.md").is_file()
    assert not (tmp_path / "docs").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere"]


def _refused_before_any_work(capsys, tmp_path, args, needle):
    from rlhf_zoo.cli import main

    (tmp_path / "f").write_text("x")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert needle.replace("{tmp}", str(tmp_path)) in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "o").exists(), "nothing is run"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["out=/proc/no/such"], "out=/proc/no/such"),
        (["out={tmp}/f"], "out={tmp}/f is a file"),
        (["out={tmp}/o", "docs=/proc/no"], "docs=/proc/no"),  # this one after running every point
        (["out={tmp}/o", "records={tmp}/f"], "records={tmp}/f is a file"),
    ],
)
def test_a_bench_folder_that_cannot_be_written_is_one_line_before_any_work(capsys, tmp_path, args, needle):
    """Each ended in a FileNotFoundError / FileExistsError traceback."""
    bench = ["bench", "suite=exact", "only=best_of_n", "seeds=0", "progress=false"]
    _refused_before_any_work(capsys, tmp_path, [*bench, *args], needle)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        # after every objective had been profiled: a FileNotFoundError / IsADirectoryError traceback
        (["algos=reinforce", "out=/proc/no/p.json"], "profile: out=/proc/no/p.json: "),
        (["algos=reinforce", "out={tmp}"], "profile: out={tmp} is a directory"),
        # no objective: an IndexError traceback after an empty table
        (["algos="], "profile: algos lists nothing (algos=)"),
    ],
)
def test_a_profile_without_objectives_or_a_writable_out_is_one_line_before_any_work(capsys, tmp_path, args, needle):
    _refused_before_any_work(capsys, tmp_path, ["profile", "task=exact", *args], needle)


def test_the_bench_options_reach_the_runs(tmp_path, capsys):
    """``jobs=`` and ``keep_checkpoints=`` on the command line are what the bench runs with, not parsed and
    dropped."""
    import json

    from rlhf_zoo.bench.suites import EXACT
    from rlhf_zoo.cli import main

    out = tmp_path / "runs"
    args = ["suite=exact", "only=reinforce", "seeds=0", "train.steps=2", "train.eval_every=2", "render=false"]
    assert main(["bench", *args, f"out={out}", "jobs=1", "keep_checkpoints=true", "progress=false"]) == 0, (
        capsys.readouterr().err
    )
    runs = sorted((out / "exact").glob("reinforce-*"))
    assert len(runs) >= 2 and all((d / "checkpoint").is_dir() for d in runs)
    assert json.loads((out / "exact" / "bench.json").read_text())["jobs"] == 1 != EXACT.jobs


def test_a_field_counts_as_set_only_when_its_value_differs_from_its_default():
    """An equal value given on purpose is the default (a resolved config holds it); no field, or a
    default built by a factory, is never called set."""
    assert not set_away_from_default(Opts(), "n")
    assert not set_away_from_default(Opts(n=1, rate=0.5), "rate")
    assert set_away_from_default(Opts(n=2), "n")
    assert not set_away_from_default(Opts(n=2), "rate")
    assert set_away_from_default(Opts(path=""), "path")  # "" is not None
    assert not set_away_from_default(Opts(names=["z"]), "names")
    assert not set_away_from_default(Opts(n=2), "missing")


def test_items_of_a_list_of_names_are_taken_without_the_spaces_around_them():
    """``only="bond_beta, jbond_beta"`` names two sweeps, not ``" jbond_beta"`` (which no sweep is called)."""
    opts, _ = split_options(["names=x, y ,z"], Opts, "cmd")
    assert opts.names == ["x", "y", "z"]


@dataclass
class OptionalOpts:
    flag: bool | None = None
    old_style: Optional[bool] = None  # noqa: UP045 - the spelling under test
    count: Optional[int] = None  # noqa: UP045


def test_an_optional_field_takes_its_types_values_however_it_is_spelt():
    """``bool | None`` reads the words ``bool`` reads and refuses the others (``2``, which OmegaConf alone would
    take as true), and so does ``Optional[bool]``; an ``Optional[int]`` refuses a word naming the type it wants."""
    opts, rest = split_options(["flag=t", "old_style=off"], OptionalOpts, "cmd")
    assert (opts.flag, opts.old_style, rest) == (True, False, [])
    with pytest.raises(UserError, match=r"^cmd: flag must be true or false, got '2'$"):
        split_options(["flag=2"], OptionalOpts, "cmd")
    with pytest.raises(UserError, match=r"^cmd: old_style must be true or false, got 'maybe'$"):
        split_options(["old_style=maybe"], OptionalOpts, "cmd")
    with pytest.raises(UserError, match=r"^cmd: count must be an integer, got 'x'$"):
        split_options(["count=x"], OptionalOpts, "cmd")


@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_value_of_a_scalar_option_is_refused(value):
    """``path=$UNSET``: not silently the default (None here), nor an empty path."""
    with pytest.raises(UserError, match=r"^cmd: path is empty \(path=\s*\): give it a value, or leave it out$"):
        split_options([f"path={value}"], Opts, "cmd")
