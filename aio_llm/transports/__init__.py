"""HTTP transports. The modules for aiohttp and httpx are imported only when used."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import DEFAULT_MAX_BODY_SIZE, HTTPTransport, StreamingHTTPResponse
from .sse import SSEDecoder, SSEEvent

if TYPE_CHECKING:
    from .aiohttp import AiohttpTransport
    from .httpx import HttpxTransport

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "AiohttpTransport",
    "HTTPTransport",
    "HttpxTransport",
    "SSEDecoder",
    "SSEEvent",
    "StreamingHTTPResponse",
    "create_transport",
]


def __getattr__(name: str) -> Any:
    if name == "AiohttpTransport":
        from .aiohttp import AiohttpTransport

        return AiohttpTransport
    if name == "HttpxTransport":
        from .httpx import HttpxTransport

        return HttpxTransport
    raise AttributeError(name)


def create_transport(
    kind: str = "aiohttp", http_client: object = None, **options: Any
) -> HTTPTransport:
    """Build the transport named ``kind``, or the one that fits ``http_client``."""
    if http_client is not None:
        mod = type(http_client).__module__
        if mod.startswith("httpx"):
            from .httpx import HttpxTransport

            return HttpxTransport(http_client, **options)  # type: ignore[arg-type]
        if mod.startswith("aiohttp"):
            from .aiohttp import AiohttpTransport

            return AiohttpTransport(http_client, **options)  # type: ignore[arg-type]
        raise TypeError(
            "http_client must be an httpx.AsyncClient or an aiohttp.ClientSession, "
            f"not {type(http_client).__name__}"
        )
    if kind == "aiohttp":
        from .aiohttp import AiohttpTransport

        return AiohttpTransport(**options)
    if kind == "httpx":
        from .httpx import HttpxTransport

        return HttpxTransport(**options)
    raise ValueError(f"unknown transport {kind!r}: expected 'aiohttp' or 'httpx'")
