"""Structured output over loopback, for every provider kind, on both transports.

Per kind: a pydantic class parsed from a chat and from a stream, a raw JSON
schema and ``json_object``, the native field on the wire, a refusal (typed,
not an error), an answer that does not validate (``OutputValidationError``
with the raw text and pydantic's errors), and ``max_validation_retries``
re-asking with the errors appended, every attempt through the chain.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, Field

from aio_llm import AsyncLLMClient, ClientConfig, OutputValidationError, UnsupportedParameterError
from aio_llm.providers import OpenAICompatibleProvider, Provider
from aio_llm.testing import FakeLLMServer
from tests.kinds import make_provider

KINDS = [
    "openai",
    "openai-compatible",
    "openrouter",
    "anthropic",
    "anthropic-tool",
    "openai-responses",
    "gemini",
    "azure-openai",
    "azure-openai-responses",
    "bedrock",
    "mock",
]
MODEL = {
    "openai": "gpt-4o",
    "openai-compatible": "llama-3",
    "openrouter": "openai/gpt-4o",
    "anthropic": "claude-sonnet-4-5",
    "anthropic-tool": "claude-3-5-sonnet-20241022",
    "openai-responses": "gpt-4o",
    "gemini": "gemini-2.5-flash",
    "azure-openai": "gpt-4o",
    "azure-openai-responses": "gpt-4o",
    "bedrock": "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "mock": "mock-model",
}


class City(BaseModel):
    """A city and how many live there."""

    name: str
    country: str
    population: int = Field(ge=0)


SCHEMA = City.model_json_schema()


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def server() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer(stream_chunks=5) as srv:
        yield srv


def provider(kind: str, srv: FakeLLMServer, **mock: Any) -> Provider:
    return make_provider("anthropic" if kind == "anthropic-tool" else kind, srv, **mock)


def client(
    kind: str, srv: FakeLLMServer, transport: str, *, retries: int = 0, **mock: Any
) -> AsyncLLMClient:
    config = ClientConfig(
        transport=transport,
        retry_base_delay=0.01,
        max_validation_retries=retries,
    )
    return AsyncLLMClient(provider(kind, srv, **mock), model=MODEL[kind], config=config)


def ask(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def sent_format(kind: str, body: dict[str, Any]) -> Any:
    """Where ``kind``'s wire puts the structured-output ask."""
    if kind in ("openai", "openai-compatible", "openrouter", "azure-openai"):
        return body["response_format"]
    if kind in ("openai-responses", "azure-openai-responses"):
        return body["text"]["format"]
    if kind == "anthropic":
        return body["output_config"]["format"]
    if kind == "anthropic-tool":
        return body["tools"][-1], body["tool_choice"]
    if kind == "gemini":
        return body["generationConfig"]
    return body["outputConfig"]["textFormat"]


# -- parse ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_pydantic_class_is_asked_natively_and_parsed(
    kind: str, server: FakeLLMServer, transport: str
) -> None:
    async with client(kind, server, transport) as c:
        r = await c.chat(ask("Largest city?"), response_format=City)
    assert isinstance(r.parsed, City)
    assert r.parsed == City(name="test", country="test", population=1)
    assert r.refusal is None and r.finish_reason == "stop" and not r.tool_calls
    if kind == "mock":
        return
    fmt = sent_format(kind, server.last_request.json())
    if kind in ("openai", "openai-compatible", "openrouter", "azure-openai"):
        assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
        strict = fmt["json_schema"]["schema"]
        assert fmt["json_schema"]["name"] == "City"
        assert strict["additionalProperties"] is False
        assert strict["required"] == ["name", "country", "population"]
    elif kind in ("openai-responses", "azure-openai-responses"):
        assert fmt["strict"] is True and fmt["schema"]["additionalProperties"] is False
    elif kind == "anthropic":
        assert fmt["type"] == "json_schema"
        assert fmt["schema"]["additionalProperties"] is False
        # Anthropic refuses numeric bounds: moved into the description
        assert "minimum" not in fmt["schema"]["properties"]["population"]
        assert "minimum: 0" in fmt["schema"]["properties"]["population"]["description"]
    elif kind == "anthropic-tool":
        tool, choice = fmt
        assert tool["name"] == "City" and tool["description"] == City.__doc__
        assert choice == {"type": "tool", "name": "City"}
    elif kind == "gemini":
        assert fmt["responseMimeType"] == "application/json"
        assert fmt["responseJsonSchema"] == SCHEMA
    else:
        schema = json.loads(fmt["structure"]["jsonSchema"]["schema"])
        assert schema["additionalProperties"] is False
        assert fmt["structure"]["jsonSchema"]["name"] == "City"


@pytest.mark.anyio
async def test_a_stream_is_parsed_at_its_end(
    kind: str, server: FakeLLMServer, transport: str
) -> None:
    async with client(kind, server, transport) as c:
        async with c.stream(ask("Largest city?"), response_format=City) as s:
            text = "".join([chunk.delta async for chunk in s])
    assert s.response is not None and s.completed
    assert json.loads(text) == {"name": "test", "country": "test", "population": 1}
    assert s.response.parsed == City(name="test", country="test", population=1)
    assert s.response.finish_reason == "stop"


