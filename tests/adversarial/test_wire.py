"""The wire at its worst: every answer is a right response or a typed ``LLMError``.

Each attack is a raw-socket answer no well-behaved server gives: stalls,
one byte at a time, a ``Content-Length`` that lies either way, chunked
bodies cut mid-chunk, gzip bombs, HTML error pages, bad status lines,
deep JSON, huge headers. After each, the client still answers a good
request on the same connection pool, and closing it leaves no connection
open on the server.
"""

from __future__ import annotations

import json
import pickle
import tracemalloc
from collections.abc import Awaitable, Callable

import anyio
import pytest

from aio_llm import APIError, APITimeoutError, LLMError, ServerError

from .conftest import client_for
from .rawserver import Conn, RawServer, Seen, answer, gzip_bomb, json_answer, sse_events

Handler = Callable[[Seen, Conn], Awaitable[None]]


async def stall_after_headers(req: Seen, conn: Conn) -> None:
    await conn.head(200, {"Content-Type": "application/json", "Content-Length": "100"})
    await conn.until_closed()


async def stall_before_anything(req: Seen, conn: Conn) -> None:
    await conn.until_closed()


async def slowloris(req: Seen, conn: Conn) -> None:
    """One byte every 20 ms: each read is quick, the whole never ends in time."""
    body = json_answer(req, "x" * 5000)
    await conn.head(200, {"Content-Type": "application/json", "Content-Length": str(len(body))})
    for i in range(len(body)):
        await conn.write(body[i : i + 1])
        await anyio.sleep(0.02)


async def length_too_long(req: Seen, conn: Conn) -> None:
    body = json_answer(req, "short")
    await conn.head(
        200, {"Content-Type": "application/json", "Content-Length": str(len(body) + 50)}
    )
    await conn.write(body)
    conn.close()


async def length_too_short(req: Seen, conn: Conn) -> None:
    # the bytes after Content-Length would be read as the next response on a reused connection
    body = json_answer(req, "short")
    trailer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    await conn.head(200, {"Content-Type": "application/json", "Content-Length": str(len(body))})
    await conn.write(body + trailer)


