"""The data types; and ``fast_construct``, pinned so that a pydantic change under it fails here."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest
from pydantic import BaseModel

from aio_llm.streaming import replay_as_stream
from aio_llm.types import (
    ChatChunk,
    ChatResponse,
    ChunkStream,
    EmbeddingResponse,
    Message,
    ToolCall,
    ToolCallDelta,
    Usage,
    fast_construct,
)

pytestmark = pytest.mark.anyio

MESSAGE = Message(role="assistant", content="hi")
EXAMPLES: list[tuple[type[BaseModel], dict[str, Any]]] = [
    (ToolCall, {"id": "c1", "name": "f", "arguments": "{}", "signature": None}),
    (ToolCallDelta, {"index": 0, "id": None, "name": None, "arguments": "{"}),
    (
        Message,
        {
            "role": "assistant",
            "content": "x",
            "name": None,
            "tool_calls": None,
            "tool_call_id": None,
            "thinking": None,
            "cache_control": None,
        },
    ),
    (Usage, dict.fromkeys(Usage.model_fields, 1) | {"provider_cost": 0.5}),
    (
        ChatChunk,
        {"delta": "x", "tool_calls": [], "finish_reason": None, "usage": None, "reasoning": ""},
    ),
    (
        EmbeddingResponse,
        {"vectors": [[0.5]], "model": "e", "usage": Usage(), "provider": "p", "cost": None},
    ),
    (
        ChatResponse,
        {
            "id": "r1",
            "model": "m",
            "provider": "p",
            "content": "hi",
            "message": MESSAGE,
            "finish_reason": "stop",
            "tool_calls": [],
            "usage": Usage(input_tokens=3),
            "cost": None,
            "cached": False,
            "latency_ms": 1.5,
            "reasoning": None,
            "request_id": None,
            "raw": {"id": "r1"},
            "parsed": None,
            "refusal": None,
            "stream": None,
            "headers": None,
            "all_choices": None,
        },
    ),
]


@pytest.mark.parametrize(("cls", "fields"), EXAMPLES, ids=lambda x: getattr(x, "__name__", ""))
def test_fast_construct_builds_what_model_construct_builds(
    cls: type[BaseModel], fields: dict[str, Any]
) -> None:
    assert set(fields) == set(cls.model_fields)  # the examples name every field
    fast, slow = fast_construct(cls, **fields), cls.model_construct(**fields)
    assert type(fast) is cls
    assert fast == slow
    assert fast.__getstate__() == slow.__getstate__()  # every slot pydantic keeps, alike
    assert fast.model_fields_set == slow.model_fields_set == set(fields)
    assert fast.model_dump() == slow.model_dump()
    assert repr(fast) == repr(slow)
    assert pickle.loads(pickle.dumps(fast)) == fast
    assert copy.copy(fast) == fast and copy.deepcopy(fast) == fast
    assert cls.model_validate(fast.model_dump()) == fast.model_copy()


def test_objects_from_fast_construct_do_not_share_state() -> None:
    fields = dict(EXAMPLES[-1][1])
    a = fast_construct(ChatResponse, **fields)
    b = fast_construct(ChatResponse, **{**fields, "content": "other"})
    a.cost = 0.25
    assert b.cost is None and a.content == "hi" and b.content == "other"
    c = a.model_copy(update={"content": "copied"})
    assert a.content == "hi" and c.content == "copied" and c.cost == 0.25


def test_stream_and_headers_stay_in_the_process() -> None:
    response = ChatResponse(content="hi", headers={"x-request-id": "1"})
    replay = replay_as_stream(response)
    assert replay.stream is not None and response.stream is None
    assert "stream" not in replay.model_dump() and "headers" not in response.model_dump()
    assert "stream" not in ChatResponse.model_json_schema()["properties"]
    assert "headers" not in repr(response)
    assert response.headers == {"x-request-id": "1"}


async def test_on_close_on_a_finished_stream_runs_the_callback_at_once() -> None:
    stream = replay_as_stream(ChatResponse(content="hi")).stream
    assert stream is not None
    assert [c.delta async for c in stream] == ["hi"]
    seen: list[str] = []

    async def later(s: ChunkStream) -> None:
        seen.append("async")

    await stream.on_close(lambda s: seen.append("sync"))
    await stream.on_close(later)
    assert seen == ["sync", "async"] and stream.completed
