"""Sweeps of ``rlhf-zoo train``: every combination of some keys' values, run by the bench's runner.

    rlhf-zoo train task=exact algo=bond,jbond seed=0,1,2 algo.beta=0.1,0.5 out=runs/my_sweep
    rlhf-zoo train config=sweep.yaml seed=0,1        # the file's ``sweep:`` mapping, key -> list of values

A value with a comma at its top level is a list of values to sweep: any key but ``config``, ``out``,
``run_dir`` and ``resume``. Brackets and quotes protect commas, as in YAML: ``[q_proj,v_proj]`` is one
list value (``model.lora_target_modules=[q_proj],[q_proj,v_proj]`` sweeps two), ``'my,file.jsonl'``
one string. An experiment file (``config=FILE.yaml``, :func:`rlhf_zoo.config.read_sweep`) may hold a
``sweep:`` mapping; a key given on the command line replaces the file's sweep of it (a single value
stops sweeping it; with every key pinned, the file still runs its one point in the sweep's folder, never
a single run in the folder itself; a ``sweep:`` left empty, or a key that the file both sets and sweeps, is
refused). An empty item, an item listed twice (or one value written twice: 1 and 1.0) or a non-integer seed is
one error line; so is a bad key or value, naming the experiment file when it is the file's.

The grid becomes a :class:`~rlhf_zoo.bench.suites.Suite` (:func:`grid_suite`): one sweep per algorithm
and combination of the other swept keys but the last, which is the sweep's knob; the swept seeds are
the suite's seeds. The swept keys are sorted first, so the order in which they are written (on the
command line or in the file) changes neither the points nor their ids: the knob is the alphabetically
last key. :func:`~rlhf_zoo.bench.runner.run_suite` then builds every configuration first
(an unknown algorithm or key fails before anything runs), runs the points with a progress bar into
``<folder>/<point-id>/`` (each a run directory with a ``record.json``), never recomputes a finished
point, and continues an interrupted one from its checkpoint. At the end the table of
``rlhf-zoo compare <folder>`` is printed. Its own options, on the command line only and as the bench's:
``redo=true`` runs again the finished points that its settings no longer make, or that read a file of yours
since edited (a ``py:`` reward: :mod:`rlhf_zoo.inputs`), refused without it, naming the change, before anything
is deleted; ``keep_checkpoints=true`` keeps each finished point's checkpoint
(to export its policy; deleted by default).

The folder is ``out=`` (or ``run_dir=``, or the file's ``run_dir``); by default
``runs/<algos>-<task>-sweep-<digest>``, beside a single run's ``runs/<algo>-<task>-s<seed>``, where
the digest covers the fixed settings and the swept keys but not their values, so that the same
command, or one with more seeds or values, continues in the same folder.
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from rlhf_zoo.bench.suites import Point, Suite, Sweep, first_repeated, format_value, one_value_twice
from rlhf_zoo.config import ConfigError, flatten, parse_overrides, read_experiment, read_sweep
from rlhf_zoo.errors import UserError

FOLDER_KEYS = ("out", "run_dir")
OPTIONS = ("redo", "keep_checkpoints")  # the sweep's own, as the bench's: true or false, on the command line only
NOT_SWEPT = ("config", *FOLDER_KEYS, "resume", *OPTIONS)


def split_values(key: str, value: str) -> list[str]:
    """``value`` split at its top-level commas (not inside ``[]``, ``{}`` or a quoted item); one
    item when it has none. Raises ConfigError on an empty item or one listed twice."""
    items, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(value):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"" and not value[start:i].strip():
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(value[start:i].strip())
            start = i + 1
    items.append(value[start:].strip())
    if len(items) > 1:
        if "" in items:
            raise ConfigError(f"{key}={value}: an empty item in the list (quote a value with a comma: {key}='a,b')")
        twice = first_repeated(items)
        if twice is not None:
            raise ConfigError(f"{key}={value} lists {twice} twice")
        _one_value_twice(items, [_read(i) for i in items], f"{key}={value}")
    return items


def _read(item: str) -> Any:
    """A command-line item as the config reads it (``1.0`` and ``1e0`` a float, ``[a, b]`` a list)."""
    try:
        node = OmegaConf.from_dotlist([f"k={item}"]).k
    except Exception:  # noqa: BLE001 - not YAML the config reads: the item as written
        return item
    return OmegaConf.to_container(node) if OmegaConf.is_config(node) else node


def _one_value_twice(written: list[str], values: list[Any], where: str) -> None:
    """Refuse two items that are one value (:func:`~rlhf_zoo.bench.suites.one_value_twice`): both ran, into two
    folders, as one configuration, and the sweep's closing table refused them as one seed counted twice."""
    same = one_value_twice(written, values)
    if same is not None:
        raise ConfigError(f"{where} lists {same[0]} and {same[1]}, one value: keep one")


