"""Rewards written as Python functions, named on the command line: ``py:FILE_OR_MODULE:NAME``.

    task.proxy=py:my_rewards.py:score        a file, loaded by path (relative to the current directory)
    task.gold=py:my_package.rewards:score    a module, imported by name (the current directory is searched too)

``NAME`` is a function ``score(prompts, completions)`` of two lists of strings (the prompts and the
completions, one pair per row) that returns one float per completion: a list, a numpy array or a
tensor. What it returns goes through :func:`rlhf_zoo.rewards.base.checked_score` like every reward's,
so a wrong length, a NaN or an exception raised inside it stops the run with one line.

:func:`load_python_function` is called when the config is validated (before any model loads), so a
missing file or module, a missing function or one that cannot take two arguments is a one-line
:class:`~rlhf_zoo.errors.UserError` there. A file is executed once per process (its module is cached by
path), so validation and the run share one module object. A file may import modules that sit beside it
(``from helpers import f``), as when it is run with ``python``: its folder is searched.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import io
import sys
import tokenize
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from rlhf_zoo.errors import UserError, one_line
from rlhf_zoo.rewards.base import CallableReward

PY_PREFIX = "py:"
USAGE = "use py:FILE.py:FUNCTION or py:MODULE:FUNCTION"

_FILES: dict[Path, ModuleType] = {}  # resolved path -> module (one execution per process)


def parse_spec(spec: str) -> tuple[str, str]:
    """``"py:SOURCE:NAME"`` -> ``(SOURCE, NAME)``; the last ``:`` separates the function's name, so a
    source may hold colons (a Windows drive). Raises UserError."""
    body = spec[len(PY_PREFIX) :] if spec.startswith(PY_PREFIX) else spec
    source, sep, name = body.rpartition(":")
    if not sep or not source.strip() or not name.strip():
        raise UserError(f"reward {spec!r} names no function: {USAGE}")
    name = name.strip()
    if not name.isidentifier():
        raise UserError(f"reward {spec!r}: {name!r} is not a Python name: {USAGE}")
    return source.strip(), name


def is_file(source: str) -> bool:
    """Whether a ``py:`` source names a file (``.py``, or a path) rather than a module."""
    return source.endswith(".py") or "/" in source or "\\" in source


def _load_file(source: str, spec: str) -> ModuleType:
    path = Path(source).expanduser().resolve()
    if path in _FILES:
        return _FILES[path]
    if not path.is_file():
        what = "a directory, not a Python file" if path.is_dir() else "not a regular file"
        why = f"{source} is {what}" if path.exists() else f"no such file {source}"
        raise UserError(f"reward {spec!r}: {why} (looked at {path})")
    mod_name = f"rlhf_zoo_user_reward_{abs(hash(path)):x}"
    module_spec = importlib.util.spec_from_file_location(mod_name, path)
    if module_spec is None or module_spec.loader is None:
        raise UserError(f"reward {spec!r}: {source} cannot be loaded as Python")
    _refuse_shadowed_siblings(path, source, spec)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[mod_name] = module  # dataclasses and pickling look a module up by name
    # the file imports modules beside it as `python file.py` would: its folder is searched first while it
    # runs, then last (for imports inside its functions), so it never shadows an installed package later
    folder = str(path.parent)
    sys.path.insert(0, folder)
    try:
        module_spec.loader.exec_module(module)
    except SystemExit as e:  # a script's sys.exit() or argparse at its top level: not rlhf-zoo's exit
        del sys.modules[mod_name]
        raise UserError(_exited(spec, source, e)) from None
    except Exception as e:  # noqa: BLE001 - any failure of the user's file is one line
        del sys.modules[mod_name]
        undecodable = _undecodable(path) if isinstance(e, (SyntaxError, ValueError)) else None
        if undecodable:  # said "SyntaxError: (unicode error) 'utf-8' codec can't decode byte 0xe9 ... end of data"
            raise UserError(f"reward {spec!r}: {source} is not {undecodable}: {_SAVE_AS_UTF8}") from None
        raise UserError(f"reward {spec!r}: importing {source} failed: {one_line(e)}") from None
    finally:
        sys.path.remove(folder)
        if folder not in sys.path:
            sys.path.append(folder)
    _FILES[path] = module
    return module


def imported_beside(path: Path) -> list[Path]:
    """The Python files in the folder of the reward file ``path`` that it imports, directly or through one another
    (``import helper``, ``from helper import f``, a package ``helper/``): the reward loads with its folder first on
    ``sys.path`` (:func:`_load_file`), so an edit of ``helper.py`` changes the reward as one of the file does
    (:mod:`rlhf_zoo.inputs` digests them with it). Imports that no file there answers (installed packages) are left
    out; a file that does not parse adds nothing (the reward's own load says what is wrong)."""
    import ast

    folder, found, todo = path.parent, [], [path]
    while todo:
        try:
            tree = ast.parse(todo.pop().read_bytes())
        except (SyntaxError, ValueError, OSError):
            continue
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0 and n.module]
        for top in dict.fromkeys(name.split(".")[0] for name in names):
            for f in (folder / f"{top}.py", *sorted((folder / top).rglob("*.py"))):
                if f.is_file() and f != path and f not in found:
                    found.append(f)
                    todo.append(f)
    return sorted(found)


