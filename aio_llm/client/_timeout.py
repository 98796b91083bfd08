"""Timeouts as users pass them: seconds, ``aio_llm.Timeout``, ``httpx.Timeout``; checked once.

aio_llm has three timeouts. ``total`` is the deadline of one call, every
retry and backoff included (``ClientConfig.timeout``); ``connect`` bounds
opening a connection and ``read`` each wait for the next bytes of an answer
(``ClientConfig.connect_timeout`` / ``read_timeout``). A number is the total.
An ``httpx.Timeout`` (what the official SDKs take) gives connect and read;
its write and pool timeouts have no counterpart here. ``None`` means no
limit. Anything else (a string, a bool, zero, a negative number, NaN) is
refused with an error that says what to pass instead.
"""

from __future__ import annotations

import enum
import math
import sys
from dataclasses import dataclass
from typing import Any

from ..errors import LLMError

__all__ = [
    "USE_CLIENT_DEFAULT",
    "Timeout",
    "TimeoutArg",
    "UseClientDefault",
    "call_timeout",
    "check_seconds",
    "client_timeouts",
]


class UseClientDefault(enum.Enum):
    """The type of ``USE_CLIENT_DEFAULT``: "not given", as opposed to ``None``."""

    USE_CLIENT_DEFAULT = enum.auto()

    def __repr__(self) -> str:
        return "USE_CLIENT_DEFAULT"


USE_CLIENT_DEFAULT = UseClientDefault.USE_CLIENT_DEFAULT
"""Pass nothing: use the client's default (``None`` means "no timeout")."""


@dataclass(frozen=True, slots=True)
class Timeout:
    """The client's timeouts in seconds; a field left out keeps the client's default.

    ``total`` is the deadline of one call over every retry and backoff,
    ``connect`` the time to open a connection, ``read`` the longest wait for
    the next bytes of an answer. ``None`` is no limit::

        AsyncLLMClient(timeout=Timeout(30.0, connect=2.0))
    """

    total: float | None | UseClientDefault = USE_CLIENT_DEFAULT
    connect: float | None | UseClientDefault = USE_CLIENT_DEFAULT
    read: float | None | UseClientDefault = USE_CLIENT_DEFAULT

    def __post_init__(self) -> None:
        for name in ("total", "connect", "read"):
            value = getattr(self, name)
            if value is not USE_CLIENT_DEFAULT:
                object.__setattr__(self, name, check_seconds(value, f"Timeout.{name}"))


TimeoutArg = float | Timeout | None | UseClientDefault
"""A per-call ``timeout``: seconds (or ``Timeout(total)``), ``None`` (no deadline) or omitted."""


def check_seconds(value: Any, what: str, error: type[LLMError] | None = None) -> float | None:
    """``value`` as seconds (``None``: no limit), or ``error`` saying what is wrong with it.

    ``error`` defaults to ``ConfigurationError``; infinity means no limit.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        kind = type(value).__name__
        hint = (
            f" (write {what}={value.strip()})" if isinstance(value, str) and _numeric(value) else ""
        )
        raise _error(error)(
            f"{what} must be a number of seconds or None, not {kind} {value!r}{hint}"
        )
    seconds = float(value)
    if math.isnan(seconds):
        raise _error(error)(f"{what} must be a number of seconds, not NaN")
    if seconds <= 0:
        raise _error(error)(
            f"{what} must be more than 0 seconds, not {value!r}; pass None for no limit"
        )
    return None if math.isinf(seconds) else seconds


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _error(error: type[LLMError] | None) -> type[LLMError]:
    if error is not None:
        return error
    from ..errors import ConfigurationError

    return ConfigurationError


def client_timeouts(value: object) -> dict[str, float | None]:
    """The ``ClientConfig`` fields that the constructor's ``timeout=`` sets.

    A number or ``None`` sets ``timeout`` (the total deadline); a
    ``Timeout`` the fields it gives; an ``httpx.Timeout`` ``connect_timeout``
    and ``read_timeout``.
    """
    if isinstance(value, Timeout):
        fields = {"timeout": value.total, "connect_timeout": value.connect}
        fields["read_timeout"] = value.read
        return {k: v for k, v in fields.items() if not isinstance(v, UseClientDefault)}
    if _is_httpx_timeout(value):
        return {
            "connect_timeout": check_seconds(getattr(value, "connect", None), "timeout.connect"),
            "read_timeout": check_seconds(getattr(value, "read", None), "timeout.read"),
        }
    if isinstance(value, int | float | str | bool) or value is None:
        return {"timeout": check_seconds(value, "timeout")}
    raise _error(None)(
        "timeout must be seconds, None, aio_llm.Timeout or httpx.Timeout, "
        f"not {type(value).__name__}"
    )


def call_timeout(value: object) -> float | None:
    """A per-call ``timeout`` as seconds (``InvalidRequestError`` if it is not one)."""
    from ..errors import InvalidRequestError

    if isinstance(value, Timeout):
        if value.connect is not USE_CLIENT_DEFAULT or value.read is not USE_CLIENT_DEFAULT:
            raise InvalidRequestError(
                "a call's timeout is its total deadline: connect and read timeouts are "
                "the client's (AsyncLLMClient(timeout=Timeout(connect=..., read=...)))"
            )
        if isinstance(value.total, UseClientDefault):
            raise InvalidRequestError("Timeout() sets no total deadline for this call")
        return value.total
    if _is_httpx_timeout(value):
        raise InvalidRequestError(
            "a call's timeout is its total deadline in seconds, not an httpx.Timeout: "
            "pass connect and read timeouts to the client (AsyncLLMClient(timeout=...))"
        )
    return check_seconds(value, "timeout", InvalidRequestError)


def _is_httpx_timeout(value: object) -> bool:
    """An ``httpx.Timeout`` (or ``httpx2.Timeout``, what newer SDKs take)."""
    for name in ("httpx", "httpx2"):
        module = sys.modules.get(name)  # whoever made one imported its module
        if module is not None and isinstance(value, getattr(module, "Timeout", ())):
            return True
    return False
