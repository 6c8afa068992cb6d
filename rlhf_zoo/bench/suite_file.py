"""A user's own suite, from YAML: ``rlhf-zoo bench suite=my_suite.yaml`` (example: ``examples/suite.yaml``).

The file holds a :class:`~rlhf_zoo.bench.suites.Suite`'s fields, its sweeps as a list of
:class:`~rlhf_zoo.bench.suites.Sweep` fields; overrides are mappings of keys (dotted or nested) to
values, as in an experiment file::

    name: mini                  # the records' folder <out>/<name>/ and the page <name>.md (default: the file's stem)
    description: BOND against REINFORCE on the exact testbed.
    budget: about a minute on one core
    task_args: {task: exact, threads: 1, train.steps: 60, train.eval_every: 20, train.progress: false}
    seeds: [0, 1]
    kl_budgets: [0.25, 0.5, 1.0]        # also: jobs, resumable, bon_pool, algo_args: {ALGO: {key: value}}
    sweeps:
      - tag: reinforce                   # [a-z0-9_]; the built-in tags (best_of_n, bond, ...) feed the paper's claims
        algo: reinforce
        knob: algo.beta
        values: [0.1, 1.0]
        fixed: {algo.samples: 2}         # also: objective (default: the tag), knob_label, frontier

Whether the suite is *exact* (the oracle's frontier on its page) follows from its task; so does whether it is
*resumable* unless the file says (``resumable:``): on a language-model task a point that a stop interrupted
continues from its checkpoint when the same command runs again, as in the built-in language-model suites; on
the testbed it is redone (a run is seconds). The page is
rendered as the built-in ones are (:func:`~rlhf_zoo.bench.render.render_suite`); a paper claim
whose sweeps the suite lacks is "not run". A sweep that reuses a built-in sweep's tag must keep its
algorithm and knob, since the claims read it as that sweep. Every problem with the file (unknown
keys, a key written twice, wrong types, missing values, an unknown algorithm or task, a key that the bench sets
itself: ``seed``, ``algo``, ``run_dir``, ``resume``, ``config``; a setting that a later one always replaces: a
sweep's fixed key that its algorithm's ``algo_args`` set too, an ``algo_args`` key that is the knob of each sweep
of its algorithm) is one error line naming the file, and the section (``task_args``, ``algo_args.ALGO``, a sweep's
``fixed`` or value) where the error lies in one.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rlhf_zoo.bench.suites import SUITES, SWEEPS, Suite, Sweep, expand, first_repeated, format_value, one_value_twice
from rlhf_zoo.errors import UserError
from rlhf_zoo.io import yaml_error, yaml_problem


@dataclass
class SweepSpec:
    """One entry of ``sweeps:`` (the fields of :class:`~rlhf_zoo.bench.suites.Sweep`)."""

    tag: str = MISSING
    algo: str = MISSING
    knob: str = MISSING
    values: list[Any] = MISSING
    objective: str = ""
    fixed: dict[str, Any] = field(default_factory=dict)
    knob_label: str = ""
    frontier: str = "sweep"


@dataclass
class SuiteSpec:
    """A suite file (the fields of :class:`~rlhf_zoo.bench.suites.Suite`; ``exact`` follows from the task)."""

    sweeps: list[SweepSpec] = MISSING
    name: str = ""
    description: str = ""
    budget: str = ""
    task_args: dict[str, Any] = field(default_factory=dict)
    algo_args: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [0])
    jobs: int = 1
    resumable: bool | None = None  # None: resumable unless the task is the testbed (exact)
    kl_budgets: list[float] = field(default_factory=lambda: [0.25, 0.5, 1.0, 2.0])
    bon_pool: int = 0


def is_suite_file(name: str) -> bool:
    return name.endswith((".yaml", ".yml"))


def get_suite(name: str) -> Suite:
    """The built-in suite called ``name``, or the one in the YAML file ``name``; a :class:`UserError`
    naming the known ones otherwise."""
    if is_suite_file(name):
        return load_suite_file(name)
    if name not in SUITES:
        raise UserError(f"unknown suite {name!r}; known: {', '.join(SUITES)}, or a suite file FILE.yaml")
    return SUITES[name]


def overrides(mapping: dict[str, Any], where: str) -> tuple[str, ...]:
    """A mapping of (dotted or nested) keys to values as ``key=value`` overrides; ``where`` names the mapping in
    the error for a key set twice (``task_args sets train.steps twice``)."""
    from rlhf_zoo.config import flatten

    return tuple(f"{k}={format_value(v)}" for k, v in flatten(mapping, where).items())


def _key_not_text(node: Any, path: str = "") -> str | None:
    """A key of the suite file that YAML reads as no text (``null:``, ``1:``, ``true:``, a date), named with the
    mapping that holds it, or None: OmegaConf's load ended in a traceback on a null key, and an integer one said
    "Key 1 (int) is incompatible with (str)"."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        if isinstance(node, dict) and not isinstance(k, str):
            shown = "null" if k is None else str(k).lower() if isinstance(k, bool) else str(k)
            place = f"{path.removesuffix('.')} has" if path else "the file has"
            return f"{place} a key that YAML reads as no name ({shown}): write a key's name (quoted, if need be)"
        found = _key_not_text(v, f"{path}{k}." if isinstance(node, dict) else f"{path.removesuffix('.')}[{k}].")
        if found:
            return found
    return None


