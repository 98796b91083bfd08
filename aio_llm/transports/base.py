"""The HTTP transport interface: the only place aio_llm touches an HTTP library.

Two implementations: ``AiohttpTransport`` (the default) and ``HttpxTransport``.
Both raise only aio_llm errors: ``APIConnectionError`` / ``APITimeoutError`` for
network failures, ``APIResponseError`` for an answer over the size limit.
Neither follows redirects: a 3xx is returned as it is, so no header (an API
key) ever travels to the host a ``Location`` names.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextvars import ContextVar
from typing import Protocol

__all__ = ["DEFAULT_MAX_BODY_SIZE", "HTTPTransport", "StreamingHTTPResponse", "call_deadline"]

DEFAULT_MAX_BODY_SIZE = 64 * 1024 * 1024
"""A response body larger than this is refused instead of filling memory."""

call_deadline: ContextVar[float | None] = ContextVar("aio_llm_call_deadline", default=None)
"""The deadline (on the event loop's clock) of the cancel scope the client put around this call.

The client sets it next to its deadline scope, so a transport can tell
without asking anyio (``anyio.current_effective_deadline()`` looks the
backend and the task's scopes up: ~13% of a request's own cost) that a
deadline will end the call before a per-read timer could fire, and skip the
timer. It is a hint that can only be late: an enclosing scope may end the
call sooner, never later. ``None``: not known here (a task spawned inside a
call sets it back to ``None``), so ask anyio. A middleware that shields the
rest of the chain from the deadline sets it to ``None`` there too.
"""


class StreamingHTTPResponse(Protocol):
    """An open response whose body is read in chunks."""

    status: int
    headers: Mapping[str, str]

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive."""
        ...

    async def aread(self) -> bytes:
        """The whole (remaining) body, bounded by the size limit."""
        ...

    async def aclose(self) -> None:
        """Release the connection; one not read to its end is closed, not reused."""
        ...


class HTTPTransport(Protocol):
    """Send one HTTP request; the transport owns its connection pool."""

    async def request(
        self, method: str, url: str, headers: Mapping[str, str], content: bytes
    ) -> tuple[int, Mapping[str, str], bytes]:
        """Send and read the whole answer: ``(status, headers, body)``."""
        ...

    async def stream(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        content: bytes,
        *,
        max_body_size: int | None = None,
    ) -> StreamingHTTPResponse:
        """Send and return once the status line and headers have arrived.

        ``max_body_size`` replaces the transport's limit for this response (a
        caller that writes the body to disk as it comes needs none).
        """
        ...

    async def aclose(self) -> None:
        """Close every connection."""
        ...
