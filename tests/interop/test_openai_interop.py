"""aio_llm and the official openai SDK, same requests, same independent server (LLMock).

Text, tool calls (and the conversation that follows them, in the SDK's own
message format), usage, finish reasons, streaming and HTTP errors must agree.
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

import aio_llm
from aio_llm import AsyncLLMClient

from .conftest import KEY

pytestmark = pytest.mark.anyio

MODEL = "gpt-4o-mini"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


async def test_text_usage_and_finish_reason_agree(
    aio_openai: AsyncLLMClient, sdk_openai: Any
) -> None:
    messages = [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Name a colour of the sky."},
    ]
    params: dict[str, Any] = {"temperature": 0, "max_tokens": 64, "seed": 7, "top_p": 1.0}
    sdk = await sdk_openai.chat.completions.create(model=MODEL, messages=messages, **params)
    ours = await aio_openai.chat(messages, model=MODEL, **params)

    choice = sdk.choices[0]
    assert ours.content == choice.message.content
    assert ours.content and "Name a colour of the sky." in ours.content
    assert ours.finish_reason == choice.finish_reason == "stop"
    assert ours.tool_calls == [] or ours.tool_calls is None or not ours.tool_calls
    assert sdk.usage is not None
    assert ours.usage.input_tokens == sdk.usage.prompt_tokens
    assert ours.usage.output_tokens == sdk.usage.completion_tokens
    assert ours.usage.total_tokens == sdk.usage.total_tokens
    assert ours.model == sdk.model == MODEL
    assert ours.provider == "openai"
    assert ours.raw["choices"][0]["message"]["content"] == choice.message.content


async def test_tool_calls_and_the_conversation_after_them_agree(
    aio_openai: AsyncLLMClient, sdk_openai: Any
) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris?"}]
    sdk = await sdk_openai.chat.completions.create(
        model=MODEL,
        messages=messages,
        tools=[WEATHER],
    )
    ours = await aio_openai.chat(messages, model=MODEL, tools=[WEATHER])

    sdk_calls = sdk.choices[0].message.tool_calls or []
    assert ours.finish_reason == sdk.choices[0].finish_reason == "tool_calls"
    assert len(ours.tool_calls or []) == len(sdk_calls) == 1
    ours_call, sdk_call = (ours.tool_calls or [])[0], sdk_calls[0]
    assert sdk_call.type == "function"
    assert ours_call.name == sdk_call.function.name == "get_weather"
    assert json.loads(ours_call.arguments) == json.loads(sdk_call.function.arguments)
    assert ours_call.id.startswith("call_") and sdk_call.id.startswith("call_")
    assert sdk.usage is not None
    assert (ours.usage.input_tokens, ours.usage.output_tokens) == (
        sdk.usage.prompt_tokens,
        sdk.usage.completion_tokens,
    )

    # the SDK user's history, exactly as they keep it: the assistant turn in the
    # OpenAI shape (tool_calls: [{id, type, function: {name, arguments}}]), then the result
    history: list[Any] = [
        *messages,
        sdk.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": sdk_call.id, "content": "sunny, 21 C"},
    ]
    sdk_next = await sdk_openai.chat.completions.create(
        model=MODEL,
        messages=history,
        tools=[WEATHER],
    )
    ours_next = await aio_openai.chat(history, model=MODEL, tools=[WEATHER])
    assert ours_next.content == sdk_next.choices[0].message.content
    assert ours_next.content and "sunny, 21 C" in ours_next.content
    assert ours_next.finish_reason == sdk_next.choices[0].finish_reason == "stop"

    # and aio_llm's own history (its message, then the tool result) is read the same
    ours_history: list[Any] = [
        *messages,
        ours.message,
        {"role": "tool", "tool_call_id": ours_call.id, "content": "sunny, 21 C"},
    ]
    again = await aio_openai.chat(ours_history, model=MODEL, tools=[WEATHER])
    assert again.content == ours_next.content


async def test_streams_agree(aio_openai: AsyncLLMClient, sdk_openai: Any) -> None:
    messages = [{"role": "user", "content": "Stream me a short answer, please."}]
    stream = await sdk_openai.chat.completions.create(
        model=MODEL,
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
    )
    parts: list[str] = []
    finish: str | None = None
    usage = None
    async for chunk in stream:
        if chunk.choices:
            parts.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage is not None:
            usage = chunk.usage

    async with aio_openai.stream(messages, model=MODEL) as s:
        deltas = [chunk.delta async for chunk in s]
    final = s.response

    assert "".join(deltas) == "".join(parts)
    assert len(deltas) > 1  # it did arrive in pieces
    assert final is not None
    assert final.content == "".join(parts)
    assert final.finish_reason == finish == "stop"
    assert usage is not None
    assert final.usage.input_tokens == usage.prompt_tokens
    assert final.usage.output_tokens == usage.completion_tokens


async def test_a_streamed_tool_call_agrees(aio_openai: AsyncLLMClient, sdk_openai: Any) -> None:
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    stream = await sdk_openai.chat.completions.create(
        model=MODEL, messages=messages, tools=[WEATHER], stream=True
    )
    names: dict[int, str] = {}
    arguments: dict[int, str] = {}
    finish: str | None = None
    async for chunk in stream:
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for delta in choice.delta.tool_calls or []:
                if delta.function and delta.function.name:
                    names[delta.index] = delta.function.name
                if delta.function and delta.function.arguments:
                    arguments[delta.index] = (
                        arguments.get(delta.index, "") + delta.function.arguments
                    )

    async with aio_openai.stream(messages, model=MODEL, tools=[WEATHER]) as s:
        async for _ in s:
            pass
    final = s.response
    assert final is not None
    calls = final.tool_calls or []
    assert [c.name for c in calls] == [names[i] for i in sorted(names)] == ["get_weather"]
    assert [json.loads(c.arguments) for c in calls] == [
        json.loads(arguments[i]) for i in sorted(arguments)
    ]
    assert final.finish_reason == finish == "tool_calls"


# the SDK's exception class for each status, and aio_llm's: the same names
STATUSES = [400, 401, 403, 404, 409, 422, 429, 500, 503]


@pytest.mark.parametrize("status", STATUSES)
async def test_errors_agree(aio_openai: AsyncLLMClient, sdk_openai: Any, status: int) -> None:
    messages = [{"role": "user", "content": "Hello"}]
    headers = {"x-llmock-force-status": str(status)}
    with pytest.raises(openai.APIStatusError) as sdk_info:
        await sdk_openai.chat.completions.create(
            model=MODEL,
            messages=messages,
            extra_headers=headers,
        )
    with pytest.raises(aio_llm.APIStatusError) as ours_info:
        await aio_openai.chat(messages, model=MODEL, extra_headers=headers)
    sdk_exc, ours = sdk_info.value, ours_info.value

    assert ours.status_code == sdk_exc.status_code == status
    assert type(sdk_exc).__name__ in _names(type(ours)), (type(ours), type(sdk_exc))
    assert ours.body == sdk_exc.body  # the "error" object, on both
    message = sdk_exc.body["message"] if isinstance(sdk_exc.body, dict) else ""
    assert message and message in str(ours)
    assert ours.response is not None
    assert ours.response.status_code == sdk_exc.response.status_code
    assert KEY not in str(ours) and KEY not in repr(ours)
    if status == 429:
        assert ours.headers.get("retry-after") == sdk_exc.response.headers.get("retry-after")


async def test_a_streamed_request_refused_raises_the_same_error(
    aio_openai: AsyncLLMClient, sdk_openai: Any
) -> None:
    messages = [{"role": "user", "content": "Hello"}]
    headers = {"x-llmock-force-status": "429"}
    with pytest.raises(openai.RateLimitError):
        await sdk_openai.chat.completions.create(
            model=MODEL,
            messages=messages,
            stream=True,
            extra_headers=headers,
        )
    with pytest.raises(aio_llm.RateLimitError) as info:
        async with aio_openai.stream(messages, model=MODEL, extra_headers=headers) as s:
            async for _ in s:
                pass
    assert info.value.status_code == 429


def _names(cls: type) -> set[str]:
    """The names a user can catch an aio_llm error by (its class and its bases)."""
    return {c.__name__ for c in cls.__mro__}
