"""AsyncLLMClient over real loopback HTTP against the FakeLLMServer, on both transports."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from aio_llm import (
    APIConnectionError,
    APIResponseError,
    APITimeoutError,
    AsyncLLMClient,
    AuthenticationError,
    BadRequestError,
    ChatRequest,
    ClientConfig,
    ConfigurationError,
    InvalidRequestError,
    OverloadedError,
    RateLimitError,
    ServerError,
    StreamError,
)
from aio_llm.testing import FakeLLMServer, Fault

API_KEY = "sk-test-SECRET-0123456789"
HELLO = [{"role": "user", "content": "Hello"}]


def make_client(srv: FakeLLMServer, transport: str, **kwargs: Any) -> AsyncLLMClient:
    kwargs.setdefault("middleware", [])
    return AsyncLLMClient(
        "openai",
        api_key=API_KEY,
        base_url=srv.openai_url,
        model="gpt-4o-mini",
        config=ClientConfig(transport=transport),
        **kwargs,
    )


@pytest.mark.anyio
async def test_chat_round_trip(server: FakeLLMServer, transport: str) -> None:
    async with make_client(server, transport) as c:
        r = await c.chat(HELLO)
    assert r.content == "Echo: Hello"
    assert r.model == "gpt-4o-mini"
    assert r.provider == "openai"
    assert r.finish_reason == "stop"
    assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0
    assert r.latency_ms > 0
    sent = server.requests[-1]
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.json()["messages"] == HELLO


@pytest.mark.anyio
async def test_stream_round_trip(server: FakeLLMServer, transport: str) -> None:
    async with make_client(server, transport) as c:
        async with c.stream(HELLO) as s:
            deltas = [chunk.delta async for chunk in s]
        final = s.response
    assert "".join(deltas) == "Echo: Hello"
    assert len([d for d in deltas if d]) > 1
    assert final is not None and final.content == "Echo: Hello"
    assert final.finish_reason == "stop"
    assert final.usage.output_tokens > 0
    body = server.requests[-1].json()
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


@pytest.mark.anyio
async def test_stream_left_early_closes_connection(server: FakeLLMServer, transport: str) -> None:
    server.stream_chunks = 200
    server.enqueue(Fault.latency(0.0))
    async with make_client(server, transport) as c:
        async with c.stream(HELLO, max_tokens=100) as s:
            async for _ in s:
                break
        assert s.response is not None and not s.completed
        await server.wait_until(lambda srv: srv.in_flight == 0, timeout=5)


@pytest.mark.anyio
async def test_gather_respects_concurrency_and_order(server: FakeLLMServer, transport: str) -> None:
    server.latency = 0.03
    reqs = [{"messages": [{"role": "user", "content": f"q{i}"}]} for i in range(30)]
    seen: list[tuple[int, int]] = []
    async with make_client(server, transport) as c:
        results = await c.gather(
            reqs, concurrency=5, progress=lambda done, total: seen.append((done, total))
        )
    assert [r.content for r in results] == [f"Echo: q{i}" for i in range(30)]
    assert server.max_in_flight <= 5
    assert server.max_in_flight >= 2
    assert seen[-1] == (30, 30)


@pytest.mark.anyio
async def test_gather_fail_fast_cancels_siblings(server: FakeLLMServer, transport: str) -> None:
    server.enqueue(Fault.status(400), *[Fault.latency(5)] * 19)
    reqs = [
        ChatRequest(model="gpt-4o-mini", messages=[{"role": "user", "content": f"q{i}"}])
        for i in range(20)
    ]
    async with make_client(server, transport) as c:
        with anyio.fail_after(3):
            with pytest.raises(BadRequestError):
                await c.gather(reqs, concurrency=8)
        # the seven siblings were cancelled mid-request and closed their connections
        await server.wait_until(lambda srv: srv.in_flight == 0, timeout=3)
        assert server.request_count == 8
        assert server.disconnects == 7


@pytest.mark.anyio
async def test_gather_return_exceptions(server: FakeLLMServer, transport: str) -> None:
    server.enqueue(Fault.status(500))
    async with make_client(server, transport) as c:
        results = await c.gather([{"messages": HELLO}] * 4, concurrency=1, return_exceptions=True)
    assert isinstance(results[0], ServerError)
    assert all(getattr(r, "content", None) == "Echo: Hello" for r in results[1:])


@pytest.mark.anyio
async def test_as_completed_yields_every_index(server: FakeLLMServer, transport: str) -> None:
    async with make_client(server, transport) as c:
        got = {i: r async for i, r in c.as_completed([{"messages": HELLO}] * 7, concurrency=3)}
    assert sorted(got) == list(range(7))


@pytest.mark.anyio
async def test_cancelled_chat_closes_its_connection(server: FakeLLMServer, transport: str) -> None:
    server.latency = 10
    async with make_client(server, transport) as c:
        with anyio.move_on_after(0.2):
            await c.chat(HELLO)
        await server.wait_until(lambda srv: srv.disconnects >= 1 and srv.in_flight == 0, timeout=3)


@pytest.mark.anyio
async def test_deadline_covers_the_call(server: FakeLLMServer, transport: str) -> None:
    server.latency = 5
    async with make_client(server, transport) as c:
        start = anyio.current_time()
        with pytest.raises(APITimeoutError):
            await c.chat(HELLO, timeout=0.2)
        assert anyio.current_time() - start < 2
        with pytest.raises(TimeoutError):  # APITimeoutError is a TimeoutError too
            await c.chat(request=ChatRequest(model="m", messages=HELLO, timeout=0.1))


@pytest.mark.anyio
async def test_invalid_messages_raise_before_sending(server: FakeLLMServer, transport: str) -> None:
    async with make_client(server, transport) as c:
        for bad in (
            [],
            [{"role": "wizard", "content": "x"}],
            [{"content": "no role"}],
            ["just a string"],
            [{"role": "user", "content": "x", "unknown": 1}],
        ):
            with pytest.raises(InvalidRequestError):
                await c.chat(bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            await c.chat(HELLO, temperature=7)
        with pytest.raises(InvalidRequestError):
            await c.gather([{"messages": HELLO}, {"messages": "nope"}])
    assert server.request_count == 0


def test_missing_api_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        AsyncLLMClient("openai", config=ClientConfig())
    with pytest.raises(ConfigurationError, match="ANTHROPIC_API_KEY"):
        AsyncLLMClient("anthropic", config=ClientConfig())


def test_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    c = AsyncLLMClient("openai", config=ClientConfig(), middleware=[])
    assert c.providers["openai"].base_url == "http://127.0.0.1:9/v1"
    assert API_KEY not in repr(c) and API_KEY not in repr(c.providers["openai"])


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault.status(400), BadRequestError),
        (Fault.status(401), AuthenticationError),
        (Fault.status(429, retry_after=7), RateLimitError),
        (Fault.status(500), ServerError),
        (Fault.status(529), OverloadedError),
        (Fault.malformed(), APIResponseError),
        (Fault.reset(), APIConnectionError),
    ],
)
@pytest.mark.anyio
async def test_errors_are_typed(
    server: FakeLLMServer, transport: str, fault: Fault, error: type[Exception]
) -> None:
    server.enqueue(fault)
    async with make_client(server, transport) as c:
        with pytest.raises(error) as info:
            await c.chat(HELLO)
    exc = info.value
    assert API_KEY not in str(exc) and API_KEY not in repr(exc)
    if isinstance(exc, RateLimitError):
        assert exc.retry_after == 7
        assert exc.status_code == 429
        assert exc.provider == "openai"


@pytest.mark.anyio
async def test_truncated_stream_is_a_stream_error(server: FakeLLMServer, transport: str) -> None:
    server.enqueue(Fault.truncate(after_chunks=3))
    async with make_client(server, transport) as c:
        with pytest.raises(StreamError):
            async with c.stream(HELLO) as s:
                async for _ in s:
                    pass


@pytest.mark.anyio
async def test_client_lifecycle(server: FakeLLMServer, transport: str) -> None:
    c = make_client(server, transport)
    with pytest.raises(RuntimeError, match="async with"):
        await c.chat(HELLO)
    async with c:
        assert "opened" in repr(c)
    with pytest.raises(RuntimeError):
        await c.chat(HELLO)
    with pytest.raises(RuntimeError):
        async with c:
            pass


@pytest.mark.anyio
async def test_anthropic_round_trip(server: FakeLLMServer, transport: str) -> None:
    async with AsyncLLMClient(
        "anthropic",
        api_key=API_KEY,
        base_url=server.url,
        config=ClientConfig(transport=transport),
        middleware=[],
    ) as c:
        r = await c.chat(
            [{"role": "system", "content": "Be brief"}, *HELLO], model="claude-sonnet-4-5"
        )
        async with c.stream(HELLO, model="claude-sonnet-4-5") as s:
            text = await s.text()
    assert r.content == "Echo: Hello" and r.provider == "anthropic"
    assert text == "Echo: Hello"
    assert s.response is not None and s.response.usage.output_tokens > 0
    sent = server.requests[0]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == API_KEY
    assert sent.json()["system"] == "Be brief"


@pytest.mark.anyio
async def test_embeddings(server: FakeLLMServer, transport: str) -> None:
    async with make_client(server, transport) as c:
        e = await c.embed(["a", "b", "c"], model="text-embedding-3-small")
    assert len(e.vectors) == 3 and len(e.vectors[0]) > 0
    assert e.vectors[0] != e.vectors[1]


@pytest.mark.anyio
async def test_mock_provider_needs_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_FORCE_MOCK", "1")
    async with AsyncLLMClient(model="m") as c:
        r = await c.chat(HELLO)
        async with c.stream(HELLO) as s:
            text = await s.text()
    assert r.provider == "mock" and r.content == "Test response"
    assert text == "Test response"


@pytest.mark.anyio
async def test_concurrent_embeds_are_micro_batched(server: FakeLLMServer, transport: str) -> None:
    results: dict[int, list[list[float]]] = {}
    async with make_client(server, transport) as c:

        async def one(i: int) -> None:
            e = await c.embed([f"text {i}", f"more {i}"], model="text-embedding-3-small")
            results[i] = e.vectors

        async with anyio.create_task_group() as tg:
            for i in range(10):
                tg.start_soon(one, i)
        alone = await c.embed(["text 3", "more 3"], model="text-embedding-3-small")
        metrics = c.metrics()
    embed_calls = [r for r in server.requests if r.path.endswith("/embeddings")]
    assert len(embed_calls) == 2  # ten concurrent calls went up as one request
    assert len(embed_calls[0].json()["input"]) == 20
    assert results[3] == alone.vectors  # each caller got its own vectors back
    assert metrics["embeddings.batches"] == 2
