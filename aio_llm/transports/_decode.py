"""Content-Encoding decoding whose output is bounded while it is produced.

httpx decodes a compressed body in one ``decompress`` call per network
read: a 64 KiB read of a gzip bomb becomes 64 MiB at once, before any
size limit can look at it. The httpx transport therefore reads the raw
bytes and decodes them here, at most ``step`` bytes per call, counting
every byte against the body limit, so memory stays near ``step`` whatever
the compression ratio. aiohttp bounds its own decompression; it needs none of this.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

from ..errors import APIResponseError

__all__ = ["ACCEPT_ENCODING", "BoundedDecoder"]

ACCEPT_ENCODING = "gzip, deflate"
"""What the httpx transport asks for: the encodings ``BoundedDecoder`` reads."""

_STEP = 256 * 1024


def _too_large(limit: int) -> APIResponseError:
    return APIResponseError(f"response body exceeds the limit of {limit} bytes")


class BoundedDecoder:
    """Decodes one body's ``Content-Encoding`` (identity, gzip, deflate) up to ``limit`` bytes."""

    __slots__ = ("_encoding", "_limit", "_seen", "_step", "_zlib")

    def __init__(self, encoding: str | None, limit: int, *, step: int = _STEP) -> None:
        name = (encoding or "identity").strip().lower()
        if name not in ("identity", "gzip", "x-gzip", "deflate"):
            raise APIResponseError(f"the response uses an unsupported Content-Encoding {name!r}")
        self._encoding = name
        self._limit = limit
        self._step = step
        self._seen = 0
        self._zlib: zlib._Decompress | None = None
        if name in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def decode(self, data: bytes) -> Iterator[bytes]:
        """The decoded bytes of ``data``, in pieces of at most ``step`` bytes."""
        if self._encoding == "identity":
            self._count(len(data))
            if data:
                yield data
            return
        if self._zlib is None:  # deflate: zlib-wrapped, or raw as some servers send it
            wrapped = (
                len(data) >= 2 and (data[0] & 0x0F) == 8 and int.from_bytes(data[:2]) % 31 == 0
            )
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        decomp = self._zlib
        pending = data
        while pending:
            try:
                out = decomp.decompress(pending, self._step)
            except zlib.error as exc:
                raise APIResponseError(f"the response body could not be decoded: {exc}") from None
            pending = decomp.unconsumed_tail
            self._count(len(out))
            if out:
                yield out
            if decomp.eof:
                return

    def flush(self) -> bytes:
        """What is left at the end of the body."""
        if self._zlib is None:
            return b""
        out = self._zlib.flush()
        self._count(len(out))
        return out

    def _count(self, n: int) -> None:
        self._seen += n
        if self._seen > self._limit:
            raise _too_large(self._limit)