@dataclass(frozen=True)
class SweepPlan:
    """A sweep, ready to run: its folder and the suite of its points."""

    folder: Path
    suite: Suite
    command: str
    args: tuple[str, ...] = ()
    redo: bool = False
    keep_checkpoints: bool = False


def plan_sweep(args: list[str]) -> SweepPlan | None:
    """The sweep that ``rlhf-zoo train ARGS`` asks for, or None for a single run. Raises ConfigError."""
    over = parse_overrides(args)
    grid = {k: v for k, v in ((k, split_values(k, v)) for k, v in over.items()) if len(v) > 1}
    _check_keys(grid)
    choices: dict[str, str] = {}
    settings: dict[str, Any] = {}
    file_sweep: dict[str, list[Any]] = {}
    if "config" in over:
        choices, settings, file_sweep = _read_sweep_file(over["config"])
        grid = {**{k: [_arg(v) for v in vs] for k, vs in file_sweep.items() if k not in over}, **grid}
    if not grid and not file_sweep:  # a sweep file stays a sweep (of one point) with every key pinned
        if "out" in over:
            raise ConfigError("out=DIR names a sweep's folder (a key with several values); one run's is run_dir=DIR")
        if given := [k for k in OPTIONS if k in over]:
            raise ConfigError(
                f"{given[0]}= is a sweep's option (a key with several values); a single run keeps its checkpoint, "
                "and refuses a run_dir that holds a run"
            )
        return None
    _check_keys(grid)
    _check_sweep_overrides(over)
    options = {k: _flag(k, over[k]) for k in OPTIONS if k in over}
    fixed: dict[str, str] = {k: _arg(v) for k, v in settings.items() if k not in NOT_SWEPT}
    if "task" in choices:
        fixed = {"task": choices["task"], **fixed}
    fixed.update((k, v) for k, v in over.items() if k not in NOT_SWEPT)
    for k in grid:
        fixed.pop(k, None)
    algo = fixed.pop("algo", choices.get("algo"))
    algos = grid.pop("algo", [algo] if algo else [])
    if not algos:
        raise ConfigError("name an algorithm: algo=NAME, or algo=A,B to sweep over several")
    grid = dict(sorted(grid.items()))  # the order the keys were written in must not change the points' ids
    seed_values = grid.pop("seed", [fixed.pop("seed", "0")])
    try:
        seeds = tuple(int(s) for s in seed_values)
    except ValueError:
        from_file = "seed" not in over and ("seed" in file_sweep or "seed" in settings)
        where = f"config={over['config']}: " if from_file else ""
        key = "sweep.seed" if from_file and "seed" in file_sweep else "seed"
        raise ConfigError(f"{where}{key} takes integers, got {','.join(seed_values)}") from None
    base = [f"{k}={v}" for k, v in fixed.items()]
    folder = Path(
        over.get("out") or over.get("run_dir") or settings.get("run_dir") or default_folder(algos, base, grid)
    )
    if (folder.expanduser() / "config.yaml").is_file():  # its points would run inside another run's directory
        key = next((k for k in FOLDER_KEYS if over.get(k)), "run_dir")
        raise ConfigError(
            f"{key}={folder} holds a single run (its config.yaml): a sweep's folder holds a run directory per "
            "point: name another folder"
        )
    suite = grid_suite(folder.expanduser().resolve().name, base, algos, grid, seeds)
    return SweepPlan(folder, suite, " ".join(["rlhf-zoo", "train", *args]), tuple(args), **options)