def load_suite_file(path: str) -> Suite:
    """The :class:`Suite` in the YAML file ``path``; a one-line :class:`UserError` naming it otherwise."""
    from rlhf_zoo.config import ConfigError, config_error_line

    where = f"suite file {path}"
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"{where}: {'is a directory, not a YAML file' if p.is_dir() else 'no such file'}")
    try:
        text = p.read_text()
        problem = yaml_problem(text) or _key_not_text(yaml.safe_load(text))
        if problem:
            raise UserError(f"{where}: {problem}")
        data = OmegaConf.load(p)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise UserError(f"{where}: cannot read it: {yaml_error(e)}") from None
    if not isinstance(data, DictConfig):
        raise UserError(f"{where} must hold a mapping of a suite's fields (sweeps:, seeds:, ...)")
    given = OmegaConf.to_container(data)
    keys = [k for k in ("algo", "task", "sweep") if k in given]
    if keys and "sweeps" not in given:  # said "unknown key 'algo'; did you mean algo_args?"
        raise UserError(
            f"{where} is an experiment file (its {', '.join(k + ':' for k in keys)}; no sweeps:): run it with "
            f"rlhf-zoo train config={path}"
        )
    check_shapes(given, SuiteSpec, where)
    try:
        spec = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(SuiteSpec), data))
    except (OmegaConfBaseException, ValueError) as e:
        raise UserError(f"{where}: {config_error_line(e)}") from None
    assert isinstance(spec, SuiteSpec)
    name = spec.name or p.stem
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise UserError(f"{where}: name must be letters, digits, '_', '.' or '-' (it names a folder): {name!r}")
    if not name.strip("."):  # "." or "..": out= itself or its parent would be the suite's folder
        raise UserError(f"{where}: name must hold a letter, digit, '_' or '-' (it names a folder under out): {name!r}")
    if name in SUITES:
        raise UserError(f"{where}: {name!r} is a built-in suite's name; choose another")
    _check_counts(spec, where)
    for algo, settings in spec.algo_args.items():
        if not isinstance(settings, dict):
            raise UserError(f"{where}: algo_args.{algo} must be a mapping of keys to values")
    try:
        task_args = overrides(spec.task_args, "task_args")  # said "suite file F: suite file F sets KEY twice"
        sweeps = tuple(_sweep(s) for s in spec.sweeps)
        algo_args = {a: overrides(v, f"algo_args.{a}") for a, v in spec.algo_args.items()}
        exact = _task_has_oracle(task_args, where)
        suite = Suite(
            name=name,
            description=spec.description,
            task_args=task_args,
            sweeps=sweeps,
            seeds=tuple(spec.seeds),
            budget=spec.budget or "not stated",
            jobs=spec.jobs,
            resumable=spec.resumable if spec.resumable is not None else not exact,
            kl_budgets=tuple(sorted(spec.kl_budgets)),  # the columns in increasing KL, as written or not
            exact=exact,
            algo_args=algo_args,
            bon_pool=spec.bon_pool,
        )
    except (ValueError, ConfigError) as e:
        raise UserError(f"{where}: {e}") from None
    for algo in spec.algo_args:
        if algo not in {s.algo for s in sweeps}:
            raise UserError(f"{where}: algo_args names {algo!r}, which no sweep runs")
    _check_lost_settings(suite, where)
    _check_bench_keys(suite, where)
    return suite


