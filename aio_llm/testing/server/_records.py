"""What ``FakeLLMServer`` remembers: the request log and a statistics snapshot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..._json import loads
from ._faults import Fault

__all__ = ["RecordedRequest", "RequestHeaders", "ServerStatistics"]

SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "cookie", "x-goog-api-key"}
)


class RequestHeaders(dict[str, str]):
    """Request headers (lower-case names) whose ``repr`` hides credential values."""

    __slots__ = ()

    def __repr__(self) -> str:
        shown = {k: ("<redacted>" if k in SECRET_HEADERS else v) for k, v in self.items()}
        return f"RequestHeaders({shown!r})"

    __str__ = __repr__


class RecordedRequest:
    """One request the server received, as it arrived.

    ``path`` has no query string (``query`` holds it); ``timestamp`` is the
    server clock's wall time at arrival; ``fault`` is what was applied, if
    anything (``None`` for a normal answer).
    """

    __slots__ = ("body", "fault", "headers", "method", "path", "query", "timestamp")

    def __init__(
        self,
        method: str,
        path: str,
        query: str,
        headers: RequestHeaders,
        body: bytes,
        timestamp: float,
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.timestamp = timestamp
        self.fault: Fault | None = None

    def json(self) -> Any:
        """The body parsed as JSON."""
        return loads(self.body)

    def __repr__(self) -> str:
        query = f"?{self.query}" if self.query else ""
        return (
            f"RecordedRequest({self.method} {self.path}{query}, {len(self.body)} bytes, "
            f"headers={self.headers!r})"
        )


@dataclass(frozen=True, slots=True)
class ServerStatistics:
    """A snapshot of ``FakeLLMServer`` counters (``srv.statistics()``)."""

    requests: int
    """Requests received (control routes under ``/_fake/`` excluded)."""
    in_flight: int
    """Requests received but not yet fully answered."""
    max_in_flight: int
    disconnects: int
    """Requests whose client closed the connection before the answer was complete."""
    open_connections: int
    connections: int
    """Connections accepted in total."""
    faults: int
    """Requests that got a scripted, random or per-path fault."""
    rate_limited: int
    """Requests refused with 429 by ``rate_limit_rpm``."""
    bad_requests: int
    """Requests refused because they could not be parsed."""
