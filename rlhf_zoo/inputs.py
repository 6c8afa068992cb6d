"""What a run reads from the user's own files, as digests.

A run's settings name its reward function's file (``task.proxy=py:my_rewards.py:score``), its reward model's
folder (``hf:rm/cls``), its prompt files and its model's folder by path only: a file edited between two runs of
the same settings made two different runs that a bench page pooled as seeds of one (a ``py:`` reward changed
between seed 0 and seed 1 gave a proxy reward of 306 ± 3892), that ``resume=true`` continued with the new
file, and that ``rlhf-zoo compare`` pooled. :func:`input_digests` gives the sha256 of each such file (of a
folder: of its files' names and contents), keyed by the setting; runs record them (``meta.json``, a bench
record's ``inputs``) and refuse to pool or resume across a change (:func:`changed`).

Names that are not local paths (``vader``, ``hutto``, a hub id, ``zoo-lm``) and ``py:`` rewards given as a module
are not digested: they are the package's, the hub's (by revision) or installed code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

KEYS = ("task.proxy", "task.gold", "task.prompts", "task.eval_prompts", "model.name")

_cache: dict[tuple[str, tuple[Any, ...]], str] = {}


def input_digests(settings: Mapping[str, Any]) -> dict[str, str]:
    """``{setting: "sha256:<16 hex>"}`` for each of :data:`KEYS` in the flat ``settings`` that names a local file
    or folder (relative paths from the current folder, as the run reads them). A ``py:`` reward's digest covers
    the modules beside its file that it imports (:func:`rlhf_zoo.rewards.python.imported_beside`), as its function
    may be there."""
    from rlhf_zoo.rewards.python import imported_beside

    out = {}
    for key in KEYS:
        value = settings.get(key)
        path = _local_path(value) if isinstance(value, str) else None
        if path is not None:
            out[key] = _digest(path, imported_beside(path) if value.strip().startswith("py:") else [])
    return out


def changed(before: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """The settings whose files both digests name and that differ (a setting only one names is not compared:
    records written before digests were, or a file given by another kind of name)."""
    return [k for k in KEYS if k in before and k in now and before[k] != now[k]]


def _local_path(value: str) -> Path | None:
    from rlhf_zoo.errors import UserError
    from rlhf_zoo.rewards.python import PY_PREFIX, is_file, parse_spec

    text = value.strip()
    if text.startswith(PY_PREFIX):  # the file the reward loads, as it tells a file from a module
        try:
            source = parse_spec(text)[0]
        except UserError:  # no function named: the reward's own check says so
            return None
        path = Path(source).expanduser()
        return path if is_file(source) and path.is_file() else None
    if text.startswith("hf:"):
        text = text[len("hf:") :].strip()
    if not text:
        return None
    path = Path(text).expanduser()
    try:
        return path if path.is_file() or path.is_dir() else None
    except OSError:  # a name too long for a path, say
        return None


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file())


def _digest(path: Path, beside: list[Path] | None = None) -> str:
    files = [*_files(path), *(beside or [])]
    stats = tuple((str(f), st.st_size, st.st_mtime_ns) for f in files for st in (f.stat(),))
    key = (str(path.resolve()), stats)
    if key not in _cache:  # a bench's points read the same reward file: read once per process while unchanged
        h = hashlib.sha256()
        for f in files:
            content = hashlib.sha256()
            with f.open("rb") as stream:
                for block in iter(lambda s=stream: s.read(1 << 20), b""):
                    content.update(block)
            name = "" if f == path else f.relative_to(path if path.is_dir() else path.parent).as_posix()
            h.update(name.encode() + b"\0" + content.digest())
        _cache[key] = "sha256:" + h.hexdigest()[:16]
    return _cache[key]


__all__ = ["KEYS", "changed", "input_digests"]
