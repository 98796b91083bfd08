"""The OpenRouter codec on recorded bytes: usage accounting, cost, reasoning, errors, headers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aio_llm.errors import BadRequestError, RateLimitError, StreamError
from aio_llm.providers.openrouter import OpenRouterProvider
from aio_llm.types import ChatRequest, Message, ToolCall
from tests.conftest import load_fixture
from tests.providers.test_openai_codec import (
    KEY,
    check_chat_fixture,
    check_error_fixture,
    check_stream_fixture,
    fixtures_of,
    request_from_fixture,
    run_stream,
)


def _req(**kw: Any) -> ChatRequest:
    kw.setdefault("model", "openai/gpt-4o-mini")
    kw.setdefault("messages", [Message(role="user", content="hi")])
    return ChatRequest(**kw)


@pytest.mark.parametrize("name", fixtures_of("openrouter", "chat", "tools"))
def test_recorded_chat_decodes(name: str) -> None:
    r = check_chat_fixture(name)
    assert r.provider == "openrouter"


def test_cached_and_cache_write_tokens_and_cost() -> None:
    r = check_chat_fixture("openrouter-chat-cached-and-cache-write-tokens.json")
    u = r.usage
    assert (u.input_tokens, u.output_tokens, u.total_tokens) == (3329, 53, 3382)
    assert u.cached_input_tokens == 3211
    assert u.cache_creation_input_tokens == 115
    assert u.provider_cost == pytest.approx(0.00219855)
    assert r.cost is None  # pricing is the cost manager's job; the reported cost is in usage


def test_reasoning_and_tool_calls() -> None:
    r = check_chat_fixture("openrouter-chat-reasoning-details.json")
    assert r.content == "ok"
    assert r.reasoning is not None and r.reasoning.startswith("The user is asking me to reply")
    assert r.usage.reasoning_tokens == 48 and r.usage.provider_cost == pytest.approx(0.000924)
    r = check_chat_fixture("openrouter-tools-mistral-tool-call.json")
    assert r.content == "" and r.finish_reason == "tool_calls"
    assert r.tool_calls == [
        ToolCall(
            id="3sniiMddS",
            name="divide",
            arguments='{"numerator": 123, "denominator": 456, "on_inf": "infinity"}',
        )
    ]
    assert r.usage.provider_cost is None and r.usage.total_tokens == 177
    r = check_chat_fixture("openrouter-chat-preset-basic.json")
    assert r.reasoning is None and r.finish_reason == "stop"


def test_recorded_rate_limit_error() -> None:
    err = check_error_fixture("openrouter-error-429-upstream-rate-limited.json")
    assert isinstance(err, RateLimitError) and err.status_code == 429
    assert err.code == "429"
    assert "Provider returned error" in err.message
    assert "Google" in err.message
    assert "temporarily rate-limited upstream" in err.message
    assert "user_REDACTED" not in err.message


@pytest.mark.parametrize(
    "name",
    [n for n in fixtures_of("openrouter", "stream") if "midstream-error" not in n],
)
def test_recorded_streams_rebuild(name: str) -> None:
    run = check_stream_fixture(name)
    assert run.error is None and run.response.provider == "openrouter"


def test_stream_values_spelled_out() -> None:
    run = check_stream_fixture("openrouter-stream-reasoning-deltas-with-usage.json")
    r = run.response
    assert r.reasoning is not None
    assert r.reasoning.startswith("This is a simple arithmetic question. 2+2 equals 4.")
    assert "4" in r.content and r.finish_reason == "stop"
    assert r.usage.provider_cost is not None and r.usage.provider_cost > 0
    # reasoning arrives before the answer
    first_text = next(i for i, c in enumerate(run.chunks) if c.delta)
    assert all(not c.delta for c in run.chunks[:first_text])
    assert any(c.reasoning for c in run.chunks[:first_text])

    run = check_stream_fixture("openrouter-stream-processing-comments-with-usage.json")
    assert run.response.content == "Hello!"
    assert run.response.usage.provider_cost == pytest.approx(0.000837)
    assert run.response.usage.input_tokens == 254


def test_midstream_error_raises_typed_error_after_recording_usage() -> None:
    fx = load_fixture("openrouter-stream-midstream-error-chunk.json")
    run = check_stream_fixture("openrouter-stream-midstream-error-chunk.json")
    err = run.error
    assert isinstance(err, BadRequestError)
    assert err.status_code == 400 and err.message == "Token limit reached"
    assert err.provider == "openrouter"
    assert not run.done  # [DONE] was never reached: the error ended the stream
    r = run.response
    assert r.content == "" and r.finish_reason == "length"
    assert r.reasoning == "We need to respond to a greeting. The user"
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.reasoning_tokens) == (43, 10, 11)
    assert r.usage.provider_cost == 0.0
    assert r.id == "gen-1762179802-UN8pkJI4AGZvryk0kFnb"
    assert fx["response"]["status"] == 200


def test_in_band_error_without_numeric_code_is_a_stream_error() -> None:
    provider = OpenRouterProvider(api_key=KEY)
    run = run_stream(
        provider, b'data: {"error": {"code": "server_error", "message": "upstream died"}}\n\n'
    )
    assert type(run.error) is StreamError and run.error.code == "server_error"


def test_error_envelope_in_a_200_body() -> None:
    provider = OpenRouterProvider(api_key=KEY)
    body = json.dumps(
        {"error": {"code": 429, "message": "Rate limit exceeded", "metadata": {"raw": "slow"}}}
    ).encode()
    with pytest.raises(RateLimitError) as info:
        provider.decode_chat(_req(), 200, {}, body)
    assert "slow" in info.value.message and info.value.status_code == 429


# -- encoding -------------------------------------------------------------------------------------


def test_defaults_and_headers() -> None:
    provider = OpenRouterProvider(
        api_key=KEY, app_url="https://example.org", app_name="Demo App", headers={"X-A": "b"}
    )
    assert provider.name == "openrouter" and provider.label == "openrouter"
    assert provider.api_key_env == "OPENROUTER_API_KEY"
    assert provider.base_url_env == "OPENROUTER_BASE_URL"
    http = provider.encode_chat(_req())
    assert http.url == "https://openrouter.ai/api/v1/chat/completions"
    assert http.headers["Authorization"] == f"Bearer {KEY}"
    assert http.headers["HTTP-Referer"] == "https://example.org"
    assert http.headers["X-Title"] == "Demo App"
    assert http.headers["X-A"] == "b"
    plain = OpenRouterProvider(api_key=KEY).encode_chat(_req())
    assert "HTTP-Referer" not in plain.headers and "X-Title" not in plain.headers
    assert KEY not in repr(provider) and KEY not in repr(http)


def test_usage_accounting_requested_unless_overridden() -> None:
    provider = OpenRouterProvider(api_key=KEY)
    body = json.loads(provider.encode_chat(_req(max_tokens=20)).content)
    assert body["usage"] == {"include": True}
    assert body["max_tokens"] == 20 and "max_completion_tokens" not in body
    body = json.loads(provider.encode_chat(_req(model="openai/o3-mini", max_tokens=5)).content)
    assert body["max_tokens"] == 5
    body = json.loads(
        provider.encode_chat(
            _req(extra={"usage": {"include": False}, "provider": {"order": ["Groq"]}})
        ).content
    )
    assert body["usage"] == {"include": False}
    assert body["provider"] == {"order": ["Groq"]}
    body = json.loads(provider.encode_chat(_req(stream=True)).content)
    assert body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    "name",
    [
        n
        for n in fixtures_of("openrouter", "chat", "tools", "stream", "error")
        if load_fixture(n)["request"]["path"] == "/api/v1/chat/completions"
    ],
)
def test_recorded_requests_are_reproduced(name: str) -> None:
    fx = load_fixture(name)
    provider = OpenRouterProvider(api_key=KEY)
    expected = dict(fx["request"]["body"])
    if expected.get("stream") is False:
        del expected["stream"]
    expected["usage"] = {"include": True}
    http = provider.encode_chat(request_from_fixture(fx))
    assert json.loads(http.content) == expected
    assert http.url == "https://openrouter.ai" + fx["request"]["path"]
