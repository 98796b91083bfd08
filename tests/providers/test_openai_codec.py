"""The OpenAI wire codec on recorded bytes: bodies, streams, errors, embeddings, secrecy.

Pure tests: recorded provider answers (tests/fixtures/recorded) go straight
into the decoders; stream bodies pass through aio_llm's own SSE parser.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aio_llm.errors import (
    APIError,
    APIResponseError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ContextWindowExceededError,
    InvalidRequestError,
    NotFoundError,
    RateLimitError,
    ServerError,
    StreamError,
)
from aio_llm.providers.base import Provider
from aio_llm.providers.openai import OpenAICompatibleProvider, OpenAIProvider
from aio_llm.providers.openrouter import OpenRouterProvider
from aio_llm.transports.sse import SSEDecoder
from aio_llm.types import ChatChunk, ChatRequest, ChatResponse, Message, ToolCall
from tests.conftest import all_fixtures, load_fixture

KEY = "sk-test-SECRET-0123456789abcdef"

_STATUS_CLASS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    404: NotFoundError,
    429: RateLimitError,
    500: ServerError,
}
_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls"}


# -- helpers shared with test_openrouter_codec -----------------------------------------


def fixtures_of(provider: str, *kinds: str) -> list[str]:
    out = []
    for name in all_fixtures():
        fx = load_fixture(name)
        if fx["provider"] == provider and (not kinds or fx["kind"] in kinds):
            out.append(name)
    return out


def provider_for(fx: Mapping[str, Any]) -> OpenAIProvider:
    if fx["provider"] == "openrouter":
        return OpenRouterProvider(api_key=KEY)
    return OpenAIProvider(api_key=KEY)


def wire_to_message(d: Mapping[str, Any]) -> Message:
    """A recorded wire message as aio_llm's ``Message``."""
    calls = d.get("tool_calls")
    return Message(
        role=d["role"],
        content=d.get("content"),
        name=d.get("name"),
        tool_calls=[
            ToolCall(id=t["id"], name=t["function"]["name"], arguments=t["function"]["arguments"])
            for t in calls
        ]
        if calls
        else None,
        tool_call_id=d.get("tool_call_id"),
    )


_REQUEST_FIELDS = ("temperature", "top_p", "stop", "tools", "tool_choice", "response_format")


def request_from_fixture(fx: Mapping[str, Any]) -> ChatRequest:
    """The recorded request body as a ``ChatRequest``; fields it does not model go to ``extra``."""
    body = dict(fx["request"]["body"])
    kwargs: dict[str, Any] = {
        "model": body.pop("model"),
        "messages": [wire_to_message(m) for m in body.pop("messages")],
        "stream": body.pop("stream", False),
    }
    for name in _REQUEST_FIELDS:
        if name in body:
            kwargs[name] = body.pop(name)
    body.pop("stream_options", None)
    kwargs["extra"] = body
    return ChatRequest(**kwargs)


def response_of(fx: Mapping[str, Any]) -> tuple[int, dict[str, str], bytes]:
    resp = fx["response"]
    return resp["status"], dict(resp["headers"]), resp["body_text"].encode()


@dataclass
class StreamRun:
    chunks: list[ChatChunk]
    response: ChatResponse
    error: APIError | None
    done: bool


def split_at(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c for c in cuts if 0 < c < len(body)})
    edges = [0, *points, len(body)]
    return [body[a:b] for a, b in zip(edges, edges[1:], strict=False)]


def run_stream(provider: Provider, body: bytes, cuts: list[int] | None = None) -> StreamRun:
    """Feed ``body`` (cut at ``cuts``) through the SSE parser into a fresh decoder."""
    request = ChatRequest(model="m", messages=[Message(role="user", content="x")], stream=True)
    decoder = provider.stream_decoder(request)
    sse = SSEDecoder()
    chunks: list[ChatChunk] = []
    error: APIError | None = None
    try:
        for piece in split_at(body, cuts or []):
            for event in sse.feed(piece):
                chunks.extend(decoder.feed(event))
        for event in sse.flush():
            chunks.extend(decoder.feed(event))
    except APIError as exc:
        error = exc
    return StreamRun(chunks, decoder.build_response(), error, decoder.done)


