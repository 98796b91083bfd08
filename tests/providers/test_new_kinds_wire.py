"""The Responses API, Gemini, Azure OpenAI and Bedrock over loopback, on both transports.

Per kind: chat, stream, tools with the history round trip (in aio_llm's,
OpenAI's and Anthropic's message shapes), provider signatures carried into
the next turn, structured output on the wire, errors by status, cancellation
mid-stream, retries before the first chunk (and not after it), in-band
stream errors, cost, and the key never in a URL, a log line or an error.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from aio_llm import (
    APIStatusError,
    AsyncLLMClient,
    AuthenticationError,
    BadRequestError,
    ClientConfig,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    StreamError,
)
from aio_llm.cost import PricingTable
from aio_llm.errors import EventStreamError
from aio_llm.providers import Provider, create_provider
from aio_llm.testing import FakeLLMServer, Fault

KEY = "sk-secret-new-kinds-0123456789abcdef"
KINDS = ["openai-responses", "gemini", "azure-openai", "azure-openai-responses", "bedrock"]
MODEL = {
    "openai-responses": "gpt-4o",
    "gemini": "gemini-2.5-flash",
    "azure-openai": "gpt-4o",
    "azure-openai-responses": "gpt-4o",
    "bedrock": "us.amazon.nova-micro-v1:0",
}
HELLO = [{"role": "user", "content": "Hello"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
}


@pytest.fixture(params=["aiohttp", "httpx"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def server() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer(stream_chunks=6) as srv:
        yield srv


def provider(kind: str, srv: FakeLLMServer, **options: Any) -> Provider:
    if kind == "openai-responses":
        return create_provider(kind, api_key=KEY, base_url=srv.openai_url, environ={}, **options)
    if kind == "gemini":
        return create_provider(kind, api_key=KEY, base_url=srv.url + "/v1beta", environ={})
    if kind == "azure-openai":
        return create_provider(
            kind, api_key=KEY, base_url=srv.url, api_version="2024-10-21", environ={}
        )
    if kind == "azure-openai-responses":
        return create_provider(kind, api_key=KEY, base_url=srv.url, environ={})
    env = {"AWS_ACCESS_KEY_ID": "AKIDWIRETEST", "AWS_SECRET_ACCESS_KEY": KEY}
    return create_provider("bedrock", base_url=srv.url, region="us-east-1", environ=env)


def client(kind: str, srv: FakeLLMServer, transport: str, **kwargs: Any) -> AsyncLLMClient:
    config = ClientConfig(transport=transport, retry_base_delay=0.01, retry_max_delay=0.02)
    return AsyncLLMClient(provider(kind, srv), model=MODEL[kind], config=config, **kwargs)


# -- chat, stream, cost -----------------------------------------------------------------


@pytest.mark.anyio
async def test_chat_is_read_and_priced(kind: str, server: FakeLLMServer, transport: str) -> None:
    async with client(kind, server, transport) as c:
        r = await c.chat(HELLO)
    assert (r.content, r.finish_reason, r.provider) == ("Echo: Hello", "stop", kind)
    assert r.usage.input_tokens == 1 and r.usage.output_tokens == 2
    price = PricingTable().get(MODEL[kind])
    assert price is not None and r.cost is not None
    assert r.cost == pytest.approx(price.cost(r.usage)) and r.cost > 0
    assert r.message.role == "assistant" and r.message.content == "Echo: Hello"


@pytest.mark.anyio
async def test_stream_is_read_and_priced(kind: str, server: FakeLLMServer, transport: str) -> None:
    async with client(kind, server, transport) as c:
        async with c.stream([{"role": "user", "content": "stream these words please"}]) as s:
            deltas = [chunk.delta async for chunk in s]
    final = s.response
    assert final is not None and s.completed
    assert "".join(deltas) == final.content == "Echo: stream these words please"
    assert len([d for d in deltas if d]) > 1
    assert final.finish_reason == "stop"
    assert final.usage.input_tokens == 4 and final.usage.output_tokens == 5
    assert final.cost is not None and final.cost > 0
    sent = server.last_request
    if kind == "gemini":
        assert sent.path.endswith(":streamGenerateContent") and sent.query == "alt=sse"
    elif kind == "bedrock":
        assert sent.path.endswith("/converse-stream")
    else:
        assert sent.json()["stream"] is True


# -- tools and the history round trip ---------------------------------------------------


def history_shapes(call_id: str, arguments: str, reply: Any) -> dict[str, list[Any]]:
    """The same conversation in aio_llm's, OpenAI's and Anthropic's message shapes."""
    ask = {"role": "user", "content": "CALL_TOOL: weather in Paris?"}
    return {
        "aio_llm": [ask, reply, {"role": "tool", "tool_call_id": call_id, "content": "sunny"}],
        "openai": [
            ask,
            {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": arguments},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call_id, "content": "sunny"},
        ],
        "anthropic": [
            ask,
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": call_id,
                        "name": "get_weather",
                        "input": json.loads(arguments),
                    }
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call_id, "content": "sunny"}],
            },
        ],
    }


