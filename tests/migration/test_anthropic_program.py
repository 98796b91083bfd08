"""Migration: an anthropic SDK program and its aio_llm rewrite behave the same.

``sdk_program`` is written as an ``anthropic`` user writes it: configuration
from the environment only (``ANTHROPIC_API_KEY``, ``ANTHROPIC_BASE_URL``),
a ``system`` prompt, a native tool answered over a history of content
blocks, ``top_k`` / ``stop_sequences`` / ``metadata``, ``messages.stream``
and the errors it catches. ``aio_llm_program`` is the same program
rewritten the way docs/migration.md says. Both run against one
FakeLLMServer; what each observes, and what each sent, must agree.
"""

from __future__ import annotations

from typing import Any

import pytest

import aio_llm
from aio_llm.testing import FakeLLMServer, Fault

MODEL = "claude-3-5-haiku-latest"
SYSTEM = "You are terse."
TOOLS = [
    {
        "name": "get_weather",
        "description": "The weather in a city",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
        },
    }
]
# what the SDK returns as stop_reason, in aio_llm's finish_reason terms
FINISH = {
    "end_turn": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "stop_sequence": "stop",
}
ERRORS = (
    Fault.status(
        429, message="Number of requests exceeded", error_type="rate_limit_error", retry_after=2
    ),
    Fault.status(400, message="messages: bad", error_type="invalid_request_error"),
    Fault.status(529, message="Overloaded", error_type="overloaded_error"),
)


def question() -> list[dict[str, Any]]:
    return [{"role": "user", "content": "Weather in Oslo for 3 days? CALL_TOOL"}]


async def sdk_program(server: FakeLLMServer) -> list[Any]:
    import anthropic

    seen: list[Any] = []
    client: Any  # the SDK's own types are not what this test checks
    async with anthropic.AsyncAnthropic(max_retries=0, timeout=30.0) as client:
        history = question()
        r = await client.messages.create(
            model=MODEL,
            max_tokens=200,
            system=SYSTEM,
            messages=history,
            tools=TOOLS,
            stop_sequences=["END"],
            metadata={"user_id": "user-42"},
            service_tier="standard_only",
            extra_headers={"X-App": "migration-test"},
            # this SDK's create() no longer names the sampling parameters
            extra_body={"temperature": 0, "top_k": 5},
        )
        use = next(b for b in r.content if b.type == "tool_use")
        seen.append(
            ("tool call", use.name, use.input, FINISH[r.stop_reason or ""], r.usage.input_tokens)
        )
        history.append({"role": "assistant", "content": r.content})
        history.append(
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "snow"}],
            }
        )
        r = await client.messages.create(
            model=MODEL,
            max_tokens=200,
            system=SYSTEM,
            messages=history,
            tools=TOOLS,
            extra_body={"temperature": 0},
        )
        text = "".join(b.text for b in r.content if b.type == "text")
        seen.append(("answer", text, FINISH[r.stop_reason or ""], r.usage.output_tokens))
        history.append({"role": "assistant", "content": text})
        history.append({"role": "user", "content": "And next week?"})

        async with client.messages.stream(
            model=MODEL,
            max_tokens=200,
            system=SYSTEM,
            messages=history,
            extra_body={"temperature": 0},
        ) as stream:
            streamed = "".join([t async for t in stream.text_stream])
            final = await stream.get_final_message()
        seen.append(
            ("stream", streamed, FINISH[final.stop_reason or ""], final.usage.output_tokens)
        )

        for fault in ERRORS:
            server.enqueue(fault)
            try:
                await client.messages.create(model=MODEL, max_tokens=10, messages=question())
            except anthropic.APIStatusError as e:
                body = dict(e.body) if isinstance(e.body, dict) else e.body
                seen.append(
                    (
                        "error",
                        type(e).__name__,
                        e.status_code,
                        body["error"] if isinstance(body, dict) else body,
                        e.response.headers.get("retry-after"),
                    )
                )
    return seen


