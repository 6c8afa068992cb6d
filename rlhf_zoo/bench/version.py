"""What makes two benchmark records comparable: the code version of the numbers, and the code's commit.

**Code version.** :func:`code_version` is a short hash of the code that decides a record's numbers,
read as Python syntax trees, so that a comment, a docstring or a reformatting leaves it as it was and
any change to what the code does (an objective's loss, how tokens are drawn, how KL is estimated)
changes it. The modules (:data:`CODE_MODULES`, relative to the package):

- ``policies/sampling.py`` and ``rollout.py``: how completions are drawn, scored and counted;
- ``rng.py``: which random numbers each prompt and step sees;
- ``algorithms/*.py`` and ``functional/*.py``: the objectives and their maths (KL, quantiles,
  advantages, surrogates, anchors);
- ``evaluate.py``, ``evaluate_pool.py`` and ``tasks/oracle.py``: the evaluation metrics, Best-of-N
  from a pool and the exact quantities of the testbed.

The rest (the training loop, the models, tasks, rewards, the configuration's defaults) is named by a
record's *settings* (its resolved configuration, see :mod:`rlhf_zoo.bench.records`) and by its git
commit. Each module's tree is dumped without its docstrings (module, class and function), without
positions, and without empty fields (so Python versions that add an empty field to a node hash
alike); the hash is SHA-256 over ``path NUL dump`` of every module in path order, its first 12 hex
digits.

**Commit.** :func:`git_state` is the commit checked out where the package's code lies and whether
tracked files outside ``docs/`` differ from it (``None`` for both outside a git checkout): a bench
that rendered its page, or a piece of a suite whose records are not committed yet, leaves the next
piece's records clean.
"""

from __future__ import annotations

import ast
import hashlib
import subprocess
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent

CODE_MODULES: tuple[str, ...] = (
    "policies/sampling.py",
    "rollout.py",
    "rng.py",
    "algorithms/*.py",
    "functional/*.py",
    "evaluate.py",
    "evaluate_pool.py",
    "tasks/oracle.py",
)
UNKNOWN = "unknown"  # the code version of a record written before records carried one


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                if isinstance(body[0].value.value, str):
                    node.body = body[1:]
    return tree


def _dump(node: object) -> str:
    """A node as text: its type and non-empty fields, recursively (no positions, no context)."""
    if isinstance(node, ast.AST):
        if isinstance(node, ast.expr_context):
            return ""
        parts = []
        for name, value in ast.iter_fields(node):
            if value is None or value == []:
                continue
            parts.append(f"{name}={_dump(value)}")
        return f"{type(node).__name__}({', '.join(parts)})"
    if isinstance(node, list):
        return "[" + ", ".join(_dump(v) for v in node) + "]"
    return repr(node)


def source_digest(source: str) -> str:
    """The normalised syntax tree of one module's source (what :func:`code_version` hashes)."""
    return _dump(_strip_docstrings(ast.parse(source)))


def hash_sources(sources: Iterable[tuple[str, str]]) -> str:
    """The code version of ``(path, source)`` pairs: 12 hex digits of SHA-256 over their normalised trees."""
    h = hashlib.sha256()
    for path, source in sorted(sources):
        h.update(path.encode())
        h.update(b"\0")
        h.update(source_digest(source).encode())
        h.update(b"\0")
    return h.hexdigest()[:12]


def code_files(root: Path = PACKAGE) -> list[Path]:
    """The modules that decide the numbers (:data:`CODE_MODULES`) under the package ``root``."""
    files: set[Path] = set()
    for pattern in CODE_MODULES:
        files.update(p for p in root.glob(pattern) if p.is_file())
    return sorted(files)


def code_version(root: Path = PACKAGE) -> str:
    """The code version of the package at ``root`` (see the module docstring)."""
    return hash_sources((p.relative_to(root).as_posix(), p.read_text(encoding="utf-8")) for p in code_files(root))


@lru_cache(maxsize=1)
def current_code_version() -> str:
    """:func:`code_version` of this process's package (computed once)."""
    return code_version()


def git_state(cwd: Path = PACKAGE, written: Iterable[Path] = ()) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git checkout holding ``cwd``; ``(None, None)`` outside git.

    Dirty means a tracked file outside ``docs/`` differs from the commit: new, untracked files do not
    count, nor do the pages and records that the bench itself writes under ``docs/`` or in ``written``
    (its records folder, page and plots where ``records=`` or ``docs=`` put them elsewhere in the checkout)."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return None, None
    excluded = [":(top,exclude)docs"]
    top = git("rev-parse", "--show-toplevel") if written else None
    for path in written if top else ():
        try:
            rel = Path(path).resolve().relative_to(Path(top).resolve())
        except (OSError, ValueError):  # outside the checkout: git would refuse the whole pathspec
            continue
        if rel.parts:  # never the checkout itself
            excluded.append(f":(top,exclude){rel.as_posix()}")
    status = git("status", "--porcelain", "--untracked-files=no", "--", ":(top)", *excluded)
    return commit, (None if status is None else bool(status))


def stamp(written: Iterable[Path] = ()) -> dict[str, object]:
    """What every record of this process carries: code version, git commit and dirty flag, package version.
    ``written``: what the bench itself writes (:func:`git_state`)."""
    from rlhf_zoo import version

    commit, dirty = git_state(written=written)
    return {
        "code_version": current_code_version(),
        "git_commit": commit,
        "git_dirty": dirty,
        "package_version": version(),
    }


__all__ = [
    "CODE_MODULES",
    "UNKNOWN",
    "code_files",
    "code_version",
    "current_code_version",
    "git_state",
    "hash_sources",
    "source_digest",
    "stamp",
]