def wire_tool_round_trip(kind: str, body: dict[str, Any]) -> tuple[str, str, Any, str]:
    """(call id, tool name, arguments, result) as the second request carried them."""
    if kind in ("openai-responses", "azure-openai-responses"):
        items = body["input"]
        call = next(i for i in items if i.get("type") == "function_call")
        out = next(i for i in items if i.get("type") == "function_call_output")
        assert out["call_id"] == call["call_id"]
        return call["call_id"], call["name"], json.loads(call["arguments"]), out["output"]
    if kind == "gemini":
        model, result = body["contents"][1], body["contents"][2]
        assert model["role"] == "model" and result["role"] == "user"
        fn = model["parts"][0]["functionCall"]
        response = result["parts"][0]["functionResponse"]
        assert response["name"] == fn["name"]
        return fn.get("id", ""), fn["name"], fn["args"], response["response"]["result"]
    if kind == "bedrock":
        use = body["messages"][1]["content"][0]["toolUse"]
        result = body["messages"][2]["content"][0]["toolResult"]
        assert result["toolUseId"] == use["toolUseId"]
        return use["toolUseId"], use["name"], use["input"], result["content"][0]["text"]
    call = body["messages"][1]["tool_calls"][0]
    tool = body["messages"][2]
    assert tool["role"] == "tool" and tool["tool_call_id"] == call["id"]
    return (
        call["id"],
        call["function"]["name"],
        json.loads(call["function"]["arguments"]),
        tool["content"],
    )


@pytest.mark.anyio
async def test_tool_call_and_history_in_every_shape(
    kind: str, server: FakeLLMServer, transport: str
) -> None:
    async with client(kind, server, transport) as c:
        first = await c.chat(
            [{"role": "user", "content": "CALL_TOOL: weather in Paris?"}], tools=[WEATHER]
        )
        assert first.finish_reason == "tool_calls"
        (call,) = first.tool_calls
        assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "test"}
        seen = set()
        for shape, messages in history_shapes(call.id, call.arguments, first.message).items():
            second = await c.chat(messages, tools=[WEATHER])
            assert second.content == "Echo: CALL_TOOL: weather in Paris?", shape
            wire_id, name, args, result = wire_tool_round_trip(kind, server.last_request.json())
            assert (name, args, result) == ("get_weather", {"city": "test"}, "sunny"), shape
            if kind != "gemini":  # Gemini's fake call has no id: none goes back either
                assert wire_id == call.id, shape
            seen.add(json.dumps(server.last_request.json(), sort_keys=True))
        assert len(seen) == 1  # the three shapes put the same bytes on the wire


