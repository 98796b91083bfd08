"""A raw asyncio socket HTTP/1.1 server, written to attack aio_llm.

It shares nothing with ``aio_llm.testing``: requests are parsed here from
bytes, and every answer is bytes that a test writes itself, so a test can
send what no well-behaved server would (a byte-order mark, a lying
``Content-Length``, a chunked body cut mid-chunk, a stall after the headers,
one byte every few milliseconds, a redirect to another host, a reset).

A test gives a handler ``async def handler(req: Seen, conn: Conn) -> None``
that writes the answer; after it returns the connection serves the next
request unless the handler closed or reset it. Every request is kept in
``server.requests``; ``server.open_connections`` counts live connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import socket
import struct
import threading
import zlib
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Conn",
    "RawServer",
    "Seen",
    "answer",
    "gzip_bomb",
    "json_answer",
    "serve_in_thread",
    "sse_events",
]

REASONS = {
    200: "OK",
    204: "No Content",
    301: "Moved Permanently",
    302: "Found",
    303: "See Other",
    307: "Temporary Redirect",
    308: "Permanent Redirect",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    529: "Overloaded",
}


@dataclass
class Seen:
    """One request as it arrived."""

    method: str
    path: str
    headers: dict[str, str]
    """Lower-cased names."""
    body: bytes
    raw: bytes = b""
    """The request line and headers exactly as sent."""

    def json(self) -> Any:
        """The body as JSON (``{}`` when there is none)."""
        return json.loads(self.body) if self.body else {}

    @property
    def wants_stream(self) -> bool:
        try:
            return bool(self.json().get("stream"))
        except ValueError:
            return False

    @property
    def prompt(self) -> str:
        """The text of the last message (OpenAI or Anthropic shape)."""
        try:
            messages = self.json().get("messages") or []
        except ValueError:
            return ""
        if not messages:
            return ""
        content = messages[-1].get("content")
        if isinstance(content, list):
            return "".join(p.get("text", "") for p in content if isinstance(p, dict))
        return str(content)


class Conn:
    """The client's connection, from a handler's side."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self.closed = False

    async def until_closed(self) -> None:
        """Stall: send nothing more until the client closes the connection."""
        while await self._reader.read(65536):
            pass

    async def write(self, data: bytes) -> None:
        if self.closed:
            return
        self._writer.write(data)
        await self._writer.drain()

    async def head(
        self,
        status: int,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        *,
        reason: str | None = None,
    ) -> None:
        """The status line and headers (and the blank line after them)."""
        items = headers.items() if isinstance(headers, Mapping) else headers
        lines = [f"HTTP/1.1 {status} {reason or REASONS.get(status, 'Status')}"]
        lines += [f"{k}: {v}" for k, v in items]
        await self.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    async def full(
        self,
        status: int,
        body: bytes | str,
        headers: Mapping[str, str] | None = None,
        *,
        content_type: str = "application/json",
    ) -> None:
        """A whole answer with a true ``Content-Length``."""
        data = body.encode() if isinstance(body, str) else body
        hdrs = {"Content-Type": content_type, "Content-Length": str(len(data))}
        hdrs.update(headers or {})
        await self.head(status, hdrs)
        await self.write(data)

    async def chunked(
        self,
        status: int,
        parts: Iterable[bytes],
        headers: Mapping[str, str] | None = None,
        *,
        content_type: str = "text/event-stream",
        end: bool = True,
        pause: float = 0.0,
    ) -> None:
        """A chunked answer, one HTTP chunk per part; ``end=False`` leaves it unfinished."""
        hdrs = {"Content-Type": content_type, "Transfer-Encoding": "chunked"}
        hdrs.update(headers or {})
        await self.head(status, hdrs)
        for part in parts:
            if part:
                await self.write(b"%x\r\n%s\r\n" % (len(part), part))
            if pause:
                await asyncio.sleep(pause)
        if end:
            await self.write(b"0\r\n\r\n")

    def close(self) -> None:
        """Close the connection after what was written (a clean FIN)."""
        if not self.closed:
            self.closed = True
            self._writer.close()

    def reset(self) -> None:
        """Abort the connection with a TCP RST."""
        if not self.closed:
            self.closed = True
            sock = self._writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):  # already closed by the client
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self._writer.transport.abort()


Handler = Callable[[Seen, Conn], Awaitable[None]]


