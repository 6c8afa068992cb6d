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


def module_files() -> dict[str, Path]:
    out = {}
    for f in ROOT.rglob("*.py"):
        parts = list(f.relative_to(ROOT.parent).with_suffix("").parts)
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


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imported(name, path, modules) for name, path in modules.items()}


def test_no_module_imports_itself_through_others():
    try:
        tuple(graphlib.TopologicalSorter(import_graph()).static_order())
    except graphlib.CycleError as e:
        pytest.fail("import circle: " + " -> ".join(e.args[1]))


def test_the_graph_sees_deferred_and_type_only_imports():
    graph = import_graph()
    assert "rlhf_zoo.train" in graph["rlhf_zoo.bench.runner"]  # imported inside a function
    assert "rlhf_zoo.evaluate" in graph["rlhf_zoo.checkpoint"]  # imported under TYPE_CHECKING
    assert "rlhf_zoo.rewards.minilm_build" in graph["rlhf_zoo.rewards.minilm"]  # from package import module
