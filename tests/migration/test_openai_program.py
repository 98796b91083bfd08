"""Migration: an openai SDK program and its aio_llm rewrite behave the same.

``sdk_program`` is written as an ``openai`` user writes it: configuration
from the environment only (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``), the
SDK's constructor arguments, a tool call answered over a history, the
SDK's parameters, a stream with usage, and the errors it catches.
``aio_llm_program`` is the same program rewritten the way
docs/migration.md says. Both run against one FakeLLMServer; what each
observes, and what each sent, must agree.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

import aio_llm
from aio_llm.testing import FakeLLMServer, Fault

MODEL = "gpt-4o-mini"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"enum": ["C", "F"]}},
                "required": ["city", "unit"],
            },
        },
    }
]
PARAMS: dict[str, Any] = {
    "temperature": 0,
    "seed": 7,
    "max_tokens": 50,
    "frequency_penalty": 0.2,
    "presence_penalty": 0.1,
    "logit_bias": {"50256": -100},
    "parallel_tool_calls": False,
    "user": "user-42",
}
EXTRAS: dict[str, Any] = {
    "extra_headers": {"X-App": "migration-test"},
    "extra_query": {"trace": "1"},
    "extra_body": {"metadata": {"job": "nightly"}},
}


def start() -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is the weather in Paris? CALL_TOOL"},
    ]


async def sdk_program(server: FakeLLMServer) -> list[Any]:
    import openai

    seen: list[Any] = []
    client: Any  # the SDK's own types are not what this test checks
    async with openai.AsyncOpenAI(max_retries=0, timeout=30.0) as client:
        history = start()
        r = await client.chat.completions.create(
            model=MODEL, messages=history, tools=TOOLS, **PARAMS, **EXTRAS
        )
        choice = r.choices[0]
        assert choice.message.tool_calls
        call = choice.message.tool_calls[0]
        seen.append(
            (
                "tool call",
                call.function.name,
                json.loads(call.function.arguments),
                choice.finish_reason,
                r.usage.prompt_tokens if r.usage else None,
                r.usage.completion_tokens if r.usage else None,
            )
        )
        history.append(choice.message.model_dump(exclude_none=True))
        history.append({"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"})

        r = await client.chat.completions.create(
            model=MODEL, messages=history, tools=TOOLS, **PARAMS
        )
        seen.append(
            (
                "answer",
                r.choices[0].message.content,
                r.choices[0].finish_reason,
                r.usage.total_tokens,
            )
        )
        history.append({"role": "assistant", "content": r.choices[0].message.content})
        history.append({"role": "user", "content": "And tomorrow, in one long sentence?"})

        stream = await client.chat.completions.create(
            model=MODEL,
            messages=history,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        text, finish, usage = "", None, None
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
                finish = chunk.choices[0].finish_reason or finish
            if chunk.usage:
                usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
        seen.append(("stream", text, finish, usage))

        r = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "one two three four"}], max_tokens=2
        )
        seen.append(("cut", r.choices[0].message.content, r.choices[0].finish_reason))

        for fault in (
            Fault.status(429, message="Rate limit reached", retry_after=3),
            Fault.status(400, message="Invalid 'messages'", error_type="invalid_request_error"),
            Fault.status(500, message="The server had an error"),
        ):
            server.enqueue(fault)
            try:
                await client.chat.completions.create(model=MODEL, messages=start())
            except openai.APIStatusError as e:
                seen.append(
                    (
                        "error",
                        type(e).__name__,
                        e.status_code,
                        e.body,
                        e.response.headers.get("retry-after"),
                        isinstance(e, openai.APIError),
                    )
                )
    return seen


async def aio_llm_program(server: FakeLLMServer) -> list[Any]:
    seen: list[Any] = []
    async with aio_llm.AsyncLLMClient(max_retries=0, timeout=30.0) as client:
        history: list[Any] = start()
        r = await client.chat(history, model=MODEL, tools=TOOLS, **PARAMS, **EXTRAS)
        call = r.tool_calls[0]
        seen.append(
            (
                "tool call",
                call.name,
                json.loads(call.arguments),
                r.finish_reason,
                r.usage.input_tokens,
                r.usage.output_tokens,
            )
        )
        history.append(r.message)
        history.append({"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"})

        r = await client.chat(history, model=MODEL, tools=TOOLS, **PARAMS)
        seen.append(("answer", r.content, r.finish_reason, r.usage.total_tokens))
        history.append({"role": "assistant", "content": r.content})
        history.append({"role": "user", "content": "And tomorrow, in one long sentence?"})

        async with client.stream(history, model=MODEL, temperature=0) as s:
            text = "".join([chunk.delta async for chunk in s])
        final = s.response
        assert final is not None
        usage = (final.usage.input_tokens, final.usage.output_tokens)
        seen.append(("stream", text, final.finish_reason, usage))

        r = await client.chat(
            [{"role": "user", "content": "one two three four"}], model=MODEL, max_tokens=2
        )
        seen.append(("cut", r.content, r.finish_reason))

        for fault in (
            Fault.status(429, message="Rate limit reached", retry_after=3),
            Fault.status(400, message="Invalid 'messages'", error_type="invalid_request_error"),
            Fault.status(500, message="The server had an error"),
        ):
            server.enqueue(fault)
            try:
                await client.chat(start(), model=MODEL)
            except aio_llm.APIStatusError as e:
                seen.append(
                    (
                        "error",
                        type(e).__name__,
                        e.status_code,
                        e.body,
                        e.response.headers.get("retry-after"),
                        isinstance(e, aio_llm.APIError),
                    )
                )
    return seen


_SENT = (
    "model",
    "tools",
    "temperature",
    "seed",
    "max_tokens",
    "frequency_penalty",
    "presence_penalty",
    "logit_bias",
    "parallel_tool_calls",
    "user",
    "metadata",
    "stream",
)


def _sent(request: Any) -> tuple[Any, ...]:
    body = request.json()
    # tool call ids come from each run's own answers: compared as "set or not"
    messages = [
        (
            m["role"],
            m.get("content") or "",
            [
                (c["type"], c["function"]["name"], c["function"]["arguments"])
                for c in m.get("tool_calls", [])
            ],
            bool(m.get("tool_call_id")),
        )
        for m in body["messages"]
    ]
    return (
        request.path,
        request.query,
        request.headers.get("x-app"),
        request.headers["authorization"],
        messages,
        {k: body.get(k) for k in _SENT},
    )


@pytest.mark.anyio
async def test_the_rewritten_program_behaves_like_the_sdk_program(
    server: FakeLLMServer, bare_env: pytest.MonkeyPatch
) -> None:
    bare_env.setenv("OPENAI_API_KEY", "sk-migration-0123456789")  # the only configuration
    bare_env.setenv("OPENAI_BASE_URL", server.openai_url)

    theirs = await sdk_program(server)
    sdk_sent = [_sent(r) for r in server.requests]
    server.reset_stats()
    ours = await aio_llm_program(server)
    our_sent = [_sent(r) for r in server.requests]

    assert ours == theirs
    assert [kind for kind, *_ in ours] == ["tool call", "answer", "stream", "cut"] + ["error"] * 3
    assert ours[0][1:4] == ("get_weather", {"city": "test", "unit": "C"}, "tool_calls")
    assert [e[1] for e in ours[4:]] == ["RateLimitError", "BadRequestError", "InternalServerError"]
    # the same requests went out: path, query, headers, history and parameters
    assert len(our_sent) == len(sdk_sent) == 7
    assert our_sent == sdk_sent