async def chunked_cut_mid_chunk(req: Seen, conn: Conn) -> None:
    body = json_answer(req, "a" * 200) if not req.wants_stream else b"".join(sse_events(req, ["a"]))
    await conn.head(200, {"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
    await conn.write(b"%x\r\n" % len(body) + body[: len(body) // 2])
    conn.close()


async def chunked_without_end(req: Seen, conn: Conn) -> None:
    events = sse_events(req, ["partial"])[:-1]
    await conn.chunked(200, events, end=False)
    conn.close()


async def chunked_bad_size(req: Seen, conn: Conn) -> None:
    await conn.head(200, {"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
    await conn.write(b"zz\r\n{}\r\n0\r\n\r\n")
    conn.close()


async def html_error_page(req: Seen, conn: Conn) -> None:
    page = "<html><head><title>502 Bad Gateway</title></head><body>" + "x" * 100_000 + "</body>"
    await conn.full(502, page, content_type="text/html")


async def html_200(req: Seen, conn: Conn) -> None:
    await conn.full(200, "<html><body>Login required</body></html>", content_type="text/html")


async def bad_status_line(req: Seen, conn: Conn) -> None:
    await conn.write(b"HTTP/1.1 9999 What\r\nContent-Length: 0\r\n\r\n")
    conn.close()


async def not_http(req: Seen, conn: Conn) -> None:
    await conn.write(b"SSH-2.0-OpenSSH_9.6\r\n")
    conn.close()


async def huge_header(req: Seen, conn: Conn) -> None:
    await conn.head(200, {"X-Huge": "a" * 200_000, "Content-Length": "2"})
    await conn.write(b"{}")


async def deep_json(req: Seen, conn: Conn) -> None:
    await conn.full(200, b"[" * 200_000 + b"]" * 200_000)


async def not_utf8(req: Seen, conn: Conn) -> None:
    await conn.full(200, b'{"choices": [{"message": {"content": "\xff\xfe"}}]}')


async def empty_200(req: Seen, conn: Conn) -> None:
    await conn.full(200, b"")


async def no_content(req: Seen, conn: Conn) -> None:
    await conn.head(204, {})


async def reset_mid_body(req: Seen, conn: Conn) -> None:
    body = json_answer(req, "a" * 2000)
    await conn.head(200, {"Content-Type": "application/json", "Content-Length": str(len(body))})
    await conn.write(body[:100])
    conn.reset()


async def wrong_content_type_stream(req: Seen, conn: Conn) -> None:
    await conn.full(200, json_answer(req, "not a stream"))  # JSON where SSE was asked


async def gzip_lie(req: Seen, conn: Conn) -> None:
    await conn.full(200, b"this is not gzip at all", {"Content-Encoding": "gzip"})


async def unknown_encoding(req: Seen, conn: Conn) -> None:
    await conn.full(200, b"\x00\x01\x02", {"Content-Encoding": "x-snappy"})


async def interim_100(req: Seen, conn: Conn) -> None:
    await conn.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    await answer(req, conn, "after continue")


ATTACKS: dict[str, tuple[Handler, type[BaseException] | None]] = {
    "stall-after-headers": (stall_after_headers, APITimeoutError),
    "stall-before-anything": (stall_before_anything, APITimeoutError),
    "slowloris": (slowloris, APITimeoutError),
    "content-length-too-long": (length_too_long, APIError),
    "content-length-too-short": (length_too_short, None),
    "chunked-cut-mid-chunk": (chunked_cut_mid_chunk, APIError),
    "chunked-without-end": (chunked_without_end, APIError),
    "chunked-bad-size": (chunked_bad_size, APIError),
    "html-error-page": (html_error_page, ServerError),
    "html-200": (html_200, APIError),
    "bad-status-line": (bad_status_line, APIError),
    "not-http": (not_http, APIError),
    "huge-header": (huge_header, APIError),
    "deep-json": (deep_json, APIError),
    "not-utf8": (not_utf8, None),
    "empty-200": (empty_200, APIError),
    "204-no-content": (no_content, APIError),
    "reset-mid-body": (reset_mid_body, APIError),
    "json-where-a-stream-was-asked": (wrong_content_type_stream, None),
    "gzip-that-is-not": (gzip_lie, APIError),
    "unknown-content-encoding": (unknown_encoding, None),
    "100-continue-first": (interim_100, None),
}
TIMEOUT = 1.0


@pytest.mark.anyio
@pytest.mark.parametrize("attack", sorted(ATTACKS))
@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
async def test_every_attack_ends_in_an_answer_or_a_typed_error(
    transport: str, attack: str, stream: bool
) -> None:
    handler, expected = ATTACKS[attack]
    calls = {"n": 0}

    async def first_attacked_then_good(req: Seen, conn: Conn) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            await handler(req, conn)
        else:
            await answer(req, conn, "good")

    async with RawServer(first_attacked_then_good) as srv:
        async with client_for("openai", srv, transport, timeout=TIMEOUT) as client:
            messages = [{"role": "user", "content": "hi"}]
            outcome: object
            try:
                if stream:
                    async with client.stream(messages) as s:
                        outcome = await s.text()
                else:
                    outcome = (await client.chat(messages)).content
            except LLMError as exc:
                outcome = exc
            if expected is None:
                assert not isinstance(outcome, BaseException) or isinstance(outcome, APIError)
            else:
                assert isinstance(outcome, expected), repr(outcome)
            if isinstance(outcome, APIError):
                assert len(str(outcome)) < 1500  # an HTML page is quoted, not dumped
            # the pool is still good: a bad connection was not reused
            again: str | APIError
            try:
                again = (await client.chat([{"role": "user", "content": "again"}])).content
            except APIError as exc:
                again = exc
            if transport == "httpx" and attack == "content-length-too-short":
                # httpcore keeps the bytes past Content-Length and reads them as the next
                # answer (the server's own bytes; docs/reliability.md): a typed error here
                assert again == "good" or isinstance(again, APIError)
            else:
                assert again == "good", again
        await srv.wait_idle()


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
async def test_a_gzip_bomb_is_refused_within_bounded_memory(transport: str, stream: bool) -> None:
    # 256 MiB of zeros in 256 KiB: one 64 KiB read inflates to 64 MiB if decoded whole
    bomb = gzip_bomb(1 << 28)

    async def handler(req: Seen, conn: Conn) -> None:
        parts = [bomb[i : i + 65536] for i in range(0, len(bomb), 65536)]
        await conn.chunked(200, parts, {"Content-Encoding": "gzip"})

    async with RawServer(handler) as srv:
        limit = 1 << 20
        async with client_for("openai", srv, transport, max_response_bytes=limit) as client:
            tracemalloc.start()
            try:
                with pytest.raises(APIError, match="exceeds"):
                    if stream:
                        async with client.stream([{"role": "user", "content": "x"}]) as s:
                            await s.text()
                    else:
                        await client.chat([{"role": "user", "content": "x"}])
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
    assert peak < 8 * limit, f"peak {peak / 2**20:.1f} MiB for a {limit >> 20} MiB limit"


@pytest.mark.anyio
async def test_an_endless_sse_line_is_cut_within_bounded_memory(transport: str) -> None:
    """No newline ever: the decoder refuses the event long before the 64 MiB body limit."""

    async def handler(req: Seen, conn: Conn) -> None:
        await conn.head(200, {"Content-Type": "text/event-stream", "Transfer-Encoding": "chunked"})
        await conn.write(b'8\r\ndata: {"\r\n')
        piece = b"a" * 4096
        for _ in range(8192):  # 32 MiB, 4 KiB at a time: joining per read would be quadratic
            if conn.closed:
                return
            await conn.write(b"%x\r\n%s\r\n" % (len(piece), piece))

    async with RawServer(handler) as srv:
        async with client_for("openai", srv, transport) as client:
            tracemalloc.start()
            try:
                with pytest.raises(APIError, match="exceeds"):
                    async with client.stream([{"role": "user", "content": "x"}]) as s:
                        await s.text()
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
    assert peak < 40 * 2**20, f"peak {peak / 2**20:.1f} MiB"


@pytest.mark.anyio
async def test_error_bodies_are_quoted_briefly(transport: str) -> None:
    async def handler(req: Seen, conn: Conn) -> None:
        message = "m" * 1_000_000
        await conn.full(400, json.dumps({"error": {"message": message}}).encode())

    async with RawServer(handler) as srv:
        async with client_for("openai", srv, transport) as client:
            with pytest.raises(APIError) as info:
                await client.chat([{"role": "user", "content": "x"}])
    assert len(str(info.value)) < 1500
    copy = pickle.loads(pickle.dumps(info.value))  # a worker process's error comes back whole
    assert (type(copy), copy.message) == (type(info.value), info.value.message)
