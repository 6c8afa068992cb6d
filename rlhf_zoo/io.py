"""Atomic file writes, the reading of boolean flags (environment variables, ``key=true``), and the check
of a user's YAML file (:func:`yaml_problem`: a key given twice; :func:`yaml_error`: a syntax error as one
line with its line and column).

Every file rlhf_zoo writes for later reading (run logs, checkpoints, bench records and pages, the
cached data and models) goes through :func:`atomic_write_text` or :func:`atomic_dir`: the content is
written under a temporary name in the same directory, flushed to disk, then renamed over the
target, so a reader (or a run killed half-way) sees the old file or the new one, never a torn one.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rlhf_zoo.errors import UserError

TRUE = ("1", "true", "yes", "y", "t", "on")
FALSE = ("0", "false", "no", "n", "f", "off", "")


def truthy(value: str | None) -> bool:
    """An environment flag: true for 1/true/yes/y/t/on (any case), false otherwise (unset included)."""
    return (value or "").strip().lower() in TRUE


def parse_bool(value: str) -> bool:
    """A ``key=value`` boolean: true/1/yes/on or false/0/no/off; ValueError otherwise."""
    low = value.strip().lower()
    if low in TRUE:
        return True
    if low in FALSE and low:
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def read_json(path: Path) -> Any | None:
    """The JSON in ``path``, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def yaml_error(e: BaseException) -> str:
    """A YAML loader's error as one line with what is wrong and where: ``YAML syntax error at line 3, column 5:
    expected ',' or '}', but got ':' (while parsing a flow mapping started at line 2)``."""
    if isinstance(e, UnicodeDecodeError):  # a file saved as Latin-1, say: as a prompt file's error says it
        return f"not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start}): save it as UTF-8"
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None)
    if mark is None or not problem:
        lines = str(e).strip().splitlines()
        return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__
    text = f"YAML syntax error at line {mark.line + 1}, column {mark.column + 1}: {problem}"
    context, where = getattr(e, "context", None), getattr(e, "context_mark", None)
    if context:
        text += f" ({context}" + (f" started at line {where.line + 1})" if where is not None else ")")
    return text


def yaml_problem(text: str) -> str | None:
    """What is wrong with the YAML ``text`` beyond what a loader refuses, in one line, or None: a key that a
    mapping holds twice (a loader keeps the last one silently), named by its dotted path and its lines; an alias
    inside the mapping or list it names (``a: &x [*x]``: a structure that holds itself)."""
    import yaml

    inside: set[int] = set()  # the nodes being walked: an alias back to one of them is a cycle

    def walk(node: Any, path: str) -> str | None:
        if id(node) in inside:
            where = path.removesuffix(".") or "the file"
            return f"{where} holds itself (an alias inside what it names, line {node.start_mark.line + 1})"
        inside.add(id(node))
        try:
            return walk_node(node, path)
        finally:
            inside.discard(id(node))

    def walk_node(node: Any, path: str) -> str | None:
        if isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode):
                    key, line = f"{path}{k.value}", k.start_mark.line + 1
                    if k.value in first:
                        return f"key {key!r} appears twice (line {line}; first at line {first[k.value]})"
                    first[k.value] = line
                    found = walk(v, f"{key}.")
                else:
                    found = walk(v, path)
                if found:
                    return found
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                found = walk(v, f"{path.removesuffix('.')}[{i}].")
                if found:
                    return found
        return None

    return walk(yaml.compose(text, Loader=yaml.SafeLoader), "")


PROC_STATUS = "/proc/self/status"