async def aio_llm_program(server: FakeLLMServer) -> list[Any]:
    seen: list[Any] = []
    async with aio_llm.AsyncLLMClient(max_retries=0, timeout=30.0) as client:
        history: list[Any] = [{"role": "system", "content": SYSTEM}, *question()]
        r = await client.chat(
            history,
            model=MODEL,
            max_tokens=200,
            tools=TOOLS,
            temperature=0,
            top_k=5,
            stop=["END"],
            user="user-42",
            service_tier="standard_only",
            extra_headers={"X-App": "migration-test"},
        )
        call = r.tool_calls[0]
        seen.append(
            (
                "tool call",
                call.name,
                aio_llm_json(call.arguments),
                r.finish_reason,
                r.usage.input_tokens,
            )
        )
        history.append(r.message)
        history.append({"role": "tool", "tool_call_id": call.id, "content": "snow"})
        r = await client.chat(history, model=MODEL, max_tokens=200, tools=TOOLS, temperature=0)
        seen.append(("answer", r.content, r.finish_reason, r.usage.output_tokens))
        history.append({"role": "assistant", "content": r.content})
        history.append({"role": "user", "content": "And next week?"})

        async with client.stream(history, model=MODEL, max_tokens=200, temperature=0) as s:
            streamed = await s.text()
        final = s.response
        assert final is not None
        seen.append(("stream", streamed, final.finish_reason, final.usage.output_tokens))

        for fault in ERRORS:
            server.enqueue(fault)
            try:
                await client.chat(question(), model=MODEL, max_tokens=10)
            except aio_llm.APIStatusError as e:
                body = e.body
                seen.append(
                    (
                        "error",
                        type(e).__name__,
                        e.status_code,
                        body["error"] if isinstance(body, dict) else body,
                        e.response.headers.get("retry-after"),
                    )
                )
    return seen


def aio_llm_json(text: str) -> Any:
    import json

    return json.loads(text)


def _sent(request: Any) -> tuple[Any, ...]:
    body = request.json()
    messages = []
    for m in body["messages"]:
        content = m["content"]
        if isinstance(content, list):  # ids are each run's own
            content = [
                {k: v for k, v in b.items() if k not in ("id", "tool_use_id")} for b in content
            ]
            content = [b for b in content if b != {"type": "text", "text": ""}]
        messages.append((m["role"], content))
    keys = ("model", "max_tokens", "system", "tools", "temperature", "top_k")
    keys2 = ("stop_sequences", "service_tier", "metadata", "stream")
    return (
        request.path,
        request.headers.get("x-app"),
        _credential(request.headers),
        messages,
        {k: body.get(k) for k in (*keys, *keys2)},
    )


def _credential(headers: Any) -> str:
    """The key sent: ``x-api-key`` (aio_llm, older SDKs) or a bearer token (newer SDKs).

    The ``anthropic-version`` each sends is its own and not compared.
    """
    key: str = headers.get("x-api-key") or headers["authorization"].removeprefix("Bearer ")
    return key


@pytest.mark.anyio
async def test_the_rewritten_program_behaves_like_the_sdk_program(
    server: FakeLLMServer, bare_env: pytest.MonkeyPatch
) -> None:
    bare_env.setenv("ANTHROPIC_API_KEY", "sk-ant-migration-0123456789")  # the only configuration
    bare_env.setenv("ANTHROPIC_BASE_URL", server.url)

    theirs = await sdk_program(server)
    sdk_sent = [_sent(r) for r in server.requests]
    server.reset_stats()
    ours = await aio_llm_program(server)
    our_sent = [_sent(r) for r in server.requests]

    assert ours == theirs
    assert [kind for kind, *_ in ours] == ["tool call", "answer", "stream"] + ["error"] * 3
    assert ours[0][1:4] == ("get_weather", {"city": "test", "days": 1}, "tool_calls")
    assert [e[1] for e in ours[3:]] == ["RateLimitError", "BadRequestError", "OverloadedError"]
    assert len(our_sent) == len(sdk_sent) == 6
    for mine, sdk in zip(our_sent, sdk_sent, strict=True):
        assert mine == sdk
