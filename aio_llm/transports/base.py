"""The HTTP transport interface: the only place aio_llm touches an HTTP library.

Two implementations: ``AiohttpTransport`` (the default) and ``HttpxTransport``.
Both raise only aio_llm errors: ``APIConnectionError`` / ``APITimeoutError`` for
network failures, ``APIResponseError`` for an answer over the size limit.
Neither follows redirects: a 3xx is returned as it is, so no header (an API
key) ever travels to the host a ``Location`` names.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Protocol

__all__ = ["DEFAULT_MAX_BODY_SIZE", "HTTPTransport", "StreamingHTTPResponse"]

DEFAULT_MAX_BODY_SIZE = 64 * 1024 * 1024
"""A response body larger than this is refused instead of filling memory."""


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
