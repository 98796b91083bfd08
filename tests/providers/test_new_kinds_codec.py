"""The Responses, Gemini and Azure codecs without the network: URLs, headers, mapping, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aio_llm import (
    APIResponseError,
    BadRequestError,
    ChatRequest,
    ConfigurationError,
    ContentFilterError,
    InvalidRequestError,
    RateLimitError,
    ServerError,
    StreamError,
)
from aio_llm.providers import (
    AzureOpenAIProvider,
    AzureOpenAIResponsesProvider,
    GeminiProvider,
    OpenAIResponsesProvider,
    create_provider,
)
from aio_llm.transports.sse import SSEEvent

KEY = "codec-secret-key"


def req(**fields: Any) -> ChatRequest:
    fields.setdefault("model", "m")
    fields.setdefault("messages", [{"role": "user", "content": "Hi"}])
    return ChatRequest(**fields)


def sse(obj: dict[str, Any], event: str = "message") -> SSEEvent:
    return SSEEvent(event, json.dumps(obj))


# -- the environment contract ---------------------------------------------------------


def test_create_provider_reads_each_kinds_variables() -> None:
    env = {
        "OPENAI_API_KEY": "o",
        "OPENAI_BASE_URL": "http://127.0.0.1:1/v1",
        "GOOGLE_API_KEY": "g",
        "GOOGLE_GEMINI_BASE_URL": "http://127.0.0.1:2",
        "AZURE_OPENAI_API_KEY": "a",
        "AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com/",
        "OPENAI_API_VERSION": "2024-10-21",
    }
    responses = create_provider("openai-responses", environ=env)
    assert (responses.api_key, responses.base_url) == ("o", "http://127.0.0.1:1/v1")
    gemini = create_provider("gemini", environ=env)
    assert (gemini.api_key, gemini.base_url) == ("g", "http://127.0.0.1:2/v1beta")
    assert create_provider("gemini", environ={**env, "GEMINI_API_KEY": "gk"}).api_key == "gk"
    azure = create_provider("azure-openai", environ=env)
    assert isinstance(azure, AzureOpenAIProvider) and azure.api_version == "2024-10-21"
    assert azure.base_url == "https://res.openai.azure.com"
    assert isinstance(
        create_provider("azure_openai_responses", environ=env), AzureOpenAIResponsesProvider
    )
    for kind, var in [
        ("gemini", "GEMINI_API_KEY or GOOGLE_API_KEY"),
        ("azure-openai", "AZURE_OPENAI_API_KEY"),
    ]:
        with pytest.raises(ConfigurationError, match=var):
            create_provider(kind, environ={"AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com"})
    with pytest.raises(ConfigurationError, match="AZURE_OPENAI_ENDPOINT"):
        create_provider("azure-openai", environ={"AZURE_OPENAI_API_KEY": "a"})


# -- the Responses API ------------------------------------------------------------------------


def responses_body(**fields: Any) -> dict[str, Any]:
    p = OpenAIResponsesProvider(api_key=KEY)
    http = p.encode_chat(req(**fields))
    assert http.url == "https://api.openai.com/v1/responses"
    assert http.headers["Authorization"] == f"Bearer {KEY}"
    return dict(json.loads(http.content))


def test_responses_request_mapping() -> None:
    b = responses_body(
        messages=[{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        max_tokens=20,
        temperature=0.5,
        top_p=0.9,
        user="u-1",
        stream=True,
        tool_choice="required",
        extra={"reasoning": {"effort": "low"}, "store": False},
    )
    assert b == {
        "model": "m",
        "input": [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "temperature": 0.5,
        "top_p": 0.9,
        "max_output_tokens": 20,
        "tool_choice": "required",
        "user": "u-1",
        "stream": True,
        "reasoning": {"effort": "low"},
        "store": False,
    }
    for refused in ({"stop": "x"}, {"seed": 3}):
        with pytest.raises(InvalidRequestError, match="Responses API has no"):
            responses_body(**refused)


def test_responses_incomplete_failed_and_refusal() -> None:
    p = OpenAIResponsesProvider(api_key=KEY)
    incomplete = {
        "id": "r",
        "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
        "output": [
            {"type": "message", "content": [{"type": "output_text", "text": "Par"}]},
        ],
        "usage": {"input_tokens": 3, "output_tokens": 2},
    }
    r = p.decode_chat(req(), 200, {}, json.dumps(incomplete).encode())
    assert (r.content, r.finish_reason, r.usage.total_tokens) == ("Par", "length", 5)
    filtered = {**incomplete, "incomplete_details": {"reason": "content_filter"}}
    assert (
        p.decode_chat(req(), 200, {}, json.dumps(filtered).encode()).finish_reason
        == "content_filter"
    )
    refusal = {
        "status": "completed",
        "output": [{"type": "message", "content": [{"type": "refusal", "refusal": "No."}]}],
    }
    assert p.decode_chat(req(), 200, {}, json.dumps(refusal).encode()).content == "No."
    failed = {
        "status": "failed",
        "error": {"code": "server_error", "message": "boom"},
        "output": [],
    }
    with pytest.raises(ServerError, match="boom"):
        p.decode_chat(req(), 200, {}, json.dumps(failed).encode())
    with pytest.raises(APIResponseError, match="cannot read"):  # not JSON
        p.decode_chat(req(), 200, {}, b"<html>")


def test_responses_stream_reasoning_refusal_and_failure() -> None:
    p = OpenAIResponsesProvider(api_key=KEY)
    d = p.stream_decoder(req(stream=True))
    d.feed(sse({"type": "response.created", "response": {"id": "resp_1", "model": "o3"}}))
    chunks = d.feed(sse({"type": "response.reasoning_summary_text.delta", "delta": "think"}))
    assert chunks[0].reasoning == "think"
    d.feed(sse({"type": "response.reasoning_summary_part.added", "summary_index": 1}))
    d.feed(sse({"type": "response.reasoning_summary_text.delta", "delta": "more"}))
    d.feed(sse({"type": "response.refusal.delta", "delta": "I can't"}))
    item = {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "enc"}
    d.feed(sse({"type": "response.output_item.done", "item": item}))
    # a call whose arguments come only whole, in output_item.done
    call = {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "call_1",
        "name": "f",
        "arguments": "",
    }
    d.feed(sse({"type": "response.output_item.added", "item": call}))
    d.feed(sse({"type": "response.output_item.done", "item": {**call, "arguments": '{"a":1}'}}))
    end = {"id": "resp_1", "status": "completed", "usage": {"input_tokens": 4, "output_tokens": 6}}
    d.feed(sse({"type": "response.completed", "response": end}))
    assert d.done
    r = d.build_response()
    assert (r.id, r.model, r.content, r.reasoning) == ("resp_1", "o3", "I can't", "think\n\nmore")
    assert [(t.id, t.arguments) for t in r.tool_calls] == [("call_1", '{"a":1}')]
    assert r.finish_reason == "tool_calls" and r.usage.output_tokens == 6
    assert r.message.thinking and r.message.thinking[0].signature == "enc"
    failing = p.stream_decoder(req(stream=True))
    failed = {"status": "failed", "error": {"code": "rate_limit_exceeded", "message": "slow down"}}
    with pytest.raises(RateLimitError, match="slow down"):
        failing.feed(sse({"type": "response.failed", "response": failed}))
    with pytest.raises(StreamError, match="odd"):
        failing.feed(sse({"type": "error", "code": "weird_code", "message": "odd"}))


# -- Gemini ---------------------------------------------------------------------------------


def test_gemini_urls_and_the_key_header() -> None:
    p = GeminiProvider(api_key=KEY)
    assert p.encode_chat(req(model="gemini-2.5-flash")).url == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    )
    http = p.encode_chat(req(model="models/gemini-2.5-pro", stream=True))
    assert http.url.endswith("/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse")
    assert http.headers["x-goog-api-key"] == KEY and KEY not in http.url
    assert "Authorization" not in http.headers
    assert p.encode_chat(req(model="tunedModels/mine-1")).url.endswith(
        "/tunedModels/mine-1:generateContent"
    )
    for bad in ("m?key=x", "m:streamGenerateContent", "m#x"):
        with pytest.raises(InvalidRequestError, match="not a Gemini model"):
            p.encode_chat(req(model=bad))
    assert (
        GeminiProvider(api_key=KEY, base_url="http://127.0.0.1:9").base_url
        == "http://127.0.0.1:9/v1beta"
    )
    assert KEY not in repr(p)


def test_gemini_generation_config_and_extra() -> None:
    p = GeminiProvider(api_key=KEY)
    b = json.loads(
        p.encode_chat(
            req(
                temperature=0.1,
                top_p=0.5,
                max_tokens=9,
                stop="END",
                seed=7,
                tool_choice="none",
                tools=[{"type": "function", "function": {"name": "f"}}],
                extra={
                    "generationConfig": {"thinkingConfig": {"includeThoughts": True}},
                    "safetySettings": [],
                },
            )
        ).content
    )
    assert b["generationConfig"] == {
        "temperature": 0.1,
        "topP": 0.5,
        "maxOutputTokens": 9,
        "stopSequences": ["END"],
        "seed": 7,
        "thinkingConfig": {"includeThoughts": True},
    }
    assert b["toolConfig"] == {"functionCallingConfig": {"mode": "NONE"}}
    assert b["safetySettings"] == []
    assert b["tools"] == [
        {
            "functionDeclarations": [
                {"name": "f", "parametersJsonSchema": {"type": "object", "properties": {}}}
            ]
        }
    ]


def test_gemini_answers_blocked_prompt_tool_prompt_tokens_and_errors() -> None:
    p = GeminiProvider(api_key=KEY)
    blocked = {
        "promptFeedback": {"blockReason": "SAFETY"},
        "usageMetadata": {"promptTokenCount": 4},
    }
    r = p.decode_chat(req(), 200, {}, json.dumps(blocked).encode())
    assert (r.content, r.finish_reason, r.usage.input_tokens) == ("", "content_filter", 4)
    grounded = {
        "candidates": [{"content": {"parts": [{"text": "ok"}]}, "finishReason": "STOP"}],
        "usageMetadata": {
            "promptTokenCount": 4,
            "toolUsePromptTokenCount": 6,
            "candidatesTokenCount": 1,
        },
    }
    r = p.decode_chat(req(), 200, {}, json.dumps(grounded).encode())
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.total_tokens) == (10, 1, 11)
    key_error = {
        "error": {
            "code": 400,
            "message": "API key not valid. Please pass a valid API key.",
            "status": "INVALID_ARGUMENT",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}
            ],
        }
    }
    err = p.decode_error(400, {}, json.dumps(key_error).encode())
    assert type(err) is BadRequestError and err.code == "API_KEY_INVALID"
    quota = {
        "error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"}
    }
    err = p.decode_error(429, {"retry-after": "3"}, json.dumps([quota]).encode())  # JSON-array form
    assert (
        isinstance(err, RateLimitError)
        and err.retry_after == 3
        and err.code == "RESOURCE_EXHAUSTED"
    )
    stream = p.stream_decoder(req(stream=True))
    with pytest.raises(ServerError, match="overloaded"):
        stream.feed(sse({"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}))


def test_gemini_stream_without_finish_is_not_complete() -> None:
    p = GeminiProvider(api_key=KEY)
    d = p.stream_decoder(req(stream=True))
    d.feed(
        sse(
            {
                "candidates": [{"content": {"parts": [{"text": "Hel"}]}}],
                "usageMetadata": {"promptTokenCount": 3},
            }
        )
    )
    assert not d.complete and not d.done
    d.feed(
        sse(
            {"candidates": [{"content": {"parts": [{"text": "lo"}]}, "finishReason": "MAX_TOKENS"}]}
        )
    )
    assert d.complete and not d.done  # no end marker: read on until the body ends
    r = d.build_response()
    assert (r.content, r.finish_reason, r.usage.input_tokens) == ("Hello", "length", 3)


# -- Azure ---------------------------------------------------------------------------------------


def test_azure_urls_headers_and_tokens() -> None:
    p = AzureOpenAIProvider(api_key=KEY, base_url="https://res.openai.azure.com/openai/v1/")
    http = p.encode_chat(req(model="my-gpt"))
    assert http.url == "https://res.openai.azure.com/openai/v1/chat/completions"
    assert http.headers["api-key"] == KEY and "Authorization" not in http.headers
    versioned = AzureOpenAIProvider(
        api_key=KEY, base_url="https://res.openai.azure.com", api_version="2024-06-01"
    )
    http = versioned.encode_chat(req(model="my gpt/x", max_tokens=5))
    assert http.url == (
        "https://res.openai.azure.com/openai/deployments/my%20gpt%2Fx/chat/completions"
        "?api-version=2024-06-01"
    )
    assert (
        json.loads(http.content)["max_tokens"] == 5
    )  # an api-version before max_completion_tokens
    embed = versioned.encode_embed(["a"], "emb")
    assert embed.url.endswith("/openai/deployments/emb/embeddings?api-version=2024-06-01")
    entra = create_provider(
        "azure-openai",
        environ={
            "AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com",
            "AZURE_OPENAI_AD_TOKEN": "eyJ",
        },
    )
    assert entra.encode_chat(req()).headers["Authorization"] == "Bearer eyJ"
    responses = AzureOpenAIResponsesProvider(
        api_key=KEY, base_url="https://r.openai.azure.com", api_version="2025-03-01-preview"
    )
    http = responses.encode_chat(req())
    assert http.url == "https://r.openai.azure.com/openai/responses?api-version=2025-03-01-preview"
    assert http.headers["api-key"] == KEY
    with pytest.raises(ConfigurationError, match="no credentials"):
        AzureOpenAIProvider(base_url="https://r.openai.azure.com")


def test_azure_content_filter_is_a_typed_outcome() -> None:
    p = AzureOpenAIProvider(api_key=KEY, base_url="https://r.openai.azure.com")
    refused = {
        "error": {
            "message": "The response was filtered due to the prompt triggering Azure OpenAI's "
            "content management policy.",
            "type": None,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
            "innererror": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": {"hate": {"filtered": True, "severity": "high"}},
            },
        }
    }
    err = p.decode_error(400, {"apim-request-id": "a-1"}, json.dumps(refused).encode())
    assert isinstance(err, ContentFilterError) and isinstance(err, BadRequestError)
    # ``body`` is the error object, as the openai SDK's errors carry it
    assert err.body["innererror"]["content_filter_result"]["hate"]["filtered"] is True
    cut = {
        "id": "c",
        "model": "gpt-4o-2024-11-20",
        "choices": [
            {
                "message": {"role": "assistant", "content": "Partial"},
                "finish_reason": "content_filter",
                "content_filter_results": {"violence": {"filtered": True, "severity": "medium"}},
            }
        ],
        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1},
    }
    r = p.decode_chat(req(), 200, {"apim-request-id": "a-2"}, json.dumps(cut).encode())
    assert (r.finish_reason, r.request_id) == ("content_filter", "a-2")
    assert r.raw["choices"][0]["content_filter_results"]["violence"]["filtered"] is True
    assert r.raw["prompt_filter_results"]
