"""The layers of the project: which room may import which, and no import cycles.

Static: every `import` and `from ... import` of objectives/, hpsearch/ and storage/ (all their
subpackages) is read with `ast`, wherever it stands (module level, inside functions, under
TYPE_CHECKING). A package's `__init__` counts as the module of the package's name. The edges
between rooms must be among ALLOWED (docs/design.md draws the same picture), and the edges
between modules must form an acyclic graph. Dynamic checks: a task's study module, the
results and the CLI's start import no torch, and a worker imports no plotting library.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("objectives", "hpsearch", "storage")


def _modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _imported(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules that module `name` imports."""
    package = name if path.stem == "__init__" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            # `from package import module` imports the module; `from module import name`
            # imports the module.
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imported(name, path, modules) for name, path in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected component that has one, as a list of
    modules that starts and ends with the same module."""
    cycles = []
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        # Depth-first search from `start`, keeping the path: a back edge closes a cycle.
        path: list[str] = []
        on_path: set[str] = set()
        stack = [(start, iter(sorted(graph[start])))]
        path.append(start)
        on_path.add(start)
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                on_path.discard(node)
                done.add(node)
            elif child in on_path:
                cycle = [*path[path.index(child) :], child]
                if not any(set(cycle) <= set(c) for c in cycles):
                    cycles.append(cycle)
            elif child not in done:
                stack.append((child, iter(sorted(graph[child]))))
                path.append(child)
                on_path.add(child)
    return cycles


def test_the_graph_is_read():
    graph = import_graph()
    assert "objectives.training.batched" in graph["objectives.training.precision"]
    assert (
        "objectives.training.batched" in graph["objectives.tasks.registry"]
    )  # imported inside a function
    assert "storage" in graph["hpsearch.worker.loop"]


def test_cycles_are_found_and_named():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycles(package):
    cycles = [c for c in find_cycles(import_graph()) if c[0].split(".")[0] == package]
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


# Room -> the rooms it may import (besides itself). A room is a package's folder: the first
# two parts of a module's name (`hpsearch.worker`), or the package itself for its top-level
# modules (`hpsearch.errors` is room `hpsearch`). hpsearch imports objectives and storage;
# objectives and storage never import each other or hpsearch.
ALLOWED: dict[str, set[str]] = {
    "storage": set(),
    "objectives": set(),
    "objectives.networks": {"objectives"},
    "objectives.training": {"objectives", "objectives.networks"},
    "objectives.tasks": {"objectives", "objectives.networks", "objectives.training"},
    "hpsearch": set(),
    "hpsearch.search": {"hpsearch", "storage", "objectives", "objectives.tasks"},
    "hpsearch.studies": {
        "hpsearch",
        "hpsearch.search",
        "objectives",
        "objectives.tasks",
        "objectives.networks",
    },
    "hpsearch.results": {
        "hpsearch",
        "hpsearch.studies",
        "storage",
        "objectives",
        "objectives.tasks",
        "objectives.networks",
    },
    "hpsearch.dashboard": {
        "hpsearch",
        "hpsearch.studies",
        "hpsearch.results",
        "storage",
        "objectives",
        "objectives.tasks",
        "objectives.networks",
    },
    "hpsearch.worker": {
        "hpsearch",
        "hpsearch.search",
        "hpsearch.studies",
        "hpsearch.results",
        "hpsearch.dashboard",
        "storage",
        "objectives",
        "objectives.tasks",
        "objectives.training",
    },
    "hpsearch.cli": {
        "hpsearch",
        "hpsearch.search",
        "hpsearch.studies",
        "hpsearch.worker",
        "hpsearch.results",
        "hpsearch.dashboard",
        "storage",
        "objectives",
        "objectives.tasks",
        "objectives.networks",
    },
}


def room(module: str) -> str:
    parts = module.split(".")
    candidate = ".".join(parts[:2])
    return candidate if candidate in ALLOWED else parts[0]


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for module, imported in sorted(graph.items()):
        here = room(module)
        for target in sorted(imported):
            there = room(target)
            if there != here and there not in ALLOWED[here]:
                found.append(f"{module} -> {target} ({here} may not import {there})")
    return found


def test_every_room_is_known():
    rooms = {room(m) for m in import_graph()}
    assert rooms <= set(ALLOWED)
    assert {"hpsearch.cli", "hpsearch.worker", "objectives.tasks", "storage"} <= rooms


def test_a_forbidden_edge_is_found():
    graph = {"storage.rdb": {"hpsearch.errors"}, "hpsearch.cli": {"storage.rdb"}}
    assert layer_violations(graph) == [
        "storage.rdb -> hpsearch.errors (storage may not import hpsearch)"
    ]


def test_the_rooms_import_only_what_they_may():
    violations = layer_violations(import_graph())
    assert not violations, "layer violations:\n" + "\n".join(violations)


def _modules_loaded(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint(' '.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return set(out.stdout.split())


@pytest.mark.parametrize(
    "module",
    [
        "objectives.tasks.capacity.study",
        "objectives.tasks.per_unit.study",
        "objectives.tasks.registry",
        "hpsearch.results.rows",
        "hpsearch.cli",
    ],
)
def test_imports_no_torch(module):
    assert "torch" not in _modules_loaded(f"import {module}")


def test_a_worker_imports_no_plotting_library():
    loaded = _modules_loaded("import hpsearch.worker.loop, hpsearch.worker.executors")
    assert not loaded & {"plotly", "matplotlib", "optuna_dashboard"}


def test_the_study_catalog_knows_no_command_line():
    loaded = _modules_loaded("import hpsearch.studies.records, hpsearch.studies.schema")
    assert "argparse" not in {m for m in loaded if not m.startswith("_")} - _modules_loaded("")
    assert not {m for m in loaded if m.startswith("hpsearch.cli")}


def test_tests_share_helpers_through_the_testing_module_only():
    """A test module imports helpers from tests.testing (and fixtures come from conftest),
    never from another test module."""
    found = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tests"):
                if node.module not in ("tests.testing",):
                    found.append(f"{path.relative_to(ROOT)}: from {node.module} import ...")
    assert not found, "\n".join(found)
