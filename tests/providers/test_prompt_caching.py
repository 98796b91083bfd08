"""Prompt-caching controls over loopback: markers on the wire exactly where they were set,
``prompt_cache_key`` where the API takes it, and cache reads and writes (5-minute and
one-hour) priced separately in each response and in the ledger.
"""

from __future__ import annotations

from typing import Any

import pytest

from aio_llm import AsyncLLMClient, ClientConfig, InvalidRequestError, UnsupportedParameterError
from aio_llm.cost import PricingTable
from aio_llm.testing import FakeLLMServer
from tests.kinds import make_provider

EPHEMERAL = {"type": "ephemeral"}
HOUR = {"type": "ephemeral", "ttl": "1h"}
LONG = "The handbook. " + "Every rule in detail. " * 40
TOOL = {
    "name": "lookup",
    "description": "Look a rule up",
    "input_schema": {"type": "object", "properties": {"rule": {"type": "string"}}},
    "cache_control": EPHEMERAL,
}


def marked_conversation() -> list[dict[str, Any]]:
    """A system block, a whole message and one content part marked; the rest not."""
    return [
        {
            "role": "system",
            "content": [
                {"type": "text", "text": LONG, "cache_control": HOUR},
                {"type": "text", "text": "Answer briefly."},
            ],
        },
        {"role": "user", "content": "First question", "cache_control": EPHEMERAL},
        {"role": "assistant", "content": "First answer"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Context", "cache_control": EPHEMERAL},
                {"type": "text", "text": "Second question"},
            ],
        },
    ]


def markers(value: Any, path: str = "") -> list[str]:
    """Where ``cache_control`` / ``cachePoint`` / ``prompt_cache_key`` occur in a body."""
    found: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            here = f"{path}.{k}" if path else k
            if k in ("cache_control", "cachePoint", "prompt_cache_key"):
                found.append(here)
            found.extend(markers(v, here))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found.extend(markers(v, f"{path}.{i}"))
    return found


@pytest.mark.anyio
async def test_anthropic_markers_land_exactly_where_set(server: FakeLLMServer) -> None:
    async with AsyncLLMClient(make_provider("anthropic", server), config=ClientConfig()) as c:
        await c.chat(marked_conversation(), model="claude-sonnet-4-5", tools=[TOOL])
        body = server.last_request.json()
        assert sorted(markers(body)) == [
            "messages.0.content.0.cache_control",  # the whole message: its last block
            "messages.2.content.0.cache_control",  # the part
            "system.0.cache_control",
            "tools.0.cache_control",
        ]
        assert body["system"][0]["cache_control"] == HOUR
        assert body["messages"][0]["content"] == [
            {"type": "text", "text": "First question", "cache_control": EPHEMERAL}
        ]
        assert body["messages"][1] == {"role": "assistant", "content": "First answer"}
        # nothing marked: nothing on the wire
        await c.chat([{"role": "user", "content": "Plain"}], model="claude-sonnet-4-5")
        assert markers(server.last_request.json()) == []


@pytest.mark.anyio
async def test_bedrock_gets_a_cache_point_after_each_marked_block(server: FakeLLMServer) -> None:
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    async with AsyncLLMClient(make_provider("bedrock", server), config=ClientConfig()) as c:
        model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
        await c.chat(marked_conversation(), model=model, tools=[tool])
        body = server.last_request.json()
        assert sorted(markers(body)) == [
            "messages.0.content.1.cachePoint",
            "messages.2.content.1.cachePoint",
            "system.1.cachePoint",
        ]
        await c.chat([{"role": "user", "content": "Plain"}], model=model)
        assert markers(server.last_request.json()) == []


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["openrouter", "openai-compatible"])
async def test_openai_wire_servers_that_read_markers_get_them(
    kind: str, server: FakeLLMServer
) -> None:
    async with AsyncLLMClient(make_provider(kind, server), config=ClientConfig()) as c:
        await c.chat(marked_conversation(), model="anthropic/claude-sonnet-4-5")
        body = server.last_request.json()
    assert sorted(markers(body)) == [
        "messages.0.content.0.cache_control",
        "messages.1.content.0.cache_control",
        "messages.3.content.0.cache_control",
    ]
    assert body["messages"][1]["content"] == [
        {"type": "text", "text": "First question", "cache_control": EPHEMERAL}
    ]


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["openai", "azure-openai", "openai-responses", "gemini"])
async def test_apis_that_cache_on_their_own_never_see_markers(
    kind: str, server: FakeLLMServer
) -> None:
    key = None if kind == "gemini" else "tenant-7"
    async with AsyncLLMClient(make_provider(kind, server), config=ClientConfig()) as c:
        await c.chat(marked_conversation(), model="gpt-4o", prompt_cache_key=key)
        body = server.last_request.json()
    if kind == "gemini":
        assert markers(body) == []  # Gemini caches by cachedContents, not markers
    else:
        assert markers(body) == ["prompt_cache_key"] and body["prompt_cache_key"] == "tenant-7"


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["anthropic", "gemini", "bedrock"])
async def test_prompt_cache_key_is_refused_where_it_is_not_taken(
    kind: str, server: FakeLLMServer
) -> None:
    async with AsyncLLMClient(make_provider(kind, server), config=ClientConfig()) as c:
        with pytest.raises(UnsupportedParameterError, match="prompt_cache_key") as info:
            await c.chat([{"role": "user", "content": "Hi"}], model="m", prompt_cache_key="t")
        with pytest.raises(UnsupportedParameterError):
            async with c.stream(
                [{"role": "user", "content": "Hi"}], model="m", prompt_cache_key="t"
            ):
                pass
    assert info.value.parameter == "prompt_cache_key" and info.value.provider == kind
    assert server.request_count == 0  # refused before sending


