"""``client.stream`` through real chains: empty streams, failing callbacks, deadlines."""

from __future__ import annotations

from typing import Any

import pytest

from aio_llm import (
    APITimeoutError,
    AsyncLLMClient,
    ClientConfig,
)
from aio_llm.pipeline import Next
from aio_llm.testing import FakeLLMServer, Fault
from aio_llm.types import ChatRequest, ChatResponse, ChunkStream

HELLO = [{"role": "user", "content": "hi"}]
ANSWER = {
    "id": "x",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


def client(srv: FakeLLMServer, transport: str, **kwargs: Any) -> AsyncLLMClient:
    config = kwargs.pop("config", None) or ClientConfig(transport=transport, max_retries=0)
    return AsyncLLMClient(
        "openai",
        api_key=kwargs.pop("api_key", "sk-edge"),
        base_url=srv.openai_url,
        model="gpt-4o-mini",
        config=config,
        **kwargs,
    )


@pytest.mark.anyio
async def test_a_stream_with_no_chunks_ends_cleanly_through_the_default_chain(
    server: FakeLLMServer, transport: str
) -> None:
    server.enqueue(Fault.raw(200, {"content-type": "text/event-stream"}, b"data: [DONE]\n\n"))
    async with client(server, transport, config=ClientConfig(transport=transport)) as c:
        async with c.stream(HELLO) as s:
            assert await s.text() == ""
        assert s.completed and s.response is not None


@pytest.mark.anyio
async def test_every_on_close_callback_runs_even_if_one_fails(
    server: FakeLLMServer, transport: str
) -> None:
    seen: list[str] = []

    async def outer(request: ChatRequest, next: Next) -> ChatResponse:
        response = await next(request)
        assert response.stream is not None
        await response.stream.on_close(lambda s: seen.append("outer"))
        return response

    async def inner(request: ChatRequest, next: Next) -> ChatResponse:
        response = await next(request)

        def boom(stream: ChunkStream) -> None:
            raise ValueError("inner callback failed")

        assert response.stream is not None
        await response.stream.on_close(boom)
        return response

    async with client(server, transport, middleware=[outer, inner]) as c:
        with pytest.raises(ValueError, match="inner callback failed"):
            async with c.stream(HELLO) as s:
                await s.text()
    assert seen == ["outer"]


@pytest.mark.anyio
async def test_a_stream_cut_by_its_deadline_reports_cancelled(
    server: FakeLLMServer, transport: str
) -> None:
    server.stream_chunks = 50
    server.enqueue(Fault.latency(0.0))
    ended: list[ChunkStream] = []

    async def watch(request: ChatRequest, next: Next) -> ChatResponse:
        response = await next(request)
        assert response.stream is not None
        await response.stream.on_close(ended.append)
        return response

    async with FakeLLMServer(chunk_delay=0.05) as slow:
        async with client(slow, transport, middleware=[watch]) as c:
            with pytest.raises(APITimeoutError):
                async with c.stream(HELLO, timeout=0.3) as s:
                    async for _ in s:
                        pass
    assert len(ended) == 1 and ended[0].cancelled and not ended[0].completed
    assert "cancelled" in repr(ended[0])
