"""The import graph of ``ccobs/``: no cycle, and nothing outside the demo imports the demo.

Read from every module's AST, so that every import counts: at the top, inside
functions (lazy imports) and under ``TYPE_CHECKING``. A cycle hidden in a lazy
import is still a cycle to whoever reads or moves the code.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ccobs"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The ``ccobs`` modules ``name`` imports anywhere in its file.

    An import of ``ccobs.a.b`` is an edge to ``ccobs.a.b`` alone: that Python
    runs the packages above it first is not a choice the importing module made.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from ccobs.x import y`` imports the module ``ccobs.x.y`` when there is one
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


@functools.cache
def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imported(name, path, known) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_the_checker_finds_a_cycle_hidden_in_a_lazy_import() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_checker_counts_imports_inside_functions_and_type_checking(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from ccobs.metrics import PrometheusMetrics\n"
        "def f():\n    import ccobs.exposition\n    from . import labels\n"
    )
    found = _imported(
        "ccobs.m", source, {"ccobs", "ccobs.metrics", "ccobs.exposition", "ccobs.labels"}
    )
    assert found == {"ccobs.metrics", "ccobs.exposition", "ccobs.labels"}


def test_ccobs_has_no_import_cycle() -> None:
    assert _cycles(_graph()) == []


@pytest.mark.parametrize("name", sorted(_modules()))
def test_no_module_outside_the_demo_imports_it(name: str) -> None:
    """The demo's commands reach the CLI through an entry point, not an import."""
    if name == "ccobs.demo" or name.startswith("ccobs.demo."):
        return
    demo = sorted(
        target
        for target in _graph()[name]
        if target == "ccobs.demo" or target.startswith("ccobs.demo.")
    )
    assert demo == []
