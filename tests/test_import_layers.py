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


# docs/architecture.md, "Layers": the modules beside layer 1, which import none of the layers
BESIDE = {
    "rlhf_zoo",
    "rlhf_zoo.errors",
    "rlhf_zoo.io",
    "rlhf_zoo.options",
    "rlhf_zoo.signals",
    "rlhf_zoo.rng",
    "rlhf_zoo.shard",
    "rlhf_zoo.paths",
    "rlhf_zoo.progress",
    "rlhf_zoo.hub",
    "rlhf_zoo.fsdp",
    "rlhf_zoo.runtime",
}
LAYER_OF_PACKAGE = {"functional": 1, "algorithms": 2, "policies": 3, "rewards": 3, "tasks": 3, "data": 3, "bench": 5}
# the command modules of layer 4 also use the bench's runner, records, statistics and plots
COMMANDS = {"rlhf_zoo.cli", "rlhf_zoo.sweep", "rlhf_zoo.compare", "rlhf_zoo.export"}


def layer(module: str) -> int:
    if module in BESIDE:
        return 0
    parts = module.split(".")
    return LAYER_OF_PACKAGE.get(parts[1], 4) if len(parts) > 1 else 4


def allowed(module: str, dep: str) -> bool:
    """Whether ``module`` may import ``dep``: a layer imports its own and those above it (lower numbers) and the
    modules beside layer 1, which import only each other; the commands also import the bench."""
    lm, ld = layer(module), layer(dep)
    if lm == 0:
        return ld == 0
    return ld <= lm or (module in COMMANDS and ld == 5)


def layer_breaches(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{module} (layer {layer(module)}) imports {dep} (layer {layer(dep)})"
        for module, deps in graph.items()
        for dep in deps
        if not allowed(module, dep)
    )


def test_each_layer_imports_only_the_layers_above_it_as_documented():
    assert layer_breaches(import_graph(ROOT)) == []


def test_a_module_that_imports_a_lower_layer_is_a_breach():
    graph = {
        "rlhf_zoo.functional.kl": {"rlhf_zoo.policies.base", "rlhf_zoo.errors"},
        "rlhf_zoo.errors": {"rlhf_zoo.train"},
        "rlhf_zoo.train": {"rlhf_zoo.bench.records", "rlhf_zoo.rollout", "rlhf_zoo.tasks.base"},
        "rlhf_zoo.sweep": {"rlhf_zoo.bench.runner"},
        "rlhf_zoo.tasks.sentiment": {"rlhf_zoo.runtime", "rlhf_zoo.rewards.base"},
    }
    assert layer_breaches(graph) == [
        "rlhf_zoo.errors (layer 0) imports rlhf_zoo.train (layer 4)",
        "rlhf_zoo.functional.kl (layer 1) imports rlhf_zoo.policies.base (layer 3)",
        "rlhf_zoo.train (layer 4) imports rlhf_zoo.bench.records (layer 5)",
    ]
