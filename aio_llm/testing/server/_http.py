"""A small incremental HTTP/1.1 request parser and response-head writer.

Only what a test server needs, done carefully: request line, headers,
``Content-Length`` and ``chunked`` request bodies, keep-alive and
``Connection: close``, several (also pipelined) requests per connection and
input split at any byte. Anything malformed raises ``HTTPError`` carrying the
status to answer with (400, 413, 431, 501, 505).
"""

from __future__ import annotations

import re
from http import HTTPStatus

__all__ = ["HTTPError", "ParsedRequest", "RequestParser", "chunk", "response_head"]

MAX_HEAD = 64 * 1024
"""Largest request line + header section accepted."""

MAX_BODY = 64 * 1024 * 1024
"""Largest request body accepted."""

_is_token = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+").fullmatch
_HEX = frozenset(b"0123456789abcdefABCDEF")
_REASONS = {s.value: s.phrase for s in HTTPStatus}
_REASONS[529] = "Site Overloaded"

# parser states
_HEAD, _BODY, _CHUNK_SIZE, _CHUNK_DATA, _TRAILER = range(5)


class HTTPError(Exception):
    """The request cannot be parsed; answer ``status`` and close the connection."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class ParsedRequest:
    """One complete request: method, target, lower-cased headers, body, keep-alive."""

    __slots__ = ("body", "headers", "keep_alive", "method", "target")

    def __init__(self, method: str, target: str, headers: dict[str, str], keep_alive: bool) -> None:
        self.method = method
        self.target = target
        self.headers = headers
        self.keep_alive = keep_alive
        self.body = b""


class RequestParser:
    """Feed bytes as they arrive; get back the requests they complete.

    ``expect_continue`` turns true when a request announced ``Expect:
    100-continue`` and its body has not arrived yet; the connection answers
    ``100 Continue`` and clears the flag.
    """

    __slots__ = ("_buf", "_chunks", "_current", "_need", "_state", "_total", "expect_continue")

    def __init__(self) -> None:
        self._buf = b""
        self._state = _HEAD
        self._current: ParsedRequest | None = None
        self._need = 0
        self._chunks: list[bytes] = []
        self._total = 0
        self.expect_continue = False

    def feed(self, data: bytes) -> list[ParsedRequest]:
        """Parse ``data``; return every request it completes (possibly none)."""
        buf = self._buf + data if self._buf else data
        done: list[ParsedRequest] = []
        pos = 0
        end = len(buf)
        while pos < end:
            state = self._state
            if state == _HEAD:
                while buf.startswith(b"\r\n", pos):  # tolerate stray CRLFs between requests
                    pos += 2
                if pos >= end:
                    break
                idx = buf.find(b"\r\n\r\n", pos)
                if idx < 0:
                    if end - pos > MAX_HEAD:
                        raise HTTPError(431, "request header section too large")
                    break
                if idx - pos > MAX_HEAD:
                    raise HTTPError(431, "request header section too large")
                req = self._start(buf[pos:idx])
                pos = idx + 4
                if self._state == _HEAD:
                    done.append(req)
                else:
                    self._current = req
            elif state == _BODY:
                take = min(self._need, end - pos)
                self._chunks.append(buf[pos : pos + take])
                pos += take
                self._need -= take
                if self._need == 0:
                    done.append(self._finish())
            elif state == _CHUNK_SIZE:
                idx = buf.find(b"\r\n", pos)
                if idx < 0:
                    if end - pos > 1024:
                        raise HTTPError(400, "chunk size line too long")
                    break
                line = buf[pos:idx].split(b";", 1)[0].strip()
                if not line or not _HEX.issuperset(line) or len(line) > 15:
                    raise HTTPError(400, "bad chunk size")
                size = int(line, 16)
                pos = idx + 2
                if size == 0:
                    self._state = _TRAILER
                else:
                    self._check_size(size)
                    self._need = size + 2
                    self._state = _CHUNK_DATA
            elif state == _CHUNK_DATA:
                if end - pos < self._need:
                    # keep the partial chunk buffered until its CRLF arrives
                    break
                data_end = pos + self._need - 2
                if buf[data_end : data_end + 2] != b"\r\n":
                    raise HTTPError(400, "chunk data not followed by CRLF")
                self._chunks.append(buf[pos:data_end])
                pos = data_end + 2
                self._state = _CHUNK_SIZE
            else:  # _TRAILER: header lines until an empty line
                idx = buf.find(b"\r\n", pos)
                if idx < 0:
                    if end - pos > MAX_HEAD:
                        raise HTTPError(431, "trailer section too large")
                    break
                empty = idx == pos
                pos = idx + 2
                if empty:
                    done.append(self._finish())
        self._buf = buf[pos:] if pos < end else b""
        return done

    def _check_size(self, size: int) -> None:
        self._total += size
        if self._total > MAX_BODY:
            raise HTTPError(413, "request body too large")

    def _finish(self) -> ParsedRequest:
        req = self._current
        assert req is not None
        chunks = self._chunks
        req.body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._chunks = []
        self._total = 0
        self._current = None
        self._state = _HEAD
        self.expect_continue = False
        return req

    def _start(self, head: bytes) -> ParsedRequest:
        try:
            text = head.decode("latin-1")
        except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes anything
            raise HTTPError(400, "undecodable request head") from exc
        lines = text.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            raise HTTPError(400, "malformed request line")
        method, target, version = parts
        if not _is_token(method):
            raise HTTPError(400, "malformed method")
        if not target or not (target[0] == "/" or target == "*" or "://" in target):
            raise HTTPError(400, "malformed request target")
        if version == "HTTP/1.1":
            keep_alive = True
        elif version == "HTTP/1.0":
            keep_alive = False
        elif version.startswith("HTTP/"):
            raise HTTPError(505, "HTTP version not supported")
        else:
            raise HTTPError(400, "malformed HTTP version")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not _is_token(name):
                raise HTTPError(400, "malformed header line")
            name = name.lower()
            value = value.strip(" \t")
            old = headers.get(name)
            headers[name] = value if old is None else f"{old}, {value}"
        conn = headers.get("connection")
        if conn is not None:
            tokens = {t.strip().lower() for t in conn.split(",")}
            if "close" in tokens:
                keep_alive = False
            elif "keep-alive" in tokens:
                keep_alive = True
        req = ParsedRequest(method, target, headers, keep_alive)
        te = headers.get("transfer-encoding")
        cl = headers.get("content-length")
        if te is not None:
            if cl is not None:
                raise HTTPError(400, "both Content-Length and Transfer-Encoding")
            if te.lower() != "chunked":
                raise HTTPError(501, "unsupported transfer coding")
            self._state = _CHUNK_SIZE
        elif cl is not None:
            if not cl.isdigit() or len(cl) > 15:
                raise HTTPError(400, "bad Content-Length")
            size = int(cl)
            if size > MAX_BODY:
                raise HTTPError(413, "request body too large")
            if size:
                self._need = size
                self._state = _BODY
        if self._state != _HEAD and headers.get("expect", "").lower() == "100-continue":
            self.expect_continue = True
        return req


def response_head(
    status: int,
    headers: list[tuple[str, str]],
    *,
    length: int | None,
    close: bool,
) -> bytes:
    """Status line and headers; ``length=None`` means a chunked body."""
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n"]
    for name, value in headers:
        lines.append(f"{name}: {value}\r\n")
    if length is None:
        lines.append("transfer-encoding: chunked\r\n")
    else:
        lines.append(f"content-length: {length}\r\n")
    if close:
        lines.append("connection: close\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (``data`` must not be empty)."""
    return b"%x\r\n%s\r\n" % (len(data), data)
