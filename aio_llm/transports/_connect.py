"""The message of a failed connection: where to, why, and what to check.

The HTTP libraries word it for themselves (aiohttp: ``Cannot connect to host
127.0.0.1:1 ssl:default [Connect call failed ...]``, httpx: ``All connection
attempts failed``). ``connect_error`` says it for the user: the origin it
tried (scheme, host and port: never a path, a query or credentials) and the
reason in a few words.
"""

from __future__ import annotations

import errno
import os
import socket
import ssl
from urllib.parse import urlsplit

from ..errors import APIConnectionError

__all__ = ["connect_error", "origin_of"]


def origin_of(url: str) -> str:
    """``scheme://host:port`` of ``url``: no user info, path or query (they may hold a key)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return "the configured base_url"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}:{port}"


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo and len(seen) < 16:
        e = todo.pop(0)
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        todo += [getattr(e, "os_error", None), e.__cause__, e.__context__]
    return seen


def _reason(exc: BaseException) -> str:
    chain = _chain(exc)
    for e in chain:
        if isinstance(e, socket.gaierror):
            return "the host name could not be resolved"
        if isinstance(e, ssl.SSLCertVerificationError):
            return "its TLS certificate could not be verified"
    for e in chain:
        if isinstance(e, ssl.SSLError):
            return "the TLS handshake failed (http:// vs https://?)"
        if isinstance(e, ConnectionRefusedError) or getattr(e, "errno", None) == errno.ECONNREFUSED:
            return "connection refused"
    for e in chain:
        code = getattr(e, "errno", None)
        if isinstance(e, OSError) and isinstance(code, int) and code > 0:
            return os.strerror(code).lower()
    return "no connection could be made"


def connect_error(url: str, exc: BaseException) -> APIConnectionError:
    """``APIConnectionError`` for a connection to ``url`` that could not be opened."""
    return APIConnectionError(
        f"cannot connect to {origin_of(url)}: {_reason(exc)}; "
        "is the server running there, and is base_url right?"
    )