@pytest.mark.anyio
async def test_raw_schema_and_json_object_give_decoded_json(
    kind: str, server: FakeLLMServer, transport: str
) -> None:
    raw = {
        "type": "json_schema",
        "json_schema": {
            "name": "pair",
            "schema": {
                "type": "object",
                "properties": {
                    "a": {"type": "integer"},
                    "b": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["a", "b"],
                "additionalProperties": False,
            },
        },
    }
    async with client(kind, server, transport) as c:
        r = await c.chat(ask("A pair"), response_format=raw)
        assert r.parsed == {"a": 1, "b": ["test"]}
        r = await c.chat(ask("Any object"), response_format={"type": "json_object"})
    assert isinstance(r.parsed, dict)
    if kind in ("anthropic", "anthropic-tool", "bedrock"):
        # asked for by a forced tool whose input is any object: the fake sends {}
        assert r.parsed == {}
        tools = (
            server.last_request.json().get("tools")
            or server.last_request.json()["toolConfig"]["tools"]
        )
        assert len(tools) == 1
    elif kind != "mock":
        assert r.parsed == {"echo": "Any object"}


# -- refusal ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_refusal_is_typed_not_raised(
    kind: str, server: FakeLLMServer, transport: str
) -> None:
    mock: dict[str, Any] = {"refusal": "I can't help with that."} if kind == "mock" else {}
    async with client(kind, server, transport, **mock) as c:
        r = await c.chat(ask("REFUSE this"), response_format=City)
        assert r.parsed is None and r.refusal
        async with c.stream(ask("REFUSE this too"), response_format=City) as s:
            async for _ in s:
                pass
    assert s.response is not None and s.response.parsed is None and s.response.refusal
    if kind not in ("gemini", "bedrock"):  # these block without words of their own
        assert "can't help" in r.refusal


# -- validation -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_an_answer_that_does_not_fit_raises_with_raw_and_errors(
    kind: str, server: FakeLLMServer, transport: str
) -> None:
    mock: dict[str, Any] = {"default_response": '{"unexpected": true}'} if kind == "mock" else {}
    async with client(kind, server, transport, **mock) as c:
        with pytest.raises(OutputValidationError) as info:
            await c.chat(ask("SCHEMA_MISMATCH please"), response_format=City)
        async with c.stream(ask("SCHEMA_MISMATCH again"), response_format=City) as s:
            with pytest.raises(OutputValidationError):
                async for _ in s:
                    pass
    error = info.value
    assert json.loads(error.raw) == {"unexpected": True}
    assert {e["type"] for e in error.errors} >= {"missing"}
    assert {e["loc"] for e in error.errors if e["type"] == "missing"} == {
        ("name",),
        ("country",),
        ("population",),
    }
    assert error.attempts == 1 and error.response is not None
    assert "unexpected" not in str(error)  # the message names fields, never the text
    assert s.response is not None and s.response.parsed is None


@pytest.mark.anyio
async def test_validation_retries_reask_with_the_errors(
    kind: str, server: FakeLLMServer, transport: str
) -> None:
    good = '{"name": "Oslo", "country": "NO", "population": 1}'
    mock = {"responses": ['{"answer": "cut off', good]} if kind == "mock" else {}
    async with client(kind, server, transport, retries=2, **mock) as c:
        # the fake answers the first ask with broken JSON; the re-ask's last user
        # message is the feedback, which it answers well
        r = await c.chat(ask("INVALID_JSON first"), response_format=City)
    assert isinstance(r.parsed, City)
    if kind == "mock":
        calls = c.providers["mock"].calls  # type: ignore[attr-defined]
        assert len(calls) == 2
        reask = [m.model_dump(exclude_none=True) for m in calls[1].messages]
    else:
        assert server.request_count == 2  # the invalid answer, then the re-ask
        reask = server.last_request.json().get("messages") or []
    if kind in ("openai", "openai-compatible", "openrouter", "azure-openai", "mock"):
        assert reask[-2] == {"role": "assistant", "content": '{"answer": "cut off'}
        feedback = reask[-1]["content"]
        assert reask[-1]["role"] == "user"
        assert "does not match the required JSON format" in feedback
        assert "Invalid JSON" in feedback


@pytest.mark.anyio
async def test_retries_run_out_and_every_attempt_is_charged(transport: str) -> None:
    async with FakeLLMServer(structured="invalid_json") as srv:
        async with client("openai", srv, transport) as c:
            with pytest.raises(OutputValidationError) as info:
                await c.chat(ask("Largest city?"), response_format=City, max_validation_retries=2)
            ledger = c.cost_manager.get_metrics()
        assert srv.request_count == 3
    error = info.value
    assert error.attempts == 3 and error.raw == '{"answer": "cut off'
    assert error.errors[0]["type"] == "json_invalid"
    # the error's response carries what all three attempts cost, as the ledger charged
    assert error.response.cost == pytest.approx(ledger.total_cost) and ledger.total_requests == 3


@pytest.mark.anyio
async def test_every_provider_declares_response_format(kind: str, server: FakeLLMServer) -> None:
    """``response_format`` is checked like the SDK parameters: every kind declares it."""
    declared = provider(kind, server).supported_parameters
    assert "response_format" in declared
    openai_style = kind.startswith(("openai", "azure")) or kind in ("openrouter", "mock")
    assert ("prompt_cache_key" in declared) is openai_style


@pytest.mark.anyio
async def test_a_provider_that_does_not_declare_response_format_refuses_it(
    server: FakeLLMServer,
) -> None:
    class Plain(OpenAICompatibleProvider):
        supported_parameters: ClassVar[frozenset[str]] = frozenset()

    plain = Plain(api_key="sk-x", base_url=server.openai_url)
    async with AsyncLLMClient(plain, model="m", config=ClientConfig()) as c:
        with pytest.raises(UnsupportedParameterError, match="response_format") as info:
            await c.chat(ask("Largest city?"), response_format=City)
    assert "<class" not in str(info.value)  # the class is named by the parameter, not shown
    assert server.request_count == 0
