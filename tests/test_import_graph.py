"""The package's import graph: no cycles, and each layer imports only what is below it.

Every ``import`` statement counts, wherever it is: at module level, inside a
function (a lazy import is still a dependency) and under
``if TYPE_CHECKING:`` (a type is a dependency too). The graph is read from
the source with ``ast``, so the test needs no import side effects.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "aio_llm"


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        out[".".join(parts)] = (path, is_package)
    return out


MODULES = _modules()


def _targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = module.split(".") if is_package else module.split(".")[:-1]
    if node.level:
        base = base[: len(base) - node.level + 1]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    for alias in node.names:  # `from pkg import submodule` depends on the submodule
        candidate = f"{prefix}.{alias.name}"
        yield candidate if candidate in MODULES else prefix


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, (path, is_package) in MODULES.items():
        deps = graph[module] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in _targets(module, is_package, node):
                    while target not in MODULES and "." in target:
                        target = target.rsplit(".", 1)[0]
                    if target in MODULES and target != module:
                        deps.add(target)
    return graph


GRAPH = _graph()


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
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
                        found.append(sorted(component))
    return found


def test_the_graph_covers_the_package() -> None:
    assert {"aio_llm", "aio_llm.client._client", "aio_llm.compat.facade"} <= set(GRAPH)
    assert "aio_llm.types" in GRAPH["aio_llm.client._client"]
    assert "aio_llm.client._session" in GRAPH["aio_llm.client._stream"]


def test_no_import_cycles() -> None:
    assert _cycles(GRAPH) == []


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        # the core never imports the compatibility fence (aio_llm.facade is its alias)
        ("aio_llm", ["aio_llm.compat"]),
        # HTTP knows nothing of providers, middleware or the client
        ("aio_llm.transports", ["aio_llm.providers", "aio_llm.middleware", "aio_llm.client"]),
        # codecs know nothing of middleware or the client
        ("aio_llm.providers", ["aio_llm.middleware", "aio_llm.client"]),
        # middleware never reaches up into the client
        ("aio_llm.middleware", ["aio_llm.client"]),
    ],
)
def test_layers_import_only_downwards(layer: str, forbidden: list[str]) -> None:
    exempt = {"aio_llm.facade"}  # the alias module of aio_llm.compat.facade
    wrong = sorted(
        f"{module} -> {dep}"
        for module, deps in GRAPH.items()
        if _inside(module, layer) and module not in exempt
        for dep in deps
        for bad in forbidden
        if _inside(dep, bad) and not _inside(module, bad)
    )
    assert wrong == []
