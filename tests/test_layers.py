"""No two modules of the project import each other, directly or round a longer loop.

Static: every `import` and `from ... import` of objectives/, hpsearch/ and storage/ is read
with `ast`, wherever it stands (module level, inside functions, under TYPE_CHECKING), and
the edges between the project's own modules must form an acyclic graph. A package's
`__init__` counts as the module of the package's name.
"""

from __future__ import annotations

import ast
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
