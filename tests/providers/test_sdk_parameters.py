"""Issue 15, point 4: the parameters SDK users pass reach the provider, or fail clearly.

Each provider sends what it honours (mapped to its own names where they
differ) and refuses, before anything is sent, what it cannot; the SDKs'
``extra_body`` / ``extra_headers`` / ``extra_query`` work everywhere. Over
loopback HTTP against FakeLLMServer on both transports; answers with ``n``
choices and with logprobs are served raw in OpenAI's documented shape and
read back as the openai SDK reads them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from aio_llm import (
    AsyncLLMClient,
    ChatRequest,
    ClientConfig,
    InvalidRequestError,
    UnsupportedParameterError,
)
from aio_llm.providers import AnthropicProvider, OpenAIProvider
from aio_llm.testing import FakeLLMServer, Fault

HELLO = [{"role": "user", "content": "Hello"}]
KEY = "sk-params-0123456789"
TOOLS = [
    {
        "type": "function",
        "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
    }
]
EVERY_OPENAI: dict[str, Any] = {
    "n": 2,
    "frequency_penalty": 0.5,
    "presence_penalty": -0.5,
    "logit_bias": {50256: -100},
    "logprobs": True,
    "top_logprobs": 2,
    "seed": 7,
    "parallel_tool_calls": False,
    "service_tier": "flex",
    "tools": TOOLS,
}


def make(srv: FakeLLMServer, kind: str, transport: str = "aiohttp") -> AsyncLLMClient:
    url = {"anthropic": srv.url, "openrouter": srv.url + "/api/v1"}.get(kind, srv.openai_url)
    return AsyncLLMClient(
        kind,
        api_key=KEY,
        base_url=url,
        model="gpt-4o-mini",
        config=ClientConfig(transport=transport),
        middleware=[],
    )


@pytest.mark.anyio
async def test_openai_sends_every_parameter(server: FakeLLMServer, transport: str) -> None:
    async with make(server, "openai", transport) as c:
        await c.chat(HELLO, **EVERY_OPENAI)
    body = server.last_request.json()
    for name, value in EVERY_OPENAI.items():
        if name == "logit_bias":
            value = {"50256": -100}
        assert body[name] == value, name
    assert "top_k" not in body


@pytest.mark.anyio
async def test_shared_names_map_across_providers(server: FakeLLMServer) -> None:
    async with make(server, "openai") as c:
        await c.chat(HELLO, service_tier="standard_only")  # Anthropic's name
        assert server.last_request.json()["service_tier"] == "default"
        await c.chat(HELLO, top_logprobs=3)  # the API wants logprobs with it
        assert server.last_request.json()["logprobs"] is True
        await c.chat(HELLO, max_completion_tokens=9)  # the newer OpenAI spelling
        assert server.last_request.json()["max_tokens"] == 9
    async with make(server, "anthropic") as c:
        await c.chat(HELLO, model="claude", top_k=5, service_tier="default")
        body = server.last_request.json()
        assert body["top_k"] == 5 and body["service_tier"] == "standard_only"
        await c.chat(HELLO, model="claude", tools=TOOLS, parallel_tool_calls=False)
        assert server.last_request.json()["tool_choice"] == {
            "type": "auto",
            "disable_parallel_tool_use": True,
        }
        await c.chat(
            HELLO, model="claude", tools=TOOLS, tool_choice="required", parallel_tool_calls=False
        )
        assert server.last_request.json()["tool_choice"] == {
            "type": "any",
            "disable_parallel_tool_use": True,
        }
        await c.chat(HELLO, model="claude", tools=TOOLS, parallel_tool_calls=True)
        assert "tool_choice" not in server.last_request.json()  # parallel is the default


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("kind", "params", "parameter"),
    [
        ("openai", {"top_k": 40}, "top_k"),
        ("openrouter", {"n": 3}, "n"),
        ("openrouter", {"service_tier": "flex"}, "service_tier"),
        ("anthropic", {"n": 2}, "n"),
        ("anthropic", {"frequency_penalty": 0.4}, "frequency_penalty"),
        ("anthropic", {"presence_penalty": 0.4}, "presence_penalty"),
        ("anthropic", {"logit_bias": {"1": 5}}, "logit_bias"),
        ("anthropic", {"logprobs": True}, "logprobs"),
        ("anthropic", {"top_logprobs": 2}, "top_logprobs"),
        ("anthropic", {"seed": 42}, "seed"),
        ("anthropic", {"service_tier": "flex"}, "service_tier"),
        ("openai", {"service_tier": "premium"}, "service_tier"),
        ("openai", {"n": 2, "stream": True}, "n"),
    ],
)
async def test_what_a_provider_cannot_honour_is_refused_before_sending(
    server: FakeLLMServer, kind: str, params: dict[str, Any], parameter: str
) -> None:
    async with make(server, kind) as c:
        stream = params.pop("stream", False)
        with pytest.raises(UnsupportedParameterError) as info:
            if stream:
                async with c.stream(HELLO, **params):
                    pass
            else:
                await c.chat(HELLO, **params)
    err = info.value
    assert err.parameter == parameter and err.provider == kind
    assert isinstance(err, InvalidRequestError)  # nothing was sent
    assert parameter in str(err) and kind in str(err)
    assert server.request_count == 0


@pytest.mark.anyio
async def test_neutral_values_and_unchecked_extra_body(server: FakeLLMServer) -> None:
    """``n=1``, ``logprobs=False`` or a 0 penalty change nothing: no error anywhere."""
    async with make(server, "anthropic") as c:
        await c.chat(
            HELLO, model="claude", n=1, logprobs=False, frequency_penalty=0, presence_penalty=0.0
        )
        await c.chat(HELLO, model="claude", extra_body={"seed": 1})  # sent as the caller asks
        assert server.last_request.json()["seed"] == 1
    assert server.request_count == 2


@pytest.mark.anyio
async def test_openrouter_and_compatible_servers_take_top_k(server: FakeLLMServer) -> None:
    async with make(server, "openrouter") as c:
        await c.chat(HELLO, top_k=20, frequency_penalty=0.1)
        assert server.last_request.json()["top_k"] == 20
    async with make(server, "openai-compatible") as c:
        await c.chat(HELLO, top_k=20, n=2, service_tier="auto")
        body = server.last_request.json()
        assert (body["top_k"], body["n"], body["service_tier"]) == (20, 2, "auto")


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_extra_body_headers_and_query(
    server: FakeLLMServer, transport: str, kind: str
) -> None:
    async with make(server, kind, transport) as c:
        for call in ("chat", "stream"):
            params: dict[str, Any] = {
                "extra_body": {"metadata": {"trace": "abc"}},
                "extra_headers": {"X-Trace": "abc", "OpenAI-Beta": "assistants=v2"},
                "extra_query": {"api-version": "2024-10-21", "q": "a b"},
            }
            if call == "chat":
                await c.chat(HELLO, **params)
            else:
                async with c.stream(HELLO, **params) as s:
                    await s.text()
            sent = server.last_request
            assert sent.json()["metadata"] == {"trace": "abc"}
            assert sent.headers["x-trace"] == "abc"
            assert sent.headers["openai-beta"] == "assistants=v2"
            assert sent.query == "api-version=2024-10-21&q=a+b"
            assert sent.headers["x-api-key" if kind == "anthropic" else "authorization"]


def test_parameters_are_validated() -> None:
    def req(**kw: Any) -> ChatRequest:
        return ChatRequest(model="m", messages=HELLO, **kw)

    for bad in ({"n": 0}, {"frequency_penalty": 3}, {"top_logprobs": 21}, {"top_k": 0}):
        with pytest.raises(ValueError):
            req(**bad)
    with pytest.raises(ValueError, match="token ids"):
        req(logit_bias={"hello": 1})
    with pytest.raises(ValueError, match="-100 to 100"):
        req(logit_bias={1: 500})
    assert req(extra_body={"a": 1}).extra == {"a": 1}


def test_the_key_tells_parameters_apart() -> None:
    from aio_llm.middleware._keys import request_key

    base = ChatRequest(model="m", messages=HELLO)
    for change in ({"top_k": 3}, {"n": 2}, {"logprobs": True}, {"extra_headers": {"a": "b"}}):
        other = base.model_copy(update=change)
        assert request_key(other) != request_key(base)
    # a request that sets none keys as it did before these parameters existed
    assert request_key(base) == request_key(ChatRequest(model="m", messages=HELLO, dedup=True))


# -- n choices and logprobs, in OpenAI's documented wire shape --------------------------


def _logprob(token: str, lp: float) -> dict[str, Any]:
    return {
        "token": token,
        "logprob": lp,
        "bytes": list(token.encode()),
        "top_logprobs": [{"token": token, "logprob": lp, "bytes": list(token.encode())}],
    }


N_BODY: dict[str, Any] = {
    "id": "chatcmpl-n",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": i,
            "message": {"role": "assistant", "content": text, "refusal": None},
            "logprobs": {"content": [_logprob(text, -0.25 * (i + 1))], "refusal": None},
            "finish_reason": "stop",
        }
        for i, text in enumerate(["Paris", "Lyon", "Nice"])
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
}


@pytest.mark.anyio
async def test_n_choices_and_logprobs_read_as_the_openai_sdk_reads_them(
    server: FakeLLMServer, transport: str
) -> None:
    import openai

    body = json.dumps(N_BODY)
    server.enqueue(*[Fault.raw(200, {"content-type": "application/json"}, body)] * 2)
    async with make(server, "openai", transport) as c:
        ours = await c.chat(HELLO, n=3, logprobs=True, top_logprobs=1)
    official: Any
    async with openai.AsyncOpenAI(api_key=KEY, base_url=server.openai_url) as official:
        sdk = await official.chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, n=3, logprobs=True, top_logprobs=1
        )
    assert ours.content == sdk.choices[0].message.content == "Paris"
    assert len(ours.choices) == len(sdk.choices) == 3
    for mine, theirs in zip(ours.choices, sdk.choices, strict=True):
        assert mine.index == theirs.index
        assert mine.message.content == theirs.message.content
        assert mine.finish_reason == theirs.finish_reason
        assert theirs.logprobs is not None and theirs.logprobs.content is not None
        assert mine.logprobs is not None
        assert [(t.token, t.logprob, t.bytes) for t in mine.logprobs] == [
            (t.token, t.logprob, t.bytes) for t in theirs.logprobs.content
        ]
        assert (
            mine.logprobs[0].top_logprobs[0].token
            == theirs.logprobs.content[0].top_logprobs[0].token
        )
    assert ours.logprobs == ours.choices[0].logprobs


@pytest.mark.anyio
async def test_streamed_logprobs_land_on_the_final_response(
    server: FakeLLMServer, transport: str
) -> None:
    def event(delta: dict[str, Any], lp: list[Any] | None, finish: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        choice["logprobs"] = {"content": lp} if lp is not None else None
        chunk = {"id": "c", "object": "chat.completion.chunk", "model": "m", "choices": [choice]}
        return "data: " + json.dumps(chunk) + "\n\n"

    sse = (
        event({"role": "assistant", "content": ""}, None)
        + event({"content": "Hel"}, [_logprob("Hel", -0.1)])
        + event({"content": "lo"}, [_logprob("lo", -0.2)])
        + event({}, None, "stop")
        + "data: [DONE]\n\n"
    )
    server.enqueue(Fault.raw(200, {"content-type": "text/event-stream"}, sse))
    async with make(server, "openai", transport) as c:
        async with c.stream(HELLO, logprobs=True) as s:
            assert await s.text() == "Hello"
    final = s.response
    assert final is not None and final.logprobs is not None
    assert [(t.token, t.logprob) for t in final.logprobs] == [("Hel", -0.1), ("lo", -0.2)]
    assert server.last_request.json()["logprobs"] is True


def test_one_choice_without_logprobs_stores_nothing() -> None:
    provider = OpenAIProvider(api_key=KEY)
    single = {**N_BODY, "choices": [{**N_BODY["choices"][0], "logprobs": None}]}
    r = provider.decode_chat(
        ChatRequest(model="m", messages=HELLO), 200, {}, json.dumps(single).encode()
    )
    assert r.all_choices is None
    assert [c.message.content for c in r.choices] == ["Paris"] and r.logprobs is None


def test_codecs_declare_what_they_honour() -> None:
    assert "top_k" in AnthropicProvider.supported_parameters
    assert "seed" not in AnthropicProvider.supported_parameters
    assert "top_k" not in OpenAIProvider.supported_parameters
