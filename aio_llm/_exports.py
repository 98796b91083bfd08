"""Public names: each package declares them once, and loads each on first use.

A package's public names are the imports in its ``if TYPE_CHECKING:`` block,
written as explicit re-exports::

    if TYPE_CHECKING:
        from .retry import Retry as Retry

Type checkers and IDEs read that block. At run time ``lazy_exports`` reads
the same block from the package's source: ``__all__`` lists its names and the
package's ``__getattr__`` imports a name's module when the name is first
used, then keeps the value in the package's namespace. So ``import aio_llm``
loads almost nothing, and a public name is written in exactly one place.
"""

from __future__ import annotations

import ast
import importlib
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, *, fallback: str | None = None
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """``__all__``, ``__getattr__`` and ``__dir__`` for ``package`` (its ``__name__``).

    ``fallback`` names another package whose public names also resolve here
    without being part of this one's ``__all__`` (``aio_llm`` keeps the
    ``app.ai`` client's names importable through ``aio_llm.compat``).
    """
    module = sys.modules[package]
    homes = _declared(package, module.__spec__)
    namespace = vars(module)
    public = sorted(homes)

    def __getattr__(name: str) -> Any:  # whatever the name is: Any, like any module attribute
        home = homes.get(name)
        if home is not None:
            value: Any = getattr(importlib.import_module(home), name)
        elif fallback is not None and not name.startswith("__"):
            other = importlib.import_module(fallback)
            if name not in other.__all__:
                raise AttributeError(f"module {package!r} has no attribute {name!r}")
            return getattr(other, name)  # not kept here: this package's names stay its own
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(public))

    return public, __getattr__, __dir__


def _declared(package: str, spec: object) -> dict[str, str]:
    """Each name imported under ``if TYPE_CHECKING:`` in ``package``, and its module."""
    loader = getattr(spec, "loader", None)
    source = loader.get_source(package) if loader is not None else None
    if source is None:
        raise ImportError(f"cannot read the public names of {package!r}: no source")
    homes: dict[str, str] = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.If) and _is_type_checking(node.test)):
            continue
        for stmt in node.body:
            if not isinstance(stmt, ast.ImportFrom):
                raise ImportError(f"{package}: only `from ... import` in its TYPE_CHECKING block")
            base = package.split(".")[: len(package.split(".")) - max(stmt.level - 1, 0)]
            home = ".".join(base + [stmt.module or ""]) if stmt.level else stmt.module or ""
            for alias in stmt.names:
                if alias.asname not in (None, alias.name):
                    raise ImportError(f"{package}: {alias.name} is renamed; export it as itself")
                if alias.name in homes:
                    raise ImportError(f"{package}: {alias.name} is declared twice")
                homes[alias.name] = home.rstrip(".")
    return homes


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )
