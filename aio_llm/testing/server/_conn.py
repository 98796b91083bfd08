"""One client connection of ``FakeLLMServer``: parsing, ordering and writing answers.

Requests on a connection are answered strictly in order (pipelined ones
wait in ``queue``). An answer is either written at once from
``data_received`` (the fast path: no task) or by a task the server starts
for delayed, hanging or paced answers; ``connection_lost`` cancels that task.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections import deque
from typing import Protocol

from ._http import HTTPError, ParsedRequest, RequestParser, chunk, response_head
from ._records import RecordedRequest

__all__ = ["Connection", "ConnectionHost", "Reply"]

_LAST_CHUNK = b"0\r\n\r\n"
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_LINGER_RST = struct.pack("ii", 1, 0)


class Reply:
    """An answer to write: a fixed ``body`` or a list of SSE ``events`` (sent chunked).

    ``cut`` stops short and closes the connection: half the body under the
    full ``Content-Length``, or the events without the final empty chunk.
    """

    __slots__ = ("body", "close", "cut", "events", "headers", "status")

    def __init__(
        self,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes = b"",
        events: list[bytes] | None = None,
        *,
        cut: bool = False,
        close: bool = False,
    ) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.events = events
        self.cut = cut
        self.close = close


Pending = tuple[ParsedRequest, "RecordedRequest | None"]


class ConnectionHost(Protocol):
    """What a ``Connection`` tells and asks its server (``FakeLLMServer`` is one)."""

    def _opened(self, conn: Connection) -> None: ...
    def _lost(self, conn: Connection, unanswered: int) -> None: ...
    def _dropped(self, count: int) -> None: ...
    def _answered(self) -> None: ...
    def _received(self, req: ParsedRequest) -> RecordedRequest | None: ...
    def _bad_request(self, conn: Connection, exc: HTTPError) -> None: ...
    def _serve(
        self, conn: Connection, req: ParsedRequest, record: RecordedRequest | None
    ) -> None: ...


class Connection(asyncio.Protocol):
    """The protocol instance for one accepted TCP connection."""

    __slots__ = ("busy", "closed", "drain", "parser", "queue", "server", "task", "transport")

    def __init__(self, server: ConnectionHost) -> None:
        self.server = server
        self.parser = RequestParser()
        self.queue: deque[Pending] = deque()
        self.busy = False  # an answer is being produced
        self.closed = False
        self.task: asyncio.Task[None] | None = None
        self.drain: asyncio.Future[None] | None = None
        self.transport: asyncio.Transport = None  # type: ignore[assignment]

    # -- asyncio callbacks ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server._opened(self)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            requests = self.parser.feed(data)
        except HTTPError as exc:
            self.server._bad_request(self, exc)
            return
        if self.parser.expect_continue:
            self.parser.expect_continue = False
            self.transport.write(_CONTINUE)
        if not requests:
            return
        server = self.server
        if len(requests) == 1 and not self.busy and not self.queue:
            req = requests[0]
            server._serve(self, req, server._received(req))
            return
        for req in requests:
            self.queue.append((req, server._received(req)))
        self.pump()

    def eof_received(self) -> bool:
        return False  # close at once: a half-closed client counts as gone

    def connection_lost(self, exc: Exception | None) -> None:
        unanswered = (1 if self.busy else 0) + len(self.queue)
        self.closed = True
        self.busy = False
        self.queue.clear()
        if self.task is not None:
            self.task.cancel()
            self.task = None
        if self.drain is not None and not self.drain.done():
            self.drain.cancel()
        self.server._lost(self, unanswered)

    def pause_writing(self) -> None:
        if self.drain is None or self.drain.done():
            self.drain = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self.drain is not None and not self.drain.done():
            self.drain.set_result(None)
        self.drain = None

    # -- answering --------------------------------------------------------------

    def pump(self) -> None:
        """Serve queued (pipelined) requests while the connection is free."""
        while self.queue and not self.busy and not self.closed:
            req, record = self.queue.popleft()
            self.server._serve(self, req, record)

    def send(self, reply: Reply, keep_alive: bool) -> None:
        """Write a whole answer at once and finish the request."""
        close = reply.close or reply.cut or not keep_alive
        events = reply.events
        if events is None:
            body = reply.body
            head = response_head(reply.status, reply.headers, length=len(body), close=close)
            self.transport.write(head + (body[: len(body) // 2] if reply.cut else body))
        else:
            parts = [response_head(reply.status, reply.headers, length=None, close=close)]
            parts.extend(map(chunk, events))
            if not reply.cut:
                parts.append(_LAST_CHUNK)
            self.transport.write(b"".join(parts))
        self.finish(close)

    async def send_paced(self, reply: Reply, keep_alive: bool, delay: float) -> None:
        """Write an event stream one chunk at a time, ``delay`` seconds apart."""
        events = reply.events
        if events is None or delay <= 0:
            self.send(reply, keep_alive)
            return
        close = reply.cut or reply.close or not keep_alive
        self.transport.write(response_head(reply.status, reply.headers, length=None, close=close))
        for i, event in enumerate(events):
            if i:
                await asyncio.sleep(delay)
            if self.closed:
                return
            self.transport.write(chunk(event))
            if self.drain is not None:
                await self.drain
        if not reply.cut:
            self.transport.write(_LAST_CHUNK)
        self.finish(close)

    def finish(self, close: bool) -> None:
        """The current answer is complete; close the connection if asked to."""
        self.busy = False
        self.server._answered()
        if close:
            self.close_by_server(abort=False)

    def close_by_server(self, *, abort: bool, rst: bool = False) -> None:
        """Close on the server's initiative; what is left unanswered is not a disconnect."""
        if self.closed:
            return
        dropped = (1 if self.busy else 0) + len(self.queue)
        self.closed = True
        self.busy = False
        self.queue.clear()
        if dropped:
            self.server._dropped(dropped)
        if rst:
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
                except OSError:  # pragma: no cover - platform without SO_LINGER
                    pass
        if abort:
            self.transport.abort()
        else:
            self.transport.close()
