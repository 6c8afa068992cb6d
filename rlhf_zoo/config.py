"""Configuration: dataclass defaults, YAML presets in ``rlhf_zoo/configs/``, an experiment file, dotted
command-line overrides.

    rlhf-zoo train algo=bond task=exact seed=3 algo.beta=0.5 train.steps=200
    rlhf-zoo train config=exp.yaml seed=4

Resolution order (later wins):

1. the dataclass defaults of :class:`RunConfig`, of the chosen algorithm's config and of the task's;
2. ``rlhf_zoo/configs/task/<task>.yaml`` (task settings and the task's training defaults);
3. ``rlhf_zoo/configs/task/<task>/<algo name>.yaml`` if present (per-task tuned defaults of one algorithm);
4. ``rlhf_zoo/configs/algo/<algo>.yaml`` when ``algo`` names a preset rather than a registered algorithm
   (a preset sets ``name:`` to a registered algorithm plus overrides, e.g. ``rloo``, ``vbon``);
5. the experiment file of ``config=FILE.yaml`` (:func:`read_experiment`): the command line's keys in
   YAML, nested or dotted, so a run's saved ``config.yaml`` is one too;
6. the dotted overrides of the command line.

A comma list on a key (``seed=0,1,2``) or a ``sweep:`` mapping in the experiment file (:func:`read_sweep`)
asks for a sweep: :mod:`rlhf_zoo.sweep` turns it into single-run overrides before they come here.

Everything goes through OmegaConf structured configs, so an unknown key or a value of the wrong
type is rejected here, before any model loads, with a :class:`ConfigError`. Nothing is ``eval``'d.
"""

from __future__ import annotations

import datetime
import difflib
import json
import math
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rlhf_zoo.algorithms.registry import REGISTRY, get_algorithm
from rlhf_zoo.errors import UserError, byte_size, one_line
from rlhf_zoo.io import parse_bool, yaml_error, yaml_problem
from rlhf_zoo.runtime import DEVICE
from rlhf_zoo.tasks.registry import TASKS, get_task_entry

CONFIG_DIR = Path(__file__).resolve().parent / "configs"  # package data: installed with the package


MAX_THREADS = 4096  # CPU threads: more than any machine has cores, far below where torch overflows
# The run_dir argument of a configuration that is only built, never run (a bench's checks, its settings and exact
# oracle, profile's objectives): a folder that is there and writable, not one under the current folder, whose
# contents would then decide whether a check passes (a file named like it there failed every bench).
BUILD_ONLY_RUN_DIR = f"run_dir={tempfile.gettempdir()}"


class ConfigError(UserError):
    """An invalid configuration (unknown key, wrong type, bad value)."""


@dataclass
class TrainConfig:
    """Attributes:
    steps: optimiser steps (one rollout batch each; PPO-lite takes epochs × minibatches updates).
    batch_prompts: prompts per step (B); rows = B × samples per prompt.
    lr: Adam learning rate.
    lr_schedule: constant | linear | cosine (decay to 0 at ``steps``, after ``warmup_steps``).
    warmup_steps: linear warm-up steps.
    weight_decay: AdamW weight decay.
    grad_clip: max gradient norm (0 = off).
    eval_every: evaluate every K steps (and at step 0 and the end).
    eval_prompts: held-out prompts per evaluation.
    eval_samples: completions per held-out prompt.
    eval_ref_samples: reference completions per held-out prompt (win rate, quantiles).
    save_samples: held-out prompts per evaluation whose completions, with their proxy and gold rewards, go to
        ``samples.jsonl`` (0 = off); on the testbed the ``eval_samples`` most probable completions of each.
    checkpoint_every: save a checkpoint every K steps (0: not by steps), besides the end and a stop signal.
    checkpoint_minutes: also save one when this many minutes have passed since the last (0: not by time).
        Together they bound what a ``kill -9`` loses; checkpoints are written atomically.
    progress: show a progress bar.
    log_with: also send metrics to ``tensorboard`` or ``wandb`` through accelerate's trackers (``none``):
        training metrics every step, evaluation metrics at each evaluation; TensorBoard writes under
        ``run_dir/<algo>-<task>/``.
    fsdp: with several processes, shard the language-model policy with FSDP2 instead of holding full
        replicas (as an accelerate config with ``distributed_type: FSDP`` does; docs/scaling.md); refused on a
        task without a language model.
    """

    steps: int = 200
    batch_prompts: int = 16
    lr: float = 1e-4
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    eval_every: int = 50
    eval_prompts: int = 64
    eval_samples: int = 4
    eval_ref_samples: int = 8
    save_samples: int = 8
    checkpoint_every: int = 100
    checkpoint_minutes: float = 10.0
    progress: bool = True
    log_with: str = "none"
    fsdp: bool = False