def _refuse_shadowed_siblings(path: Path, source: str, spec: str) -> None:
    """Refuse a reward file that imports a module beside it (``from helper import f``) whose name this process
    already holds from another reward file's folder: Python keeps one module per name, so the import would
    silently return that one, e.g. ``ra/helper.py`` of ``task.proxy=py:ra/r.py:score`` for
    ``task.gold=py:rb/r.py:score``, or for the second point of a sweep over two reward folders, which then
    scored with the first folder's helper. (A name that an installed package already holds is left as it was.)"""
    folder = path.parent
    others = {p.parent: p for p in _FILES if p.parent != folder}
    for top in dict.fromkeys(f.relative_to(folder).parts[0].removesuffix(".py") for f in imported_beside(path)):
        held = sys.modules.get(top)
        origins = [getattr(held, "__file__", None), *(getattr(held, "__path__", None) or [])] if held else []
        for origin in (Path(o).resolve() for o in origins if o):
            home = origin.parent.parent if origin.name == "__init__.py" else origin.parent
            if home in others:
                raise UserError(
                    f"reward {spec!r}: {source} imports {top} from beside it, but this process already holds the "
                    f"{top} of another reward file's folder ({origin}, beside {others[home]}), which the import "
                    "would return instead: give one of the two a name of its own"
                )


_SAVE_AS_UTF8 = "save it as UTF-8, or name its encoding on its first line (# -*- coding: latin-1 -*-)"


def _undecodable(path: Path) -> str | None:
    """What a Python file's bytes are not, where they do not decode in its declared encoding (UTF-8 when it
    declares none): "UTF-8 text (byte 0xe9 on line 3)", "UTF-8 text (a null byte on line 1)"; None when they
    decode."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        encoding = tokenize.detect_encoding(io.BytesIO(data).readline)[0]
    except SyntaxError as e:  # its first two lines are no UTF-8 ("invalid or missing encoding declaration")
        if "unknown encoding" in str(e):  # a coding line naming no codec: Python's own message says it
            return None
        encoding = "utf-8"
    try:
        data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        name = "UTF-8" if encoding.startswith("utf-8") else encoding
        return f"{name} text (byte 0x{data[e.start]:02x} on line {line})"
    except LookupError:
        return None
    if b"\0" in data:
        line = data[: data.index(b"\0")].count(b"\n") + 1
        return f"UTF-8 text (a null byte on line {line})"
    return None


def _source_file(module: str, e: BaseException) -> str | None:
    """The file that a failed import of ``module`` did not compile: the error's own, else the module's (a null
    byte's error names none)."""
    if getattr(e, "filename", None):
        return str(e.filename)
    try:
        found = importlib.util.find_spec(module)
    except Exception:  # noqa: BLE001 - a parent that does not import either: no file to name
        return None
    origin = found.origin if found is not None else None
    return origin if origin and origin.endswith(".py") else None


def _exited(spec: str, source: str, e: SystemExit) -> str:
    """The error for a file or module that exits while it is imported (``sys.exit()``, ``argparse`` at its top
    level), which would otherwise end rlhf-zoo silently or with the script's own usage message."""
    return (
        f"reward {spec!r}: importing {source} exited (SystemExit: {e.code}): its top-level code runs on import; "
        'put the script\'s part under `if __name__ == "__main__":`'
    )


def _import_module(source: str, spec: str) -> ModuleType:
    added = str(Path.cwd()) not in sys.path and "" not in sys.path
    if added:  # `rlhf-zoo` (the console script) does not search the current directory; `python -m` does
        sys.path.append(str(Path.cwd()))
    try:
        return importlib.import_module(source)
    except ModuleNotFoundError as e:
        if e.name and source.startswith(e.name):
            raise UserError(f"reward {spec!r}: no module named {e.name!r} ({USAGE})") from None
        raise UserError(f"reward {spec!r}: importing {source} failed: {one_line(e)}") from None
    except SystemExit as e:
        raise UserError(_exited(spec, source, e)) from None
    except Exception as e:  # noqa: BLE001 - any failure of the user's module is one line
        where = _source_file(source, e) if isinstance(e, (SyntaxError, ValueError)) else None
        undecodable = _undecodable(Path(where)) if where else None
        if undecodable:  # the module (or one it imports) as a file above: the byte and line, not the codec's words
            raise UserError(
                f"reward {spec!r}: importing {source}: {where} is not {undecodable}: {_SAVE_AS_UTF8}"
            ) from None
        raise UserError(f"reward {spec!r}: importing {source} failed: {one_line(e)}") from None
    finally:
        if added:
            sys.path.remove(str(Path.cwd()))


def _functions(module: ModuleType) -> list[str]:
    own = [n for n, v in vars(module).items() if inspect.isfunction(v) and v.__module__ == module.__name__]
    return sorted(n for n in own if not n.startswith("_"))


def _check_signature(fn: Callable[..., Any], spec: str) -> None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # a builtin or C function without a signature: checked when it is called
    try:
        sig.bind(["prompt"], ["completion"])
    except TypeError:
        raise UserError(
            f"reward {spec!r}: {getattr(fn, '__name__', 'it')}{sig} cannot be called as f(prompts, completions) "
            "(two lists of strings, one float per completion)"
        ) from None


def load_python_function(spec: str) -> Callable[..., Any]:
    """The function that ``spec`` (``py:SOURCE:NAME``) names, checked to take ``(prompts, completions)``."""
    source, name = parse_spec(spec)
    module = _load_file(source, spec) if is_file(source) else _import_module(source, spec)
    fn = getattr(module, name, None)
    if fn is None:
        known = _functions(module)
        listed = f"its functions: {', '.join(known)}" if known else "it defines no public function"
        raise UserError(f"reward {spec!r}: {source} has no {name!r} ({listed})")
    if not callable(fn):
        kind = type(fn).__name__
        article = "an" if kind[0] in "aeiou" else "a"
        raise UserError(f"reward {spec!r}: {source}.{name} is {article} {kind}, not a function")
    _check_signature(fn, spec)
    return fn


def python_reward(spec: str) -> CallableReward:
    """The reward model of ``spec``: the function wrapped as a :class:`CallableReward` named ``spec``."""
    return CallableReward(load_python_function(spec), name=spec)