@pytest.mark.anyio
async def test_tool_choice_and_anthropic_tool_definitions(
    kind: str, server: FakeLLMServer, transport: str
) -> None:
    anthropic_tool = {
        "name": "get_weather",
        "description": "Weather in a city",
        "input_schema": WEATHER["function"]["parameters"],  # type: ignore[index]
    }
    async with client(kind, server, transport) as c:
        r = await c.chat(
            [{"role": "user", "content": "CALL_TOOL"}],
            tools=[anthropic_tool],
            tool_choice={"type": "tool", "name": "get_weather"},
        )
    assert r.tool_calls[0].name == "get_weather"
    body = server.last_request.json()
    if kind == "gemini":
        assert body["toolConfig"] == {
            "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
        }
        decl = body["tools"][0]["functionDeclarations"][0]
        assert decl["parametersJsonSchema"] == anthropic_tool["input_schema"]
    elif kind == "bedrock":
        assert body["toolConfig"]["toolChoice"] == {"tool": {"name": "get_weather"}}
        spec = body["toolConfig"]["tools"][0]["toolSpec"]
        assert spec["inputSchema"] == {"json": anthropic_tool["input_schema"]}
    elif kind == "azure-openai":
        assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
        assert body["tools"][0]["function"]["parameters"] == anthropic_tool["input_schema"]
    else:
        assert body["tool_choice"] == {"type": "function", "name": "get_weather"}
        assert body["tools"][0]["strict"] is False  # the chat-completions default, said out loud


# -- signatures carried into the next turn --------------------------------------------------

GEMINI_SIGNED = {
    "candidates": [
        {
            "content": {
                "role": "model",
                "parts": [
                    {"text": "thinking about it", "thought": True},
                    {
                        "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                        "thoughtSignature": "c2lnLWNhbGw=",
                    },
                    {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
                ],
            },
            "finishReason": "STOP",
        }
    ],
    "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 4, "thoughtsTokenCount": 3},
    "modelVersion": "gemini-2.5-flash",
    "responseId": "r1",
}
BEDROCK_SIGNED = {
    "output": {
        "message": {
            "role": "assistant",
            "content": [
                {
                    "reasoningContent": {
                        "reasoningText": {"text": "hmm", "signature": "c2lnLWJlZHJvY2s="}
                    }
                },
                {"reasoningContent": {"redactedContent": "cmVkYWN0ZWQ="}},
                {"text": "Let me look."},
                {
                    "toolUse": {
                        "toolUseId": "tooluse_1",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    }
                },
            ],
        }
    },
    "stopReason": "tool_use",
    "usage": {"inputTokens": 5, "outputTokens": 7, "totalTokens": 12},
}
RESPONSES_SIGNED = {
    "id": "resp_1",
    "object": "response",
    "status": "completed",
    "model": "gpt-5",
    "output": [
        {
            "type": "reasoning",
            "id": "rs_1",
            "summary": [{"type": "summary_text", "text": "plan"}],
            "encrypted_content": "ZW5jcnlwdGVk",
        },
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": '{"city":"Paris"}',
        },
    ],
    "usage": {
        "input_tokens": 5,
        "output_tokens": 9,
        "output_tokens_details": {"reasoning_tokens": 4},
    },
}


def signed_answer(kind: str) -> dict[str, Any] | None:
    """A recorded-shape answer with reasoning signatures (chat completions has none)."""
    if kind == "gemini":
        return GEMINI_SIGNED
    if kind == "bedrock":
        return BEDROCK_SIGNED
    if kind.endswith("responses"):
        return RESPONSES_SIGNED
    return None