# settings that cannot change a run's results (a progress bar, trackers, checkpoint cadence): a run may resume
# with other values of these, and a bench point whose record differs from it only in these is finished
NO_EFFECT = (
    "train.progress",
    "train.log_with",
    "train.checkpoint_every",
    "train.checkpoint_minutes",
)


@dataclass
class RunConfig:
    """Attributes:
    algo: the algorithm's config (its dataclass, chosen by name).
    task: the task's config (its dataclass, chosen by name).
    model: the language model's config (tasks that use one; absent otherwise).
    train: :class:`TrainConfig`.
    seed: fixes prompt order, sampling and initialisation (|seed| < 2**32).
    run_dir: output directory (default ``runs/<algo>-<task>-s<seed>``; ``~`` expanded).
    resume: continue from the run directory's last checkpoint.
    device: auto | cpu | cuda | cuda:N.
    threads: torch CPU threads (0 = torch's default; at most 4096). Tiny tabular work is fastest on 1.
    """

    algo: Any = None
    task: Any = None
    model: Any = None
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0
    run_dir: str = ""
    resume: bool = False
    device: str = "auto"
    threads: int = 0


def _yaml(path: Path) -> DictConfig:
    try:
        return OmegaConf.load(path)
    except (OmegaConfBaseException, OSError, ValueError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read {path}: {yaml_error(e)}") from None


def presets(kind: str) -> list[str]:
    """The names of the packaged preset files of ``kind`` (``algo``, ``task``, ...), sorted."""
    d = CONFIG_DIR / kind
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


def parse_overrides(args: list[str]) -> dict[str, str]:
    """``key=value`` command-line overrides (the later of a repeated key wins), parsed like every
    command's options (:func:`rlhf_zoo.options.pairs`)."""
    from rlhf_zoo.options import pairs

    try:
        return dict(pairs(args, "train"))
    except UserError as e:
        raise ConfigError(str(e)) from None


CHOICES = ("algo", "task")  # keys whose value picks a dataclass (a name) rather than setting a field


SWEEP = "sweep"  # an experiment file's mapping of key -> list of values (rlhf_zoo.sweep)


def _read_mapping(path: str) -> dict[Any, Any]:
    """The YAML mapping in an experiment file; raises ConfigError."""
    if not path.strip():  # config= with an unset shell variable: Path("") is the current folder, "a directory"
        raise ConfigError("config is empty (config=): give it an experiment file FILE.yaml, or leave it out")
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"config={path}: {'is a directory, not a YAML file' if p.is_dir() else 'no such file'}")
    try:
        text = p.read_text()
        problem = yaml_problem(text)
        if problem:
            raise ConfigError(f"config={path}: {problem}")
        data = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ConfigError(f"config={path}: cannot read it: {yaml_error(e)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config={path} must hold a mapping of keys to values (as key=value on the command line)")
    return data


def flatten(node: dict[Any, Any], where: str, prefix: str = "") -> dict[str, Any]:
    """A nested mapping as dotted keys (``{train: {steps: 5}}`` → ``{"train.steps": 5}``; keys may already
    be dotted); lists and scalars are leaves. ``where`` names the file in the error for a key set twice."""
    flat: dict[str, Any] = {}
    for k, v in node.items():
        key = f"{prefix}{k}"
        items = flatten(v, where, f"{key}.").items() if isinstance(v, dict) and v else [(key, v)]
        for kk, vv in items:
            if kk in flat:
                raise ConfigError(f"{where} sets {kk} twice")
            flat[kk] = vv
    return flat


