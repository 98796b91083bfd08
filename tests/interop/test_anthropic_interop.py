"""aio_llm and the official anthropic SDK, same requests, same independent server (LLMock).

aio_llm takes OpenAI-style arguments and normalises finish reasons
(``end_turn`` is ``stop``, ``tool_use`` is ``tool_calls``, ``max_tokens`` is
``length``, as docs/migration.md says); the provider's own value stays in
``raw``. Text, tool calls, usage, streaming and errors must agree.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest

import aio_llm
from aio_llm import AsyncLLMClient

from .conftest import KEY

pytestmark = pytest.mark.anyio

MODEL = "claude-3-5-haiku-latest"
FINISH = {"end_turn": "stop", "tool_use": "tool_calls", "max_tokens": "length"}
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


async def test_text_usage_and_stop_reason_agree(
    aio_anthropic: AsyncLLMClient, sdk_anthropic: Any
) -> None:
    messages = [{"role": "user", "content": "Name a colour of the sky."}]
    sdk = await sdk_anthropic.messages.create(
        model=MODEL,
        max_tokens=100,
        system="Be terse.",
        messages=messages,
        stop_sequences=["END"],
    )
    ours = await aio_anthropic.chat(
        [{"role": "system", "content": "Be terse."}, *messages],
        model=MODEL,
        max_tokens=100,
        stop=["END"],
    )

    text = "".join(b.text for b in sdk.content if b.type == "text")
    assert ours.content == text
    assert ours.content and "Name a colour of the sky." in ours.content
    assert sdk.stop_reason == "end_turn"
    assert ours.finish_reason == FINISH[sdk.stop_reason]
    assert ours.raw["stop_reason"] == sdk.stop_reason
    assert ours.usage.input_tokens == sdk.usage.input_tokens
    assert ours.usage.output_tokens == sdk.usage.output_tokens
    assert ours.model == sdk.model == MODEL
    assert ours.provider == "anthropic"


async def test_tool_use_and_the_conversation_after_it_agree(
    aio_anthropic: AsyncLLMClient, sdk_anthropic: Any
) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris?"}]
    sdk = await sdk_anthropic.messages.create(
        model=MODEL,
        max_tokens=100,
        messages=messages,
        tools=[WEATHER],
    )
    ours = await aio_anthropic.chat(messages, model=MODEL, max_tokens=100, tools=[WEATHER])

    uses = [b for b in sdk.content if b.type == "tool_use"]
    assert sdk.stop_reason == "tool_use"
    assert ours.finish_reason == FINISH[sdk.stop_reason] == "tool_calls"
    assert len(ours.tool_calls or []) == len(uses) == 1
    call, use = (ours.tool_calls or [])[0], uses[0]
    assert call.name == use.name == "get_weather"
    assert json.loads(call.arguments) == use.input
    assert call.id.startswith("toolu_") and use.id.startswith("toolu_")
    assert (ours.usage.input_tokens, ours.usage.output_tokens) == (
        sdk.usage.input_tokens,
        sdk.usage.output_tokens,
    )

    # the SDK user's history as they keep it: Anthropic content blocks, the
    # assistant's tool_use, then a user turn with the tool_result
    history: list[Any] = [
        *messages,
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in sdk.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny, 21 C"}],
        },
    ]
    sdk_next = await sdk_anthropic.messages.create(
        model=MODEL,
        max_tokens=100,
        messages=history,
        tools=[WEATHER],
    )
    ours_next = await aio_anthropic.chat(history, model=MODEL, max_tokens=100, tools=[WEATHER])
    sdk_text = "".join(b.text for b in sdk_next.content if b.type == "text")
    assert ours_next.content == sdk_text
    assert ours_next.finish_reason == FINISH[sdk_next.stop_reason or ""]

    # aio_llm's own (OpenAI-style) history reaches the server as the same request
    ours_history: list[Any] = [
        *messages,
        ours.message,
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"},
    ]
    again = await aio_anthropic.chat(ours_history, model=MODEL, max_tokens=100, tools=[WEATHER])
    assert again.content == ours_next.content


async def test_streams_agree(aio_anthropic: AsyncLLMClient, sdk_anthropic: Any) -> None:
    messages = [{"role": "user", "content": "Stream me a short answer, please."}]
    async with sdk_anthropic.messages.stream(
        model=MODEL,
        max_tokens=100,
        messages=messages,
    ) as sdk_stream:
        parts = [text async for text in sdk_stream.text_stream]
        sdk = await sdk_stream.get_final_message()

    async with aio_anthropic.stream(messages, model=MODEL, max_tokens=100) as s:
        deltas = [chunk.delta async for chunk in s]
    final = s.response

    assert "".join(deltas) == "".join(parts)
    assert len(deltas) > 1
    assert final is not None
    assert final.content == "".join(parts)
    assert final.finish_reason == FINISH[sdk.stop_reason or ""] == "stop"
    assert final.usage.input_tokens == sdk.usage.input_tokens
    assert final.usage.output_tokens == sdk.usage.output_tokens


async def test_a_streamed_tool_call_agrees(
    aio_anthropic: AsyncLLMClient, sdk_anthropic: Any
) -> None:
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    async with sdk_anthropic.messages.stream(
        model=MODEL,
        max_tokens=100,
        messages=messages,
        tools=[WEATHER],
    ) as sdk_stream:
        sdk = await sdk_stream.get_final_message()
    async with aio_anthropic.stream(messages, model=MODEL, max_tokens=100, tools=[WEATHER]) as s:
        async for _ in s:
            pass
    final = s.response
    assert final is not None
    uses = [b for b in sdk.content if b.type == "tool_use"]
    assert [c.name for c in final.tool_calls or []] == [u.name for u in uses]
    assert [json.loads(c.arguments) for c in final.tool_calls or []] == [u.input for u in uses]
    assert final.finish_reason == FINISH[sdk.stop_reason or ""] == "tool_calls"


async def test_a_cut_off_answer_agrees(aio_anthropic: AsyncLLMClient, sdk_anthropic: Any) -> None:
    messages = [{"role": "user", "content": "Tell me a long story about the sea."}]
    sdk = await sdk_anthropic.messages.create(model=MODEL, max_tokens=2, messages=messages)
    ours = await aio_anthropic.chat(messages, model=MODEL, max_tokens=2)
    assert sdk.stop_reason == "max_tokens"
    assert ours.finish_reason == FINISH[sdk.stop_reason] == "length"
    assert ours.raw["stop_reason"] == "max_tokens"
    assert ours.content == "".join(b.text for b in sdk.content if b.type == "text")


STATUSES = [400, 401, 403, 404, 409, 422, 429, 500, 503, 529]


@pytest.mark.parametrize("status", STATUSES)
async def test_errors_agree(aio_anthropic: AsyncLLMClient, sdk_anthropic: Any, status: int) -> None:
    messages = [{"role": "user", "content": "Hello"}]
    headers = {"x-llmock-force-status": str(status)}
    with pytest.raises(anthropic.APIStatusError) as sdk_info:
        await sdk_anthropic.messages.create(
            model=MODEL,
            max_tokens=10,
            messages=messages,
            extra_headers=headers,
        )
    with pytest.raises(aio_llm.APIStatusError) as ours_info:
        await aio_anthropic.chat(messages, model=MODEL, max_tokens=10, extra_headers=headers)
    sdk_exc, ours = sdk_info.value, ours_info.value

    assert ours.status_code == sdk_exc.status_code == status
    assert type(sdk_exc).__name__ in _names(type(ours)), (type(ours), type(sdk_exc))
    assert ours.body == sdk_exc.body  # the whole body, on both
    assert isinstance(sdk_exc.body, dict)
    assert sdk_exc.body["error"]["message"] in str(ours)
    assert ours.response is not None
    assert ours.response.status_code == sdk_exc.response.status_code
    assert KEY not in str(ours) and KEY not in repr(ours)


def _names(cls: type) -> set[str]:
    """The names a user can catch an aio_llm error by (its class and its bases)."""
    return {c.__name__ for c in cls.__mro__}
