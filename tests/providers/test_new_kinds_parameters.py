"""The SDK parameters on the newer provider kinds: each is sent in the kind's terms or refused.

Refused means ``UnsupportedParameterError`` before anything is encoded, never a
parameter silently dropped. Bedrock signs the query and headers a request adds.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from aio_llm import ChatRequest, UnsupportedParameterError
from aio_llm.providers import (
    AzureOpenAIProvider,
    GeminiProvider,
    OpenAIResponsesProvider,
    create_provider,
)
from aio_llm.providers._sigv4 import AWSCredentials, sign_headers
from aio_llm.providers.base import HTTPRequest, Provider
from aio_llm.testing.clock import FakeClock

KEY = "sk-parameters-test-key"
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
NOW = 1_440_938_160.0


def req(**fields: Any) -> ChatRequest:
    fields.setdefault("model", "m")
    fields.setdefault("messages", [{"role": "user", "content": "Hi"}])
    return ChatRequest(**fields)


def body(provider: Provider, request: ChatRequest) -> dict[str, Any]:
    http: HTTPRequest = provider._encode(request)
    out: dict[str, Any] = json.loads(http.content)
    return out


def test_gemini_sends_its_sampling_parameters_and_refuses_the_rest() -> None:
    p = GeminiProvider(api_key=KEY, base_url="https://g.example")
    config = body(p, req(seed=7, top_k=5, presence_penalty=0.5, frequency_penalty=-0.5))[
        "generationConfig"
    ]
    assert config == {"seed": 7, "topK": 5, "presencePenalty": 0.5, "frequencyPenalty": -0.5}
    for refused in ({"n": 2}, {"logprobs": True}, {"logit_bias": {"1": 2}}):
        with pytest.raises(UnsupportedParameterError):
            p._encode(req(**refused))


def test_responses_sends_tool_parallelism_and_tier_and_refuses_the_rest() -> None:
    p = OpenAIResponsesProvider(api_key=KEY, base_url="https://o.example/v1")
    sent = body(p, req(tools=TOOLS, parallel_tool_calls=False, service_tier="flex"))
    assert sent["parallel_tool_calls"] is False and sent["service_tier"] == "flex"
    for refused in ({"n": 2}, {"seed": 1}, {"top_logprobs": 3}, {"presence_penalty": 1.0}):
        with pytest.raises(UnsupportedParameterError):
            p._encode(req(**refused))


def test_azure_chat_takes_what_openai_chat_takes() -> None:
    p = AzureOpenAIProvider(api_key=KEY, base_url="https://r.openai.azure.com")
    sent = body(p, req(n=2, seed=3, logprobs=True, top_logprobs=2, frequency_penalty=0.1))
    assert (sent["n"], sent["seed"], sent["logprobs"], sent["top_logprobs"]) == (2, 3, True, 2)
    with pytest.raises(UnsupportedParameterError):
        p._encode(req(top_k=3))


def test_bedrock_refuses_every_sdk_parameter() -> None:
    env = {"AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_REGION": "x-1"}
    p = create_provider("bedrock", environ=env)
    for refused in ({"n": 2}, {"seed": 1}, {"top_k": 3}, {"service_tier": "auto"}):
        with pytest.raises(UnsupportedParameterError):
            p._encode(req(**refused))


def test_bedrock_signs_the_query_and_headers_a_request_adds() -> None:
    env = {"AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_REGION": "x-1"}
    p = create_provider("bedrock", environ=env, clock=FakeClock(wall_start=NOW))
    request = req(extra_query={"trace": "a b"}, extra_headers={"x-custom": "1"})
    http = p._encode(request)
    assert http.url.endswith("/converse?trace=a%20b")  # appended before signing, not after
    assert http.headers["x-custom"] == "1"
    unsigned = {k: v for k, v in http.headers.items() if k.lower() not in _ADDED_BY_SIGNING}
    expected = sign_headers(
        "POST",
        http.url,
        unsigned,
        http.content,
        AWSCredentials("AKIDTEST", "secret"),
        region="x-1",
        service="bedrock",
        now=NOW,
    )
    assert http.headers["authorization"] == expected["authorization"]
    assert "x-custom" in http.headers["authorization"]  # among the SignedHeaders


_ADDED_BY_SIGNING = {"authorization", "x-amz-date", "host"}