def read_experiment(path: str) -> tuple[dict[str, str], dict[str, Any]]:
    """An experiment file → (choices, settings): ``{"algo": NAME, "task": NAME}`` (those given) and the
    other settings as a nested dict.

    The file holds the command line's keys as YAML, nested or dotted (both spellings may be mixed)::

        algo: bond              # an algorithm or a preset, as algo=bond
        task: sentiment
        seed: 3
        algo.beta: 0.5          # as algo.beta=0.5
        train:                  # as train.steps=100 train.eval_every=20
          steps: 100
          eval_every: 20

    ``algo`` and ``task`` may also be mappings with a ``name`` (``algo: {name: bond, beta: 0.5}``), the
    layout of a run's saved ``config.yaml``, so that file re-runs as it is. A ``sweep:`` mapping (key →
    list of values) is not a setting: :func:`read_sweep` reads it. A key written twice in one mapping (YAML
    would keep the last) is an error naming it and its lines. Raises ConfigError.
    """
    data = _read_mapping(path)
    run_keys = {str(k).split(".")[0] for k in data} & ({f.name for f in fields(RunConfig)} | {*CHOICES})
    if "sweeps" in data and (not run_keys or "task_args" in data or "name" in data):  # rlhf_zoo.bench.suite_file's
        raise ConfigError(f"config={path} is a suite file (its sweeps:): run it with rlhf-zoo bench suite={path}")
    if "sweeps" in data:  # beside a run's settings (algo:, train:): sweep: misspelt, not a suite file
        raise ConfigError(
            f"config={path}: unknown key 'sweeps'; did you mean sweep? (a suite file, for rlhf-zoo bench suite=FILE, "
            "has name:, task_args: and sweeps:)"
        )
    data.pop(SWEEP, None)
    flat = flatten(data, f"config={path}")
    choices: dict[str, str] = {}
    for c in CHOICES:
        if c in flat and f"{c}.name" in flat:  # said "algo.name and task.name are chosen with ...", naming no file
            raise ConfigError(
                f"config={path} names the {c} twice ({c}: {flat[c]} and {c}.name: {flat[f'{c}.name']}): keep one"
            )
        key = c if c in flat else f"{c}.name"
        name = flat.pop(key, None)
        if isinstance(name, (list, dict)):  # said: unknown algorithm "['reinforce', 'bond']", naming no file
            several = f" (sweep: {{{c}: [{', '.join(map(str, name))}]}})" if isinstance(name, list) else ""
            raise ConfigError(
                f"config={path}: {key} takes one name, got {json.dumps(name)}; to run each of several, list them "
                f"under sweep:{several}"
            )
        if name is not None:
            choices[c] = str(name)
    if "config" in flat:
        raise ConfigError(f"config={path} names another config file; experiment files do not nest")
    dated = _first_key(flat, lambda v: isinstance(v, datetime.date))  # OmegaConf: "Value 'date' is not a supported
    if dated:  # primitive type", of a folder named 2026-01-01
        raise ConfigError(
            f"config={path}: {dated}: YAML reads {flat[dated]} as a date: quote it ('{flat[dated]}') to give it as text"
        )
    settings: dict[str, Any] = {}
    for key, v in flat.items():
        node = settings
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"config={path}: {key} lies under a key that holds a value")
        node[leaf] = v
    return choices, settings


def read_sweep(path: str) -> dict[str, list[Any]]:
    """An experiment file's ``sweep:`` mapping as dotted key → its values (empty without one)::

        sweep:
          seed: [0, 1, 2]
          algo: [bond, jbond]
          algo.beta: [0.1, 0.5]     # dotted or nested (train: {steps: [100, 200]}), as the settings

    Raises ConfigError when a key's values are not a non-empty list, and for a ``sweep:`` left empty (which ran
    one plain run)."""
    data = _read_mapping(path)
    if SWEEP not in data:
        return {}
    node = data[SWEEP]
    if node is None or node == {}:
        raise ConfigError(
            f"config={path}: sweep is empty: give it a key's list of values (seed: [0, 1]), or remove it for one run"
        )
    if not isinstance(node, dict):
        raise ConfigError(f"config={path}: sweep must be a mapping of keys to lists of values")
    out = flatten(node, f"config={path}: sweep")
    for key, values in out.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"config={path}: sweep.{key} must be a non-empty list of values, got {values!r}")
    return out


def load_config(args: list[str], defaults: dict[str, str] | None = None) -> DictConfig:
    """Build and validate a run's config from ``key=value`` arguments (``config=FILE.yaml`` among them
    reads an experiment file first). Raises ConfigError."""
    cfg = compose(args, defaults)
    try:
        validate(cfg)
    except UserError as e:
        over = {**(defaults or {}), **parse_overrides(args)}
        hint = _saved_run_hint(over.get("config"), str(e))
        where = _from_the_file(over, str(e))
        if hint or where:
            raise ConfigError(f"{where}{e}{hint}") from None
        raise
    return cfg


def _from_the_file(over: dict[str, Any], message: str) -> str:
    """``"config=FILE: "`` for a refusal of a value that the experiment file sets and the command line does not
    (``algo.n must be >= 2 for BOND, got 0`` named no file, while a wrong key or type in it did), else ``""``."""
    config_file = over.get("config")
    key = re.match(r"[a-z_]+(\.[a-z_]+)+(?= )", message)
    if config_file is None or key is None or key.group() in over:
        return ""
    try:
        _, settings = read_experiment(config_file)
    except ConfigError:
        return ""
    return f"config={config_file}: " if key.group() in flatten(settings, "the file") else ""


