"""Optional dependencies: import them on first use, or say which extra brings them."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingExtraError

__all__ = ["missing", "require", "require_numpy", "require_redis"]


def missing(module: str, extra: str, feature: str) -> MissingExtraError:
    """The error to raise when ``feature`` cannot import ``module``."""
    return MissingExtraError(
        f"{feature} needs {module.split('.')[0]}, which is not installed: "
        f"pip install 'aio-llm[{extra}]'"
    )


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module``, or raise ``MissingExtraError`` naming ``extra``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise missing(module, extra, feature) from exc


def require_numpy(feature: str) -> ModuleType:
    """numpy, which the ``semantic`` extra installs."""
    return require("numpy", "semantic", feature)


def require_redis(feature: str) -> ModuleType:
    """``redis.asyncio``, which the ``redis`` extra installs."""
    return require("redis.asyncio", "redis", feature)