def _flag(key: str, value: str) -> bool:
    """A sweep option's ``true``/``false``, spelt as the bench's (:func:`rlhf_zoo.io.parse_bool`); ConfigError
    otherwise."""
    from rlhf_zoo.io import parse_bool

    try:
        return parse_bool(value)
    except ValueError:
        raise ConfigError(f"{key} takes true or false, got {value!r}") from None


def _read_sweep_file(path: str) -> tuple[dict[str, str], dict[str, Any], dict[str, list[Any]]]:
    """A ``config=`` file's (choices, settings, sweep): its group choices, its settings as dotted keys and its
    ``sweep:`` values by key, each checked (a key both set and swept, a value listed twice, ...)."""
    where = f"config={path}"
    choices, settings = read_experiment(path)
    file_sweep = read_sweep(path)
    settings = flatten(settings, where)
    if "out" in settings:  # no run's key (a single run refuses it): not silently the default folder
        raise ConfigError(f"{where}: unknown key 'out'; a sweep file names its folder with run_dir:")
    if given := [k for k in OPTIONS if k in settings]:  # not silently dropped with the other NOT_SWEPT keys
        raise ConfigError(f"{where}: {given[0]} is an option of the command line ({given[0]}=true), not of the file")
    if isinstance(settings.get("run_dir"), list):  # as a single run refuses it; a number is a folder's name
        raise ConfigError(f"{where}: run_dir must be one folder, got {settings['run_dir']!r}")
    if settings.get("run_dir") is not None:
        settings["run_dir"] = str(settings["run_dir"])  # run_dir: 2026 was Path(2026), a TypeError traceback
    both = sorted(set(file_sweep) & ({*settings, *choices} - set(NOT_SWEPT)))  # the sweep dropped the value
    if both:
        raise ConfigError(f"{where} sets {both[0]} and sweeps it (sweep.{both[0]}): keep one")
    swept = sorted(set(file_sweep) & set(NOT_SWEPT))  # config: the command line's config= would drop it
    if swept:
        raise ConfigError(f"{where}: sweep.{swept[0]} cannot be swept (one value: {swept[0]}: VALUE)")
    for k, vs in file_sweep.items():
        items = [format_value(v) for v in vs]
        twice = first_repeated(items)
        if twice is not None:
            raise ConfigError(f"{where}: sweep.{k} lists {twice} twice")
        _one_value_twice(items, list(vs), f"{where}: sweep.{k}")
    return choices, settings, file_sweep


def _check_sweep_overrides(over: dict[str, str]) -> None:
    """Refuse the command line's keys that a sweep cannot take: resume=, both out= and run_dir=, an empty folder."""
    if "resume" in over:
        raise ConfigError("a sweep continues by itself where it stopped: run the same command again, without resume=")
    if "out" in over and "run_dir" in over:
        raise ConfigError("name the sweep's folder once: out=DIR (or run_dir=DIR)")
    for key in FOLDER_KEYS:  # out= with an unset shell variable: not silently the default folder
        if key in over and not over[key].strip():
            raise ConfigError(f"{key} is empty ({key}=): give it a folder, or leave it out")


def _arg(v: Any) -> str:
    """A file's value as a ``key=VALUE`` argument that reads back as the same value: :func:`format_value`,
    with a string quoted when the command line's YAML would read it otherwise (``yes``, ``a #b``, ``a: b``)."""
    text = format_value(v)
    if not isinstance(v, str):
        return text
    try:
        back = OmegaConf.from_dotlist([f"k={text}"]).k
    except Exception:  # noqa: BLE001 - a value YAML cannot read at all: quote it
        return json.dumps(v)
    if back == v:
        return text
    if isinstance(back, (int, float)) and not isinstance(back, bool):  # 1e-4: a number either way
        try:
            if float(v) == float(back):
                return text
        except ValueError:
            pass
    return json.dumps(v)


