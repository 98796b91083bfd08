"""The httpx transport, for users who bring an ``httpx.AsyncClient``.

Proxies, HTTP/2 and custom httpx transports work through it. It costs more CPU
per request than the aiohttp transport (see benchmarks/README.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import httpx

from ..errors import APIConnectionError, APIResponseError, APITimeoutError
from ._connect import connect_error
from ._decode import ACCEPT_ENCODING, BoundedDecoder
from .base import DEFAULT_MAX_BODY_SIZE

__all__ = ["HttpxTransport"]


def _map(exc: httpx.TransportError) -> APIConnectionError:
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"timed out: {type(exc).__name__}")
    # the exception's text may quote request headers (an API key): name the type only
    return APIConnectionError(f"connection failed: {type(exc).__name__}")


class _HttpxStream:
    __slots__ = ("_done", "_limit", "_resp", "headers", "status")

    def __init__(self, resp: httpx.Response, limit: int) -> None:
        self._resp = resp
        self._limit = limit
        self._done = False
        self.status = resp.status_code
        self.headers: Mapping[str, str] = resp.headers

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        # raw bytes, decoded here a bounded piece at a time (httpx would inflate each read
        # whole): the limit bounds memory, not only the result
        decoder = BoundedDecoder(self._resp.headers.get("content-encoding"), self._limit)
        try:
            async for raw in self._resp.aiter_raw():
                for chunk in decoder.decode(raw):
                    yield chunk
        except httpx.TransportError as exc:
            raise _map(exc) from exc
        rest = decoder.flush()
        if rest:
            yield rest
        self._done = True

    async def aread(self) -> bytes:
        return b"".join([chunk async for chunk in self.aiter_bytes()])

    async def aclose(self) -> None:
        await self._resp.aclose()


class HttpxTransport:
    """HTTP over an ``httpx.AsyncClient`` (owned, or the caller's)."""

    def __init__(
        self,
        client: httpx.AsyncClient | None = None,
        *,
        max_connections: int = 512,
        connect_timeout: float = 10.0,
        read_timeout: float | None = 600.0,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    ) -> None:
        self._owned = client is None
        if client is None:
            client = httpx.AsyncClient(
                limits=httpx.Limits(
                    max_connections=max_connections, max_keepalive_connections=max_connections
                ),
                timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            )
        self._client = client
        self._max_body_size = max_body_size
        self._max_connections = max_connections

    async def _send(
        self, method: str, url: str, headers: Mapping[str, str], content: bytes
    ) -> httpx.Response:
        client = self._client
        req = client.build_request(method, url, headers=headers, content=content)
        if "accept-encoding" not in headers and "Accept-Encoding" not in headers:
            req.headers["Accept-Encoding"] = ACCEPT_ENCODING  # what BoundedDecoder reads
        try:
            # never follow a redirect, even on a caller's client made with
            # follow_redirects=True: the provider raises RedirectError for the 3xx
            return await client.send(req, stream=True, follow_redirects=False)
        except httpx.ConnectError as exc:
            raise connect_error(url, exc) from None
        except httpx.TransportError as exc:
            raise _map(exc) from exc

    async def request(
        self, method: str, url: str, headers: Mapping[str, str], content: bytes
    ) -> tuple[int, Mapping[str, str], bytes]:
        resp = await self._send(method, url, headers, content)
        try:
            length = resp.headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > self._max_body_size:
                raise APIResponseError(
                    f"response body exceeds the limit of {self._max_body_size} bytes"
                )
            if length is not None and "content-encoding" not in resp.headers:
                try:
                    body = await resp.aread()
                except httpx.TransportError as exc:
                    raise _map(exc) from exc
            else:  # unknown or compressed length: count the decoded bytes as they come
                body = await _HttpxStream(resp, self._max_body_size).aread()
        finally:
            await resp.aclose()
        return resp.status_code, resp.headers, body

    async def stream(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        content: bytes,
        *,
        max_body_size: int | None = None,
    ) -> _HttpxStream:
        resp = await self._send(method, url, headers, content)
        limit = self._max_body_size if max_body_size is None else max_body_size
        return _HttpxStream(resp, limit)

    async def aclose(self) -> None:
        if self._owned:
            await self._client.aclose()

    def __repr__(self) -> str:
        owner = "owned" if self._owned else "borrowed"
        return f"<HttpxTransport {owner}>"