# keys a suite file may not set: the bench gives every point its own (a point's later seed=, algo=, run_dir= or
# resume= wins, so the file's would be silently ignored), or whose settings no point's arguments would hold
BENCH_KEYS = {
    "seed": "the bench sets each point's seed: list the seeds in seeds:",
    "algo": "each sweep's algo: names its algorithm",
    "run_dir": "the bench runs each point in its own folder under out=",
    "resume": "the bench resumes or redoes an unfinished point by itself",
    "config": "a point is redone when its arguments change, not when a file's content does: write the file's keys "
    "in task_args:",
}


def _check_bench_keys(suite: Suite, where: str) -> None:
    """Refuse a :data:`BENCH_KEYS` key in task_args, algo_args, a sweep's fixed overrides or as its knob."""
    places = [("task_args", suite.task_args)]
    places += [(f"algo_args.{algo}", args) for algo, args in suite.algo_args.items()]
    places += [(f"sweep {s.tag}: fixed", s.fixed) for s in suite.sweeps]
    places += [(f"sweep {s.tag}: knob", (s.knob,)) for s in suite.sweeps]
    for place, args in places:
        for a in args:
            key = _key(a)
            if key in BENCH_KEYS:
                raise UserError(f"{where}: {place} {key}: a suite cannot set it ({BENCH_KEYS[key]})")


def _key(arg: str) -> str:
    return arg.partition("=")[0].strip()


def _check_lost_settings(suite: Suite, where: str) -> None:
    """Refuse a setting that a point's later one always replaces, so that it would be dropped without a word: a
    sweep's fixed key that its algorithm's algo_args set too (they come after it), and an algo_args key that is
    the knob of every sweep of that algorithm (its values come last); and a bon_pool without a best_of_n sweep,
    which would pool nothing."""
    for s in suite.sweeps:
        args = {_key(a) for a in suite.algo_args.get(s.algo, ())}
        both = next((k for k in map(_key, s.fixed) if k in args), None)
        if both is not None:
            raise UserError(
                f"{where}: sweep {s.tag}: fixed sets {both}, which algo_args.{s.algo} sets too (and wins, as it "
                "comes after): keep one"
            )
    if suite.bon_pool and "best_of_n" not in {s.tag for s in suite.sweeps}:  # it pools only that sweep's points
        raise UserError(
            f"{where}: bon_pool={suite.bon_pool} pools the points of the sweep tagged best_of_n, and the suite has "
            "none: add that sweep (algo best_of_n, knob algo.n), or remove bon_pool"
        )
    for algo, settings in suite.algo_args.items():
        knobs = {s.knob.strip() for s in suite.sweeps if s.algo == algo}
        lost = next((k for k in map(_key, settings) if knobs == {k}), None)
        if lost is not None:
            tags = ", ".join(s.tag for s in suite.sweeps if s.algo == algo)
            raise UserError(
                f"{where}: algo_args.{algo} sets {lost}, the knob of its sweeps ({tags}; their values set it): "
                "remove it"
            )


