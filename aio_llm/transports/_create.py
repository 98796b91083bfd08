"""``create_transport``: the transport a ``ClientConfig`` or an ``http_client`` names."""

from __future__ import annotations

from typing import Any

from .base import HTTPTransport

__all__ = ["create_transport"]


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
