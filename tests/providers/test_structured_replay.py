"""Every recorded structured-output exchange, replayed over loopback and parsed.

The cases are the recordings in tests/fixtures/recorded-more whose request
asks for structured output (``*-structured-*``, the Gemini schema stream and
``anthropic-tools-forced-*``). FakeLLMServer serves the recorded bytes; the
client sends a request of the same shape, a pydantic class where one gives
the recorded schema and the raw schema otherwise. ``parsed`` is compared with
a value worked out here from the recorded body with plain ``json`` and dict
access (never through aio_llm's decoders), built into the class by hand.
Where the request that aio_llm sends is equal to the recorded one by
construction, that is checked too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from aio_llm import AsyncLLMClient, ClientConfig
from aio_llm.testing import FakeLLMServer, Fault
from tests.kinds import make_provider

DIR = Path(__file__).resolve().parent.parent / "fixtures" / "recorded-more"


class CityInfo(BaseModel):
    city: str
    country: str
    population: int


class Payment(BaseModel):
    amount: Decimal


class CityLocation(BaseModel):
    """A city and its country."""

    city: str
    country: str


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DIR / name).read_text())
    return data


def body_of(fx: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(fx["response"]["body_text"])
    return body


# -- the recorded answer, read with plain json -------------------------------------------


def openai_text(fx: dict[str, Any]) -> str:
    return str(body_of(fx)["choices"][0]["message"]["content"])


def responses_text(fx: dict[str, Any]) -> str:
    out = body_of(fx)["output"]
    return "".join(
        part["text"]
        for item in out
        if item["type"] == "message"
        for part in item["content"]
        if part["type"] == "output_text"
    )


def anthropic_text(fx: dict[str, Any]) -> str:
    return "".join(b["text"] for b in body_of(fx)["content"] if b["type"] == "text")


def anthropic_tool_input(fx: dict[str, Any]) -> dict[str, Any]:
    (use,) = [b for b in body_of(fx)["content"] if b["type"] == "tool_use"]
    return dict(use["input"])


def gemini_text(fx: dict[str, Any]) -> str:
    return "".join(p["text"] for p in body_of(fx)["candidates"][0]["content"]["parts"])


def gemini_stream_text(fx: dict[str, Any]) -> str:
    text: list[str] = []
    for block in fx["response"]["body_text"].replace("\r\n", "\n").split("\n\n"):
        if block.startswith("data: "):
            chunk = json.loads(block[6:])
            for cand in chunk.get("candidates", []):
                text.extend(p.get("text", "") for p in cand.get("content", {}).get("parts", []))
    return "".join(text)


def bedrock_text(fx: dict[str, Any]) -> str:
    blocks = body_of(fx)["output"]["message"]["content"]
    return "".join(b["text"] for b in blocks if "text" in b)


# -- the cases ----------------------------------------------------------------------------


@dataclass
class Case:
    fixture: str
    kind: str
    response_format: Any
    expected: Callable[[dict[str, Any]], Any]
    """The value ``parsed`` must equal, from the recording."""
    options: dict[str, Any] = field(default_factory=dict)
    wire: Callable[[dict[str, Any], dict[str, Any]], None] | None = None
    """Checks the request sent against the recorded one."""


def raw_chat_format(name: str) -> dict[str, Any]:
    return dict(load(name)["request"]["body"]["response_format"])


def raw_responses_format(name: str) -> dict[str, Any]:
    return dict(load(name)["request"]["body"]["text"]["format"])


def bedrock_format(name: str) -> dict[str, Any]:
    spec = load(name)["request"]["body"]["outputConfig"]["textFormat"]["structure"]["jsonSchema"]
    schema = json.loads(spec["schema"])
    return {"type": "json_schema", "json_schema": {"name": spec["name"], "schema": schema}}


def same_output_config(sent: dict[str, Any], recorded: dict[str, Any]) -> None:
    assert sent["output_config"] == recorded["output_config"]
    assert "tools" not in sent and "anthropic-beta" not in sent


def same_tools(sent: dict[str, Any], recorded: dict[str, Any]) -> None:
    assert sent["tools"] == recorded["tools"]
    assert sent["tool_choice"] == {"type": "tool", "name": "final_result"}


def same_response_format(sent: dict[str, Any], recorded: dict[str, Any]) -> None:
    assert sent["response_format"] == recorded["response_format"]


def same_text_format(sent: dict[str, Any], recorded: dict[str, Any]) -> None:
    assert sent["text"]["format"] == recorded["text"]["format"]


def same_bedrock_schema(sent: dict[str, Any], recorded: dict[str, Any]) -> None:
    got = sent["outputConfig"]["textFormat"]["structure"]["jsonSchema"]
    want = recorded["outputConfig"]["textFormat"]["structure"]["jsonSchema"]
    assert json.loads(got["schema"]) == json.loads(want["schema"])
    assert got["name"] == want["name"]


CASES = [
    Case(
        "anthropic-structured-output-config-json-schema.json",
        "anthropic",
        CityInfo,
        lambda fx: CityInfo(**json.loads(anthropic_text(fx))),
        wire=same_output_config,
    ),
    Case(
        "anthropic-structured-output-config-decimal-schema.json",
        "anthropic",
        Payment,
        # (the recorded schema's pattern comes from another pydantic version: not compared)
        lambda fx: Payment(amount=json.loads(anthropic_text(fx), parse_float=Decimal)["amount"]),
    ),
    Case(
        "anthropic-tools-forced-final-result-tool.json",
        "anthropic",
        {
            "type": "json_schema",
            "json_schema": {
                "name": "final_result",
                "description": "Information about a city.",
                "schema": load("anthropic-tools-forced-final-result-tool.json")["request"]["body"][
                    "tools"
                ][0]["input_schema"],
            },
        },
        anthropic_tool_input,
        options={"structured_outputs": "tool"},
        wire=same_tools,
    ),
    Case(
        "bedrock-structured-converse-output-config-json-schema.json",
        "bedrock",
        bedrock_format("bedrock-structured-converse-output-config-json-schema.json"),
        lambda fx: json.loads(bedrock_text(fx)),
        wire=same_bedrock_schema,
    ),
    Case(
        "gemini-structured-response-schema.json",
        "gemini",
        CityLocation,
        lambda fx: CityLocation(**json.loads(gemini_text(fx))),
    ),
    Case(
        "gemini-stream-response-schema-json-chunks.json",
        "gemini",
        CityLocation,
        lambda fx: CityLocation(**json.loads(gemini_stream_text(fx))),
    ),
    Case(
        "openai-responses-structured-gpt4o-json-object-text-format.json",
        "openai-responses",
        {"type": "json_object"},
        lambda fx: json.loads(responses_text(fx)),
        wire=same_text_format,
    ),
    Case(
        "openai-responses-structured-gpt4o-json-schema-text-format.json",
        "openai-responses",
        raw_responses_format("openai-responses-structured-gpt4o-json-schema-text-format.json"),
        lambda fx: json.loads(responses_text(fx)),
        wire=same_text_format,
    ),
    Case(
        "openai-responses-structured-gpt4o-json-schema-text-format.json",
        "openai-responses",
        CityLocation,
        lambda fx: CityLocation(**json.loads(responses_text(fx))),
    ),
    Case(
        "openai-structured-gpt4o-json-object.json",
        "openai",
        {"type": "json_object"},
        lambda fx: json.loads(openai_text(fx)),
        wire=same_response_format,
    ),
    Case(
        "openai-structured-gpt4o-json-schema.json",
        "openai",
        raw_chat_format("openai-structured-gpt4o-json-schema.json"),
        lambda fx: json.loads(openai_text(fx)),
        wire=same_response_format,
    ),
    Case(
        "openai-structured-gpt4o-json-schema.json",
        "openai",
        CityLocation,
        lambda fx: CityLocation(**json.loads(openai_text(fx))),
    ),
    Case(
        "openai-structured-gpt4o-json-schema-anyof.json",
        "openai",
        raw_chat_format("openai-structured-gpt4o-json-schema-anyof.json"),
        lambda fx: json.loads(openai_text(fx)),
        wire=same_response_format,
    ),
]


def test_every_structured_recording_has_a_case() -> None:
    names = {
        p.name
        for p in DIR.glob("*.json")
        if "-structured-" in p.name
        or p.name.startswith("anthropic-tools-forced-")
        or "response-schema" in p.name
    }
    assert names == {c.fixture for c in CASES}


def model_of(fx: dict[str, Any]) -> str:
    path = fx["request"]["path"].partition("?")[0]
    if fx["provider"] == "gemini":
        return str(path.rpartition("/models/")[2].partition(":")[0])
    if fx["provider"] == "bedrock":
        from urllib.parse import unquote

        return unquote(path.split("/")[2])
    return str(fx["request"]["body"]["model"])


@pytest.mark.parametrize(
    "case", CASES, ids=lambda c: f"{c.fixture}-{getattr(c.response_format, '__name__', 'raw')}"
)
@pytest.mark.anyio
async def test_replayed_and_parsed(case: Case, server: FakeLLMServer, transport: str) -> None:
    fx = load(case.fixture)
    server.enqueue(Fault.from_recording(fx))
    config = ClientConfig(transport=transport)
    messages = [{"role": "user", "content": "replayed"}]
    model = model_of(fx)
    async with AsyncLLMClient(
        make_provider(case.kind, server, **case.options), config=config, middleware=[]
    ) as c:
        if fx["kind"] == "stream":
            async with c.stream(messages, model=model, response_format=case.response_format) as s:
                async for _ in s:
                    pass
            r = s.response
            assert r is not None
        else:
            r = await c.chat(messages, model=model, response_format=case.response_format)
    expected = case.expected(fx)
    assert r.parsed == expected
    assert r.refusal is None
    if isinstance(case.response_format, type):
        assert type(r.parsed) is case.response_format
    if case.wire is not None:
        case.wire(server.last_request.json(), fx["request"]["body"])