def _check_counts(spec: SuiteSpec, where: str) -> None:
    """The suite's sweeps (at least one), seeds (at least one, each once), jobs, pool size and KL budgets; one
    line per problem."""
    from rlhf_zoo.config import INT64

    if not spec.sweeps:
        raise UserError(f"{where}: sweeps must list at least one sweep (tag, algo, knob, values)")
    if not spec.seeds:
        raise UserError(f"{where}: seeds must list at least one seed")
    twice = first_repeated(spec.seeds)
    if twice is not None:
        raise UserError(f"{where}: seeds lists seed {twice} twice")
    if spec.jobs < 1:
        raise UserError(f"{where}: jobs must be >= 1, got {spec.jobs}")
    if spec.bon_pool < 0:
        raise UserError(f"{where}: bon_pool must be >= 0 (0: no pool), got {spec.bon_pool}")
    if spec.bon_pool >= INT64:  # torch's overflow traceback when the pool was drawn
        raise UserError(f"{where}: bon_pool must be < 2**63 (reference samples per prompt), got {spec.bon_pool}")
    bad = next((k for k in spec.kl_budgets if not (k > 0 and math.isfinite(k))), None)
    if bad is not None:
        raise UserError(f"{where}: kl_budgets must be > 0, got {float(bad)}")
    twice = first_repeated(spec.kl_budgets)
    if twice is not None:  # a second column of the same numbers
        raise UserError(f"{where}: kl_budgets lists {float(twice)} twice")


def check_shapes(node: dict[Any, Any], spec: type, where: str, prefix: str = "") -> None:
    """An unknown key (with the sweep it is in), a list where ``spec`` wants a mapping or the reverse
    (OmegaConf's merge raises a bare TypeError for it), or a list or mapping among a list's single values (which
    it lets through), as one line naming the key; the other type errors are left to the merge, which names the
    key too."""
    hints = typing.get_type_hints(spec)
    for key, value in node.items():
        if key not in hints:  # OmegaConf's "Key 'x' not in 'SweepSpec'" named a class, and not which sweep
            near = difflib.get_close_matches(str(key), list(hints), n=1)
            what = "a suite file" if spec is SuiteSpec else "a sweep"
            hint = f"did you mean {near[0]}?" if near else f"the keys of {what} are {', '.join(hints)}"
            raise UserError(f"{where}: unknown key '{prefix}{key}'; {hint}")
        if value is None:  # a null: the merge says what is wrong
            continue
        name, origin = f"{prefix}{key}", typing.get_origin(hints[key])
        if origin is dict and not isinstance(value, dict):
            raise UserError(f"{where}: {name} must be a mapping of keys to values, got {value!r}")
        if origin is not list:
            continue
        if not isinstance(value, list):
            raise UserError(f"{where}: {name} must be a list, got {value!r}")
        (item,) = typing.get_args(hints[key])
        for i, v in enumerate(value):
            if dataclasses.is_dataclass(item) and isinstance(v, dict):
                check_shapes(v, item, where, f"{name}[{i}].")
            elif dataclasses.is_dataclass(item):  # said "Invalid type assigned: int is not a subclass of SweepSpec"
                fields = ", ".join(f.name for f in dataclasses.fields(item) if f.default is MISSING)
                raise UserError(f"{where}: {name}[{i}] must be a mapping of a sweep's keys ({fields}, ...), got {v!r}")
            elif item in (int, float, str, bool) and isinstance(v, (list, dict)):
                raise UserError(f"{where}: {name}[{i}] must be a single value, got {v!r}")


def validate_suite_file(suite: Suite, path: str, **expand_args: Any) -> None:
    """Build every configuration of the suite's points (as the runner does before running), so that a bad
    key or value in the file is an error line that names the file, and one that only the command line's
    overrides or seeds (``expand_args["extra"]``, ``["seeds"]``) bring is an error line that names the command
    line."""
    from rlhf_zoo.bench.runner import validate_points

    points = expand(suite, **expand_args)
    try:
        validate_points(points)
    except UserError as e:
        if expand_args.get("extra") or expand_args.get("seeds"):
            try:  # the file's points alone (its seeds, no overrides): do they build?
                validate_points(expand(suite, **{**expand_args, "extra": None, "seeds": None}))
            except UserError:
                pass
            else:
                raise UserError(f"bench: an override on the command line: {e}") from None
        found = _place_of_error(suite)
        if found is not None:  # "unknown key 'algo.bogus'" said neither the section nor the sweep it is in
            place, e = found
            raise UserError(f"suite file {path}: {place}: {e}") from None
        raise UserError(f"suite file {path}: {e}") from None


