"""The default HTTP transport, on aiohttp: the lowest CPU cost per request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

import aiohttp
import anyio
from yarl import URL

from ..errors import APIConnectionError, APIResponseError, APITimeoutError, InvalidRequestError
from ._connect import connect_error
from .base import DEFAULT_MAX_BODY_SIZE, call_deadline

__all__ = ["AiohttpTransport"]


def _too_large(limit: int) -> APIResponseError:
    return APIResponseError(f"response body exceeds the limit of {limit} bytes")


class _AiohttpStream:
    __slots__ = ("_limit", "_resp", "headers", "status")

    def __init__(self, resp: aiohttp.ClientResponse, limit: int) -> None:
        self._resp = resp
        self._limit = limit
        self.status = resp.status
        self.headers: Mapping[str, str] = resp.headers

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        seen = 0
        try:
            async for chunk in self._resp.content.iter_any():
                seen += len(chunk)
                if seen > self._limit:
                    raise _too_large(self._limit)
                yield chunk
        except TimeoutError as exc:
            raise APITimeoutError("timed out reading the response") from exc
        except aiohttp.ClientError as exc:
            raise APIConnectionError(
                f"connection lost while reading: {type(exc).__name__}"
            ) from exc

    async def aread(self) -> bytes:
        parts = [chunk async for chunk in self.aiter_bytes()]
        return b"".join(parts)

    async def aclose(self) -> None:
        resp = self._resp
        if resp.content.at_eof():
            resp.release()
        else:
            resp.close()


class AiohttpTransport:
    """HTTP over an ``aiohttp.ClientSession`` (owned, or the caller's).

    The owned session's pool holds ``max_connections`` connections so a
    fan-out is not throttled by the pool; ``read_timeout`` bounds the wait for
    each read (the request's own deadline is enforced above the transport,
    and a call whose deadline comes first needs no read timer at all).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession | None = None,
        *,
        max_connections: int = 512,
        connect_timeout: float = 10.0,
        read_timeout: float | None = 600.0,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    ) -> None:
        self._owned = session is None
        self._session = session
        self._max_connections = max_connections
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=read_timeout
        )
        # for calls whose deadline comes before any read timeout could fire: aiohttp
        # re-arms the read timer on every read (~5 µs a request); the deadline covers it
        self._read_timeout = read_timeout
        self._connect_only = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout)
        self._max_body_size = max_body_size
        self._urls: dict[str, URL] = {}

    def _get_session(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, limit_per_host=0, ttl_dns_cache=300
            )
            session = self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, auto_decompress=True
            )
        return session

    def _url(self, url: str) -> URL:
        u = self._urls.get(url)
        if u is None:
            # a codec's URL is already percent-encoded (Bedrock's "%3A" in a model id):
            # sent as given, since yarl would decode it and the SigV4 signature would
            # no longer match; only a URL with raw spaces or non-ASCII is encoded here
            u = URL(url, encoded=url.isascii() and " " not in url)
            if len(self._urls) < 256:
                self._urls[url] = u
        return u

    def _timeout_for_call(self) -> aiohttp.ClientTimeout:
        """No read timer when a deadline around the call comes before it could fire."""
        read = self._read_timeout
        if read is None:
            return self._connect_only
        # anyio's deadlines are on the loop's clock (asyncio: loop.time())
        deadline = call_deadline.get()
        if deadline is None:
            deadline = anyio.current_effective_deadline()
        if deadline - asyncio.get_running_loop().time() <= read:
            return self._connect_only
        return self._timeout

    async def _send(
        self, method: str, url: str, headers: Mapping[str, str], content: bytes
    ) -> aiohttp.ClientResponse:
        try:
            return await self._get_session().request(
                method,
                self._url(url),
                data=content,
                headers=headers,
                timeout=self._timeout_for_call(),
                # a redirect would carry the key and the prompt to the Location: the
                # provider raises RedirectError for the 3xx instead
                allow_redirects=False,
            )
        except TimeoutError as exc:
            raise APITimeoutError("timed out connecting or waiting for the response") from exc
        except aiohttp.ClientConnectorError as exc:
            raise connect_error(url, exc) from None  # its text repeats the address: say it once
        except aiohttp.ClientError as exc:
            raise APIConnectionError(f"connection failed: {type(exc).__name__}: {exc}") from exc
        except ValueError:  # an illegal header value or URL; its text may quote a header
            raise InvalidRequestError(
                "the request could not be sent: a header or the URL is not valid HTTP"
            ) from None

    async def request(
        self, method: str, url: str, headers: Mapping[str, str], content: bytes
    ) -> tuple[int, Mapping[str, str], bytes]:
        resp = await self._send(method, url, headers, content)
        limit = self._max_body_size
        try:
            length = resp.content_length
            if length is not None and length > limit:
                raise _too_large(limit)
            if length is None or "Content-Encoding" in resp.headers:
                # unknown or compressed length: count the decoded bytes as they come
                body = await _AiohttpStream(resp, limit).aread()
            else:
                body = await resp.read()
        except TimeoutError as exc:
            resp.close()
            raise APITimeoutError("timed out reading the response") from exc
        except aiohttp.ClientError as exc:
            resp.close()
            raise APIConnectionError(
                f"connection lost while reading: {type(exc).__name__}"
            ) from exc
        except BaseException:
            resp.close()
            raise
        resp.release()
        return resp.status, resp.headers, body

    async def stream(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        content: bytes,
        *,
        max_body_size: int | None = None,
    ) -> _AiohttpStream:
        resp = await self._send(method, url, headers, content)
        limit = self._max_body_size if max_body_size is None else max_body_size
        return _AiohttpStream(resp, limit)

    async def aclose(self) -> None:
        if self._owned and self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def __repr__(self) -> str:
        owner = "owned" if self._owned else "borrowed"
        return f"<AiohttpTransport {owner} max_connections={self._max_connections}>"