def sse_payloads(body_text: str) -> list[Any]:
    """The JSON objects of a recorded SSE body, parsed naively (one data line per event)."""
    out = []
    for block in body_text.split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data: ") and line != "data: [DONE]":
                out.append(json.loads(line[6:]))
    return out


def check_usage(usage: Any, wire: Mapping[str, Any]) -> None:
    assert usage.input_tokens == wire["prompt_tokens"]
    assert usage.output_tokens == wire["completion_tokens"]
    assert usage.total_tokens == wire["total_tokens"]
    prompt_details = wire.get("prompt_tokens_details") or {}
    completion_details = wire.get("completion_tokens_details") or {}
    assert usage.cached_input_tokens == prompt_details.get("cached_tokens", 0)
    assert usage.cache_creation_input_tokens == prompt_details.get("cache_write_tokens", 0)
    assert usage.reasoning_tokens == completion_details.get("reasoning_tokens", 0)
    assert usage.provider_cost == wire.get("cost")


def check_chat_fixture(name: str) -> ChatResponse:
    """Decode a recorded chat/tools answer and compare every field with the body."""
    fx = load_fixture(name)
    provider = provider_for(fx)
    status, headers, body = response_of(fx)
    r = provider.decode_chat(request_from_fixture(fx), status, headers, body)
    data = json.loads(body)
    choice = data["choices"][0]
    msg = choice["message"]
    assert r.id == data["id"]
    assert r.model == data["model"]
    assert r.provider == provider.label
    assert r.content == (msg["content"] or "")
    assert r.message.role == "assistant"
    assert r.message.content == r.content
    assert r.finish_reason == _FINISH[choice["finish_reason"]]
    expected_calls = [
        (t["id"], t["function"]["name"], t["function"]["arguments"])
        for t in msg.get("tool_calls") or []
    ]
    assert [(t.id, t.name, t.arguments) for t in r.tool_calls] == expected_calls
    assert (r.message.tool_calls or []) == r.tool_calls
    for call in r.tool_calls:
        json.loads(call.arguments)  # complete JSON text
    check_usage(r.usage, data["usage"])
    assert r.reasoning == (msg.get("reasoning") or None)
    assert r.raw == data
    assert r.cost is None and r.cached is False
    return r


def check_error_fixture(name: str) -> APIError:
    fx = load_fixture(name)
    provider = provider_for(fx)
    status, headers, body = response_of(fx)
    err = provider.decode_error(status, headers, body)
    wire = json.loads(body)["error"]
    assert type(err) is _STATUS_CLASS[status]
    assert err.status_code == status
    assert err.provider == provider.label
    assert wire["message"] in err.message
    assert err.code == (None if wire.get("code") is None else str(wire["code"]))
    assert KEY not in str(err) and KEY not in repr(err)
    return err


def check_stream_fixture(name: str) -> StreamRun:
    """Rebuild a recorded stream and compare it with its events, parsed independently."""
    fx = load_fixture(name)
    provider = provider_for(fx)
    run = run_stream(provider, fx["response"]["body_text"].encode())
    payloads = sse_payloads(fx["response"]["body_text"])
    text = reasoning = ""
    args: dict[int, str] = {}
    ids: dict[int, str] = {}
    names: dict[int, str] = {}
    usage = None
    finish = None
    for p in payloads:
        if p.get("usage"):
            usage = p["usage"]
        for choice in p["choices"][:1]:
            delta = choice["delta"]
            text += delta.get("content") or ""
            reasoning += delta.get("reasoning") or ""
            finish = choice["finish_reason"] or finish
            for tc in delta.get("tool_calls") or []:
                i = tc["index"]
                args[i] = args.get(i, "") + tc["function"].get("arguments", "")
                if tc.get("id"):
                    ids[i] = tc["id"]
                if tc["function"].get("name"):
                    names[i] = tc["function"]["name"]
    r = run.response
    assert r.content == text == "".join(c.delta for c in run.chunks)
    assert (r.reasoning or "") == reasoning == "".join(c.reasoning for c in run.chunks)
    assert r.provider == provider.label
    assert r.id == payloads[0]["id"]
    assert r.model == payloads[0]["model"]
    assert r.finish_reason == (_FINISH[finish] if finish else None)
    assert [(t.id, t.name, t.arguments) for t in r.tool_calls] == [
        (ids[i], names[i], args[i]) for i in sorted(args)
    ]
    assert usage is not None
    check_usage(r.usage, usage)
    if run.error is None:
        assert run.done
        usage_chunks = [c for c in run.chunks if c.usage is not None]
        assert len(usage_chunks) == 1 and usage_chunks[0] is run.chunks[-1]
    return run


