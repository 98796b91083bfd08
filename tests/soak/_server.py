"""The soak's server: the adversarial raw-socket server with every kind of fault.

Run as a child process (``python -m tests.soak._server``) so that its memory
and CPU stay out of the client's figures. It answers ``Echo: <prompt>`` (JSON
or SSE, OpenAI wire format); ``FAULT_RATE`` of the requests instead meet a
fault drawn evenly from ``FAULTS`` by a seeded ``random.Random``. A second
server, "elsewhere", is the target of the cross-origin redirects: it must
never see a request (``SOAK_FAULT_RATE`` overrides the 5%, e.g. 0 for a
baseline). The parent reads one line ``READY <url>``, asks for
statistics by writing ``stats`` (one JSON line comes back) and stops the
child by closing its stdin.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
from collections import Counter
from collections.abc import Awaitable, Callable

from tests.adversarial.rawserver import Conn, RawServer, Seen, answer, gzip_bomb, json_answer
from tests.adversarial.rawserver import sse_events as _sse_events

FAULT_RATE = float(os.environ.get("SOAK_FAULT_RATE", "0.05"))
BOM = b"\xef\xbb\xbf"


def _echo(req: Seen) -> str:
    return f"Echo: {req.prompt}"


async def _status(conn: Conn, status: int, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"error": {"message": f"injected {status}", "type": "server_error"}})
    await conn.full(status, body, headers)


def _faults(elsewhere: str) -> dict[str, Callable[[Seen, Conn], Awaitable[None]]]:
    async def rate_limited(req: Seen, conn: Conn) -> None:
        await _status(conn, 429, {"Retry-After": "0"})

    async def absurd_retry_after(req: Seen, conn: Conn) -> None:
        await _status(conn, 429, {"Retry-After": "1000000000", "retry-after-ms": "inf"})

    async def server_500(req: Seen, conn: Conn) -> None:
        await _status(conn, 500)

    async def server_503(req: Seen, conn: Conn) -> None:
        await _status(conn, 503)

    async def html_502(req: Seen, conn: Conn) -> None:
        await conn.full(
            502,
            "<html><body>" + "Bad gateway. " * 500 + "</body></html>",
            None,
            content_type="text/html",
        )

    async def reset(req: Seen, conn: Conn) -> None:
        conn.reset()

    async def slow(req: Seen, conn: Conn) -> None:
        await asyncio.sleep(0.2)
        await answer(req, conn, _echo(req))

    async def beyond_deadline(req: Seen, conn: Conn) -> None:
        await asyncio.sleep(5.0)
        await answer(req, conn, _echo(req))

    async def stall_after_headers(req: Seen, conn: Conn) -> None:
        await conn.head(200, {"Content-Type": "application/json", "Content-Length": "4096"})
        await conn.until_closed()

    async def slowloris(req: Seen, conn: Conn) -> None:
        body = json_answer(req, _echo(req))
        await conn.head(200, {"Content-Type": "application/json", "Content-Length": str(len(body))})
        for i in range(len(body)):
            await conn.write(body[i : i + 1])
            await asyncio.sleep(0.05)

    async def cut_body(req: Seen, conn: Conn) -> None:
        body = json_answer(req, _echo(req))
        await conn.head(200, {"Content-Type": "application/json", "Content-Length": str(len(body))})
        await conn.write(body[: len(body) // 2])
        conn.close()

    async def content_length_lie(req: Seen, conn: Conn) -> None:
        body = json_answer(req, _echo(req))
        await conn.head(
            200, {"Content-Type": "application/json", "Content-Length": str(len(body) + 100)}
        )
        await conn.write(body)
        conn.close()

    async def cut_chunked(req: Seen, conn: Conn) -> None:
        data = (
            b"".join(_sse_events(req, [_echo(req)]))
            if req.wants_stream
            else json_answer(req, _echo(req))
        )
        await conn.head(200, {"Content-Type": "text/event-stream", "Transfer-Encoding": "chunked"})
        await conn.write(b"%x\r\n" % len(data) + data[: len(data) // 2])
        conn.close()

    async def stream_without_end(req: Seen, conn: Conn) -> None:
        if not req.wants_stream:
            return await cut_body(req, conn)
        await conn.chunked(200, _sse_events(req, [_echo(req)])[:-2])

    async def inband_error(req: Seen, conn: Conn) -> None:
        key = req.headers.get("authorization", "")
        if not req.wants_stream:
            body = {"error": {"message": f"upstream rejected {key}", "code": 502}}
            return await conn.full(200, json.dumps(body))
        events = _sse_events(req, ["Echo"])[:1]
        err = {"error": {"message": f"upstream rejected {key}", "code": 502}}
        events.append(b"data: " + json.dumps(err).encode() + b"\n\n")
        await conn.chunked(200, events)

    async def malformed(req: Seen, conn: Conn) -> None:
        if req.wants_stream:
            return await conn.chunked(200, [b"data: {not json\n\n"])
        await conn.full(200, b'{"choices": [{"message": ')

    async def echo_key_401(req: Seen, conn: Conn) -> None:
        key = req.headers.get("authorization", "").removeprefix("Bearer ")
        body = {"error": {"message": f"Incorrect API key provided: {key}", "type": "auth"}}
        await conn.full(401, json.dumps(body))

    async def redirect_elsewhere(req: Seen, conn: Conn) -> None:
        await conn.full(307, b"", {"Location": elsewhere + req.path})

    async def redirect_same_origin(req: Seen, conn: Conn) -> None:
        await conn.full(301, b"", {"Location": "/v2" + req.path})

    async def bom_stream(req: Seen, conn: Conn) -> None:  # a good answer, BOM first
        if not req.wants_stream:
            return await answer(req, conn, _echo(req))
        await conn.chunked(200, [BOM, *_sse_events(req, [_echo(req)], eol=b"\r\n")])

    async def gzip_bombed(req: Seen, conn: Conn) -> None:
        bomb = gzip_bomb(64 << 20)
        parts = [bomb[i : i + 16384] for i in range(0, len(bomb), 16384)]
        await conn.chunked(200, parts, {"Content-Encoding": "gzip"})

    async def not_http(req: Seen, conn: Conn) -> None:
        await conn.write(b"SSH-2.0-OpenSSH_9.6\r\n")
        conn.close()

    async def empty_200(req: Seen, conn: Conn) -> None:
        await conn.full(200, b"")

    return {
        f.__name__: f
        for f in (
            rate_limited,
            absurd_retry_after,
            server_500,
            server_503,
            html_502,
            reset,
            slow,
            beyond_deadline,
            stall_after_headers,
            slowloris,
            cut_body,
            content_length_lie,
            cut_chunked,
            stream_without_end,
            inband_error,
            malformed,
            echo_key_401,
            redirect_elsewhere,
            redirect_same_origin,
            bom_stream,
            gzip_bombed,
            not_http,
            empty_200,
        )
    }


async def serve() -> None:
    gzip_bomb(64 << 20)  # made now, not on the first bomb: it takes a second of CPU
    rng = random.Random(7)
    counts: Counter[str] = Counter()

    async def stray(req: Seen, conn: Conn) -> None:
        counts["elsewhere"] += 1  # must stay 0: no redirect is ever followed
        await answer(req, conn, "answer from another host")

    async with RawServer(stray) as other:
        faults = _faults(other.url)
        names = sorted(faults)

        async def handler(req: Seen, conn: Conn) -> None:
            counts["requests"] += 1
            if rng.random() < FAULT_RATE:
                name = rng.choice(names)
                counts["faults"] += 1
                counts["fault:" + name] += 1
                await faults[name](req, conn)
            else:
                await answer(req, conn, _echo(req))

        async with RawServer(handler, record=False) as srv:
            sys.stdout.write(f"READY {srv.url}\n")
            sys.stdout.flush()
            loop = asyncio.get_running_loop()
            reader = asyncio.StreamReader()
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
            while line := await reader.readline():
                if line.strip() == b"stats":
                    stats = dict(counts, kinds=len(names), connections=srv.connections)
                    sys.stdout.write(json.dumps(stats) + "\n")
                    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(serve())
