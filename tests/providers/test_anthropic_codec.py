"""The Anthropic codec on recorded bytes: encode, decode, errors, the SSE stream decoder."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aio_llm.errors import (
    APIResponseError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    InvalidRequestError,
    NotFoundError,
    OverloadedError,
    RateLimitError,
    ServerError,
    StreamError,
)
from aio_llm.providers.anthropic import AnthropicProvider
from aio_llm.transports.sse import SSEDecoder
from aio_llm.types import ChatChunk, ChatRequest, ChatResponse, Message, ToolCall
from tests.conftest import all_fixtures, load_fixture

KEY = "sk-ant-test-SECRET-0123456789"
ANTHROPIC = [n for n in all_fixtures() if n.startswith("anthropic-")]
STREAMS = [n for n in ANTHROPIC if load_fixture(n)["kind"] == "stream"]
ERRORS = [n for n in ANTHROPIC if load_fixture(n)["kind"] == "error"]
BODIES = [n for n in ANTHROPIC if load_fixture(n)["kind"] in ("chat", "tools")]


def provider(**kw: Any) -> AnthropicProvider:
    return AnthropicProvider(api_key=KEY, **kw)


def request(**kw: Any) -> ChatRequest:
    kw.setdefault("model", "claude-sonnet-4-5")
    kw.setdefault("messages", [{"role": "user", "content": "Hi"}])
    return ChatRequest(**kw)


def body_of(req: ChatRequest, p: AnthropicProvider | None = None) -> dict[str, Any]:
    http = (p or provider()).encode_chat(req)
    result: dict[str, Any] = json.loads(http.content)
    return result


# -- what the recorded bodies say, computed independently -----------------------


def expected_usage(u: Mapping[str, Any]) -> dict[str, int]:
    read = u.get("cache_read_input_tokens") or 0
    made = u.get("cache_creation_input_tokens") or 0
    prompt = u["input_tokens"] + read + made
    return {
        "input_tokens": prompt,
        "output_tokens": u["output_tokens"],
        "total_tokens": prompt + u["output_tokens"],
        "cached_input_tokens": read,
        "cache_creation_input_tokens": made,
    }


FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
}


def expected_from_message(msg: Mapping[str, Any]) -> dict[str, Any]:
    blocks = msg["content"]
    return {
        "id": msg["id"],
        "model": msg["model"],
        "content": "".join(b["text"] for b in blocks if b["type"] == "text"),
        "reasoning": "".join(b["thinking"] for b in blocks if b["type"] == "thinking") or None,
        "tools": [(b["id"], b["name"], b["input"]) for b in blocks if b["type"] == "tool_use"],
        "finish": FINISH[msg["stop_reason"]],
        "usage": expected_usage(msg["usage"]),
    }


def expected_from_sse(text: str) -> dict[str, Any]:
    """A deliberately naive reading of an SSE body: every ``data:`` line is one event."""
    events = [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]
    blocks: dict[int, dict[str, Any]] = {}
    usage: dict[str, Any] = {}
    msg: dict[str, Any] = {}
    stop = None
    for ev in events:
        if ev["type"] == "message_start":
            msg = ev["message"]
            usage.update(msg["usage"])
        elif ev["type"] == "content_block_start":
            blocks[ev["index"]] = {**ev["content_block"], "json": ""}
        elif ev["type"] == "content_block_delta":
            b, d = blocks[ev["index"]], ev["delta"]
            if d["type"] == "text_delta":
                b["text"] += d["text"]
            elif d["type"] == "thinking_delta":
                b["thinking"] += d["thinking"]
            elif d["type"] == "input_json_delta":
                b["json"] += d["partial_json"]
        elif ev["type"] == "message_delta":
            stop = ev["delta"]["stop_reason"]
            usage.update({k: v for k, v in ev["usage"].items() if v is not None})
    ordered = [blocks[i] for i in sorted(blocks)]
    return {
        "id": msg["id"],
        "model": msg["model"],
        "content": "".join(b["text"] for b in ordered if b["type"] == "text"),
        "reasoning": "".join(b["thinking"] for b in ordered if b["type"] == "thinking") or None,
        "tools": [
            (b["id"], b["name"], json.loads(b["json"] or "{}"))
            for b in ordered
            if b["type"] == "tool_use"
        ],
        "finish": FINISH[stop] if stop else None,
        "usage": expected_usage(usage),
    }


def check(resp: ChatResponse, exp: Mapping[str, Any]) -> None:
    assert resp.id == exp["id"]
    assert resp.model == exp["model"]
    assert resp.provider == "anthropic"
    assert resp.content == exp["content"]
    assert resp.message.content == exp["content"]
    assert resp.message.role == "assistant"
    assert resp.reasoning == exp["reasoning"]
    got = [(tc.id, tc.name, json.loads(tc.arguments)) for tc in resp.tool_calls]
    assert got == exp["tools"]
    assert (resp.message.tool_calls or []) == resp.tool_calls
    assert resp.finish_reason == exp["finish"]
    usage = resp.usage.model_dump(include=set(exp["usage"]))
    assert usage == exp["usage"]


def run_stream(
    chunks: list[bytes], p: AnthropicProvider | None = None
) -> tuple[list[ChatChunk], ChatResponse, bool]:
    p = p or provider()
    decoder = p.stream_decoder(request(stream=True))
    sse = SSEDecoder()
    out: list[ChatChunk] = []
    for data in chunks:
        for event in sse.feed(data):
            out.extend(decoder.feed(event))
    for event in sse.flush():
        out.extend(decoder.feed(event))
    return out, decoder.build_response(), decoder.done


# -- recorded JSON answers --------------------------------------------------------


@pytest.mark.parametrize("name", BODIES)
def test_recorded_message_decodes(name: str) -> None:
    fx = load_fixture(name)
    text = fx["response"]["body_text"]
    resp = provider().decode_chat(request(), 200, fx["response"]["headers"], text.encode())
    check(resp, expected_from_message(json.loads(text)))
    assert resp.raw == json.loads(text)
    assert resp.request_id is None  # the recorder stripped request-id


def test_cache_usage_counts_every_prompt_token() -> None:
    fx = load_fixture("anthropic-chat-cache-read-and-creation-usage.json")
    resp = provider().decode_chat(request(), 200, {}, fx["response"]["body_text"].encode())
    assert resp.usage.input_tokens == 3 + 1111 + 418
    assert resp.usage.cached_input_tokens == 1111
    assert resp.usage.cache_creation_input_tokens == 418
    assert resp.usage.total_tokens == 3 + 1111 + 418 + 33


def test_redacted_thinking_is_not_text_or_reasoning() -> None:
    fx = load_fixture("anthropic-chat-redacted-thinking.json")
    resp = provider().decode_chat(request(), 200, {}, fx["response"]["body_text"].encode())
    assert resp.reasoning is None
    assert resp.content.startswith("I notice that your message")
    assert "EvgFCkYI" not in resp.content


def test_parallel_tool_calls_in_order_with_compact_arguments() -> None:
    fx = load_fixture("anthropic-tools-parallel-tool-use.json")
    resp = provider().decode_chat(request(), 200, {}, fx["response"]["body_text"].encode())
    assert [tc.arguments for tc in resp.tool_calls] == [
        '{"name":"Alice"}',
        '{"name":"Bob"}',
        '{"name":"Charlie"}',
        '{"name":"Daisy"}',
    ]
    assert resp.finish_reason == "tool_calls"


def test_request_id_header_and_unknown_blocks_and_stop_reasons() -> None:
    body = {
        "id": "msg_1",
        "model": "m",
        "content": [
            {"type": "server_tool_use", "id": "srv_1", "name": "web_search", "input": {}},
            {"type": "brand_new_block", "payload": [1, 2]},
            {"type": "text", "text": "a"},
            {"type": "text", "text": "b"},
        ],
        "stop_reason": "pause_turn",
        "usage": {"input_tokens": 1, "output_tokens": 2},
    }
    resp = provider().decode_chat(
        request(), 200, {"request-id": "req_42"}, json.dumps(body).encode()
    )
    assert resp.content == "ab"
    assert resp.tool_calls == []
    assert resp.finish_reason is None
    assert resp.request_id == "req_42"
    for reason, want in [
        ("refusal", "content_filter"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
    ]:
        body["stop_reason"] = reason
        resp = provider().decode_chat(request(), 200, {}, json.dumps(body).encode())
        assert resp.finish_reason == want


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"",
        b"[1, 2]",
        b'{"id": "x"}',
        b'{"content": "text"}',
        b'{"content": [1]}',
        b'{"content": [{"type": "text"}]}',
        b'{"content": [{"type": "tool_use", "input": {}}]}',
        b'{"content": [], "usage": 5}',
        b"\xff\xfe",
    ],
)
def test_malformed_answers_are_api_response_errors(raw: bytes) -> None:
    with pytest.raises(APIResponseError) as info:
        provider().decode_chat(request(), 200, {}, raw)
    assert info.value.provider == "anthropic"


# -- errors ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ERRORS)
def test_recorded_errors(name: str) -> None:
    fx = load_fixture(name)
    status, text = fx["response"]["status"], fx["response"]["body_text"]
    body = json.loads(text)
    exc = provider().decode_error(status, fx["response"]["headers"], text.encode())
    assert type(exc) is {400: BadRequestError, 404: NotFoundError}[status]
    assert exc.status_code == status
    assert exc.message == body["error"]["message"]
    assert exc.code == body["error"]["type"]
    assert exc.request_id == body["request_id"]
    assert exc.provider == "anthropic"
    assert exc.body == body


def test_overloaded_error_is_typed_on_any_status_and_header_request_id_wins() -> None:
    raw = json.dumps(
        {
            "type": "error",
            "error": {"type": "overloaded_error", "message": "Overloaded"},
            "request_id": "req_body",
        }
    ).encode()
    for status in (529, 500, 503):
        exc = provider().decode_error(status, {"request-id": "req_head", "retry-after": "3"}, raw)
        assert isinstance(exc, OverloadedError)
        assert exc.status_code == status
        assert exc.request_id == "req_head"
        assert exc.retry_after == 3.0


def test_non_json_and_empty_error_bodies() -> None:
    exc = provider().decode_error(502, {}, b"<html>Bad Gateway</html>")
    assert isinstance(exc, ServerError)
    assert "Bad Gateway" in exc.message
    assert exc.raw == b"<html>Bad Gateway</html>" and exc.body == "<html>Bad Gateway</html>"
    exc = provider().decode_error(429, {}, b"")
    assert isinstance(exc, RateLimitError)
    assert exc.message == "HTTP 429 Too Many Requests with an empty body"
    assert exc.provider == "anthropic" and "provider=anthropic" in str(exc)
    exc = provider().decode_error(401, {}, b'{"error": "nope"}')
    assert isinstance(exc, AuthenticationError)
    assert exc.message == "nope"


def test_error_for_status_via_decode_chat() -> None:
    with pytest.raises(NotFoundError):
        provider().decode_chat(
            request(), 404, {}, b'{"type":"error","error":{"type":"not_found_error","message":"m"}}'
        )


# -- streams -----------------------------------------------------------------------


@pytest.mark.parametrize("name", STREAMS)
def test_recorded_stream_rebuilds_the_response(name: str) -> None:
    text = load_fixture(name)["response"]["body_text"]
    chunks, resp, done = run_stream([text.encode()])
    assert done
    check(resp, expected_from_sse(text))
    assert "".join(c.delta for c in chunks) == resp.content
    assert "".join(c.reasoning for c in chunks) == (resp.reasoning or "")
    finals = [c for c in chunks if c.finish_reason is not None]
    assert len(finals) == 1 and finals[0] is chunks[-1]
    assert finals[0].usage == resp.usage


def test_stream_forward_compatibility_skips_server_tools_and_unknown_blocks() -> None:
    text = load_fixture("anthropic-stream-server-tool-thinking-signature.json")["response"][
        "body_text"
    ]
    chunks, resp, done = run_stream([text.encode()])
    assert done
    assert resp.tool_calls == []  # server_tool_use is run by Anthropic, not by the caller
    assert resp.content.endswith("The answer is **4**.")  # the block after the unknown one
    assert "advisor_result" not in resp.content and "Ship it" not in resp.content
    assert resp.reasoning is None  # only a signature_delta, no thinking text
    assert resp.finish_reason == "stop"
    assert resp.usage.input_tokens == 2411 and resp.usage.output_tokens == 145
    assert resp.usage.reasoning_tokens == 47


def test_stream_tool_index_is_the_tool_ordinal() -> None:
    text = load_fixture("anthropic-stream-tool-use-input-json-deltas.json")["response"]["body_text"]
    chunks, resp, _ = run_stream([text.encode()])
    deltas = [tc for c in chunks for tc in c.tool_calls]
    assert {d.index for d in deltas} == {0}  # block index 4, first client tool call
    assert deltas[0].id == "toolu_01EFn5wTNBYA8Reni8rbmnHT"
    assert deltas[0].name == "get_exchange_rate"
    assert all(d.id is None for d in deltas[1:])
    assert json.loads(resp.tool_calls[0].arguments) == {
        "from_currency": "USD",
        "to_currency": "EUR",
    }


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


START = {
    "type": "message_start",
    "message": {
        "id": "msg_s",
        "model": "claude-x",
        "content": [],
        "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 1},
    },
}


def test_stream_tool_calls_without_fragments_and_multiple_tools() -> None:
    body = sse(
        START,
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "ok"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "t1", "name": "now", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": ""},
        },
        {"type": "content_block_stop", "index": 1},
        {
            "type": "content_block_start",
            "index": 2,
            "content_block": {"type": "tool_use", "id": "t2", "name": "add", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": '{"a":'},
        },
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": " 1}"},
        },
        {"type": "content_block_stop", "index": 2},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 9},
        },
        {"type": "message_stop"},
    )
    _, resp, done = run_stream([body])
    assert done
    assert resp.content == "ok"
    assert [(t.id, t.name, t.arguments) for t in resp.tool_calls] == [
        ("t1", "now", "{}"),
        ("t2", "add", '{"a": 1}'),
    ]
    assert resp.finish_reason == "tool_calls"
    assert resp.usage.input_tokens == 15 and resp.usage.cached_input_tokens == 5
    assert resp.usage.output_tokens == 9 and resp.usage.total_tokens == 24


def test_broken_stream_still_reports_prompt_usage() -> None:
    _, resp, done = run_stream([sse(START)])
    assert not done
    assert resp.usage.input_tokens == 15
    assert resp.id == "msg_s"


@pytest.mark.parametrize(
    ("error_type", "cls", "status"),
    [
        ("overloaded_error", OverloadedError, 529),
        ("rate_limit_error", RateLimitError, 429),
        ("api_error", ServerError, 500),
        ("invalid_request_error", BadRequestError, 400),
    ],
)
def test_in_band_error_event_raises_the_typed_error(
    error_type: str, cls: type[Exception], status: int
) -> None:
    err = {
        "type": "error",
        "error": {"type": error_type, "message": "Overloaded"},
        "request_id": "req_inband",
    }
    body = sse(
        START,
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "par"}},
        err,
    )
    with pytest.raises(cls) as info:
        run_stream([body])
    exc = info.value
    assert type(exc) is cls
    assert exc.status_code == status  # type: ignore[attr-defined]
    assert exc.message == "Overloaded"  # type: ignore[attr-defined]
    assert exc.request_id == "req_inband"  # type: ignore[attr-defined]
    assert exc.provider == "anthropic"  # type: ignore[attr-defined]


def test_unknown_in_band_error_is_a_stream_error() -> None:
    body = sse(START, {"type": "error", "error": {"type": "mystery_error", "message": "?"}})
    with pytest.raises(StreamError) as info:
        run_stream([body])
    assert info.value.code == "mystery_error"


@pytest.mark.parametrize(
    "data",
    [
        "not json",
        "[1]",
        '{"type": "message_start"}',
        '{"type": "content_block_start", "index": 0}',
        '{"type": "content_block_delta", "index": 0}',
        '{"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use"}}',
    ],
)
def test_malformed_stream_events_are_stream_errors(data: str) -> None:
    with pytest.raises(StreamError):
        run_stream([f"event: x\ndata: {data}\n\n".encode()])


def test_unknown_events_and_deltas_are_ignored() -> None:
    body = sse(
        START,
        {"type": "future_event", "x": 1},
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "text", "text": "pre"},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "citations_delta", "citation": {}},
        },
        {
            "type": "content_block_delta",
            "index": 7,
            "delta": {"type": "input_json_delta", "partial_json": "{}"},
        },
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 2},
        },
        {"type": "message_stop"},
    )
    chunks, resp, done = run_stream([body])
    assert done and resp.content == "pre" and resp.tool_calls == []


STREAM_TEXTS = [load_fixture(n)["response"]["body_text"].encode() for n in STREAMS]


def _signature(chunks: list[ChatChunk], resp: ChatResponse) -> tuple[Any, ...]:
    return (
        "".join(c.delta for c in chunks),
        "".join(c.reasoning for c in chunks),
        [(t.index, t.id, t.name) for c in chunks for t in c.tool_calls if t.id],
        "".join(t.arguments for c in chunks for t in c.tool_calls),
        resp.model_dump(exclude={"raw"}),
    )


@settings(max_examples=60, deadline=None)
@given(
    which=st.integers(0, len(STREAM_TEXTS) - 1),
    cuts=st.lists(st.integers(0, 10**6), max_size=40),
)
def test_any_byte_split_gives_the_same_result(which: int, cuts: list[int]) -> None:
    data = STREAM_TEXTS[which]
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    whole = run_stream([data])
    split = run_stream(pieces)
    assert split[2] is whole[2] is True
    assert _signature(split[0], split[1]) == _signature(whole[0], whole[1])


# -- encode ------------------------------------------------------------------------


def test_http_request_shape_and_headers() -> None:
    p = provider(headers={"anthropic-beta": "x"})
    http = p.encode_chat(request())
    assert http.method == "POST"
    assert http.url == "https://api.anthropic.com/v1/messages"
    assert http.headers == {
        "x-api-key": KEY,
        "anthropic-version": "2023-06-01",
        "content-type": "application/json",
        "anthropic-beta": "x",
    }
    http.headers["x-api-key"] = "mutated"
    assert p.encode_chat(request()).headers["x-api-key"] == KEY
    assert json.loads(http.content) == {
        "model": "claude-sonnet-4-5",
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 4096,
    }


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("https://proxy.example/", "https://proxy.example/v1/messages"),
        ("https://proxy.example/anthropic", "https://proxy.example/anthropic/v1/messages"),
        ("https://proxy.example/v1", "https://proxy.example/v1/messages"),
    ],
)
def test_base_url_is_the_host(base: str, url: str) -> None:
    assert provider(base_url=base).encode_chat(request()).url == url


def test_missing_key_is_refused_before_sending() -> None:
    with pytest.raises(ConfigurationError, match="ANTHROPIC_API_KEY"):
        AnthropicProvider().encode_chat(request())
    gateway = AnthropicProvider(headers={"Authorization": "Bearer gw"})
    assert "x-api-key" not in gateway.encode_chat(request()).headers


def test_create_provider_reads_the_sdk_variables() -> None:
    from aio_llm.providers import create_provider

    env = {"ANTHROPIC_API_KEY": "env-key", "ANTHROPIC_BASE_URL": "http://127.0.0.1:9"}
    p = create_provider("anthropic", environ=env)
    assert isinstance(p, AnthropicProvider)
    http = p.encode_chat(request())
    assert http.headers["x-api-key"] == "env-key"
    assert http.url == "http://127.0.0.1:9/v1/messages"


def test_constructor_validates_eagerly() -> None:
    with pytest.raises(ValueError):
        AnthropicProvider(KEY, default_max_tokens=0)
    with pytest.raises(ValueError):
        AnthropicProvider(KEY, version="")
    with pytest.raises(ConfigurationError):
        AnthropicProvider(KEY, base_url="ftp://x")
    p = AnthropicProvider(KEY, version="2099-01-01", default_max_tokens=7, label="claude")
    assert p.name == "anthropic" and p.label == "claude"
    assert p.encode_chat(request()).headers["anthropic-version"] == "2099-01-01"
    assert body_of(request(), p)["max_tokens"] == 7


def test_params_map_to_anthropic_names() -> None:
    body = body_of(
        request(
            temperature=0.3,
            top_p=0.9,
            max_tokens=100,
            stop="END",
            user="u-1",
            stream=True,
            seed=3,
            metadata={"project": "p"},
            extra={"thinking": {"type": "enabled", "budget_tokens": 1024}, "top_p": 0.5},
        )
    )
    assert body["temperature"] == 0.3
    assert body["top_p"] == 0.5  # extra is merged last
    assert body["max_tokens"] == 100
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "u-1"}
    assert body["stream"] is True
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert "seed" not in body and "project" not in json.dumps(body)
    assert body_of(request(stop=["a", "b"]))["stop_sequences"] == ["a", "b"]


def test_system_and_developer_messages_become_top_level_system() -> None:
    body = body_of(
        request(
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "developer", "content": "Use French."},
            ]
        )
    )
    assert body["system"] == "Be brief.\n\nUse French."
    assert body["messages"] == [{"role": "user", "content": "Hi"}]
    cached = {"type": "text", "text": "Long.", "cache_control": {"type": "ephemeral"}}
    body = body_of(
        request(
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "system", "content": [cached]},
                {"role": "user", "content": "Hi"},
            ]
        )
    )
    assert body["system"] == [{"type": "text", "text": "Be brief."}, cached]
    with pytest.raises(InvalidRequestError):
        body_of(request(messages=[{"role": "system", "content": "only"}]))


def test_tool_round_trip_and_alternation() -> None:
    messages = [
        Message(role="user", content="Weather in Paris and Rome?"),
        Message(
            role="assistant",
            content="Checking.",
            tool_calls=[
                ToolCall(id="t1", name="weather", arguments='{"city": "Paris"}'),
                ToolCall(id="t2", name="weather", arguments=""),
            ],
        ),
        Message(role="tool", tool_call_id="t1", content="20C"),
        Message(role="tool", tool_call_id="t2", content=[{"type": "text", "text": "25C"}]),
        Message(role="user", content="Thanks"),
        Message(role="user", content="And Oslo?"),
        Message(role="assistant", content="Let me see"),
        Message(role="assistant", content=""),
    ]
    body = body_of(request(messages=messages))
    assert body["messages"] == [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "t1", "name": "weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "t2", "name": "weather", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "20C"},
                {
                    "type": "tool_result",
                    "tool_use_id": "t2",
                    "content": [{"type": "text", "text": "25C"}],
                },
                {"type": "text", "text": "Thanks"},
                {"type": "text", "text": "And Oslo?"},
            ],
        },
        {"role": "assistant", "content": "Let me see"},  # the empty turn is dropped
    ]
    roles = [m["role"] for m in body["messages"]]
    assert all(a != b for a, b in zip(roles, roles[1:], strict=False))


def test_tool_call_only_assistant_turn_has_no_empty_text() -> None:
    messages = [
        Message(role="user", content="go"),
        Message(
            role="assistant", content=None, tool_calls=[ToolCall(id="t", name="f", arguments="{}")]
        ),
    ]
    assert body_of(request(messages=messages))["messages"][1]["content"] == [
        {"type": "tool_use", "id": "t", "name": "f", "input": {}}
    ]


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]", '"text"'])
def test_invalid_tool_arguments_are_rejected_before_sending(arguments: str) -> None:
    messages = [
        Message(role="user", content="go"),
        Message(role="assistant", tool_calls=[ToolCall(id="t", name="f", arguments=arguments)]),
    ]
    with pytest.raises(InvalidRequestError, match="'t'"):
        body_of(request(messages=messages))


def test_tool_message_needs_an_id() -> None:
    with pytest.raises(InvalidRequestError):
        body_of(request(messages=[{"role": "tool", "content": "x"}]))


def test_tools_and_tool_choice_mapping() -> None:
    native = {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}
    plain = {"name": "lookup", "description": "d", "input_schema": {"type": "object"}}
    openai_style = {
        "type": "function",
        "function": {
            "name": "weather",
            "description": "Get weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    bare = {"type": "function", "function": {"name": "ping"}}
    body = body_of(request(tools=[openai_style, bare, native, plain], tool_choice="required"))
    assert body["tools"] == [
        {
            "name": "weather",
            "description": "Get weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
        {"name": "ping", "input_schema": {"type": "object", "properties": {}}},
        native,
        plain,
    ]
    assert body["tool_choice"] == {"type": "any"}
    cases: list[tuple[Any, dict[str, Any]]] = [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        (
            {"type": "function", "function": {"name": "weather"}},
            {"type": "tool", "name": "weather"},
        ),
        ({"type": "tool", "name": "x"}, {"type": "tool", "name": "x"}),
        (
            {"type": "auto", "disable_parallel_tool_use": True},
            {"type": "auto", "disable_parallel_tool_use": True},
        ),
    ]
    for choice, want in cases:
        assert body_of(request(tool_choice=choice))["tool_choice"] == want
    with pytest.raises(InvalidRequestError):
        body_of(request(tool_choice="sometimes"))


def test_image_parts_are_mapped_and_native_blocks_pass_through() -> None:
    native = {"type": "document", "source": {"type": "url", "url": "https://x/y.pdf"}}
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "https://img.example/a.png"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        native,
    ]
    body = body_of(request(messages=[{"role": "user", "content": content}]))
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "url", "url": "https://img.example/a.png"}},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
        },
        native,
    ]
    bad = [{"type": "image_url", "image_url": {"url": "data:image/png,raw"}}]
    with pytest.raises(InvalidRequestError):
        body_of(request(messages=[{"role": "user", "content": bad}]))


# -- the API key stays secret ------------------------------------------------------


def test_api_key_only_in_the_x_api_key_header() -> None:
    p = provider()
    http = p.encode_chat(request(stream=True))
    assert [k for k, v in http.headers.items() if KEY in v] == ["x-api-key"]
    assert KEY.encode() not in http.content
    assert KEY not in http.url
    assert KEY not in repr(p) and KEY not in str(p)
    assert KEY not in repr(http)
    echo = json.dumps(
        {"type": "error", "error": {"type": "authentication_error", "message": f"bad key {KEY}"}}
    ).encode()
    exc = p.decode_error(401, {}, echo)
    assert KEY not in str(exc) and KEY not in exc.message and KEY not in repr(exc)
    exc = p.decode_error(500, {}, f"upstream said {KEY}".encode())
    assert KEY not in str(exc)
    with pytest.raises(StreamError) as info:
        run_stream([sse(START, {"type": "error", "error": {"type": "x", "message": KEY}})], p)
    assert KEY not in str(info.value)


# -- through the shared glue (an in-memory transport, no network) ------------------


class _Body:
    def __init__(self, status: int, headers: Mapping[str, str], parts: list[bytes]) -> None:
        self.status = status
        self.headers = headers
        self._parts = parts
        self.closed = False

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        for part in self._parts:
            yield part

    async def aread(self) -> bytes:
        return b"".join(self._parts)

    async def aclose(self) -> None:
        self.closed = True


class _Transport:
    def __init__(self, status: int, headers: Mapping[str, str], parts: list[bytes]) -> None:
        self.answer = _Body(status, headers, parts)
        self.sent: list[tuple[str, str, Mapping[str, str], bytes]] = []

    async def request(
        self, method: str, url: str, headers: Mapping[str, str], content: bytes
    ) -> tuple[int, Mapping[str, str], bytes]:
        self.sent.append((method, url, headers, content))
        return self.answer.status, self.answer.headers, await self.answer.aread()

    async def stream(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        content: bytes,
        *,
        max_body_size: int | None = None,
    ) -> _Body:
        self.sent.append((method, url, headers, content))
        return self.answer

    async def aclose(self) -> None:
        pass


@pytest.mark.anyio
async def test_send_and_stream_through_provider_glue() -> None:
    fx = load_fixture("anthropic-tools-parallel-tool-use.json")
    transport = _Transport(200, {"request-id": "req_1"}, [fx["response"]["body_text"].encode()])
    resp = await provider().send(request(), transport)
    assert len(resp.tool_calls) == 4 and resp.request_id == "req_1"

    text = load_fixture("anthropic-stream-thinking-and-signature-deltas.json")["response"][
        "body_text"
    ].encode()
    parts = [text[i : i + 97] for i in range(0, len(text), 97)]
    transport = _Transport(200, {}, parts)
    resp = await provider().send(request(stream=True), transport)
    stream = resp.stream
    assert stream is not None
    seen = [chunk async for chunk in stream]
    assert stream.completed and transport.answer.closed
    final = stream.response
    assert final is not None
    check(final, expected_from_sse(text.decode()))
    assert "".join(c.delta for c in seen) == final.content

    err = json.dumps(
        {
            "type": "error",
            "error": {"type": "overloaded_error", "message": "Overloaded"},
            "request_id": "req_o",
        }
    ).encode()
    with pytest.raises(OverloadedError) as info:
        await provider().send(request(stream=True), _Transport(529, {}, [err]))
    assert info.value.request_id == "req_o"