def _saved_run_hint(config_file: str | None, message: str) -> str:
    """For a path that is not there, named in a run's saved ``config.yaml`` used as ``config=`` from another
    folder: where its relative paths start (the ``cwd`` in the ``meta.json`` beside it), else ``""``."""
    if config_file is None or "no such" not in message:
        return ""
    try:
        cwd = json.loads((Path(config_file).expanduser().parent / "meta.json").read_text()).get("cwd")
    except (OSError, ValueError, AttributeError):
        return ""
    if not isinstance(cwd, str) or Path(cwd).resolve() == Path.cwd().resolve():
        return ""
    return f" (the run that saved {config_file} ran in {cwd}, where its relative paths start: run from there)"


def preset_algorithm(choice: str) -> str | None:
    """The algorithm that the packaged preset ``choice`` (``rloo``) names; None when ``choice`` is no preset."""
    if choice in REGISTRY or choice not in presets("algo"):
        return None
    try:
        return _algorithm(choice)[0]
    except ConfigError:
        return None


def _algorithm(choice: str | None) -> tuple[str | None, Any]:
    """(the algorithm's name, its preset's settings or None) of ``algo=CHOICE``: an algorithm, or a preset of
    rlhf_zoo/configs/algo/ that names one."""
    if choice is None or choice in REGISTRY:
        return choice, None
    path = CONFIG_DIR / "algo" / f"{choice}.yaml"
    if not path.is_file():
        raise ConfigError(
            f"unknown algorithm {choice!r}; known: {', '.join(sorted(REGISTRY))}; presets: {', '.join(presets('algo'))}"
        )
    preset = _yaml(path)
    name = str(preset.get("name", ""))
    if name not in REGISTRY:
        raise ConfigError(f"preset rlhf_zoo/configs/algo/{choice}.yaml names unknown algorithm {name!r}")
    return name, preset


def _layers(task_name: str, algo_name: str | None, preset: Any) -> list[Any]:
    """The packaged files between the schema's defaults and the user's settings, in order: the task's
    (rlhf_zoo/configs/task/TASK.yaml), the algorithm's tuned settings on the task
    (rlhf_zoo/configs/task/TASK/ALGO.yaml), the preset's."""
    layers: list[Any] = []
    task_yaml = CONFIG_DIR / "task" / f"{task_name}.yaml"
    if task_yaml.is_file():
        layers.append(_yaml(task_yaml))
    tuned = CONFIG_DIR / "task" / task_name / f"{algo_name}.yaml"
    if algo_name and tuned.is_file():
        layers.append(_yaml(tuned))
    if preset is not None:
        layers.append(OmegaConf.create({"algo": preset}))
    return layers


def compose(args: list[str], defaults: dict[str, str] | None = None, need_algo: bool = True) -> DictConfig:
    """The merged config of ``args`` (resolution order in the module docstring), checked against the
    schema (unknown keys, wrong types) but not yet by :func:`validate`. ``need_algo=False`` (``rlhf-zoo
    fields``) allows no ``algo``: the algorithm section is then left empty."""
    over = {**(defaults or {}), **parse_overrides(args)}
    choices: dict[str, str] = {}
    settings: dict[str, Any] = {}
    config_file = over.pop("config", None)
    if config_file is not None:
        choices, settings = read_experiment(config_file)
    task_name = over.pop("task", choices.get("task", "exact"))
    algo_from_file = "algo" not in over and "algo" in choices
    algo_choice = over.pop("algo", choices.get("algo"))
    if algo_choice is None and need_algo:
        if config_file is not None:
            _check_file_sections(settings, f"config={config_file}: ")  # a misspelt sweep: is the file's first fault
        named = f" (config={config_file} names none)" if config_file is not None else ""
        raise ConfigError(
            f"name an algorithm{named}: algo=NAME with NAME one of {', '.join(sorted(REGISTRY))} "
            f"or a preset ({', '.join(presets('algo'))})" + _resume_hint(over)
        )
    if task_name not in TASKS:
        raise ConfigError(f"unknown task {task_name!r}; known: {', '.join(sorted(TASKS))}")
    entry = get_task_entry(task_name)

    try:
        algo_name, preset = _algorithm(algo_choice)
    except ConfigError as e:
        if not algo_from_file:
            raise
        raise ConfigError(f"config={config_file}: {e}") from None  # the file's algo: named no file
    algo_default = get_algorithm(algo_name).Config() if algo_name else None

    model_default = None
    if entry.uses_model:
        from rlhf_zoo.policies.hf import HFPolicyConfig

        model_default = HFPolicyConfig()
    try:
        schema = OmegaConf.structured(RunConfig(algo=algo_default, task=entry.config(), model=model_default))
        if not entry.uses_model:
            schema = OmegaConf.masked_copy(schema, [k for k in schema if k != "model"])
            OmegaConf.set_struct(schema, True)
        if settings:
            check_top_level(flatten(settings, f"config={config_file}"), schema, task_name, f"config={config_file}: ")
        check_top_level(over, schema, task_name)
        cfg = OmegaConf.merge(schema, *_layers(task_name, algo_name, preset))
        if settings:
            try:  # a wrong type in the file names the file
                cfg = OmegaConf.merge(cfg, OmegaConf.create(settings))
            except OmegaConfBaseException as e:
                given = flatten(settings, f"config={config_file}").get(str(getattr(e, "full_key", "")))
                several = ""
                if isinstance(given, list):  # seed: [0, 1] said only "could not be converted to Integer"
                    several = f"; to run each of several, list them under sweep: {{{e.full_key}: {json.dumps(given)}}}"
                raise ConfigError(f"config={config_file}: {config_error_line(e)}{several}") from None
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([f"{k}={v}" for k, v in over.items()]))
        for node in (cfg, cfg.algo, cfg.task):  # frozen dataclasses make nodes read-only
            if node is not None:
                OmegaConf.set_readonly(node, False)
    except OmegaConfBaseException as e:
        raise ConfigError(config_error_line(e)) from None
    except yaml.YAMLError as e:  # a value that is not valid YAML (control characters, ...)
        raise ConfigError(f"cannot read the overrides: {one_line(e)}") from None
    if (algo_name and cfg.algo.name != algo_name) or cfg.task.name != task_name:
        raise ConfigError("algo.name and task.name are chosen with algo=NAME and task=NAME")
    if algo_name and "quantiles" in cfg.algo and cfg.algo.quantiles == "auto":
        cfg.algo.quantiles = "exact" if entry.has_oracle else "mc"
    if not cfg.run_dir and algo_choice is not None:
        cfg.run_dir = f"runs/{algo_choice}-{task_name}-s{cfg.seed}"
    if cfg.run_dir.startswith("~"):  # quoted, or in a YAML file: no shell expanded it; written where it is checked
        cfg.run_dir = str(Path(cfg.run_dir).expanduser())
    return cfg