# -- recorded answers ----------------------------------------------------------


@pytest.mark.parametrize("name", fixtures_of("openai", "chat", "tools"))
def test_recorded_chat_decodes(name: str) -> None:
    check_chat_fixture(name)


def test_recorded_values_spelled_out() -> None:
    r = check_chat_fixture("openai-chat-o3-mini-reasoning-tokens.json")
    assert r.usage.reasoning_tokens == 768 and r.usage.output_tokens == 809
    assert r.content.startswith("That's right\u2014I am a potato!")
    r = check_chat_fixture("openai-chat-search-preview-non-ascii-uuid-id.json")
    assert r.id == "chatcmpl-da029146-a630-4224-9d12-7d808b031fbc"
    assert "22\u00b0C" in r.content
    r = check_chat_fixture("openai-tools-gpt4o-single-tool-call.json")
    assert r.content == "" and r.finish_reason == "tool_calls"
    assert r.tool_calls == [
        ToolCall(id="call_iXFttys57ap0o16JSlC8yhYo", name="get_user_country", arguments="{}")
    ]
    r = check_chat_fixture("openai-chat-gpt4o-basic.json")
    assert r.usage.total_tokens == 21 and r.usage.cached_input_tokens == 0


@pytest.mark.parametrize("name", fixtures_of("openai", "error"))
def test_recorded_errors_decode(name: str) -> None:
    check_error_fixture(name)


def test_recorded_error_details() -> None:
    err = check_error_fixture("openai-error-400-unsupported-developer-role.json")
    assert err.code == "unsupported_value"
    assert "messages[0].role" in err.message
    # ``body`` is the error object, as the openai SDK's errors carry it
    assert isinstance(err.body, dict) and err.body["param"] == "messages[0].role"
    err = check_error_fixture("openai-error-400-null-code.json")
    assert err.code is None and "(param: web_search_options)" in err.message
    err = check_error_fixture("openai-error-404-embeddings-model-not-found.json")
    assert err.code == "model_not_found"
    assert err.message.startswith("The model `nonexistent` does not exist")


@pytest.mark.parametrize("name", fixtures_of("openai", "stream"))
def test_recorded_streams_rebuild(name: str) -> None:
    run = check_stream_fixture(name)
    assert run.error is None


def test_recorded_stream_values_spelled_out() -> None:
    run = check_stream_fixture("openai-stream-tool-call-deltas-with-usage.json")
    r = run.response
    assert r.tool_calls == [
        ToolCall(
            id="call_ZR5UUuTt3pf61kjwAJIYdVMj", name="get_capital", arguments='{"country":"UK"}'
        )
    ]
    assert r.finish_reason == "tool_calls" and r.content == ""
    assert run.chunks[0].tool_calls[0].id == "call_ZR5UUuTt3pf61kjwAJIYdVMj"
    assert run.chunks[0].tool_calls[0].name == "get_capital"
    assert all(tc.id is None for c in run.chunks[1:] for tc in c.tool_calls)
    run = check_stream_fixture("openai-stream-gpt5-text-with-usage-chunk.json")
    assert run.response.content == "Paris."
    assert [c.delta for c in run.chunks if c.delta] == ["Paris", "."]
    assert run.response.usage.input_tokens == 13 and run.response.usage.output_tokens == 11
    assert run.response.model == "gpt-5-2025-08-07"
    run = check_stream_fixture("openai-stream-after-tool-result-with-usage.json")
    assert run.response.content.startswith("The capital of the UK is London")


