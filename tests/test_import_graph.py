"""No import circles in src/sessionkeeper: the module graph, read from the source with ``ast``.

Every import of a ``sessionkeeper`` module counts, wherever it is written: at module level, in a
function (deferred imports still tie the two modules together), under ``if TYPE_CHECKING:``
(a circle of type-only imports is still two modules that cannot be read apart), and
``importlib.import_module("sessionkeeper.…")`` with a literal name. An edge goes to the module
an import names (``from sessionkeeper.store import validate`` → ``sessionkeeper.store.validate``;
``from sessionkeeper.store import Store`` → ``sessionkeeper.store``), not to the parent packages
Python also runs on the way.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import sessionkeeper

PACKAGE = Path(sessionkeeper.__file__).resolve().parent
ROOT = PACKAGE.name


MODULE, FUNCTION, TYPE_CHECKING = "module level", "in a function", "under TYPE_CHECKING"


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    kind: str
    path: Path
    line: int

    def __str__(self) -> str:
        where = f"{self.path.relative_to(PACKAGE.parent)}:{self.line}"
        return f"{self.source} -> {self.target}  ({self.kind}, {where})"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _named_module(dotted: str) -> str | None:
    """The module ``import dotted`` names: the longest prefix that is a module of ours."""
    parts = dotted.split(".")
    while parts:
        name = ".".join(parts)
        if name in modules():
            return name
        parts.pop()
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Imports(ast.NodeVisitor):
    def __init__(self, name: str, path: Path) -> None:
        self.name, self.path = name, path
        self.package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        self.kind = MODULE
        self.edges: list[Edge] = []

    def _add(self, target: str | None, node: ast.stmt | ast.expr) -> None:
        if target is not None and target != self.name:
            self.edges.append(Edge(self.name, target, self.kind, self.path, node.lineno))

    def _within(self, kind: str, nodes: list[ast.stmt] | list[ast.expr]) -> None:
        outer = self.kind
        if outer == MODULE:  # the first of the two kinds counts (a function's own imports)
            self.kind = kind
        for child in nodes:
            self.visit(child)
        self.kind = outer

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._within(FUNCTION, node.body)
        for decorator in node.decorator_list:  # run when the module is
            self.visit(decorator)

    visit_AsyncFunctionDef = visit_FunctionDef  # noqa: N815

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            self._within(TYPE_CHECKING, node.body)
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name.split(".")[0] == ROOT:
                self._add(_named_module(alias.name), node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")
            base = base[: len(base) - (node.level - 1)]
            full = ".".join([*base, *([node.module] if node.module else [])])
        else:
            full = node.module or ""
        if full.split(".")[0] != ROOT:
            return
        for alias in node.names:
            sub = f"{full}.{alias.name}"
            self._add(sub if sub in modules() else _named_module(full), node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if (
            name == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and node.args[0].value.split(".")[0] == ROOT
        ):
            self._add(_named_module(node.args[0].value), node)
        self.generic_visit(node)


@cache
def edges() -> tuple[Edge, ...]:
    found: list[Edge] = []
    for name, path in modules().items():
        visitor = _Imports(name, path)
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        found += visitor.edges
    return tuple(dict.fromkeys(found))  # one edge per import statement, however many names


def _components(graph: dict[str, set[str]]) -> Iterator[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph.get(target, ())))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        yield sorted(component)


def _cycle(graph: dict[str, set[str]], members: list[str]) -> list[str]:
    """One circle through the first member of a component (breadth first: a shortest one)."""
    start, inside = members[0], set(members)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node] & inside):
                if target == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]
                if target not in came_from:
                    came_from[target] = node
                    following.append(target)
        frontier = following
    raise AssertionError(f"no circle found in the component {members}")


def circles(kept: list[Edge]) -> list[str]:
    graph: dict[str, set[str]] = {name: set() for name in modules()}
    for edge in kept:
        graph[edge.source].add(edge.target)
    described = []
    for members in _components(graph):
        path = _cycle(graph, members)
        lines = [f"circle of {len(members)} modules: {', '.join(members)}"]
        for source, target in zip(path, path[1:], strict=False):
            lines += [f"  {e}" for e in kept if (e.source, e.target) == (source, target)]
        described.append("\n".join(lines))
    return described


def test_the_graph_is_read() -> None:
    """The reader sees imports of every kind (a graph with no edges has no circles either)."""
    assert len(modules()) > 60
    seen = {(e.source, e.target, e.kind) for e in edges()}
    assert ("sessionkeeper.store.core", "sessionkeeper.models", MODULE) in seen
    assert ("sessionkeeper.store.core", "sessionkeeper.store.validate", MODULE) in seen
    assert ("sessionkeeper.cli.transfer", "sessionkeeper.transfer.imports", FUNCTION) in seen
    assert ("sessionkeeper.cli.admin", "sessionkeeper.cli.serving", FUNCTION) in seen
    assert ("sessionkeeper.api.deps", "sessionkeeper.api.auth", TYPE_CHECKING) in seen
    assert ("sessionkeeper.cli", "sessionkeeper.cli.root", FUNCTION) in seen  # a package's own


def test_the_circle_finder_finds_circles() -> None:
    a, b, c = (f"sessionkeeper.{n}" for n in ("models", "errors", "config"))
    made = [
        Edge(a, b, MODULE, PACKAGE / "models.py", 1),
        Edge(b, c, FUNCTION, PACKAGE / "errors.py", 2),
    ]
    assert circles(made) == []
    found = circles([*made, Edge(c, a, TYPE_CHECKING, PACKAGE / "config.py", 3)])
    assert len(found) == 1 and found[0].startswith("circle of 3 modules"), found
    assert "errors.py:2" in found[0] and "under TYPE_CHECKING" in found[0]


def test_no_import_circles() -> None:
    found = circles(list(edges()))
    assert not found, "import circles in src/sessionkeeper:\n" + "\n".join(found)