@dataclass
class RawServer:
    """``async with RawServer(handler) as srv: srv.url``: one loopback port, any handler."""

    handler: Handler
    record: bool = True
    """Keep every request in ``requests`` (off for long runs)."""
    requests: list[Seen] = field(default_factory=list)
    connections: int = 0
    """Connections accepted so far."""
    open_connections: int = 0
    _server: asyncio.Server | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (the origin)."""
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        await self._server.wait_closed()

    async def wait_idle(self, timeout: float = 5.0) -> None:
        """Wait until the client has closed every connection (fails after ``timeout``)."""
        async with asyncio.timeout(timeout):
            while self.open_connections:
                self._changed.clear()
                await self._changed.wait()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        self.open_connections += 1
        conn = Conn(reader, writer)
        try:
            while not conn.closed:
                seen = await _read_request(reader)
                if seen is None:
                    break
                if self.record:
                    self.requests.append(seen)
                await self.handler(seen, conn)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:  # the server is closing: end the connection quietly
            conn.reset()
        finally:
            self._tasks.discard(task)
            if not conn.closed:
                conn.close()
            self.open_connections -= 1
            self._changed.set()


@contextlib.contextmanager
def serve_in_thread(handler: Handler) -> Iterator[RawServer]:
    """A ``RawServer`` on an event loop of its own thread (for blocking clients)."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, Any] = {}

    async def main() -> None:
        async with RawServer(handler) as server:
            holder["server"], holder["stop"] = server, asyncio.Event()
            started.set()
            await holder["stop"].wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("the threaded raw server did not start")
    try:
        yield holder["server"]
    finally:
        loop.call_soon_threadsafe(holder["stop"].set)
        thread.join(10)
        loop.close()


async def _read_request(reader: asyncio.StreamReader) -> Seen | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    body = await reader.readexactly(length) if length else b""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = await _read_chunked(reader)
    return Seen(method, path, headers, body, head)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    out = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return bytes(out)
        out += await reader.readexactly(size)
        await reader.readexactly(2)


# -- answers in the providers' wire formats ------------------------------------------


def json_answer(req: Seen, text: str, *, input_tokens: int = 5, output_tokens: int = 2) -> bytes:
    """A complete chat answer in the dialect of ``req`` (Anthropic or OpenAI)."""
    if req.path.endswith("/messages"):
        body: dict[str, Any] = {
            "id": "msg_raw",
            "type": "message",
            "role": "assistant",
            "model": req.json().get("model", "m"),
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        }
    else:
        body = {
            "id": "chatcmpl-raw",
            "object": "chat.completion",
            "model": req.json().get("model", "m"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": input_tokens,
                "completion_tokens": output_tokens,
                "total_tokens": input_tokens + output_tokens,
            },
        }
    return json.dumps(body).encode()


def sse_events(
    req: Seen,
    pieces: Iterable[str],
    *,
    input_tokens: int = 5,
    output_tokens: int = 2,
    eol: bytes = b"\n",
) -> list[bytes]:
    """One SSE event per text piece, then usage and the end marker, in ``req``'s dialect."""
    pieces = list(pieces)
    model = req.json().get("model", "m")
    events: list[Any] = []
    if req.path.endswith("/messages"):
        events.append(
            (
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": "msg_raw",
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [],
                        "usage": {"input_tokens": input_tokens, "output_tokens": 0},
                    },
                },
            )
        )
        events.append(
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            )
        )
        for piece in pieces:
            events.append(
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": piece},
                    },
                )
            )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
        events.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn"},
                    "usage": {"output_tokens": output_tokens},
                },
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
        return [
            b"event: " + name.encode() + eol + b"data: " + json.dumps(data).encode() + eol + eol
            for name, data in events
        ]
    out = []
    for piece in pieces:
        chunk = {
            "id": "chatcmpl-raw",
            "object": "chat.completion.chunk",
            "model": model,
            "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
        }
        out.append(b"data: " + json.dumps(chunk).encode() + eol + eol)
    final = {
        "id": "chatcmpl-raw",
        "object": "chat.completion.chunk",
        "model": model,
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
    }
    usage = {
        "id": "chatcmpl-raw",
        "object": "chat.completion.chunk",
        "model": model,
        "choices": [],
        "usage": {
            "prompt_tokens": input_tokens,
            "completion_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
        },
    }
    out.append(b"data: " + json.dumps(final).encode() + eol + eol)
    out.append(b"data: " + json.dumps(usage).encode() + eol + eol)
    out.append(b"data: [DONE]" + eol + eol)
    return out


async def answer(
    req: Seen, conn: Conn, text: str, *, input_tokens: int = 5, output_tokens: int = 2
) -> None:
    """A good answer to ``req``: JSON, or SSE when it asked for a stream."""
    if req.wants_stream:
        pieces = [text[i : i + 4] for i in range(0, len(text), 4)] or [""]
        events = sse_events(req, pieces, input_tokens=input_tokens, output_tokens=output_tokens)
        await conn.chunked(200, events)
    else:
        body = json_answer(req, text, input_tokens=input_tokens, output_tokens=output_tokens)
        await conn.full(200, body)


@functools.cache
def gzip_bomb(inflated: int) -> bytes:
    """A gzip body of ``inflated`` zero bytes (about 1 KiB per MiB; made once per size)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"\0" * (1 << 20)
    out = [comp.compress(block) for _ in range(inflated >> 20)]
    out.append(comp.compress(b"\0" * (inflated & ((1 << 20) - 1))))
    out.append(comp.flush())
    return b"".join(out)