@pytest.mark.parametrize(
    "name", fixtures_of("openai", "stream") + fixtures_of("openrouter", "stream")
)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_stream_split_anywhere_gives_same_result(name: str, data: st.DataObject) -> None:
    fx = load_fixture(name)
    body = fx["response"]["body_text"].encode()
    provider = provider_for(fx)
    whole = run_stream(provider, body)
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=30))
    if data.draw(st.booleans()):
        cuts = list(range(0, len(body), data.draw(st.integers(1, 7))))  # tiny pieces
    split = run_stream(provider, body, cuts)
    assert [c.model_dump() for c in split.chunks] == [c.model_dump() for c in whole.chunks]
    assert split.response.model_dump() == whole.response.model_dump()
    assert split.done == whole.done
    assert type(split.error) is type(whole.error)
    assert str(split.error) == str(whole.error)


# -- decoding edge cases -------------------------------------------------------------


def _req(**kw: Any) -> ChatRequest:
    kw.setdefault("model", "gpt-4o")
    kw.setdefault("messages", [Message(role="user", content="hi")])
    return ChatRequest(**kw)


def _chat_body(message: dict[str, Any], **top: Any) -> bytes:
    body = {"id": "c1", "model": "m", "choices": [{"index": 0, "message": message}], **top}
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"",
        b"[1, 2]",
        b'{"choices": "x"}',
        b'{"choices": [{"nomessage": 1}]}',
        b'{"choices": [{"message": []}]}',
        b'{"choices": [{"message": {"tool_calls": [{"id": "a"}]}}]}',
        b'{"choices": [{"message": {"tool_calls": 5}}]}',
        b'{"choices": [7]}',
        b"\xff\xfe",
    ],
)
def test_malformed_bodies_raise_api_response_error(body: bytes) -> None:
    provider = OpenAIProvider(api_key=KEY)
    with pytest.raises(APIResponseError) as info:
        provider.decode_chat(_req(), 200, {"x-request-id": "req_1"}, body)
    assert info.value.provider == "openai" and info.value.status_code == 200
    assert info.value.request_id == "req_1"


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                ["choices", "message", "content", "tool_calls", "usage", "id", "error"]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(value=_json_values)
def test_any_json_decodes_or_raises_api_error(value: Any) -> None:
    provider = OpenAIProvider(api_key=KEY)
    body = json.dumps(value).encode()
    try:
        r = provider.decode_chat(_req(), 200, {}, body)
    except APIError:
        return
    assert isinstance(r.content, str)


def test_decode_variants_of_compatible_servers() -> None:
    provider = OpenAIProvider(api_key=KEY)
    body = _chat_body(
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            "reasoning_content": "thought",
            "tool_calls": [{"function": {"name": "f", "arguments": {"x": 1}}}],
        },
        usage={"prompt_tokens": 3, "completion_tokens": 2},
    )
    r = provider.decode_chat(_req(), 200, {}, body)
    assert r.content == "ab" and r.reasoning == "thought"
    assert r.tool_calls == [ToolCall(id="call_0", name="f", arguments='{"x":1}')]
    assert r.usage.total_tokens == 5 and r.finish_reason == "tool_calls"


def test_refusal_becomes_content() -> None:
    provider = OpenAIProvider(api_key=KEY)
    body = _chat_body({"role": "assistant", "content": None, "refusal": "I can't help."})
    assert provider.decode_chat(_req(), 200, {}, body).content == "I can't help."


@pytest.mark.parametrize(
    ("wire", "normal"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("tool_calls", "tool_calls"),
        ("function_call", "tool_calls"),
        ("content_filter", "content_filter"),
        ("eos", "stop"),
        ("error", None),
        ("something-new", None),
        (None, None),
    ],
)
def test_finish_reason_normalised(wire: str | None, normal: str | None) -> None:
    provider = OpenAIProvider(api_key=KEY)
    body = json.dumps({"choices": [{"message": {"content": "x"}, "finish_reason": wire}]}).encode()
    assert provider.decode_chat(_req(), 200, {}, body).finish_reason == normal