def _check_keys(grid: dict[str, list[str]]) -> None:
    swept = sorted(set(grid) & set(NOT_SWEPT))
    if swept:
        raise ConfigError(f"{swept[0]} cannot be swept (one value: {swept[0]}=VALUE)")


def default_folder(algos: list[str], base: list[str], grid: dict[str, list[str]]) -> str:
    """``runs/<algos>-<task>-sweep-<digest>``: the digest of the fixed settings and the swept keys."""
    task = next((a.split("=", 1)[1] for a in reversed(base) if a.startswith("task=")), "exact")
    digest = hashlib.sha1(json.dumps([sorted(base), sorted(grid), sorted(algos)]).encode()).hexdigest()[:6]
    return f"runs/{'+'.join(algos)}-{task}-sweep-{digest}"


def _tag(algo: str, fixed: tuple[str, ...]) -> str:
    words = [algo, *(f"{k.rsplit('.', 1)[-1]}{v}" for k, _, v in (a.partition("=") for a in fixed))]
    return re.sub(r"[^a-z0-9]+", "_", " ".join(words).lower()).strip("_") or "sweep"


def grid_suite(
    name: str, base: list[str], algos: list[str], grid: dict[str, list[str]], seeds: tuple[int, ...]
) -> Suite:
    """The grid as a suite: one sweep per algorithm and combination of the swept keys but the last (the
    knob), each point's arguments ``base``, then the sweep's, then ``seed=``."""
    keys = list(grid)
    outer, knob = keys[:-1], (keys[-1] if keys else "")
    combos = [
        (algo, tuple(f"{k}={v}" for k, v in zip(outer, combo, strict=True)))
        for algo in algos
        for combo in itertools.product(*(grid[k] for k in outer))
    ]
    shared = collections.Counter(_tag(algo, fixed) for algo, fixed in combos)
    sweeps = []
    for algo, fixed in combos:
        tag = _tag(algo, fixed)
        if shared[tag] > 1:  # values that differ only in case or punctuation: told apart by their own digest,
            # not by their order on the command line (the tag names the runs' folders and records)
            tag += "_" + hashlib.sha1(json.dumps([algo, *fixed]).encode()).hexdigest()[:6]
        values = tuple(grid[knob]) if knob else ("",)
        sweeps.append(Sweep(tag, " ".join([algo, *fixed]), algo, knob, values, fixed=fixed))
    return Suite(
        name=name,
        description="a sweep of rlhf-zoo train",
        task_args=tuple(base),
        sweeps=tuple(sweeps),
        seeds=seeds,
        budget="",
        resumable=True,
    )


def _naming_the_file(plan: SweepPlan, e: ConfigError) -> ConfigError:
    """A configuration error of a sweep's points, naming its experiment file when the file's points alone
    (its settings and ``sweep:``, with the command line's ``algo=`` and ``task=`` where the file has none)
    fail too, as a single run's error for a key or value of the file does; else as it is."""
    from rlhf_zoo.algorithms.registry import REGISTRY
    from rlhf_zoo.bench.runner import validate_points
    from rlhf_zoo.bench.suites import expand
    from rlhf_zoo.config import presets
    from rlhf_zoo.tasks.registry import TASKS

    over = parse_overrides(list(plan.args))
    if "config" not in over:
        return e
    path = over["config"]
    choices, _ = read_experiment(path)
    file_keys = {*choices, *read_sweep(path)}
    lent = {k: over[k] for k in ("algo", "task") if k in over and k not in file_keys}
    known = {"algo": {*REGISTRY, *presets("algo")}, "task": set(TASKS)}
    if any(v not in known[k] for k, vs in lent.items() for v in split_values(k, vs)):
        return e  # the command line's algorithm or task is unknown: its own error
    try:
        alone = plan_sweep([f"config={path}", *(f"{k}={v}" for k, v in lent.items())])
        if alone is not None:
            validate_points(expand(alone.suite))
    except ConfigError as in_file:
        return ConfigError(f"config={path}: {in_file}")
    return e


