"""``rlhf-zoo fields``: every setting with its default and its one-line doc, read from the config dataclasses.

    rlhf-zoo fields algo=bond                  # BOND's settings (algo.*)
    rlhf-zoo fields algo=rloo task=sentiment   # a preset's, with the values task=sentiment gives them
    rlhf-zoo fields task=sentiment model       # the task's and the language model's
    rlhf-zoo fields train run                  # training settings; seed, run_dir, device, ...

The docs are the ``Attributes:`` section of each config dataclass's docstring (the one place they are
written; :func:`field_docs` parses it, and a test fails when a field has no line there). The values are
what ``rlhf-zoo train`` with the same arguments would use: the dataclass default, or what ``rlhf_zoo/configs/``
(the task's file, its tuned per-algorithm file, a preset) or a ``config=FILE.yaml`` sets instead, which
is then shown beside the dataclass default.
"""

from __future__ import annotations

import inspect
import json
import re
import shutil
import textwrap
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rlhf_zoo.config import ConfigError, RunConfig, TrainConfig, compose, parse_overrides

SECTIONS = ("algo", "task", "model", "train", "run")
EXTRA_RUN_KEYS = {"config": "an experiment file (YAML with the command line's keys, nested or dotted); see README"}
_FIELD = re.compile(r"(\w+):\s*(.*)")


def field_docs(cls: type) -> dict[str, str]:
    """``{field: doc}`` from the ``Attributes:`` section of ``cls``'s docstring (continuation lines joined).

    The section is the lines after ``Attributes:`` that are indented at least as much as its first entry;
    an entry is ``name: text`` at that indentation, deeper lines continue the entry above.
    """
    lines = inspect.cleandoc(cls.__doc__ or "").splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == "Attributes:"), None)
    if start is None:
        return {}
    docs: dict[str, str] = {}
    base: int | None = None
    current: str | None = None
    for line in lines[start + 1 :]:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        base = indent if base is None else base
        if indent < base:
            break
        m = _FIELD.fullmatch(line.strip())
        if indent == base and m:
            current = m.group(1)
            docs[current] = m.group(2).strip()
        elif indent > base and current is not None:
            docs[current] = f"{docs[current]} {line.strip()}".strip()
        else:
            break
    return docs


def undocumented(cls: type) -> list[str]:
    """The fields of the dataclass ``cls`` without a line in its ``Attributes:`` section (should be none)."""
    docs = field_docs(cls)
    return [f.name for f in fields(cls) if not docs.get(f.name)]


def _default(f: Any) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        value = f.default_factory()
        return "(section)" if is_dataclass(value) else value
    return None


def _show(value: Any) -> str:
    if isinstance(value, (DictConfig,)) or OmegaConf.is_config(value):
        value = OmegaConf.to_container(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value))
    if isinstance(value, str):
        return value if value and value.strip() == value else json.dumps(value)
    return str(value)


def _plain(doc: str) -> str:
    """A docstring line for the terminal: reST roles and double backquotes dropped."""
    return re.sub(r":\w+:`~?([^`]+)`", r"\1", doc).replace("``", "")


def _where(cls: type) -> str:
    path = Path(inspect.getsourcefile(cls) or "?")
    try:
        path = path.relative_to(Path(__file__).resolve().parent.parent)
    except ValueError:
        pass
    return f"{path}, {cls.__name__}"


def _rows(cls: type, prefix: str, values: Any, skip: tuple[str, ...] = ()) -> list[tuple[str, str, str]]:
    docs = field_docs(cls)
    rows = []
    for f in fields(cls):
        if f.name in skip:
            continue
        default = _default(f)
        if f.name in ("algo", "task", "model", "train") and cls is RunConfig:
            rows.append((f"{f.name}.*", f"rlhf-zoo fields {f.name}" + ("=NAME" if f.name in ("algo", "task") else ""),
                         _plain(docs.get(f.name, ""))))  # fmt: skip
            continue
        value = values.get(f.name, default) if values is not None else default
        note = "" if _show(value) == _show(default) else f" [{cls.__name__} default: {_show(default)}]"
        doc = _plain(docs.get(f.name, "(undocumented)"))
        rows.append((f"{prefix}{f.name}={_show(value)}", "", doc + note))
    return rows