def test_request_id_and_empty_choices() -> None:
    provider = OpenAIProvider(api_key=KEY)
    r = provider.decode_chat(_req(), 200, {"x-request-id": "req_9"}, b'{"choices": []}')
    assert r.request_id == "req_9" and r.content == "" and r.tool_calls == []


def test_stream_edge_cases() -> None:
    provider = OpenAIProvider(api_key=KEY)
    run = run_stream(provider, b"data: {not json}\n\n")
    assert isinstance(run.error, StreamError) and not isinstance(run.error, BadRequestError)
    run = run_stream(provider, b"data: [1]\n\n")
    assert isinstance(run.error, StreamError)
    run = run_stream(provider, b"")
    assert not run.done and run.chunks == []
    run = run_stream(provider, b'data: {"error": {"message": "boom", "type": "server_error"}}\n\n')
    assert type(run.error) is StreamError and run.error.message == "boom"
    run = run_stream(
        provider, b'data: {"choices":[{"delta":{"refusal":"no"},"finish_reason":null}]}\n\n'
    )
    assert run.response.content == "no"
    # a final event without a trailing blank line is still read (flush)
    run = run_stream(provider, b'data: {"choices":[{"delta":{"content":"x"}}]}\n\ndata: [DONE]')
    assert run.done and run.response.content == "x"


# -- errors -----------------------------------------------------------------------------


def test_error_headers_fill_retry_fields() -> None:
    provider = OpenAIProvider(api_key=KEY)
    headers = {"retry-after": "7", "x-request-id": "req_42", "x-should-retry": "true"}
    body = json.dumps(
        {
            "error": {
                "message": "Rate limit reached",
                "type": "requests",
                "code": "rate_limit_exceeded",
            }
        }
    ).encode()
    err = provider.decode_error(429, headers, body)
    assert isinstance(err, RateLimitError)
    assert (err.retry_after, err.request_id, err.should_retry) == (7.0, "req_42", True)
    err = provider.decode_error(429, {"retry-after-ms": "1500"}, body)
    assert err.retry_after == 1.5


def test_context_window_error_detected() -> None:
    provider = OpenAIProvider(api_key=KEY)
    body = json.dumps(
        {
            "error": {
                "message": "This model's maximum context length is 8192 tokens.",
                "type": "invalid_request_error",
                "code": "context_length_exceeded",
                "param": "messages",
            }
        }
    ).encode()
    err = provider.decode_error(400, {}, body)
    assert isinstance(err, ContextWindowExceededError)


def test_non_json_error_bodies() -> None:
    provider = OpenAIProvider(api_key=KEY)
    page = b"<html>Bad gateway</html>" + b"x" * 2000
    err = provider.decode_error(502, {}, page)
    assert isinstance(err, ServerError) and err.status_code == 502
    assert "HTML page" in err.message and "<html>" not in err.message and len(err.message) < 200
    assert err.raw == page and err.body == page.decode()
    err = provider.decode_error(503, {}, b"")
    assert isinstance(err, ServerError)
    assert err.message == "HTTP 503 Service Unavailable with an empty body"
    err = provider.decode_error(404, {}, b'{"detail": "Not Found"}')
    assert isinstance(err, NotFoundError) and err.message == "Not Found"
    err = provider.decode_error(404, {}, b'{"error": "model \'llama9\' not found"}')
    assert isinstance(err, NotFoundError) and "llama9" in err.message
    err = provider.decode_error(
        400, {}, b'{"object": "error", "message": "bad", "type": "BadRequestError", "code": 400}'
    )
    assert isinstance(err, BadRequestError) and err.message == "bad" and err.code == "400"