def _resume_hint(over: dict[str, Any]) -> str:
    """For ``run_dir=DIR resume=true`` alone (a run's settings are not read from its folder), the command that
    resumes DIR with the settings it saved; ``""`` otherwise."""
    run_dir = over.get("run_dir")
    if "resume" not in over or not isinstance(run_dir, str) or not run_dir.strip():
        return ""
    saved = Path(run_dir).expanduser() / "config.yaml"
    if not saved.is_file():
        return ""
    return f"; to resume {run_dir} with the settings it saved: rlhf-zoo train config={saved} resume=true"


def _misspelt_sweep(key: str) -> bool:
    """Whether an experiment file's unknown top-level ``key`` is ``sweep`` misspelt (``sweps``, ``sweeps``), not
    another setting's name (``steps``: ``train.steps``)."""
    return key != SWEEP and bool(difflib.get_close_matches(key, [SWEEP], cutoff=0.75))


def _check_file_sections(settings: dict[str, Any], where: str) -> None:
    """Refuse a misspelt ``sweep:`` in an experiment file before its other faults: without it the file's sweep of
    ``algo`` is lost, and the error was "name an algorithm"."""
    tops = {f.name for f in fields(RunConfig)} | {*CHOICES}
    for key in settings:
        if key not in tops and _misspelt_sweep(key):
            raise ConfigError(f"{where}unknown key {key!r}; did you mean {SWEEP}?")


