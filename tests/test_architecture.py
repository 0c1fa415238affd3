"""The shape of the code base: no import cycles, short modules, roles dispatched by the ops.

The import graph is read with :mod:`ast` from the source of every module of ``provgraph/``,
``importers/`` and ``backends/`` (installed as ``provgraph.importers`` and
``provgraph.backends``), imports inside functions included. Imports under
``if TYPE_CHECKING:`` are left out: they never run, so they cannot form a cycle at import time.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"provgraph": "provgraph", "importers": "provgraph.importers",
            "backends": "provgraph.backends"}
MAX_LINES = 400


def _modules(root: Path = ROOT, packages: dict[str, str] = PACKAGES) -> dict[str, Path]:
    mods = {}
    for folder, package in packages.items():
        for path in sorted((root / folder).rglob("*.py")):
            parts = list(path.relative_to(root / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join([package, *parts])] = path
    return mods


def _type_checking_only(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                for child in node.body:
                    skipped.update(id(n) for n in ast.walk(child))
    return skipped


def _imported(node: ast.AST, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join(package + ([base] if base else []))
    # ``from package import submodule`` depends on the submodule, not on the package
    return [f"{base}.{a.name}" for a in node.names] + [base]


def import_graph(root: Path = ROOT, packages: dict[str, str] = PACKAGES) -> nx.DiGraph:
    """Module → module it imports, over the project's own modules."""
    mods = _modules(root, packages)
    graph = nx.DiGraph()
    graph.add_nodes_from(mods)
    for module, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        skipped = _type_checking_only(tree)
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            names = _imported(node, module, path.name == "__init__.py")
            if isinstance(node, ast.ImportFrom):
                names = [n for n in names[:-1] if n in mods] or names[-1:]
            for name in names:
                while name and name not in mods:
                    name = name.rpartition(".")[0]
                if name and name != module:
                    graph.add_edge(module, name)
    return graph


def test_the_import_graph_is_read_from_every_module() -> None:
    graph = import_graph()
    # the graph sees imports inside functions, the driver's use of the registry and the
    # package-level registration of node converters
    assert graph.has_edge("provgraph.engine.annotation", "provgraph.engine.driver")
    assert graph.has_edge("provgraph.engine.driver", "provgraph.backends")
    assert graph.has_edge("provgraph.importers", "provgraph.importers.node_converters")
    assert len(graph) > 80


def test_no_import_cycles() -> None:
    cycles = list(nx.simple_cycles(import_graph()))
    assert not cycles, "import cycles: " + "; ".join(" → ".join(c + c[:1]) for c in cycles[:5])


def test_a_cycle_through_a_function_level_import_is_found(tmp_path: Path) -> None:
    files = {
        "__init__.py": "",
        "a.py": "def f():\n    from pkg.b import g\n",
        "b.py": "from pkg import a\n\ndef g():\n    return a\n",
        "c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import f\n",
    }
    (tmp_path / "pkg").mkdir()
    for name, text in files.items():
        (tmp_path / "pkg" / name).write_text(text)
    graph = import_graph(tmp_path, {"pkg": "pkg"})
    assert sorted(map(sorted, nx.simple_cycles(graph))) == [["pkg.a", "pkg.b"]]
    assert not graph.has_edge("pkg.c", "pkg.a")


def test_no_module_over_400_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in _modules().values()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


@pytest.mark.parametrize(
    "path",
    ["provgraph/engine/driver.py", "backends/base.py", "backends/scipy_backend.py",
     "provgraph/symbolic/circuit.py"],
)
def test_roles_are_not_tested_by_type(path: str) -> None:
    """The driver, the reference backend and the circuit ask the op for its role's step."""
    roles = {"LinearOp", "PassthroughOp", "RouteOp", "SelectOp"}
    tree = ast.parse((ROOT / path).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance":
            named = {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)}
            assert not named & roles, f"{path}:{node.lineno} tests an op's role by its type"