def _format(title: str, rows: list[tuple[str, str, str]]) -> str:
    width = max(40, shutil.get_terminal_size((100, 20)).columns)
    key_w = min(34, max(len(r[0]) for r in rows) + 2) if rows else 0
    out = [title]
    for key, aside, doc in rows:
        text = f"{aside}: {doc}" if aside else doc
        head = f"  {key}".ljust(key_w + 2)
        if len(head) > key_w + 2:
            out.append(f"  {key}")
            head = " " * (key_w + 2)
        wrapped = textwrap.wrap(text, width=max(20, width - key_w - 2)) or [""]
        out.append(head + wrapped[0])
        out.extend(" " * (key_w + 2) + w for w in wrapped[1:])
    return "\n".join(out)


def overview() -> str:
    from rlhf_zoo.algorithms.registry import known_algorithms
    from rlhf_zoo.config import presets
    from rlhf_zoo.tasks.registry import TASKS

    return "\n".join(
        [
            "usage: rlhf-zoo fields SECTION ... [key=value ...]",
            f"  algo=NAME   an algorithm's settings: {', '.join(known_algorithms())}",
            f"              or a preset's: {', '.join(presets('algo'))}",
            f"  task=NAME   a task's settings: {', '.join(sorted(TASKS))}",
            "  model       the language model's settings (tasks with a model)",
            "  train       training settings (train.*)",
            "  run         seed, run_dir, resume, device, threads, config",
            "Values are the defaults `rlhf-zoo train` would use with the same arguments (task=exact unless",
            "task= is given); a value that rlhf_zoo/configs/ or config=FILE.yaml set shows its dataclass default",
            "beside it.",
        ]
    )


def describe(args: list[str]) -> str:
    """The text of ``rlhf-zoo fields ARGS``. Raises ConfigError for an unknown section or setting."""
    from rlhf_zoo.algorithms.registry import get_algorithm
    from rlhf_zoo.tasks.registry import TASKS, get_task_entry

    words = [a for a in args if "=" not in a]
    over = parse_overrides([a for a in args if "=" in a])
    unknown = [w for w in words if w not in SECTIONS]
    if unknown:
        raise ConfigError(f"fields: unknown section {unknown[0]!r}; sections: algo=NAME, task=NAME, model, train, run")
    if not words and "algo" not in over and "task" not in over:
        if over:  # no section to show, but the keys are still checked: an unknown one is refused
            compose([f"{k}={v}" for k, v in over.items()], need_algo=False)
        return overview()
    wanted = [s for s in SECTIONS if s in words or s in over]
    if ("algo" in words and "algo" not in over) or ("task" in words and "task" not in over):
        raise ConfigError("fields: name the algorithm and the task: algo=NAME, task=NAME")
    task_given = "task" in over or "config" in over
    if "model" in wanted and not task_given:  # the model's settings exist on tasks that use one
        over["task"] = next(n for n, e in sorted(TASKS.items()) if e.uses_model)
    cfg = compose([f"{k}={v}" for k, v in over.items()], need_algo=False)
    task_name = cfg.task.name
    for_task = f"values for task={task_name}"
    blocks = []
    for section in wanted:
        if section == "algo":
            cls = get_algorithm(cfg.algo.name).Config
            title = f"algo={over.get('algo', cfg.algo.name)}  ({_where(cls)}; {for_task})"
            blocks.append(_format(title, _rows(cls, "algo.", cfg.algo, skip=("name",))))
        elif section == "task":
            cls = get_task_entry(task_name).config
            blocks.append(_format(f"task={task_name}  ({_where(cls)})", _rows(cls, "task.", cfg.task, skip=("name",))))
        elif section == "model":
            if cfg.get("model") is None:
                raise ConfigError(f"fields: task={task_name} has no language model (try task=sentiment)")
            from rlhf_zoo.policies.hf import HFPolicyConfig

            title = f"model  ({_where(HFPolicyConfig)}; {for_task})"
            blocks.append(_format(title, _rows(HFPolicyConfig, "model.", cfg.model)))
        elif section == "train":
            blocks.append(
                _format(f"train  ({_where(TrainConfig)}; {for_task})", _rows(TrainConfig, "train.", cfg.train))
            )
        else:
            rows = _rows(RunConfig, "", cfg)
            rows += [(f"{k}=FILE.yaml", "", doc) for k, doc in EXTRA_RUN_KEYS.items()]
            blocks.append(_format(f"run  ({_where(RunConfig)}; {for_task})", rows))
    return "\n\n".join(blocks)


__all__ = ["describe", "field_docs", "undocumented"]