def check_top_level(keys: Any, schema: DictConfig, task_name: str, where: str = "") -> None:
    """Refuse a key whose first part is no top-level key of ``schema``, suggesting the dotted keys whose last
    part is the key's (``steps`` → ``train.steps``), a ``section.key`` that its section lacks, suggesting the
    close names (``train.stepz`` → ``train.steps``), a ``model.*`` key on a task without a model, and one value
    for a group of settings (``model=tiny``: ``model.name=tiny`` meant); raises ConfigError (OmegaConf says only
    "Key 'steps' is not in struct")."""
    for key in keys:
        top = key.split(".", 1)[0]
        value = keys[key] if isinstance(keys, dict) else None
        if top in schema and isinstance(OmegaConf.select(schema, key, default=None), DictConfig):
            if not (isinstance(value, dict) or (isinstance(value, str) and value.lstrip().startswith("{"))):
                # train=5, model=tiny: OmegaConf said "Merge error: int is not a subclass of TrainConfig"
                node = OmegaConf.select(schema, key)
                hint = f"`rlhf-zoo fields {key}` lists them" if key in ("train", "model") else ""
                if "name" in node and isinstance(value, str) and value:
                    hint = f"did you mean {key}.name={value}?"
                shown = value if isinstance(value, str) else json.dumps(value)
                raise ConfigError(
                    f"{where}{key} is a group of settings, not one value ({shown}): set each as "
                    f"{key}.KEY=VALUE" + (f" ({hint})" if hint else "")
                )
        is_bool = top in schema and isinstance(OmegaConf.select(schema, key, default=None), bool)
        if is_bool and not _reads_as_bool(value):  # OmegaConf takes any integer for one: train.progress=2 was true
            raise ConfigError(f"{where}{key} is true or false, got {value!r}")
        if top in schema:
            rest = key.partition(".")[2]
            node = schema[top]
            if rest and "." not in rest and isinstance(node, DictConfig) and rest not in node:
                near = difflib.get_close_matches(rest, [str(k) for k in node], n=2)
                hint = " or ".join(f"{top}.{k}" for k in near)
                show = {"algo": f"algo={node.get('name')}", "task": f"task={task_name}"}.get(top, top)
                raise ConfigError(
                    f"{where}unknown key {key!r}; "
                    + (f"did you mean {hint}?" if near else f"`rlhf-zoo fields {show}` lists its keys")
                )
            continue
        if top == "model":
            with_model = ", ".join(sorted(n for n, e in TASKS.items() if e.uses_model))
            raise ConfigError(
                f"{where}task {task_name} has no language model: {key} does not apply "
                f"(model.* settings are for tasks with one: {with_model})"
            )
        if where.startswith("config=") and _misspelt_sweep(top):  # sweps: {seed: [0, 1]}
            raise ConfigError(f"{where}unknown key {top!r}; did you mean {SWEEP}?")
        last = key.rsplit(".", 1)[-1]
        known = flatten(OmegaConf.to_container(schema), "the schema")
        near = [k for k in known if "." in k and k.rsplit(".", 1)[-1] == last]
        if not near:  # a slip of the pen: sed → seed, stepz → train.steps
            near = difflib.get_close_matches(key, [str(k) for k in schema if "." not in str(k)], n=2)
            by_last: dict[str, list[str]] = {}
            for k in known:
                by_last.setdefault(k.rsplit(".", 1)[-1], []).append(k)
            near += [k for m in difflib.get_close_matches(last, list(by_last), n=2) for k in by_last[m]][:2]
            near = list(dict.fromkeys(near))
        hint = f"did you mean {' or '.join(near)}?" if near else f"the top-level keys are {', '.join(schema)}"
        raise ConfigError(f"{where}unknown key {key!r}; {hint}")


def _reads_as_bool(value: Any) -> bool:
    """Whether a boolean setting's given value says true or false (None: not known here, left to the merge)."""
    if value is None or isinstance(value, bool) or (type(value) is int and value in (0, 1)):
        return True
    if not isinstance(value, str):
        return False
    try:
        parse_bool(value)
    except ValueError:
        return False
    return True


def config_error_line(e: Exception) -> str:
    """An OmegaConf error as one line, with the offending key when the message lacks it. An empty value
    (``seed=``: an unset shell variable, or a YAML null) is said as such, not as OmegaConf's "Incompatible
    value 'None'"; so is a missing one, not as "Structured config of type `SuiteSpec` has missing mandatory
    value"."""
    msg = str(e).strip().splitlines()
    head = msg[0] if msg else type(e).__name__
    key = getattr(e, "full_key", None)
    empty = re.match(r"Incompatible value 'None' for field of type '(\w+)'", head)
    if empty and key:
        kind = {"int": "an integer", "float": "a number", "bool": "true or false"}.get(empty[1], "a value")
        return f"{key} is empty ({key}= or a YAML null): give it {kind}, or leave it out"
    if key and re.match(r"(Structured config of type `\w+` has missing mandatory value|Missing mandatory value)", head):
        return f"{key} is missing: give it a value"  # a suite file without sweeps:, a sweep without values:
    if key and re.match(r"Invalid value assigned: \w+ is not a .*ListConfig", head):  # lora_target_modules=q_proj
        return f"{key} takes a list: write it in brackets, {key}=[{getattr(e, 'value', '...')}]"
    # task.proxy=hf:$MODEL with MODEL unset: YAML reads "hf:" as the mapping {hf: null}
    node = re.match(r"Cannot convert '(Dict|List)Config' to string: '(.*)'$", head)
    if node and key:
        kind, why = ("mapping", "a ':' at its end or before a space") if node[1] == "Dict" else ("list", "[...]")
        return (
            f"{key} takes a text, but its value reads as a YAML {kind} ({node[2]}; {why} makes one): write it as text"
        )
    return f"{head} (key: {key})" if key and key not in head else head


