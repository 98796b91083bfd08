"""``client.stream`` through real chains: empty streams, failing callbacks, deadlines."""

from __future__ import annotations

import pytest

from aio_llm import (
    APITimeoutError,
    ClientConfig,
)
from aio_llm.pipeline import Next
from aio_llm.testing import FakeLLMServer, Fault
from aio_llm.types import ChatRequest, ChatResponse, ChunkStream
from tests.conftest import HI, openai_client


@pytest.mark.anyio
async def test_a_stream_with_no_chunks_ends_cleanly_through_the_default_chain(
    server: FakeLLMServer, transport: str
) -> None:
    server.enqueue(Fault.raw(200, {"content-type": "text/event-stream"}, b"data: [DONE]\n\n"))
    async with openai_client(server, transport, config=ClientConfig(transport=transport)) as c:
        async with c.stream(HI) as s:
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

    async with openai_client(server, transport, middleware=[outer, inner]) as c:
        with pytest.raises(ValueError, match="inner callback failed"):
            async with c.stream(HI) as s:
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
        async with openai_client(slow, transport, middleware=[watch]) as c:
            with pytest.raises(APITimeoutError):
                async with c.stream(HI, timeout=0.3) as s:
                    async for _ in s:
                        pass
    assert len(ended) == 1 and ended[0].cancelled and not ended[0].completed
    assert "cancelled" in repr(ended[0])
