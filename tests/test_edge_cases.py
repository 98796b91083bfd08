"""Edge cases found in review: keys with whitespace, empty streams, failing stream
callbacks, compressed bodies, size limits after decompression, embed deadlines,
cancelled streams and secrets in the config's repr."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest

from aio_llm import (
    APIResponseError,
    APITimeoutError,
    AsyncLLMClient,
    ClientConfig,
    ConfigurationError,
)
from aio_llm.pipeline import Next
from aio_llm.providers import OpenAIProvider
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
    config = kwargs.pop("config", None) or ClientConfig(transport=transport, max_retries=0)  # type: ignore[arg-type]
    return AsyncLLMClient(
        "openai",
        api_key=kwargs.pop("api_key", "sk-edge"),
        base_url=srv.openai_url,
        model="gpt-4o-mini",
        config=config,
        **kwargs,
    )


@pytest.mark.anyio
async def test_a_key_read_from_a_file_with_its_newline_works(
    server: FakeLLMServer, transport: str
) -> None:
    async with client(server, transport, api_key="sk-from-file\n") as c:
        assert (await c.chat(HELLO)).content == "Echo: hi"
    assert server.requests[-1].headers["authorization"] == "Bearer sk-from-file"


def test_a_key_with_control_characters_is_refused_without_quoting_it() -> None:
    with pytest.raises(ConfigurationError) as info:
        OpenAIProvider(api_key="sk-bad\x00key")
    assert "sk-bad" not in str(info.value)


@pytest.mark.anyio
async def test_a_stream_with_no_chunks_ends_cleanly_through_the_default_chain(
    server: FakeLLMServer, transport: str
) -> None:
    server.enqueue(Fault.raw(200, {"content-type": "text/event-stream"}, b"data: [DONE]\n\n"))
    async with client(server, transport, config=ClientConfig(transport=transport)) as c:  # type: ignore[arg-type]
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
async def test_compressed_bodies_are_decoded(server: FakeLLMServer, transport: str) -> None:
    body = gzip.compress(json.dumps(ANSWER).encode())
    server.enqueue(
        Fault.raw(200, {"content-type": "application/json", "content-encoding": "gzip"}, body)
    )
    async with client(server, transport) as c:
        assert (await c.chat(HELLO)).content == "hello"


@pytest.mark.anyio
async def test_the_size_limit_applies_after_decompression(
    server: FakeLLMServer, transport: str
) -> None:
    big = dict(ANSWER, choices=[{"index": 0, "message": {"content": "a" * 5_000_000}}])
    bomb = gzip.compress(json.dumps(big).encode())
    assert len(bomb) < 100_000
    server.enqueue(
        Fault.raw(200, {"content-type": "application/json", "content-encoding": "gzip"}, bomb)
    )
    config = ClientConfig(transport=transport, max_response_bytes=1_000_000, max_retries=0)  # type: ignore[arg-type]
    async with client(server, transport, config=config) as c:
        with pytest.raises(APIResponseError, match="limit"):
            await c.chat(HELLO)


@pytest.mark.anyio
async def test_an_embed_deadline_is_an_api_timeout(server: FakeLLMServer, transport: str) -> None:
    server.enqueue(Fault.hang(), path="/v1/embeddings")
    async with client(server, transport) as c:
        with pytest.raises(APITimeoutError):
            await c.embed("hello", model="text-embedding-3-small", timeout=0.2)


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


def test_config_repr_hides_passwords_in_urls() -> None:
    config = ClientConfig(
        redis_url="redis://:hunter2@cache:6379/0", cache_backend="redis://u:pw@h/1"
    )
    assert "hunter2" not in repr(config) and ":pw@" not in repr(config)
    assert "redis://***@cache:6379/0" in repr(config)


def test_received_data_with_lone_surrogates_is_quoted_not_crashed_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by fuzzing: a JSON parser that accepts ``"\\ud800"`` yields a lone surrogate."""
    from aio_llm import _json

    assert _json.dumps_text({"id": {"\ud800": None}}) == '{"id":{"\\ud800":null}}'
    # the standard library's parser (the fallback) accepts lone surrogates
    monkeypatch.setattr(_json, "loads", json.loads)
    body = json.dumps({"message": {"id": {"\ud800": None}}}).encode()
    error = OpenAIProvider(api_key="sk-x").decode_error(500, {}, body)
    assert error.status_code == 500 and "\\ud800" in str(error)