def algo_config(cfg: DictConfig) -> Any:
    return OmegaConf.to_object(cfg.algo)


INT64 = 2**63  # torch's integers: a setting beyond them overflowed deep inside a run ("int too big to convert")


def _first_key(node: Any, bad: Callable[[Any], bool], prefix: str = "") -> str | None:
    """The dotted key of the first value in a nested mapping for which ``bad`` holds, or None."""
    for k, v in node.items() if isinstance(node, dict) else ():
        found = _first_key(v, bad, f"{prefix}{k}.") if isinstance(v, dict) else (f"{prefix}{k}" if bad(v) else None)
        if found:
            return found
    return None


def _non_finite(v: Any) -> bool:
    return isinstance(v, float) and not math.isfinite(v)


def _too_large(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and not -INT64 < v < INT64


PROMPT_BYTES = 16  # a step's prompt list holds 8 bytes a prompt, and the epoch orders it reads at least 8 more


def physical_memory() -> int | None:
    """This machine's memory in bytes (None where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _check_batch_fits(batch_prompts: int) -> None:
    """Refuse a batch whose prompts alone (:func:`rlhf_zoo.train.prompts_for_step`: the list of the step's prompts
    and the per-epoch orders it reads, :data:`PROMPT_BYTES` a prompt at least) exceed the machine's memory: such a
    run was not refused by an allocator, whose large requests fail with one line, but grew its list until the
    system killed it (exit 137, nothing said)."""
    need, have = PROMPT_BYTES * batch_prompts, physical_memory()
    if have is not None and need > have:
        raise ConfigError(
            f"train.batch_prompts={batch_prompts}: a step's prompts alone take at least {byte_size(need)} (their list "
            f"and order), more than this machine's {byte_size(have)} of memory: lower train.batch_prompts"
        )


def validate(cfg: DictConfig) -> None:
    """Semantic checks that types alone cannot express; raises ConfigError."""
    tree = OmegaConf.to_container(cfg)
    bad = _first_key(tree, _non_finite)
    if bad:
        raise ConfigError(f"{bad} must be a finite number")
    if not DEVICE.fullmatch(cfg.device):
        raise ConfigError(f"device={cfg.device!r}: use auto, cpu, cuda or cuda:N")
    if abs(cfg.seed) >= 2**32:  # the seed is mixed into torch seeds (prompt order: seed · 1,000,003 + epoch)
        raise ConfigError(f"seed must lie between -4294967295 and 4294967295, got {cfg.seed}")
    if not 0 <= cfg.threads <= MAX_THREADS:  # torch.set_num_threads overflows past 2**31 - 1
        raise ConfigError(f"threads must be >= 0 (0: torch's default) and <= {MAX_THREADS}, got {cfg.threads}")
    _check_train(cfg.train)
    try:
        get_algorithm(cfg.algo.name)(algo_config(cfg))
    except ValueError as e:
        raise ConfigError(_in_section("algo", cfg.algo, e) or f"algo: {e}") from None
    _check_task(cfg)
    big = _first_key(tree, _too_large)  # after the settings' own bounds, which say more (n >= 2)
    if big:
        raise ConfigError(
            f"{big}={OmegaConf.select(cfg, big)} is out of range: an integer setting must lie between -(2**63 - 1) "
            "and 2**63 - 1"
        )
    if cfg.get("model") is not None:
        from rlhf_zoo.policies.models import check_model_source

        check_model_source(cfg.model.name)
    check_writable_dir(cfg.run_dir, "run_dir")


def _check_train(t: DictConfig) -> None:
    """The ``train`` section's bounds and choices (the first that fails, in this order)."""
    checks = [
        (t.steps >= 0, "train.steps must be >= 0"),
        (t.batch_prompts >= 1, "train.batch_prompts must be >= 1"),
        (t.lr > 0, "train.lr must be > 0"),
        (t.lr_schedule in ("constant", "linear", "cosine"), "train.lr_schedule must be constant, linear or cosine"),
        (t.warmup_steps >= 0, "train.warmup_steps must be >= 0"),
        (t.weight_decay >= 0, "train.weight_decay must be >= 0"),
        (
            t.lr * t.weight_decay < 1,  # AdamW scales the weights by 1 - lr * weight_decay each step
            f"train.weight_decay={t.weight_decay} with train.lr={t.lr} decays the weights past zero each step "
            "(AdamW multiplies them by 1 - lr * weight_decay): lr * weight_decay must be < 1",
        ),
        (t.grad_clip >= 0, "train.grad_clip must be >= 0 (0: off)"),
        (t.eval_every >= 1, "train.eval_every must be >= 1"),
        (t.eval_prompts >= 1, "train.eval_prompts must be >= 1"),
        (t.eval_samples >= 1, "train.eval_samples must be >= 1"),
        (t.eval_ref_samples >= 1, "train.eval_ref_samples must be >= 1"),
        (t.checkpoint_every >= 0, "train.checkpoint_every must be >= 0"),
        (t.save_samples >= 0, "train.save_samples must be >= 0 (0: off)"),
        (t.checkpoint_minutes >= 0, "train.checkpoint_minutes must be >= 0"),
        (t.log_with in ("none", "tensorboard", "wandb"), "train.log_with must be none, tensorboard or wandb"),
    ]
    for ok, msg in checks:
        if not ok:
            raise ConfigError(msg)
    _check_batch_fits(t.batch_prompts)


def _check_task(cfg: DictConfig) -> None:
    """The task's own checks, and the settings that need a task with a model (``train.fsdp``) or an oracle
    (``algo.quantiles=exact``)."""
    entry = get_task_entry(cfg.task.name)
    if cfg.train.fsdp and not entry.uses_model:  # as a model.* key is: set and taken, it would shard nothing
        with_model = ", ".join(sorted(n for n, e in TASKS.items() if e.uses_model))
        raise ConfigError(
            f"train.fsdp=true shards a language-model policy; task={cfg.task.name} has none (tasks with one: "
            f"{with_model})"
        )
    if cfg.algo.get("quantiles") == "exact" and not entry.has_oracle:  # else a traceback after step 0's evaluation
        raise ConfigError(
            f"algo.quantiles=exact needs a task with an exact oracle (task=exact); task={cfg.task.name} has none: "
            "use algo.quantiles=mc (or auto)"
        )
    if entry.check is not None:
        try:
            entry.check(as_dataclass(cfg, "task"))
        except ValueError as e:
            raise ConfigError(_in_section("task", cfg.task, e) or f"task: {e}") from None


def check_writable_dir(path: str | Path, what: str) -> None:
    """``path`` is a directory this process can create or write into (checked before any work)."""
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{what}={path} is a file, not a directory")
    existing = p
    while not existing.exists():
        existing = existing.parent
    try:  # try it (permission bits do not tell for root, read-only mounts or /proc)
        os.rmdir(tempfile.mkdtemp(prefix=".rlhf_zoo-probe-", dir=existing))
    except OSError as e:
        why = e.strerror or e
        raise ConfigError(f"{what}={path} cannot be written: making a folder in {existing} failed ({why})") from None


def check_writable_file(out: str, command: str, key: str = "out", kind: str = "JSON") -> None:
    """``key=out`` names a file this process can write (not a directory; checked before any work): one
    UserError line naming ``command``."""
    path = Path(out).expanduser()
    if path.is_dir():
        raise UserError(f"{command}: {key}={out} is a directory: name a {kind} file")
    try:
        check_writable_dir(path.parent, "its folder")
    except ConfigError as e:
        raise UserError(f"{command}: {key}={out}: {e}") from None


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg)