def test_error_echoing_the_key_is_redacted() -> None:
    provider = OpenAIProvider(api_key=KEY)
    body = json.dumps(
        {"error": {"message": f"Incorrect API key provided: {KEY}.", "code": "invalid_api_key"}}
    ).encode()
    err = provider.decode_error(401, {}, body)
    assert isinstance(err, AuthenticationError)
    assert KEY not in str(err) and KEY not in json.dumps(err.body) and "[REDACTED]" in err.message
    err = provider.decode_error(401, {}, f"bad key {KEY}".encode())
    assert KEY not in str(err) and KEY not in str(err.body)
    with pytest.raises(APIResponseError) as info:
        provider.decode_chat(_req(), 200, {}, f"oops {KEY}".encode())
    assert KEY not in str(info.value)


# -- encoding ------------------------------------------------------------------------------


def _body(provider: Provider, request: ChatRequest) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(provider.encode_chat(request).content)
    return result


_CHAT_REQUESTS = [
    n
    for n in fixtures_of("openai", "chat", "tools", "stream", "error")
    if load_fixture(n)["request"]["path"].endswith("/chat/completions")
]


@pytest.mark.parametrize("name", _CHAT_REQUESTS)
def test_recorded_requests_are_reproduced(name: str) -> None:
    fx = load_fixture(name)
    provider = provider_for(fx)
    expected = dict(fx["request"]["body"])
    if expected.get("stream") is False:
        del expected["stream"]  # the default is not sent
    # None fields are left out ("content": null on a tool-call turn means the same)
    expected["messages"] = [
        {k: v for k, v in m.items() if v is not None} for m in expected["messages"]
    ]
    http = provider.encode_chat(request_from_fixture(fx))
    assert json.loads(http.content) == expected
    assert http.url == "https://api.openai.com/v1/chat/completions"
    assert http.url.endswith(fx["request"]["path"])


def test_encode_chat_body_and_headers() -> None:
    provider = OpenAIProvider(api_key=KEY, organization="org-1", project="proj-1")
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    request = ChatRequest(
        model="gpt-4o",
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}], "name": "ann"},
            {
                "role": "assistant",
                "tool_calls": [{"id": "call_1", "name": "f", "arguments": '{"a":1}'}],
            },
            {"role": "tool", "content": "42", "tool_call_id": "call_1"},
        ],
        temperature=0.2,
        top_p=0.9,
        max_tokens=50,
        stop=["END"],
        tools=tools,
        tool_choice="auto",
        response_format={"type": "json_object"},
        seed=7,
        user="u-1",
        metadata={"project": "p"},
        timeout=5,
    )
    http = provider.encode_chat(request)
    assert (http.method, http.url) == ("POST", "https://api.openai.com/v1/chat/completions")
    assert http.headers["Authorization"] == f"Bearer {KEY}"
    assert http.headers["Content-Type"] == "application/json"
    assert http.headers["OpenAI-Organization"] == "org-1"
    assert http.headers["OpenAI-Project"] == "proj-1"
    assert json.loads(http.content) == {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}], "name": "ann"},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"a":1}'},
                    }
                ],
            },
            {"role": "tool", "content": "42", "tool_call_id": "call_1"},
        ],
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 50,
        "stop": ["END"],
        "tools": tools,
        "tool_choice": "auto",
        "response_format": {"type": "json_object"},
        "seed": 7,
        "user": "u-1",
    }


@pytest.mark.parametrize(
    ("model", "field"),
    [
        ("gpt-4o", "max_tokens"),
        ("gpt-4o-mini", "max_tokens"),
        ("o1-mini", "max_completion_tokens"),
        ("o3", "max_completion_tokens"),
        ("o4-mini", "max_completion_tokens"),
        ("gpt-5", "max_completion_tokens"),
        ("gpt-5-nano", "max_completion_tokens"),
        ("openai/o3-mini", "max_completion_tokens"),
    ],
)
def test_max_tokens_field_per_model(model: str, field: str) -> None:
    body = _body(OpenAIProvider(api_key=KEY), _req(model=model, max_tokens=10))
    assert body[field] == 10
    assert {"max_tokens", "max_completion_tokens"} - {field} & body.keys() == set()


