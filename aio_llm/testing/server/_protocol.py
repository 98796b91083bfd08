"""The shapes the fake server's formats share: events, headers, a ``Dialect`` and a ``Route``.

Its own module so that each format module (``_fmt_*``) and the routing table
(``_dialects``) can name them without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ._wire import Answer

__all__ = ["Dialect", "Events", "Header", "Route"]

Events = list[bytes]
Header = tuple[str, str]


class Dialect(Protocol):
    """One provider wire format, as the fake server writes it."""

    name: str
    request_id_header: str
    stream_headers: list[Header]
    malformed_event: bytes

    def normalize(self, body: dict[str, Any], route: Route) -> dict[str, Any]:
        """The request as an OpenAI-like body (``model``, ``messages``, ``tools``, ...)."""
        ...

    def json(self, a: Answer, rid: str, created: int) -> bytes: ...

    def stream(
        self, a: Answer, rid: str, created: int, n: int
    ) -> tuple[Events, Events, Events]: ...

    def error(
        self, status: int, message: str | None, error_type: str | None, rid: str
    ) -> bytes: ...

    def error_headers(self, status: int, error_type: str | None) -> list[Header]:
        """Headers an error answer carries beside the body (Bedrock's error type)."""
        ...

    def stream_error(self, message: str, error_type: str | None) -> Events:
        """The in-band error event(s) that end a stream."""
        ...


@dataclass(frozen=True, slots=True)
class Route:
    """Where a request path leads: its format, and what the path itself says."""

    kind: int
    dialect: Dialect
    model: str | None = None
    stream: bool | None = None
    """Set when the path decides streaming (``:streamGenerateContent``, ``/converse-stream``)."""