def as_dataclass(cfg: DictConfig, key: str) -> Any:
    """The section ``key`` of a config as its dataclass (None: no such section). A value that the dataclass
    refuses (its ``__post_init__``: "dtype must be ...") is one line naming the key as the command line writes
    it (``model.dtype``)."""
    node = cfg.get(key)
    if node is None:
        return None
    try:
        return OmegaConf.to_object(node)
    except UserError as e:
        named = _in_section(key, node, e)
        if named is None:  # a message of its own (naming its file, say)
            raise
        raise ConfigError(named) from None


def _in_section(key: str, node: Any, e: Exception) -> str | None:
    """A section's refusal that starts with one of its keys ("beta must lie in [0, 1]", "baseline=group_norm
    needs ...") naming that key as the command line writes it (``algo.beta``), and the value refused where the
    refusal names no other key nor a value (``algo.beta must lie in [0, 1], got 5.0``: in a sweep, which of its
    values); None when it starts with none."""
    msg = str(e)
    name = re.split(r"[ =]", msg, maxsplit=1)[0]
    if not (isinstance(node, DictConfig) and name in node):
        return None
    names_more = set(re.findall(r"\w+", msg)) & {str(k) for k in node if k != name}
    got = "" if names_more or "got " in msg or msg.startswith(f"{name}=") else f", got {node[name]}"
    return f"{key}.{msg}{got}"


__all__ = [
    "ConfigError",
    "RunConfig",
    "TrainConfig",
    "algo_config",
    "config_error_line",
    "flatten",
    "load_config",
    "preset_algorithm",
    "presets",
    "read_experiment",
    "read_sweep",
    "to_yaml",
]