def test_stream_options_and_extra_merge() -> None:
    provider = OpenAIProvider(api_key=KEY)
    http = provider.encode_chat(_req(stream=True))
    assert json.loads(http.content)["stream"] is True
    assert json.loads(http.content)["stream_options"] == {"include_usage": True}
    assert http.headers["Accept"] == "text/event-stream"
    body = _body(
        provider,
        _req(
            stream=True,
            temperature=1.0,
            extra={"stream_options": {"include_usage": False}, "temperature": 0.5, "n": 2},
        ),
    )
    assert body["stream_options"] == {"include_usage": False}
    assert body["temperature"] == 0.5 and body["n"] == 2
    assert "stream" not in _body(provider, _req())


def test_unserialisable_extra_is_an_invalid_request() -> None:
    provider = OpenAIProvider(api_key=KEY)
    with pytest.raises(InvalidRequestError):
        provider.encode_chat(_req(extra={"x": object()}))


def test_headers_are_computed_once() -> None:
    provider = OpenAIProvider(api_key=KEY, headers={"X-Custom": "1"})
    a = provider.encode_chat(_req())
    b = provider.encode_chat(_req(model="gpt-4o-mini"))
    assert a.headers is b.headers and a.headers["X-Custom"] == "1"


def test_base_url_and_compatible_provider() -> None:
    provider = OpenAIProvider(api_key=KEY, base_url="http://localhost:8000/v1/")
    assert provider.encode_chat(_req()).url == "http://localhost:8000/v1/chat/completions"
    compat = OpenAICompatibleProvider("http://127.0.0.1:11434/v1")
    assert compat.name == "openai-compatible" and compat.label == "openai-compatible"
    http = compat.encode_chat(_req(model="llama3"))
    assert "Authorization" not in http.headers
    assert http.url == "http://127.0.0.1:11434/v1/chat/completions"
    keyed = OpenAICompatibleProvider(base_url="http://vllm:8000/v1", api_key="tok", label="vllm")
    assert keyed.encode_chat(_req()).headers["Authorization"] == "Bearer tok"
    assert keyed.decode_error(500, {}, b"{}").provider == "vllm"
    with pytest.raises(ConfigurationError):
        OpenAICompatibleProvider(None)
    with pytest.raises(ConfigurationError):
        OpenAIProvider(api_key=KEY, base_url="ftp://nope")


def test_api_key_only_in_authorization_header() -> None:
    provider = OpenAIProvider(api_key=KEY, organization="org")
    for request in (_req(), _req(stream=True)):
        http = provider.encode_chat(request)
        assert [k for k, v in http.headers.items() if KEY in v] == ["Authorization"]
        assert KEY.encode() not in http.content and KEY not in http.url
        assert KEY not in repr(http)
    embed = provider.encode_embed(["a"], "text-embedding-3-small")
    assert KEY not in repr(embed) and KEY.encode() not in embed.content
    assert KEY not in repr(provider) and KEY not in str(provider)
    assert KEY not in repr(provider.stream_decoder(_req(stream=True)))


# -- embeddings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "dims"),
    [
        ("openai-embeddings-small-dimensions.json", 128),
        ("openai-embeddings-query-base64.json", 1536),
    ],
)
def test_recorded_base64_embeddings(name: str, dims: int) -> None:
    fx = load_fixture(name)
    provider = OpenAIProvider(api_key=KEY)
    req = fx["request"]["body"]
    http = provider.encode_embed(
        req["input"],
        req["model"],
        dimensions=req.get("dimensions"),
        encoding_format=req["encoding_format"],
    )
    assert json.loads(http.content) == req
    assert http.url == "https://api.openai.com/v1/embeddings"
    status, headers, body = response_of(fx)
    r = provider.decode_embed(req["model"], status, headers, body)
    data = json.loads(body)
    raw = base64.b64decode(data["data"][0]["embedding"])
    assert len(r.vectors) == 1 and len(r.vectors[0]) == dims
    assert r.vectors[0] == list(struct.unpack(f"<{dims}f", raw))
    assert math.isclose(math.sqrt(sum(x * x for x in r.vectors[0])), 1.0, abs_tol=1e-3)
    assert r.model == "text-embedding-3-small" and r.provider == "openai"
    assert (r.usage.input_tokens, r.usage.total_tokens) == (
        data["usage"]["prompt_tokens"],
        data["usage"]["total_tokens"],
    )