def _place_of_error(suite: Suite) -> tuple[str, Exception] | None:
    """The first part of the file that fails on its own, and its error: ``task_args``, a sweep's ``fixed``, the
    ``algo_args`` of its algorithm, or one of its values (each with the task arguments and the sweep's
    algorithm alone); None when only their combination fails."""
    from rlhf_zoo.config import BUILD_ONLY_RUN_DIR, load_config

    for s in suite.sweeps:
        base = [*suite.task_args, f"algo={s.algo}"]
        parts = [("task_args", ()), (f"sweep {s.tag}: fixed", s.fixed)]
        parts.append((f"algo_args.{s.algo}", suite.algo_args.get(s.algo, ())))
        parts += [(f"sweep {s.tag}: {s.knob}={format_value(v)}", (f"{s.knob}={format_value(v)}",)) for v in s.values]
        for place, args in parts:
            try:
                load_config([*base, *args, BUILD_ONLY_RUN_DIR])
            except UserError as e:
                return place, e
    return None


def _sweep(s: SweepSpec) -> Sweep:
    from rlhf_zoo.algorithms.registry import REGISTRY
    from rlhf_zoo.config import presets

    if s.algo not in REGISTRY and s.algo not in presets("algo"):
        known = ", ".join(sorted(REGISTRY)) + "; presets: " + ", ".join(presets("algo"))
        raise ValueError(f"sweep {s.tag}: unknown algorithm {s.algo!r}; known: {known}")
    shape = next((b for b in SWEEPS if b.tag == s.tag), None)
    knob = s.knob.strip()
    algo_keys = [f"algo.{f.name}" for f in dataclasses.fields(REGISTRY[s.algo].Config)] if s.algo in REGISTRY else []
    # a typo in the knob of a built-in tag's algorithm is said as one, not as another sweep under the claims' tag
    if algo_keys and knob.startswith("algo.") and knob not in algo_keys and (shape is None or shape.algo == s.algo):
        close = difflib.get_close_matches(knob, algo_keys, n=1, cutoff=0.8)
        guess = f"; did you mean {close[0]}?" if close else f"; `rlhf-zoo fields algo={s.algo}` lists its keys"
        raise ValueError(f"sweep {s.tag}: knob {knob}: unknown key of algo={s.algo}{guess}")
    if shape is not None and (shape.algo, shape.knob) != (s.algo, s.knob):
        raise ValueError(
            f"sweep tag {s.tag!r} is the built-in sweep the paper's claims read (algo {shape.algo}, knob "
            f"{shape.knob}): keep those or choose another tag"
        )
    if not s.knob:
        raise ValueError(f"sweep {s.tag}: knob is empty (name the swept key, e.g. algo.beta)")
    fixed = overrides(s.fixed, f"sweep {s.tag}: fixed")
    if any(_key(a) == s.knob.strip() for a in fixed):  # the point's knob=value came after: lost
        raise ValueError(f"sweep {s.tag}: fixed sets {s.knob.strip()}, the sweep's knob (its values set it): remove it")
    values = tuple(s.values)
    items = [format_value(v) for v in values]
    twice = first_repeated(items)
    if twice is not None:  # as a sweep of rlhf-zoo train refuses it
        raise ValueError(f"sweep {s.tag}: values lists {twice} twice")
    same = one_value_twice(items, values)
    if same is not None:
        raise ValueError(f"sweep {s.tag}: values lists {same[0]} and {same[1]}, one value in the tables: keep one")
    return Sweep(s.tag, s.objective or s.tag, s.algo, s.knob, values, fixed, s.knob_label, s.frontier)


def _task_has_oracle(task_args: tuple[str, ...], where: str) -> bool:
    from rlhf_zoo.tasks.registry import TASKS

    task = "exact"  # the default task (rlhf_zoo.config.compose)
    for a in task_args:
        k, _, v = a.partition("=")
        task = v if k == "task" else task
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(sorted(TASKS))}")
    return TASKS[task].has_oracle


__all__ = [
    "SuiteSpec",
    "SweepSpec",
    "get_suite",
    "is_suite_file",
    "load_suite_file",
    "overrides",
    "validate_suite_file",
]