# -- cache tokens and their price -----------------------------------------------------------


def expected_cost(model: str, fresh: int, read: int, five: int, hour: int, out: int) -> float:
    p = PricingTable().get(model)
    assert p is not None and p.cached_input and p.cache_write and p.cache_write_1h
    total = fresh * p.input + read * p.cached_input + five * p.cache_write
    return (total + hour * p.cache_write_1h + out * p.output) / 1e6


@pytest.mark.anyio
async def test_anthropic_cache_writes_and_reads_are_priced_apart(server: FakeLLMServer) -> None:
    model = "claude-sonnet-4-5"
    ask: list[dict[str, Any]] = [
        {"role": "system", "content": [{"type": "text", "text": LONG, "cache_control": HOUR}]},
        {"role": "user", "content": "A question"},
    ]
    async with AsyncLLMClient(make_provider("anthropic", server), config=ClientConfig()) as c:
        first = await c.chat(ask, model=model)
        again = await c.chat(ask, model=model)
        ledger = c.cost_manager.get_metrics()
    prefix = len(LONG.split())
    u = first.usage
    assert (u.cache_creation_input_tokens, u.cache_creation_1h_input_tokens) == (prefix, prefix)
    assert u.cached_input_tokens == 0 and u.input_tokens == prefix + 2
    assert first.cost == pytest.approx(expected_cost(model, 2, 0, 0, prefix, u.output_tokens))
    v = again.usage
    assert (v.cached_input_tokens, v.cache_creation_input_tokens) == (prefix, 0)
    assert again.cost == pytest.approx(expected_cost(model, 2, prefix, 0, 0, v.output_tokens))
    assert again.cost is not None and first.cost is not None and again.cost < first.cost / 5
    assert ledger.total_cost == pytest.approx(first.cost + again.cost)


@pytest.mark.anyio
async def test_five_minute_and_one_hour_writes_in_one_request(server: FakeLLMServer) -> None:
    model = "claude-opus-4-5"
    five = [
        {"role": "user", "content": [{"type": "text", "text": LONG, "cache_control": EPHEMERAL}]}
    ]
    async with AsyncLLMClient(make_provider("anthropic", server), config=ClientConfig()) as c:
        r = await c.chat(five, model=model)
        u = r.usage
        assert u.cache_creation_input_tokens == len(LONG.split())
        assert u.cache_creation_1h_input_tokens == 0
        assert r.cost == pytest.approx(
            expected_cost(model, 0, 0, len(LONG.split()), 0, u.output_tokens)
        )


@pytest.mark.anyio
async def test_bedrock_and_openrouter_report_cache_tokens(server: FakeLLMServer) -> None:
    ask: list[dict[str, Any]] = [
        {"role": "system", "content": [{"type": "text", "text": LONG, "cache_control": EPHEMERAL}]},
        {"role": "user", "content": "A question"},
    ]
    prefix = len(LONG.split())
    for kind, model in (
        ("bedrock", "global.anthropic.claude-sonnet-4-5-20250929-v1:0"),
        ("openrouter", "anthropic/claude-sonnet-4.5"),
    ):
        async with AsyncLLMClient(make_provider(kind, server), config=ClientConfig()) as c:
            first = await c.chat(ask, model=model)
            again = await c.chat(ask, model=model)
        assert first.usage.cache_creation_input_tokens == prefix, kind
        assert again.usage.cached_input_tokens == prefix, kind
        assert again.cost is not None and first.cost is not None
        assert again.cost < first.cost, kind