def umask() -> int:
    """The process umask, read from :data:`PROC_STATUS` where Linux shows it: reading it with ``os.umask`` sets
    it to 0 for a moment, in which a file another thread creates gets no mask (world-writable)."""
    try:
        with open(PROC_STATUS, encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def umask_mode(mode: int) -> int:
    """``mode`` with the process umask applied (mkstemp/mkdtemp create private 0600/0700 ones)."""
    return mode & ~umask()


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` (parents created) through a temporary file, fsync and rename."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def _write_mode(path: Path) -> int:
    """The mode a plain ``open(path, "w")`` leaves: an existing file's own (a page the user made read-only for
    the group stays so), else 0o666 less the umask (mkstemp creates a private 0o600 file)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return umask_mode(0o666)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` (parents created) through a temporary file, fsync and rename; the file keeps
    the mode it had (a new one gets the umask's)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # see temp_files_of
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _write_mode(path))
        os.replace(tmp, path)
    except OSError as e:
        if e.filename is None:  # a failed write names no file (a full disk): name the one being written
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def temp_files_of(path: str | Path) -> list[Path]:
    """The temporary files that :func:`atomic_write_bytes` writes of ``path`` and that a ``kill -9`` before the
    rename left beside it (``.NAME.*.tmp``)."""
    path = Path(path)
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 2) -> Path:
    """``obj`` as JSON (sorted keys, non-JSON values as ``str``), written atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=True, default=str) + "\n")


def atomic_write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]], sort_keys: bool = True) -> Path:
    """One JSON object a line, written atomically."""
    text = "".join(json.dumps(r, sort_keys=sort_keys, ensure_ascii=False) + "\n" for r in rows)
    return atomic_write_text(path, text)


@contextmanager
def atomic_dir(target: str | Path, replace: bool = True) -> Iterator[Path]:
    """Build a directory in a temporary sibling, then rename it to ``target`` on success.

    Yields the temporary directory to fill. On an exception it is removed and ``target`` is left as
    it was. Before the rename every file and folder in it is flushed to disk (fsync), and after it the
    parent folder, so that a power loss never leaves ``target`` naming empty or torn files. With
    ``replace`` an existing ``target`` is swapped out (renamed aside, then deleted); without it, a
    ``target`` that appeared meanwhile (another process won the race) is kept and the new one discarded.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, umask_mode(0o777))
        _fsync_tree(tmp)
        if target.exists():
            if not replace:
                return
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / target.name)
            os.replace(tmp, target)
            _fsync(target.parent, directory=True)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
            _fsync(target.parent, directory=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _fsync(path: Path, directory: bool = False) -> None:
    """Flush ``path`` (a file, or a folder's entries) to disk. A file system that cannot sync a folder
    (EINVAL) is let be."""
    fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    try:
        os.fsync(fd)
    except OSError as e:
        if not (directory and e.errno in (errno.EINVAL, errno.ENOTSUP, errno.EBADF)):
            raise
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """Every file and folder under ``root`` (itself included) flushed to disk; links are left alone."""
    for folder, _dirs, files in os.walk(root, topdown=False):
        for name in files:
            path = Path(folder) / name
            if not path.is_symlink():
                _fsync(path)
        _fsync(Path(folder), directory=True)


@contextmanager
def build_lock(target: str | Path, what: str) -> Iterator[None]:
    """Held while the artefact at ``target`` is built (a lock file beside it, the operating system's
    ``flock``: a killed build leaves nothing held). A second process that wants the same artefact, say the
    other worker of ``bench jobs=2``, waits here for the first's build and then finds it built, instead of
    building it beside it for minutes and swapping its folder. The caller checks again once it holds it."""
    from filelock import FileLock, Timeout

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(target.parent / f".{target.name}.build.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"waiting for another process's build of {what} ...", flush=True)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def reuse_built(out: Path, asked: Any, name: str, rebuild: str, force: bool, meta_file: str = "meta.json") -> bool:
    """Whether the build of a model ``name`` (a dataclass of settings ``asked``) can return ``out`` as it is: it holds a
    complete model (its ``meta_file`` is there) and ``force`` is False. One built with other settings is refused
    (:func:`check_built_settings`, then ``rebuild``), and so is a file or a non-empty folder at ``out`` that holds no
    model, rather than overwritten by the build."""
    meta = out / meta_file
    if meta.is_file() and not force:
        check_built_settings(out, json.loads(meta.read_text(encoding="utf-8")).get("config", {}), asked, name, rebuild)
        return True
    if out.exists() and not meta.is_file() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(
            f"{out} exists but holds no {name} model (no {meta_file}): refusing to replace it; remove it or choose "
            "another path"
        )
    return False


def check_built_settings(out: Path, built: dict[str, Any], asked: Any, name: str, rebuild: str) -> None:
    """A model built at ``out`` with the settings ``built`` (its meta.json's ``config``) is one of the
    dataclass ``asked``: else one line naming the settings that differ, then ``rebuild`` (what to do)."""
    wanted = json.loads(json.dumps(asdict(asked)))  # as meta.json holds them (tuples as lists)
    diff = [f"{k}={built.get(k)!r} (asked {v!r})" for k, v in wanted.items() if built.get(k) != v]
    if diff:
        settings = ", ".join(diff)
        raise UserError(f"{out} holds a {name} model built with other settings ({settings}): {rebuild}")
