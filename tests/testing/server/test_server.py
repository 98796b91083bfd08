"""FakeLLMServer over real loopback HTTP: wire formats, HTTP/1.1 handling, faults, bookkeeping."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import socket
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anyio
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aio_llm.testing import (
    DEFAULT_RANDOM_FAULTS,
    FakeClock,
    FakeLLMServer,
    Fault,
    RecordedRequest,
    ServerStatistics,
)
from aio_llm.testing.server._http import HTTPError, RequestParser
from aio_llm.transports.sse import SSEDecoder, SSEEvent
from tests.conftest import load_fixture

pytestmark = pytest.mark.anyio

USER = [{"role": "user", "content": "What is the capital of France?"}]
CHAT = {"model": "gpt-4o-mini", "messages": USER}
MSG = {"model": "claude-sonnet-4", "max_tokens": 100, "messages": USER}
TOOLS_OPENAI = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                "required": ["city", "days"],
            },
        },
    }
]
TOOLS_ANTHROPIC = [
    {
        "name": "get_weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]
RESET_ERRORS = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)


@pytest.fixture
async def srv() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer() as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def post(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any], **kw: Any
) -> tuple[int, Any, bytes]:
    async with session.post(url, json=body, **kw) as resp:
        return resp.status, resp.headers, await resp.read()


def sse(raw: bytes) -> list[SSEEvent]:
    decoder = SSEDecoder()
    return decoder.feed(raw) + decoder.flush()


def openai_chunks(events: list[SSEEvent]) -> list[dict[str, Any]]:
    return [json.loads(e.data) for e in events if e.data != "[DONE]"]


# -- wire formats ------------------------------------------------------------------


async def test_openai_json(srv: FakeLLMServer, session: aiohttp.ClientSession) -> None:
    status, headers, raw = await post(session, f"{srv.openai_url}/chat/completions", CHAT)
    body = json.loads(raw)
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert headers["x-request-id"].startswith("req_")
    assert body["object"] == "chat.completion"
    assert body["model"] == "gpt-4o-mini"
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Echo: What is the capital of France?",
        "refusal": None,
    }
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["prompt_tokens"] == 6
    assert body["usage"]["completion_tokens"] == 7
    assert body["usage"]["total_tokens"] == 13
    _, _, raw2 = await post(session, f"{srv.openai_url}/chat/completions", CHAT)
    assert json.loads(raw2)["id"] != body["id"]


@pytest.mark.parametrize("path", ["/chat/completions", "/api/v1/chat/completions"])
async def test_openai_route_aliases(
    srv: FakeLLMServer, session: aiohttp.ClientSession, path: str
) -> None:
    status, _, raw = await post(session, srv.url + path, CHAT)
    assert status == 200
    assert json.loads(raw)["object"] == "chat.completion"
    assert srv.last_request.path == path


async def test_reply_string_and_callable(session: aiohttp.ClientSession) -> None:
    async with FakeLLMServer(reply="Paris.") as srv:
        _, _, raw = await post(session, f"{srv.openai_url}/chat/completions", CHAT)
        assert json.loads(raw)["choices"][0]["message"]["content"] == "Paris."
    seen: list[dict[str, Any]] = []

    def reply(body: dict[str, Any]) -> str:
        seen.append(body)
        return str(body["model"]).upper()

    async with FakeLLMServer(reply=reply) as srv:
        _, _, raw = await post(session, f"{srv.url}/v1/messages", MSG)
        assert json.loads(raw)["content"] == [{"type": "text", "text": "CLAUDE-SONNET-4"}]
        assert seen == [MSG]


async def test_max_tokens_cuts_the_answer(
    srv: FakeLLMServer, session: aiohttp.ClientSession
) -> None:
    _, _, raw = await post(session, f"{srv.openai_url}/chat/completions", {**CHAT, "max_tokens": 2})
    choice = json.loads(raw)["choices"][0]
    assert choice["message"]["content"] == "Echo: What"
    assert choice["finish_reason"] == "length"
    _, _, raw = await post(session, f"{srv.url}/v1/messages", {**MSG, "max_tokens": 3})
    assert json.loads(raw)["stop_reason"] == "max_tokens"


async def test_openai_stream_with_usage(session: aiohttp.ClientSession) -> None:
    async with FakeLLMServer(stream_chunks=5) as srv:
        body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
        status, headers, raw = await post(session, f"{srv.openai_url}/chat/completions", body)
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["transfer-encoding"] == "chunked"
    events = sse(raw)
    assert events[-1].data == "[DONE]"
    chunks = openai_chunks(events)
    assert {c["id"] for c in chunks} == {chunks[0]["id"]}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    content = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    assert len([piece for piece in content if piece]) == 5
    assert "".join(filter(None, content)) == "Echo: What is the capital of France?"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["total_tokens"] == 13
    assert all(c["usage"] is None for c in chunks[:-1])


async def test_openai_stream_without_usage(
    srv: FakeLLMServer, session: aiohttp.ClientSession
) -> None:
    _, _, raw = await post(session, f"{srv.openai_url}/chat/completions", {**CHAT, "stream": True})
    chunks = openai_chunks(sse(raw))
    assert all(c["choices"] for c in chunks)
    assert all("usage" not in c for c in chunks)


async def test_anthropic_json(srv: FakeLLMServer, session: aiohttp.ClientSession) -> None:
    body = {**MSG, "system": "Be brief and precise."}
    status, headers, raw = await post(session, f"{srv.url}/v1/messages", body)
    msg = json.loads(raw)
    assert status == 200
    assert headers["request-id"].startswith("req_")
    assert msg["type"] == "message"
    assert msg["id"].startswith("msg_")
    assert msg["model"] == "claude-sonnet-4"
    assert msg["content"] == [{"type": "text", "text": "Echo: What is the capital of France?"}]
    assert msg["stop_reason"] == "end_turn"
    assert msg["usage"]["input_tokens"] == 10  # system words count too
    assert msg["usage"]["output_tokens"] == 7


async def test_anthropic_stream_event_sequence(session: aiohttp.ClientSession) -> None:
    async with FakeLLMServer(stream_chunks=4) as srv:
        _, _, raw = await post(session, f"{srv.url}/v1/messages", {**MSG, "stream": True})
    events = sse(raw)
    names = [e.event for e in events]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * 4,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    data = [json.loads(e.data) for e in events]
    assert all(d["type"] == e.event for d, e in zip(data, events, strict=True))
    assert data[0]["message"]["usage"]["input_tokens"] == 6
    text = "".join(d["delta"]["text"] for d in data if d["type"] == "content_block_delta")
    assert text == "Echo: What is the capital of France?"
    assert data[-2]["delta"]["stop_reason"] == "end_turn"
    assert data[-2]["usage"]["output_tokens"] == 7


async def test_openai_tool_call_json_and_stream(
    srv: FakeLLMServer, session: aiohttp.ClientSession
) -> None:
    ask = [{"role": "user", "content": "Weather in Paris? CALL_TOOL"}]
    body = {"model": "gpt-4o", "messages": ask, "tools": TOOLS_OPENAI}
    _, _, raw = await post(session, f"{srv.openai_url}/chat/completions", body)
    choice = json.loads(raw)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "test", "days": 1}

    _, _, raw = await post(session, f"{srv.openai_url}/chat/completions", {**body, "stream": True})
    chunks = openai_chunks(sse(raw))
    first = chunks[0]["choices"][0]["delta"]["tool_calls"][0]
    assert first["function"]["name"] == "get_weather"
    assert first["id"].startswith("call_")
    args = "".join(
        d["tool_calls"][0]["function"]["arguments"]
        for c in chunks
        if (d := c["choices"][0]["delta"]).get("tool_calls")
    )
    assert json.loads(args) == {"city": "test", "days": 1}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"

    # after the tool result the model answers in text
    history = [*ask, {"role": "assistant", "tool_calls": [call]}]
    history.append({"role": "tool", "tool_call_id": call["id"], "content": "sunny"})
    _, _, raw = await post(
        session, f"{srv.openai_url}/chat/completions", {**body, "messages": history}
    )
    assert json.loads(raw)["choices"][0]["finish_reason"] == "stop"


async def test_anthropic_tool_use_json_and_stream(
    srv: FakeLLMServer, session: aiohttp.ClientSession
) -> None:
    ask = [{"role": "user", "content": [{"type": "text", "text": "CALL_TOOL please"}]}]
    body = {**MSG, "messages": ask, "tools": TOOLS_ANTHROPIC}
    _, _, raw = await post(session, f"{srv.url}/v1/messages", body)
    msg = json.loads(raw)
    assert msg["stop_reason"] == "tool_use"
    (block,) = msg["content"]
    assert block["type"] == "tool_use"
    assert block["name"] == "get_weather"
    assert block["input"] == {"city": "test"}

    _, _, raw = await post(session, f"{srv.url}/v1/messages", {**body, "stream": True})
    data = [json.loads(e.data) for e in sse(raw)]
    assert data[1]["content_block"]["type"] == "tool_use"
    partial = "".join(
        d["delta"]["partial_json"] for d in data if d["type"] == "content_block_delta"
    )
    assert json.loads(partial) == {"city": "test"}
    assert data[-2]["delta"]["stop_reason"] == "tool_use"


async def test_embeddings_float_and_base64(
    srv: FakeLLMServer, session: aiohttp.ClientSession
) -> None:
    body = {
        "model": "text-embedding-3-small",
        "input": ["the cat sat", "the cat sat down", "tax law"],
    }
    _, _, raw = await post(session, f"{srv.openai_url}/embeddings", body)
    out = json.loads(raw)
    assert out["object"] == "list"
    assert out["model"] == "text-embedding-3-small"
    assert out["usage"] == {"prompt_tokens": 9, "total_tokens": 9}
    vecs = [d["embedding"] for d in out["data"]]
    assert [d["index"] for d in out["data"]] == [0, 1, 2]
    assert all(len(v) == 64 for v in vecs)
    assert all(math.isclose(sum(x * x for x in v), 1.0) for v in vecs)

    def cos(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cos(vecs[0], vecs[1]) > 0.5 > cos(vecs[0], vecs[2])

    b64 = {**body, "dimensions": 16, "encoding_format": "base64"}
    _, _, raw = await post(session, f"{srv.openai_url}/embeddings", b64)
    packed = base64.b64decode(json.loads(raw)["data"][0]["embedding"])
    floats = struct.unpack("<16f", packed)
    _, _, raw = await post(
        session, f"{srv.openai_url}/embeddings", {**b64, "encoding_format": "float"}
    )
    again = json.loads(raw)["data"][0]["embedding"]
    assert all(
        math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7) for a, b in zip(floats, again, strict=True)
    )


async def test_embeddings_are_deterministic_per_seed(session: aiohttp.ClientSession) -> None:
    body = {"model": "e", "input": "hello world"}
    vectors = []
    for seed in (0, 0, 1):
        async with FakeLLMServer(seed=seed) as srv:
            _, _, raw = await post(session, f"{srv.openai_url}/embeddings", body)
            vectors.append(json.loads(raw)["data"][0]["embedding"])
    assert vectors[0] == vectors[1] != vectors[2]


async def test_health_unknown_route_and_bad_method(
    srv: FakeLLMServer, session: aiohttp.ClientSession
) -> None:
    async with session.get(f"{srv.url}/health") as resp:
        assert resp.status == 200
        assert await resp.json() == {"status": "ok"}
    status, _, raw = await post(session, f"{srv.url}/v1/nope", CHAT)
    assert status == 404
    error = json.loads(raw)["error"]
    assert error["type"] == "invalid_request_error"
    assert "/v1/nope" in error["message"]
    async with session.get(f"{srv.openai_url}/chat/completions") as resp:
        assert resp.status == 405
        assert resp.headers["allow"] == "POST"


async def test_invalid_request_bodies_get_400(
    srv: FakeLLMServer, session: aiohttp.ClientSession
) -> None:
    async with session.post(f"{srv.openai_url}/chat/completions", data=b"{nope") as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["type"] == "invalid_request_error"
    status, _, raw = await post(session, f"{srv.url}/v1/messages", {"model": "x"})
    assert status == 400
    assert json.loads(raw)["error"]["type"] == "invalid_request_error"
    status, _, _ = await post(session, f"{srv.openai_url}/embeddings", {"input": []})
    assert status == 400


async def test_httpx_json_and_stream(srv: FakeLLMServer) -> None:
    async with httpx.AsyncClient(base_url=srv.openai_url) as client:
        resp = await client.post("/chat/completions", json=CHAT)
        assert resp.status_code == 200
        assert resp.json()["choices"][0]["message"]["content"].startswith("Echo: ")
        decoder = SSEDecoder()
        events: list[SSEEvent] = []
        body = {**MSG, "stream": True}
        async with client.stream("POST", f"{srv.url}/v1/messages", json=body) as stream:
            async for part in stream.aiter_raw():
                events += decoder.feed(part)
        assert events[-1].event == "message_stop"
    assert srv.statistics().connections == 1


async def test_httpx_chunked_request_body(srv: FakeLLMServer) -> None:
    payload = json.dumps(CHAT).encode()

    async def body() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 7):
            yield payload[i : i + 7]

    async with httpx.AsyncClient() as client:
        resp = await client.post(f"{srv.openai_url}/chat/completions", content=body())
    assert resp.status_code == 200
    assert srv.last_request.headers["transfer-encoding"] == "chunked"
    assert srv.last_request.json() == CHAT


# -- HTTP/1.1 handling -------------------------------------------------------------


async def test_keep_alive_reuses_one_connection(srv: FakeLLMServer) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        for _ in range(5):
            status, _, _ = await post(session, f"{srv.openai_url}/chat/completions", CHAT)
            assert status == 200
    stats = srv.statistics()
    assert stats.requests == 5
    assert stats.connections == 1


def _request(body: dict[str, Any], path: str = "/v1/chat/completions", extra: str = "") -> bytes:
    data = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n{extra}\r\n"
    )
    return head.encode() + data


async def _read_responses(stream: anyio.abc.ByteStream, count: int) -> list[tuple[int, bytes]]:
    """Read ``count`` Content-Length responses off a raw connection."""
    buf = b""
    out: list[tuple[int, bytes]] = []
    while len(out) < count:
        while b"\r\n\r\n" not in buf:
            buf += await stream.receive()
        head, _, buf = buf.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:])
        length = int(headers["content-length"])
        while len(buf) < length:
            buf += await stream.receive()
        out.append((int(lines[0].split()[1]), buf[:length]))
        buf = buf[length:]
    return out


async def test_pipelined_and_byte_by_byte_requests(srv: FakeLLMServer) -> None:
    two = _request(CHAT) + _request({**CHAT, "model": "second"})
    async with await anyio.connect_tcp("127.0.0.1", srv.port) as stream:
        await stream.send(two)  # both at once: answered in order
        replies = await _read_responses(stream, 2)
        assert [json.loads(b)["model"] for _, b in replies] == ["gpt-4o-mini", "second"]
        for byte in _request({**CHAT, "model": "slow"}):  # one byte per write
            await stream.send(bytes([byte]))
            await anyio.sleep(0)
        ((status, body),) = await _read_responses(stream, 1)
        assert status == 200
        assert json.loads(body)["model"] == "slow"
    assert srv.request_count == 3
    assert srv.statistics().connections == 1
    assert srv.errors == []


async def test_connection_close_and_expect_continue(srv: FakeLLMServer) -> None:
    async with await anyio.connect_tcp("127.0.0.1", srv.port) as stream:
        data = json.dumps(CHAT).encode()
        head = (
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            f"Connection: close\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        await stream.send(head.encode())
        interim = await stream.receive()
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        await stream.send(data)
        received = b""
        with anyio.fail_after(5):
            try:
                while True:
                    received += await stream.receive()
            except anyio.EndOfStream:
                pass  # the server closed as asked
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"connection: close\r\n" in received
    await srv.wait_until(lambda s: s.open_connections == 0)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"\x16\x03\x01\x02\x00garbage\r\n\r\n", 400),
        (b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: ten\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        (b"GET / HTTP/1.1\r\nbad header\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    ],
)
async def test_garbage_gets_an_error_and_a_close(
    srv: FakeLLMServer, raw: bytes, status: int
) -> None:
    async with await anyio.connect_tcp("127.0.0.1", srv.port) as stream:
        await stream.send(raw)
        received = b""
        with anyio.fail_after(5):
            try:
                while True:
                    received += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass
    assert received.startswith(f"HTTP/1.1 {status} ".encode())
    assert srv.statistics().bad_requests == 1
    assert srv.request_count == 0


def _split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


_CHUNKED = (
    b"POST /v1/embeddings?x=1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: y\r\n\r\n"
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0), max_size=12))
def test_parser_is_indifferent_to_how_input_is_split(cuts: list[int]) -> None:
    stream = _request(CHAT) + b"\r\n" + _CHUNKED + b"GET /health HTTP/1.0\r\n\r\n"
    parser = RequestParser()
    requests = []
    for piece in _split_at(stream, cuts):
        requests += parser.feed(piece)
    assert [(r.method, r.target, r.keep_alive) for r in requests] == [
        ("POST", "/v1/chat/completions", True),
        ("POST", "/v1/embeddings?x=1", True),
        ("GET", "/health", False),
    ]
    assert json.loads(requests[0].body) == CHAT
    assert requests[1].body == b"hello world"


def test_parser_rejects_ambiguous_framing() -> None:
    with pytest.raises(HTTPError) as info:
        RequestParser().feed(
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
    assert info.value.status == 400


# -- faults --------------------------------------------------------------------------


async def test_status_fault_openai_envelope_and_headers(
    srv: FakeLLMServer, session: aiohttp.ClientSession
) -> None:
    srv.enqueue(
        Fault.status(429, retry_after=2, retry_after_ms=1500, headers={"x-should-retry": "true"})
    )
    status, headers, raw = await post(session, f"{srv.openai_url}/chat/completions", CHAT)
    assert status == 429
    assert headers["retry-after"] == "2"
    assert headers["retry-after-ms"] == "1500"
    assert headers["x-should-retry"] == "true"
    assert json.loads(raw)["error"]["code"] == "rate_limit_exceeded"
    srv.enqueue(Fault.status(500, body={"error": {"message": "boom"}}))
    status, _, raw = await post(session, f"{srv.openai_url}/chat/completions", CHAT)
    assert (status, json.loads(raw)) == (500, {"error": {"message": "boom"}})
    status, _, _ = await post(session, f"{srv.openai_url}/chat/completions", CHAT)
    assert status == 200  # the queue is used up
    assert [r.fault for r in srv.requests] == [
        Fault.status(429, retry_after=2, retry_after_ms=1500, headers={"x-should-retry": "true"}),
        Fault.status(500, body={"error": {"message": "boom"}}),
        None,
    ]


async def test_status_fault_anthropic_envelope(
    srv: FakeLLMServer, session: aiohttp.ClientSession
) -> None:
    srv.enqueue(Fault.status(529), Fault.status(401), Fault.status(400, error_type="custom"))
    bodies = []
    for _ in range(3):
        _, headers, raw = await post(session, f"{srv.url}/v1/messages", MSG)
        bodies.append(json.loads(raw))
        assert bodies[-1]["request_id"] == headers["request-id"]
    assert [b["type"] for b in bodies] == ["error"] * 3
    assert [b["error"]["type"] for b in bodies] == [
        "overloaded_error",
        "authentication_error",
        "custom",
    ]


async def test_latency_fault_composes_with_status(
    srv: FakeLLMServer, session: aiohttp.ClientSession
) -> None:
    srv.enqueue(Fault.latency(0.05) + Fault.status(503))
    started = time.perf_counter()
    status, _, _ = await post(session, f"{srv.openai_url}/chat/completions", CHAT)
    assert status == 503
    assert time.perf_counter() - started >= 0.05
    with pytest.raises(ValueError, match="cannot combine"):
        Fault.reset() + Fault.hang()
    assert Fault.latency(0.1) + Fault.latency(0.2) == Fault.latency(0.1 + 0.2)


async def test_reset_fault(srv: FakeLLMServer, session: aiohttp.ClientSession) -> None:
    srv.enqueue(Fault.reset())
    with pytest.raises(RESET_ERRORS):
        await post(session, f"{srv.openai_url}/chat/completions", CHAT)
    status, _, _ = await post(session, f"{srv.openai_url}/chat/completions", CHAT)
    assert status == 200
    assert srv.disconnects == 0  # the server hung up, not the client
    assert srv.in_flight == 0


async def test_hang_fault_ends_when_the_client_gives_up(
    srv: FakeLLMServer, session: aiohttp.ClientSession
) -> None:
    srv.enqueue(Fault.hang())
    with pytest.raises(asyncio.TimeoutError):
        timeout = aiohttp.ClientTimeout(total=0.2)
        await post(session, f"{srv.openai_url}/chat/completions", CHAT, timeout=timeout)
    await srv.wait_until(lambda s: s.disconnects == 1 and s.in_flight == 0)
    await srv.wait_until(lambda s: not s._tasks)


async def test_hang_and_latency_end_at_aclose(session: aiohttp.ClientSession) -> None:
    srv = FakeLLMServer(latency=30)
    await srv.start()
    srv.enqueue(Fault.hang())
    errors: list[BaseException] = []

    async def call() -> None:
        try:
            await post(session, f"{srv.openai_url}/chat/completions", CHAT)
        except aiohttp.ClientError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        tg.start_soon(call)
        await srv.wait_until(lambda s: s.in_flight == 2)
        with anyio.fail_after(2):
            await srv.aclose()
    assert len(errors) == 2
    assert srv.in_flight == 0
    assert srv.disconnects == 0
    assert not srv._tasks
    with pytest.raises(RuntimeError):
        await srv.start()


async def test_truncated_stream_misses_the_end_marker(
    srv: FakeLLMServer, session: aiohttp.ClientSession
) -> None:
    srv.enqueue(Fault.truncate(after_chunks=3))
    body = {**CHAT, "stream": True}
    received = b""
    with pytest.raises(aiohttp.ClientPayloadError):
        async with session.post(f"{srv.openai_url}/chat/completions", json=body) as resp:
            assert resp.status == 200
            async for part in resp.content.iter_any():
                received += part
    chunks = openai_chunks(sse(received))
    assert len(chunks) == 4  # role chunk + 3 content chunks
    assert b"[DONE]" not in received

    srv.enqueue(Fault.truncate(after_chunks=2, clean=True))
    _, _, raw = await post(session, f"{srv.url}/v1/messages", {**MSG, "stream": True})
    names = [e.event for e in sse(raw)]
    assert names[-2:] == ["content_block_delta", "content_block_delta"]
    assert "message_stop" not in names


async def test_truncated_json_body(srv: FakeLLMServer, session: aiohttp.ClientSession) -> None:
    srv.enqueue(Fault.truncate())
    with pytest.raises(aiohttp.ClientPayloadError):
        await post(session, f"{srv.openai_url}/chat/completions", CHAT)
    assert srv.disconnects == 0


async def test_malformed_fault(srv: FakeLLMServer, session: aiohttp.ClientSession) -> None:
    srv.enqueue(Fault.malformed(), Fault.malformed())
    status, _, raw = await post(session, f"{srv.openai_url}/chat/completions", CHAT)
    assert status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)
    _, _, raw = await post(session, f"{srv.openai_url}/chat/completions", {**CHAT, "stream": True})
    events = sse(raw)
    bad = [e for e in events if e.data.startswith("{not")]
    assert len(bad) == 1
    assert events[-1].data == "[DONE]"


async def test_stream_error_fault(srv: FakeLLMServer, session: aiohttp.ClientSession) -> None:
    srv.enqueue(Fault.stream_error(after_chunks=2, message="overloaded"))
    _, _, raw = await post(session, f"{srv.openai_url}/chat/completions", {**CHAT, "stream": True})
    events = sse(raw)
    assert events[-1].data == "[DONE]"
    error = json.loads(events[-2].data)["error"]
    assert error == {"message": "overloaded", "type": "server_error", "param": None, "code": None}
    assert len(openai_chunks(events)) == 1 + 2 + 1

    srv.enqueue(Fault.stream_error(after_chunks=1))
    _, _, raw = await post(session, f"{srv.url}/v1/messages", {**MSG, "stream": True})
    events = sse(raw)
    assert events[-1].event == "error"
    assert json.loads(events[-1].data)["error"]["type"] == "overloaded_error"

    srv.enqueue(Fault.stream_error(message="nope"))
    status, _, raw = await post(session, f"{srv.openai_url}/chat/completions", CHAT)
    assert (status, json.loads(raw)["error"]["message"]) == (500, "nope")


@pytest.mark.parametrize(
    "name",
    ["openai-stream-gpt5-text-with-usage-chunk.json", "anthropic-error-400-invalid-request.json"],
)
async def test_raw_fault_replays_a_recording(
    srv: FakeLLMServer, session: aiohttp.ClientSession, name: str
) -> None:
    recording = load_fixture(name)
    srv.enqueue(Fault.from_recording(recording))
    request = recording["request"]
    async with session.post(srv.url + request["path"], json=request["body"]) as resp:
        raw = await resp.read()
        assert resp.status == recording["response"]["status"]
        assert resp.headers["content-type"] == recording["response"]["headers"]["content-type"]
    assert raw == recording["response"]["body_text"].encode()


async def test_raw_stream_is_paced_chunk_by_chunk(session: aiohttp.ClientSession) -> None:
    body = b"data: 1\n\ndata: 2\n\ndata: 3\n\n"
    async with FakeLLMServer(chunk_delay=0.01) as srv:
        srv.enqueue(Fault.raw(200, {"content-type": "text/event-stream"}, body))
        parts = []
        async with session.post(f"{srv.openai_url}/chat/completions", json=CHAT) as resp:
            async for part, _ in resp.content.iter_chunks():
                parts.append(part)
    assert b"".join(parts) == body
    assert len(parts) == 3


async def test_path_queues_standing_faults_and_order(
    srv: FakeLLMServer, session: aiohttp.ClientSession
) -> None:
    srv.enqueue(Fault.status(500), Fault.status(502))
    srv.enqueue(Fault.status(529), path="/v1/messages")
    assert srv.pending_faults == 3
    status_msg, _, _ = await post(session, f"{srv.url}/v1/messages", MSG)
    status_a, _, _ = await post(session, f"{srv.openai_url}/chat/completions", CHAT)
    status_b, _, _ = await post(session, f"{srv.url}/v1/messages", MSG)
    assert (status_msg, status_a, status_b) == (529, 500, 502)
    srv.set_fault(Fault.status(503), path="/v1/embeddings")
    for _ in range(2):
        status, _, _ = await post(session, f"{srv.openai_url}/embeddings", {"input": "x"})
        assert status == 503
    status, _, _ = await post(session, f"{srv.openai_url}/chat/completions", CHAT)
    assert status == 200
    srv.set_fault(None, path="/v1/embeddings")
    status, _, _ = await post(session, f"{srv.openai_url}/embeddings", {"input": "x"})
    assert status == 200
    assert srv.statistics().faults == 5


async def test_fault_rate_is_reproducible(session: aiohttp.ClientSession) -> None:
    runs = []
    for _ in range(2):
        async with FakeLLMServer() as srv:
            srv.fault_rate(0.5, [Fault.status(500), Fault.status(503)], seed=7)
            statuses = []
            for _ in range(30):
                status, _, _ = await post(session, f"{srv.openai_url}/chat/completions", CHAT)
                statuses.append(status)
            runs.append(statuses)
    assert runs[0] == runs[1]
    assert {200, 500, 503} == set(runs[0])
    with pytest.raises(ValueError):
        FakeLLMServer().fault_rate(1.5)
    assert all(f.kind in ("status", "reset") for f in DEFAULT_RANDOM_FAULTS)


def test_fault_validation() -> None:
    with pytest.raises(ValueError):
        Fault.status(200)
    with pytest.raises(ValueError):
        Fault.latency(-1)
    with pytest.raises(ValueError):
        Fault.truncate(-1)
    with pytest.raises(TypeError):
        FakeLLMServer().enqueue("500")  # type: ignore[arg-type]
    assert repr(Fault.latency(0.5) + Fault.status(503)) == "Fault('status', delay=0.5, code=503)"


# -- bookkeeping ---------------------------------------------------------------------


async def test_in_flight_under_concurrency(session: aiohttp.ClientSession) -> None:
    async with FakeLLMServer(latency=0.3) as srv:
        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(post, session, f"{srv.openai_url}/chat/completions", CHAT)
            await srv.wait_until(lambda s: s.in_flight == 10)
            assert srv.open_connections == 10
        assert srv.in_flight == 0
        assert srv.max_in_flight == 10
        assert srv.request_count == 10
        assert srv.disconnects == 0


async def test_cancelled_client_counts_as_disconnect(session: aiohttp.ClientSession) -> None:
    async with FakeLLMServer(latency=30) as srv:
        async with anyio.create_task_group() as tg:
            tg.start_soon(post, session, f"{srv.openai_url}/chat/completions", CHAT)
            await srv.wait_until(lambda s: s.in_flight == 1)
            tg.cancel_scope.cancel()
        await srv.wait_until(lambda s: s.disconnects == 1 and s.in_flight == 0)
        await srv.wait_until(lambda s: not s._tasks)


async def test_client_leaving_mid_stream_counts_as_disconnect(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeLLMServer(chunk_delay=0.05, stream_chunks=50) as srv:
        async with session.post(
            f"{srv.openai_url}/chat/completions", json={**CHAT, "stream": True}
        ) as resp:
            await resp.content.readline()  # first event arrived; now walk away
            resp.close()
        await srv.wait_until(lambda s: s.disconnects == 1 and s.in_flight == 0)


async def test_rate_limit_with_fake_clock(session: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    async with FakeLLMServer(rate_limit_rpm=3, ratelimit_headers=True, clock=clock) as srv:
        url = f"{srv.openai_url}/chat/completions"
        remaining = []
        for _ in range(3):
            status, headers, _ = await post(session, url, CHAT)
            assert status == 200
            assert headers["x-ratelimit-limit-requests"] == "3"
            remaining.append(headers["x-ratelimit-remaining-requests"])
            clock.advance(10)
        assert remaining == ["2", "1", "0"]
        status, headers, raw = await post(session, url, CHAT)
        assert status == 429
        assert headers["retry-after"] == "30"
        assert headers["x-ratelimit-remaining-requests"] == "0"
        assert json.loads(raw)["error"]["code"] == "rate_limit_exceeded"
        status, _, raw = await post(session, f"{srv.url}/v1/messages", MSG)
        assert (status, json.loads(raw)["error"]["type"]) == (429, "rate_limit_error")
        clock.advance(30)  # the first request leaves the window
        status, _, _ = await post(session, url, CHAT)
        assert status == 200
        assert srv.statistics().rate_limited == 2
        assert srv.request_count == 6


async def test_request_log_and_redaction(
    srv: FakeLLMServer, session: aiohttp.ClientSession
) -> None:
    secret = {"Authorization": "Bearer sk-secret-123", "x-api-key": "sk-ant-secret-456"}
    await post(session, f"{srv.url}/v1/messages?beta=true", MSG, headers=secret)
    (record,) = srv.requests
    assert isinstance(record, RecordedRequest)
    assert (record.method, record.path, record.query) == ("POST", "/v1/messages", "beta=true")
    assert record.json() == MSG
    assert record.headers["authorization"] == "Bearer sk-secret-123"
    assert record.timestamp > 0
    for text in (repr(record), repr(record.headers), str(record.headers), repr(srv.requests)):
        assert "sk-secret" not in text
        assert "sk-ant-secret" not in text
        assert "<redacted>" in text


async def test_statistics_reset_and_wait_timeout(
    srv: FakeLLMServer, session: aiohttp.ClientSession
) -> None:
    await post(session, f"{srv.openai_url}/chat/completions", CHAT)
    stats = srv.statistics()
    assert isinstance(stats, ServerStatistics)
    assert (stats.requests, stats.max_in_flight, stats.in_flight) == (1, 1, 0)
    assert "requests=1" in repr(srv)
    srv.reset_stats()
    assert srv.request_count == 0
    assert srv.requests == []
    assert srv.max_in_flight == 0
    with pytest.raises(TimeoutError):
        await srv.wait_until(lambda s: s.request_count == 1, timeout=0.05)
    with pytest.raises(LookupError):
        _ = srv.last_request


async def test_record_limit(session: aiohttp.ClientSession) -> None:
    async with FakeLLMServer(record_limit=2) as srv:
        for i in range(4):
            await post(session, f"{srv.openai_url}/chat/completions", {**CHAT, "model": str(i)})
        assert [r.json()["model"] for r in srv.requests] == ["2", "3"]
        assert srv.request_count == 4


def test_constructor_validation() -> None:
    with pytest.raises(ValueError):
        FakeLLMServer(latency=-1)
    with pytest.raises(ValueError):
        FakeLLMServer(stream_chunks=0)
    with pytest.raises(ValueError):
        FakeLLMServer(rate_limit_rpm=0)
    with pytest.raises(RuntimeError):
        _ = FakeLLMServer().url


def test_spawned_server_in_a_child_process() -> None:
    with FakeLLMServer.spawn(reply="from the child") as child:
        with httpx.Client(base_url=child.openai_url) as client:
            resp = client.post("/chat/completions", json=CHAT)
        assert resp.json()["choices"][0]["message"]["content"] == "from the child"
        assert child.stats()["requests"] == 1
        assert child.stats()["in_flight"] == 0
        child.reset()
        assert child.stats()["requests"] == 0
    assert child.process.returncode == 0  # SIGTERM stops it cleanly


def test_explicit_port() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def main() -> int:
        async with FakeLLMServer(port=port) as srv:
            return srv.port

    assert anyio.run(main) == port


async def test_a_failing_reply_callable_gives_500_and_is_kept(
    session: aiohttp.ClientSession,
) -> None:
    def reply(body: dict[str, Any]) -> str:
        raise KeyError("oops")

    async with FakeLLMServer(reply=reply) as srv:
        status, _, raw = await post(session, f"{srv.openai_url}/chat/completions", CHAT)
        assert status == 500
        assert "oops" in json.loads(raw)["error"]["message"]
        assert [type(e) for e in srv.errors] == [KeyError]
