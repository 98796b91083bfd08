"""The official SDKs' constructor arguments, checked and folded into a ``ClientConfig``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config import ClientConfig
from ..errors import ConfigurationError
from ._timeout import UseClientDefault, client_timeouts

__all__ = ["check_headers", "sdk_options"]


def sdk_options(config: ClientConfig, max_retries: object, timeout: object) -> ClientConfig:
    """``config`` with ``max_retries`` and ``timeout`` applied (each unless omitted)."""
    update: dict[str, Any] = {}
    if not isinstance(max_retries, UseClientDefault):
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigurationError(
                f"max_retries must be a whole number of retries, 0 or more, not {max_retries!r}"
            )
        update["max_retries"] = max_retries
    if not isinstance(timeout, UseClientDefault):
        update.update(client_timeouts(timeout))
    # checked above, field by field: copying skips a second validation of the whole config
    return config.model_copy(update=update) if update else config


def check_headers(headers: Mapping[str, str] | None, what: str) -> dict[str, str]:
    """``headers`` checked: names and values must be strings."""
    if not headers:
        return {}
    if not isinstance(headers, Mapping):
        raise ConfigurationError(f"{what} must be a mapping of header names to strings")
    out: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise ConfigurationError(
                f"{what} must map header names to strings; {name!r} maps to {type(value).__name__}"
            )
        out[name] = value
    return out