def check_signatures_sent(kind: str, body: dict[str, Any]) -> None:
    if kind == "gemini":
        parts = body["contents"][1]["parts"]
        assert parts[0] == {"text": "thinking about it", "thought": True}
        assert parts[1]["thoughtSignature"] == "c2lnLWNhbGw="
        assert "thoughtSignature" not in parts[2]  # only the call that carried one
        assert [p["functionResponse"]["name"] for p in body["contents"][2]["parts"]] == [
            "get_weather",
            "get_weather",
        ]
    elif kind == "bedrock":
        content = body["messages"][1]["content"]
        assert content[0] == {
            "reasoningContent": {"reasoningText": {"text": "hmm", "signature": "c2lnLWJlZHJvY2s="}}
        }
        assert content[1] == {"reasoningContent": {"redactedContent": "cmVkYWN0ZWQ="}}
        assert content[2] == {"text": "Let me look."}
        assert content[3]["toolUse"]["toolUseId"] == "tooluse_1"
    else:
        items = body["input"]
        assert items[1] == {
            "type": "reasoning",
            "id": "rs_1",
            "summary": [{"type": "summary_text", "text": "plan"}],
            "encrypted_content": "ZW5jcnlwdGVk",
        }
        assert items[2]["call_id"] == "call_1" and items[3]["call_id"] == "call_1"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "kind", ["openai-responses", "gemini", "azure-openai-responses", "bedrock"]
)
async def test_provider_signatures_survive_into_the_next_turn(
    kind: str, server: FakeLLMServer, transport: str
) -> None:
    answer = signed_answer(kind)
    assert answer is not None
    server.enqueue(Fault.raw(200, {"content-type": "application/json"}, json.dumps(answer)))
    async with client(kind, server, transport) as c:
        first = await c.chat([{"role": "user", "content": "CALL_TOOL"}], tools=[WEATHER])
        assert first.finish_reason == "tool_calls" and first.reasoning
        history: list[Any] = [{"role": "user", "content": "CALL_TOOL"}, first.message]
        history += [
            {"role": "tool", "tool_call_id": tc.id, "content": "sunny"} for tc in first.tool_calls
        ]
        # the message also survives a trip through JSON, as a stored conversation would
        stored = json.loads(
            json.dumps([m if isinstance(m, dict) else m.model_dump() for m in history])
        )
        for messages in (history, stored):
            await c.chat(messages, tools=[WEATHER])
            check_signatures_sent(kind, server.last_request.json())


# -- structured output ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_structured_output_reaches_the_native_field(
    kind: str, server: FakeLLMServer, transport: str
) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "City", "schema": SCHEMA, "strict": True}}
    async with client(kind, server, transport) as c:
        r = await c.chat([{"role": "user", "content": "Largest city?"}], response_format=fmt)
    assert json.loads(r.content) == {"city": "test", "population": 1}
    body = server.last_request.json()
    if kind == "gemini":
        config = body["generationConfig"]
        assert config["responseMimeType"] == "application/json"
        assert config["responseJsonSchema"] == SCHEMA
    elif kind == "bedrock":
        text_format = body["outputConfig"]["textFormat"]
        assert text_format["type"] == "json_schema"
        assert json.loads(text_format["structure"]["jsonSchema"]["schema"]) == SCHEMA
        assert text_format["structure"]["jsonSchema"]["name"] == "City"
    elif kind == "azure-openai":
        assert body["response_format"] == fmt
    else:
        assert body["text"]["format"] == {
            "type": "json_schema",
            "name": "City",
            "schema": SCHEMA,
            "strict": True,
        }


# -- errors, retries, cancellation ------------------------------------------------------------

STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
    500: ServerError,
    503: ServerError,
}


