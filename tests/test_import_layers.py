"""The package's modules form layers: no two modules import each other, directly or through others.

Every import counts, including those inside functions (deferred for speed) and under
``TYPE_CHECKING``: a deferred import hides a circle from Python, not from a reader.
"""

import ast
import graphlib
from pathlib import Path

import pytest

import rlhf_zoo

ROOT = Path(rlhf_zoo.__file__).parent


def module_files(root: Path) -> dict[str, Path]:
    out = {}
    for f in root.rglob("*.py"):
        parts = list(f.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = f
    return out


def imported(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules that ``name`` imports (``from pkg import sub`` counts as importing ``pkg.sub``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*up, base] if base else up)
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.add(sub if sub in modules else base)
    return {m for m in out if m in modules and m != name}


def import_graph(root: Path) -> dict[str, set[str]]:
    modules = module_files(root)
    return {name: imported(name, path, modules) for name, path in modules.items()}


def circle(root: Path) -> list[str] | None:
    """One import circle of the package at ``root`` (its modules in order), or None."""
    try:
        tuple(graphlib.TopologicalSorter(import_graph(root)).static_order())
    except graphlib.CycleError as e:
        return list(e.args[1])
    return None


def test_no_module_imports_itself_through_others():
    found = circle(ROOT)
    assert found is None, "import circle: " + " -> ".join(found)


@pytest.mark.parametrize(
    "back",
    [
        "def f():\n    from pkg.a import x\n",  # deferred into a function
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import x\n",  # for types only
        "from pkg import a\n",  # a module imported from its package
        "from . import a\n",  # relative
    ],
)
def test_a_circle_is_found_however_the_import_is_written(tmp_path, back):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.b import y\nx = 1\n")
    (pkg / "b.py").write_text(back + "y = 2\n")
    assert sorted(set(circle(pkg))) == ["pkg.a", "pkg.b"]
    (pkg / "b.py").write_text("y = 2\n")
    assert circle(pkg) is None