def test_float_embeddings_in_input_order() -> None:
    provider = OpenAIProvider(api_key=KEY)
    http = provider.encode_embed(["a", "b"], "emb")
    assert json.loads(http.content) == {
        "model": "emb",
        "input": ["a", "b"],
        "encoding_format": "float",
    }
    b64 = base64.b64encode(struct.pack("<2f", 0.5, -2.0)).decode()
    body = json.dumps(
        {
            "data": [
                {"index": 2, "embedding": b64},
                {"index": 1, "embedding": [0.25, 1]},
                {"index": 0, "embedding": [1.5, 2.5]},
            ],
            "usage": {"prompt_tokens": 2, "total_tokens": 2},
        }
    ).encode()
    r = provider.decode_embed("emb", 200, {}, body)
    assert r.vectors == [[1.5, 2.5], [0.25, 1.0], [0.5, -2.0]]
    assert r.model == "emb" and r.usage.input_tokens == 2
    for bad in (
        b"nope",
        b'{"data": 1}',
        b'{"data": [{"embedding": 3}]}',
        b'{"data": [{"embedding": "@@"}]}',
    ):
        with pytest.raises(APIResponseError):
            provider.decode_embed("emb", 200, {}, bad)


def test_embedding_error_decodes() -> None:
    err = check_error_fixture("openai-error-404-embeddings-model-not-found.json")
    assert isinstance(err, NotFoundError)


# -- through Provider.send / open_stream with an in-memory transport ----------------------------


class _Body:
    def __init__(self, status: int, headers: Mapping[str, str], pieces: list[bytes]) -> None:
        self.status = status
        self.headers = headers
        self._pieces = pieces
        self.closed = False

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        for piece in self._pieces:
            yield piece

    async def aread(self) -> bytes:
        return b"".join(self._pieces)

    async def aclose(self) -> None:
        self.closed = True


class RecordedTransport:
    """An ``HTTPTransport`` that answers every request with one recorded exchange."""

    def __init__(self, fx: Mapping[str, Any], piece: int = 64) -> None:
        self.status, self.headers, self.body = response_of(fx)
        self.piece = piece
        self.sent: list[tuple[str, str, Mapping[str, str], bytes]] = []
        self.opened: list[_Body] = []

    async def request(
        self, method: str, url: str, headers: Mapping[str, str], content: bytes
    ) -> tuple[int, Mapping[str, str], bytes]:
        self.sent.append((method, url, headers, content))
        return self.status, self.headers, self.body

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
        b = self.body
        body = _Body(
            self.status, self.headers, [b[i : i + self.piece] for i in range(0, len(b), self.piece)]
        )
        self.opened.append(body)
        return body

    async def aclose(self) -> None:
        pass


@pytest.mark.anyio
async def test_send_and_stream_through_the_base_glue() -> None:
    provider = OpenAIProvider(api_key=KEY)
    fx = load_fixture("openai-tools-gpt4o-mini-tool-call.json")
    transport = RecordedTransport(fx)
    r = await provider.send(request_from_fixture(fx), transport)
    assert r.tool_calls[0].arguments == '{"country":"England"}' and r.latency_ms >= 0

    fx = load_fixture("openai-stream-after-tool-result-with-usage.json")
    transport = RecordedTransport(fx, piece=17)
    r = await provider.send(request_from_fixture(fx), transport)
    assert r.stream is not None
    chunks = [c async for c in r.stream]
    assert r.stream.completed and r.stream.error is None
    final = r.stream.response
    assert final is not None and final.content == "".join(c.delta for c in chunks)
    assert final.content.startswith("The capital of the UK is London")
    assert final.usage.total_tokens > 0 and transport.opened[0].closed

    fx = load_fixture("openai-error-400-unsupported-system-role.json")
    with pytest.raises(BadRequestError) as info:
        await provider.send(request_from_fixture(fx), RecordedTransport(fx))
    assert info.value.provider == "openai"