def _with_comma_hint(plan: SweepPlan, e: UserError) -> UserError:
    """``e`` with a hint when it is about one item of a command-line value that a comma made a sweep:
    ``task.prompts=my,file.jsonl`` swept ``my`` and ``file.jsonl``, and the error was the hub's about ``my``."""
    for key, value in parse_overrides(list(plan.args)).items():
        items = split_values(key, value)
        if len(items) > 1 and key not in ("algo", "seed") and any(f"{key}={item}" in str(e) for item in items):
            kind = ConfigError if isinstance(e, ConfigError) else UserError
            return kind(
                f"{e} ({key}={value} is a sweep over {len(items)} values; a comma inside one value is quoted: "
                f"\"{key}='{value}'\")"
            )
    return e


def _check_distinct(points: list[Point]) -> None:
    """Refuse two combinations of the sweep that make the same run: their resolved settings are equal but for the
    seed and the settings that cannot change a run's numbers (:data:`rlhf_zoo.bench.records.UNSETTLED`), as a preset
    is where it equals its algorithm's settings on the task (``algo=rloo,reinforce`` on ``task=exact``). Both ran,
    and compare then refused the pair ("one seed would count twice"): exit 2 after every run had finished."""
    from rlhf_zoo.bench.records import settings_of
    from rlhf_zoo.config import BUILD_ONLY_RUN_DIR, load_config

    seen: dict[str, str] = {}
    for p in points:
        if p.seed != points[0].seed:  # the combinations are the same for every seed
            continue
        key = json.dumps(settings_of(load_config([*p.args, BUILD_ONLY_RUN_DIR])), sort_keys=True, default=str)
        name = p.id.removesuffix(f"-s{p.seed}")
        if key in seen:
            raise UserError(
                f"sweep: {seen[key]} and {name} are the same run (every setting equal, seeds aside): a value of the "
                "sweep repeats another, as a preset does that equals its algorithm's settings; drop one of them"
            )
        seen[key] = name


def run(plan: SweepPlan) -> int:
    """Run the sweep's unfinished points, then print the compare table of its folder; the exit code."""
    from rlhf_zoo.bench.runner import run_suite, validate_points
    from rlhf_zoo.bench.suites import expand
    from rlhf_zoo.compare import main as compare
    from rlhf_zoo.config import check_writable_dir
    from rlhf_zoo.signals import stop_exit_code
    from rlhf_zoo.train import Interrupted

    check_writable_dir(plan.folder, "out")
    points = expand(plan.suite)
    try:  # every configuration builds: a bad value fails before anything runs
        validate_points(points)
    except ConfigError as e:
        raise _with_comma_hint(plan, _naming_the_file(plan, e)) from None
    except UserError as e:  # a prompt source that is not there, ...
        raise _with_comma_hint(plan, e) from None
    _check_distinct(points)
    print(f"sweep: {len(points)} runs in {plan.folder}", file=sys.stderr)
    where = plan.folder.expanduser().resolve()
    try:
        report = run_suite(
            plan.suite,
            where.parent,
            command=plan.command,
            validate=False,
            redo=plan.redo,
            keep_checkpoints=plan.keep_checkpoints,
            what="sweep",
        )
    except (Interrupted, KeyboardInterrupt) as e:
        print(
            f"rlhf-zoo: sweep interrupted; run the same command again to continue (finished runs are kept, "
            f"interrupted ones resume from their checkpoints): {plan.folder}",
            file=sys.stderr,
        )
        return stop_exit_code(e)
    print(
        f"sweep: {len(report.ran)} run(s) ({len(report.resumed)} resumed, {len(report.redone)} redone), "
        f"{len(report.skipped)} already finished, {report.wall_s:.1f} s; in {plan.folder}",
        file=sys.stderr,
    )
    return compare([str(plan.folder)])


__all__ = ["SweepPlan", "default_folder", "grid_suite", "plan_sweep", "run", "split_values"]