@pytest.mark.anyio
async def test_bedrock_cache_points_keep_their_ttl_and_hour_writes_are_priced(
    server: FakeLLMServer,
) -> None:
    model = "global.anthropic.claude-sonnet-4-5-20250929-v1:0"
    ask: list[dict[str, Any]] = [
        {"role": "system", "content": [{"type": "text", "text": LONG, "cache_control": HOUR}]},
        {
            "role": "user",
            "content": "A question",
            "cache_control": {"type": "ephemeral", "ttl": "5m"},
        },
    ]
    async with AsyncLLMClient(make_provider("bedrock", server), config=ClientConfig()) as c:
        first = await c.chat(ask, model=model)
        body = server.last_request.json()
        assert body["system"][1] == {"cachePoint": {"type": "default", "ttl": "1h"}}
        assert body["messages"][0]["content"][1] == {"cachePoint": {"type": "default", "ttl": "5m"}}
        again = await c.chat(ask, model=model)
        ledger = c.cost_manager.get_metrics()
        with pytest.raises(InvalidRequestError, match="'5m' or '1h'"):
            bad = [
                {
                    "role": "user",
                    "content": "Q",
                    "cache_control": {"type": "ephemeral", "ttl": "2h"},
                }
            ]
            await c.chat(bad, model=model)
    prefix = len(LONG.split())
    u = first.usage
    # the fake writes up to the last mark (5m); Converse reports the writes by TTL
    assert u.cache_creation_input_tokens == prefix + 2
    assert u.cache_creation_1h_input_tokens == 0
    assert again.usage.cached_input_tokens == prefix + 2
    assert ledger.total_cost == pytest.approx((first.cost or 0) + (again.cost or 0))
    # a one-hour write alone: reported in cacheDetails and priced at the 1h rate
    hour_only: list[dict[str, Any]] = [
        {
            "role": "system",
            "content": [{"type": "text", "text": LONG + " v2", "cache_control": HOUR}],
        },
        {"role": "user", "content": "A question"},
    ]
    async with AsyncLLMClient(make_provider("bedrock", server), config=ClientConfig()) as c:
        r = await c.chat(hour_only, model=model)
    v = r.usage
    assert v.cache_creation_input_tokens == v.cache_creation_1h_input_tokens == prefix + 1
    assert r.cost == pytest.approx(
        expected_cost(model, v.input_tokens - prefix - 1, 0, 0, prefix + 1, v.output_tokens)
    )


def agent_history() -> list[dict[str, Any]]:
    """A tool loop whose assistant turns are marked: one in OpenAI's shape, one in Anthropic's."""
    call = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
    return [
        {"role": "user", "content": "Look two rules up"},
        {
            "role": "assistant",
            "content": "Looking",
            "tool_calls": [call],
            "cache_control": EPHEMERAL,
        },
        {"role": "tool", "tool_call_id": "c1", "content": "rule one"},
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "c2",
                    "name": "lookup",
                    "input": {},
                    "cache_control": HOUR,
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c2", "content": "rule two"},
    ]


@pytest.mark.anyio
async def test_a_marked_turn_with_tool_calls_marks_its_last_call(server: FakeLLMServer) -> None:
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    async with AsyncLLMClient(make_provider("anthropic", server), config=ClientConfig()) as c:
        await c.chat(agent_history(), model="claude-sonnet-4-5", tools=[tool])
        body = server.last_request.json()
    assert sorted(markers(body)) == [
        "messages.1.content.1.cache_control",
        "messages.3.content.0.cache_control",
    ]
    assert body["messages"][1]["content"][1]["type"] == "tool_use"
    assert body["messages"][3]["content"][0]["cache_control"] == HOUR
    async with AsyncLLMClient(make_provider("bedrock", server), config=ClientConfig()) as c:
        model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
        await c.chat(agent_history(), model=model, tools=[tool])
        body = server.last_request.json()
    assert sorted(markers(body)) == [
        "messages.1.content.2.cachePoint",
        "messages.3.content.1.cachePoint",
    ]
    assert "toolUse" in body["messages"][1]["content"][1]
    assert body["messages"][3]["content"][1] == {"cachePoint": {"type": "default", "ttl": "1h"}}


@pytest.mark.anyio
async def test_openrouter_gets_a_marked_assistant_text_as_a_part(server: FakeLLMServer) -> None:
    history: list[dict[str, Any]] = [
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi there", "cache_control": EPHEMERAL},
        {"role": "user", "content": "Go on"},
    ]
    async with AsyncLLMClient(make_provider("openrouter", server), config=ClientConfig()) as c:
        await c.chat(history, model="anthropic/claude-sonnet-4.5")
        body = server.last_request.json()
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "Hi there", "cache_control": EPHEMERAL}],
    }
    assert markers(body) == ["messages.1.content.0.cache_control"]
