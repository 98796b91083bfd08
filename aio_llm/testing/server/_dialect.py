"""What every wire format of ``FakeLLMServer`` shares: the ``Dialect`` protocol, ``Route``.

Apart from ``_dialects`` (which holds the formats and the path table) so the
formats in ``_fmt_*`` can name these types without importing the table that
imports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ._wire import Answer

__all__ = [
    "BEDROCK",
    "CHAT",
    "COUNT",
    "EMBED",
    "GEMINI",
    "JSON",
    "MESSAGES",
    "RESPONSES",
    "SSE_HEADERS",
    "STREAMED",
    "Dialect",
    "Events",
    "Header",
    "Route",
]

Events = list[bytes]
Header = tuple[str, str]

JSON: Header = ("content-type", "application/json")
SSE_HEADERS: list[Header] = [
    ("content-type", "text/event-stream; charset=utf-8"),
    ("cache-control", "no-cache"),
]

CHAT, MESSAGES, EMBED, RESPONSES, GEMINI, BEDROCK, COUNT = 1, 2, 3, 4, 5, 6, 7
STREAMED = (CHAT, MESSAGES, RESPONSES, GEMINI, BEDROCK)


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