def chain_of(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in out:
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


@pytest.mark.anyio
@pytest.mark.parametrize("status", sorted(STATUS_ERRORS))
async def test_errors_follow_the_status(
    kind: str, server: FakeLLMServer, transport: str, status: int
) -> None:
    server.enqueue(Fault.status(status, message=f"nope {status}"))
    async with client(kind, server, transport, middleware=[]) as c:
        with pytest.raises(APIStatusError) as info:
            await c.chat(HELLO)
    err = info.value
    assert type(err) is STATUS_ERRORS[status]
    assert err.status_code == status and err.provider == kind
    assert f"nope {status}" in str(err)
    if kind == "bedrock":
        assert err.code and err.code.endswith("Exception")
    for e in chain_of(err):
        assert KEY not in str(e) and KEY not in repr(e)


@pytest.mark.anyio
async def test_stream_fault_before_the_first_chunk_is_retried(
    kind: str, server: FakeLLMServer, transport: str
) -> None:
    server.enqueue(Fault.status(503))
    server.enqueue(Fault.truncate(0))
    async with client(kind, server, transport) as c:
        async with c.stream(HELLO, timeout=5) as s:
            text = "".join([chunk.delta async for chunk in s])
        assert c.metrics()["retry.attempts"] == 2
    assert text == "Echo: Hello"
    assert server.request_count == 3


@pytest.mark.anyio
async def test_stream_cut_after_chunks_is_not_retried(
    kind: str, server: FakeLLMServer, transport: str
) -> None:
    server.enqueue(Fault.truncate(2))
    deltas = []
    async with client(kind, server, transport) as c:
        with pytest.raises(StreamError):
            async with c.stream(
                [{"role": "user", "content": "one two three four five"}], timeout=5
            ) as s:
                async for chunk in s:
                    deltas.append(chunk.delta)
        assert c.metrics()["retry.attempts"] == 0
    assert len([d for d in deltas if d]) == 2
    assert server.request_count == 1


@pytest.mark.anyio
async def test_in_band_stream_error_is_typed(
    kind: str, server: FakeLLMServer, transport: str
) -> None:
    server.enqueue(Fault.stream_error(2, message="the model fell over"))
    # chat completions' in-band error names no status (a StreamError); the others do (500)
    expected = StreamError if kind == "azure-openai" else ServerError
    async with client(kind, server, transport, middleware=[]) as c:
        with pytest.raises(expected, match="the model fell over"):
            async with c.stream([{"role": "user", "content": "one two three four"}]) as s:
                async for _ in s:
                    pass


@pytest.mark.anyio
async def test_malformed_stream_event_is_a_stream_error(
    kind: str, server: FakeLLMServer, transport: str
) -> None:
    server.enqueue(Fault.malformed())
    expected = EventStreamError if kind == "bedrock" else StreamError
    async with client(kind, server, transport, middleware=[]) as c:
        with pytest.raises(expected):
            async with c.stream([{"role": "user", "content": "one two three four"}]) as s:
                async for _ in s:
                    pass


@pytest.mark.anyio
async def test_cancelling_mid_stream_closes_the_connection(kind: str, transport: str) -> None:
    async with FakeLLMServer(stream_chunks=20, chunk_delay=0.05) as srv:
        got = 0
        async with client(kind, srv, transport) as c:
            with anyio.CancelScope() as scope:
                async with c.stream([{"role": "user", "content": " ".join(["w"] * 40)}]) as s:
                    async for chunk in s:
                        got += bool(chunk.delta)
                        if got == 2:
                            scope.cancel()
            assert scope.cancelled_caught and got == 2
            assert not s.completed
            await srv.wait_until(lambda x: x.disconnects == 1 and x.in_flight == 0, timeout=5)


# -- the key stays secret ------------------------------------------------------------------------


def check_key_placement(kind: str, headers: Any, path: str, query: str) -> None:
    assert KEY not in path and KEY not in query and "key=" not in query
    if kind == "gemini":
        assert headers["x-goog-api-key"] == KEY and "authorization" not in headers
    elif kind.startswith("azure"):
        assert headers["api-key"] == KEY and "authorization" not in headers
    elif kind == "bedrock":
        auth = headers["authorization"]
        assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDWIRETEST/")
        assert all(KEY not in str(v) for v in headers.values())  # the secret only signs
    else:
        assert headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.anyio
async def test_key_never_in_urls_logs_or_errors(
    kind: str, server: FakeLLMServer, transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    server.enqueue(Fault.status(401, message="bad key"), Fault.reset(), Fault.stream_error(1))
    async with client(kind, server, transport, middleware=[]) as c:
        for _ in range(2):
            try:
                await c.chat(HELLO)
            except Exception as exc:
                errors.append(exc)
        try:
            async with c.stream(HELLO) as s:
                async for _ in s:
                    pass
        except Exception as exc:
            errors.append(exc)
        await c.chat(HELLO)
        assert KEY not in repr(c) and KEY not in repr(c.providers)
    assert len(errors) == 3
    for err in errors:
        for e in chain_of(err):
            assert KEY not in str(e) and KEY not in repr(e)
    for record in caplog.records:
        assert KEY not in record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            assert KEY not in str(record.exc_info[1])
    for sent in server.requests:
        check_key_placement(kind, sent.headers, sent.path, sent.query)


@pytest.mark.anyio
async def test_bedrock_bearer_api_key(server: FakeLLMServer, transport: str) -> None:
    env = {"AWS_BEARER_TOKEN_BEDROCK": KEY, "AWS_REGION": "eu-west-1"}
    bedrock = create_provider("bedrock", base_url=server.url, environ=env)
    config = ClientConfig(transport=transport)
    async with AsyncLLMClient(bedrock, config=config, middleware=[]) as c:
        r = await c.chat(HELLO, model="eu.amazon.nova-lite-v1:0")
    assert r.content == "Echo: Hello"
    sent = server.last_request
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert "x-amz-date" not in sent.headers
    assert sent.path == "/model/eu.amazon.nova-lite-v1%3A0/converse"


# -- fallback across kinds ------------------------------------------------------------------


@pytest.fixture
async def backup() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer(reply="from the backup") as srv:
        yield srv


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("primary", "target", "model"),
    [("azure-openai", "openai", "gpt-4o"), ("bedrock", "anthropic", "claude-sonnet-4-5")],
)
async def test_fallback_across_kinds(
    server: FakeLLMServer,
    backup: FakeLLMServer,
    transport: str,
    primary: str,
    target: str,
    model: str,
) -> None:
    from aio_llm import FallbackTarget

    server.set_fault(Fault.status(503))
    base = backup.url if target == "anthropic" else backup.openai_url
    config = ClientConfig(
        transport=transport,
        retry_base_delay=0.01,
        retry_max_delay=0.02,
        fallbacks=(FallbackTarget(provider=target, model=model),),
    )
    first_model = (
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0" if primary == "bedrock" else "gpt-4o"
    )
    # a Bedrock turn with signed reasoning in the history: Anthropic must not get it
    history: list[Any] = [{"role": "user", "content": "Hi"}]
    if primary == "bedrock":
        history += [
            {
                "role": "assistant",
                "content": "Hello",
                "thinking": [{"text": "hmm", "signature": "c2ln", "provider": "bedrock"}],
            },
            {"role": "user", "content": "Again"},
        ]
    async with AsyncLLMClient(
        provider(primary, server),
        model=first_model,
        config=config,
        providers={target: {"api_key": "sk-backup", "base_url": base}},
    ) as c:
        r = await c.chat(history, timeout=5)
    assert (r.provider, r.model, r.content) == (target, model, "from the backup")
    assert server.request_count >= 1 and backup.request_count == 1
    sent = backup.last_request.json()
    assert sent["model"] == model
    assert "c2ln" not in json.dumps(sent)
    assert r.cost is not None and r.cost > 0


@pytest.mark.anyio
async def test_bedrock_frame_corrupt_before_the_first_chunk_is_retried(
    server: FakeLLMServer, transport: str
) -> None:
    from aio_llm.testing.server._fmt_bedrock import BEDROCK_DIALECT, event_frame

    broken = BEDROCK_DIALECT.malformed_event
    body = event_frame("messageStart", {"role": "assistant"}) + broken
    server.enqueue(Fault.raw(200, {"content-type": "application/vnd.amazon.eventstream"}, body))
    async with client("bedrock", server, transport) as c:
        async with c.stream(HELLO, timeout=5) as s:
            text = await s.text()
        assert c.metrics()["retry.attempts"] == 1
    assert text == "Echo: Hello" and server.request_count == 2


@pytest.mark.anyio
async def test_client_by_kind_from_the_environment(
    server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "OPENAI_API_KEY": KEY,
        "OPENAI_BASE_URL": server.openai_url,
        "GEMINI_API_KEY": KEY,
        "GOOGLE_GEMINI_BASE_URL": server.url,
        "AZURE_OPENAI_API_KEY": KEY,
        "AZURE_OPENAI_ENDPOINT": server.url,
        "OPENAI_API_VERSION": "2024-10-21",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "AKIDENV",
        "AWS_SECRET_ACCESS_KEY": KEY,
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": server.url,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_BEARER_TOKEN_BEDROCK", raising=False)
    paths = []
    for kind in KINDS:
        async with AsyncLLMClient(kind, model=MODEL[kind]) as c:
            r = await c.chat(HELLO)
        assert (r.provider, r.content) == (kind, "Echo: Hello")
        paths.append(server.last_request.path)
    assert paths == [
        "/v1/responses",
        "/v1beta/models/gemini-2.5-flash:generateContent",
        "/openai/deployments/gpt-4o/chat/completions",
        "/openai/responses",
        "/model/us.amazon.nova-micro-v1%3A0/converse",
    ]
