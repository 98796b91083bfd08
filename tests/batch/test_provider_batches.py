"""Provider Batch APIs over loopback HTTP against FakeLLMServer, for OpenAI and Anthropic."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from aio_llm import (
    AsyncLLMClient,
    BadRequestError,
    BatchCancelledError,
    BatchExpiredError,
    BudgetExceededError,
    ChatRequest,
    ChatResponse,
    ClientConfig,
)
from aio_llm.batch import BatchStore
from aio_llm.middleware import BudgetMiddleware, Tracing
from aio_llm.testing import FakeClock, FakeLLMServer, Fault

PROVIDERS = ["openai", "anthropic"]
MODEL = {"openai": "gpt-4o-mini", "anthropic": "claude-3-5-haiku-20241022"}
LINE_PATH = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages"}


@pytest.fixture(params=PROVIDERS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def server(clock: FakeClock) -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer(clock=clock, batches={"processing_time": 120.0}) as srv:
        yield srv


def client_for(srv: FakeLLMServer, kind: str, clock: FakeClock, **config: Any) -> AsyncLLMClient:
    base = srv.openai_url if kind == "openai" else srv.url
    return AsyncLLMClient(
        kind,
        api_key="sk-test-batch",
        base_url=base,
        model=MODEL[kind],
        config=ClientConfig(**config),
        clock=clock,
    )


def reqs(n: int, kind: str, prefix: str = "q") -> list[dict[str, Any]]:
    return [
        {
            "model": MODEL[kind],
            "messages": [{"role": "user", "content": f"{prefix}{i}"}],
            "max_tokens": 50,
        }
        for i in range(n)
    ]


@pytest.mark.anyio
async def test_results_in_order_at_the_batch_price(
    server: FakeLLMServer, kind: str, clock: FakeClock
) -> None:
    async with client_for(server, kind, clock) as c:
        results = await c.gather(reqs(30, kind), via="batch")
        live = await c.chat([{"role": "user", "content": "q0"}], max_tokens=50)
    assert [r.content for r in results] == [f"Echo: q{i}" for i in range(30)]
    assert len(server.batches.batches) == 1
    assert sorted(server.batches.submitted) == sorted(f"r{i}" for i in range(30))
    assert set(server.batches.submitted.values()) == {1}
    first = results[0]
    assert isinstance(first, ChatResponse) and first.cost is not None and live.cost is not None
    assert first.cost == pytest.approx(live.cost * 0.5)  # the batch discount
    assert c.cost_manager.get_metrics().total_requests == 31
    # the requests went through the batch API, not the chat endpoint
    paths = [r.path for r in server.requests]
    assert paths.count(LINE_PATH[kind]) == 1


@pytest.mark.anyio
async def test_per_request_failures_become_per_request_exceptions(
    server: FakeLLMServer, kind: str, clock: FakeClock
) -> None:
    server.enqueue(Fault.status(400, message="bad one"), path=LINE_PATH[kind])
    server.enqueue(Fault.status(429), path=LINE_PATH[kind])
    async with client_for(server, kind, clock) as c:
        results = await c.gather(reqs(6, kind), via="batch", return_exceptions=True)
        assert isinstance(results[0], BadRequestError)
        assert "bad one" in str(results[0])
        assert getattr(results[1], "status_code", None) == 429
        assert [r.content for r in results[2:]] == [f"Echo: q{i}" for i in range(2, 6)]  # type: ignore[union-attr]
        server.enqueue(Fault.status(400), path=LINE_PATH[kind])
        with pytest.raises(BadRequestError):
            await c.gather(reqs(3, kind), via="batch")


@pytest.mark.anyio
async def test_expiry_keeps_finished_results_and_resubmits_only_the_rest(
    kind: str, clock: FakeClock
) -> None:
    options = {"processing_time": 100.0, "completion_window": 50.0}
    async with FakeLLMServer(clock=clock, batches=options) as srv:
        async with client_for(srv, kind, clock) as c:
            results = await c.batch(reqs(20, kind), return_exceptions=True, resubmit_expired=1)
    # first batch: 10 of 20 finished before expiry; second: 5 of the 10 left
    done = [i for i, r in enumerate(results) if isinstance(r, ChatResponse)]
    expired = [i for i, r in enumerate(results) if isinstance(r, BatchExpiredError)]
    assert done == list(range(15)) and expired == list(range(15, 20))
    assert len(srv.batches.batches) == 2
    assert all(srv.batches.submitted[f"r{i}"] == 1 for i in range(10))
    assert all(srv.batches.submitted[f"r{i}"] == 2 for i in range(10, 20))
    err = results[19]
    assert isinstance(err, BatchExpiredError) and err.batch_id in srv.batches.batches


@pytest.mark.anyio
async def test_expired_requests_are_reported_without_resubmission(
    kind: str, clock: FakeClock
) -> None:
    options = {"processing_time": 100.0, "completion_window": 25.0}
    async with FakeLLMServer(clock=clock, batches=options) as srv:
        async with client_for(srv, kind, clock) as c:
            results = await c.batch(reqs(8, kind), return_exceptions=True, resubmit_expired=0)
    assert [type(r).__name__ for r in results] == ["ChatResponse"] * 2 + ["BatchExpiredError"] * 6
    assert len(srv.batches.batches) == 1


@pytest.mark.anyio
async def test_caller_cancellation_cancels_the_provider_batch(kind: str, clock: FakeClock) -> None:
    options = {"processing_time": 3600.0, "cancelling_time": 5.0}
    async with FakeLLMServer(clock=clock, batches=options) as srv:
        async with client_for(srv, kind, clock) as c:
            async with anyio.create_task_group() as tg:
                tg.start_soon(functools.partial(c.gather, reqs(10, kind), via="batch"))
                await srv.wait_until(lambda s: bool(s.batches.batches))
                await srv.wait_until(lambda s: s.request_count >= 3)  # polling has begun
                tg.cancel_scope.cancel()
            (batch,) = srv.batches.batches.values()
            assert batch.cancel_at is not None
            # a job cancelled on purpose keeps what finished and reports the rest
            store = BatchStore(":memory:")
            job = await c.batch_submit(reqs(4, kind, "c"), store=store, poll_interval=60.0)
            clock.advance(1800.0)  # half of them have run
            await job.cancel()
            results = await job.results()
            store.close()
    assert [type(r).__name__ for r in results] == ["ChatResponse"] * 2 + ["BatchCancelledError"] * 2
    assert isinstance(results[3], BatchCancelledError)


@pytest.mark.anyio
async def test_budget_reserves_the_whole_batch_at_the_batch_price(
    server: FakeLLMServer, kind: str, clock: FakeClock
) -> None:
    async with client_for(server, kind, clock, daily_budget=0.001) as c:
        with pytest.raises(BudgetExceededError):
            await c.batch_submit(reqs(200, kind), store=BatchStore(":memory:"))
        assert server.request_count == 0  # refused before any byte was sent
        store = BatchStore(":memory:")
        five = reqs(5, kind)
        job = await c.batch_submit(five, store=store)
        status = c.cost_manager.get_budget_status("daily")
        reserved = status["reserved"]
        assert reserved > 0 and status["spent"] == 0
        # the worst case of 5 requests at half price: the budget's bound on each prompt
        # (aio_llm.tokens.max_request_tokens) and its 50 output tokens
        bound = BudgetMiddleware(c.cost_manager, track_prompts=False).worst_case
        assert reserved <= sum(bound(ChatRequest(**r)) for r in five) * 0.5 + 1e-9
        results = await job.results()
        after = c.cost_manager.get_budget_status("daily")
        charged = sum(r.cost for r in results if isinstance(r, ChatResponse) and r.cost)
        assert after["reserved"] == 0
        assert after["spent"] == pytest.approx(charged)
        stats = job.statistics()
        assert stats.cost == pytest.approx(charged)
        assert stats.saved_by_batch == pytest.approx(charged)  # 50% off: saved == paid
        store.close()


@pytest.mark.anyio
async def test_the_cache_answers_first(server: FakeLLMServer, kind: str, clock: FakeClock) -> None:
    async with client_for(server, kind, clock, cache_enabled=True) as c:
        for r in reqs(4, kind):
            await c.chat(request=r)
        before = server.request_count
        results = await c.gather(reqs(10, kind), via="batch")
        assert [r.cached for r in results] == [True] * 4 + [False] * 6
        assert sorted(server.batches.submitted) == sorted(f"r{i}" for i in range(4, 10))
        assert server.request_count > before
        # the batch's answers went into the cache: nothing is sent the second time
        before = server.request_count
        again = await c.gather(reqs(10, kind), via="batch")
        assert all(r.cached for r in again)
        assert server.request_count == before
        assert len(server.batches.batches) == 1


@pytest.mark.anyio
async def test_404_just_after_creation_is_tolerated(kind: str, clock: FakeClock) -> None:
    options = {"processing_time": 10.0, "not_found_for": 30.0}
    async with FakeLLMServer(clock=clock, batches=options) as srv:
        async with client_for(srv, kind, clock) as c:
            results = await c.batch(reqs(3, kind), poll_interval=5.0)
    assert [r.content for r in results] == ["Echo: q0", "Echo: q1", "Echo: q2"]  # type: ignore[union-attr]
    assert any(r.path.count("/") >= 3 and r.method == "GET" for r in srv.requests)


@pytest.mark.anyio
async def test_polling_backs_off_with_jitter(
    server: FakeLLMServer, kind: str, clock: FakeClock
) -> None:
    async with client_for(server, kind, clock) as c:
        await c.batch(reqs(2, kind), poll_interval=1.0, max_poll_interval=20.0)
    sleeps = [s for s in clock.sleeps if s > 0]
    assert 1 <= len(sleeps) < 40
    assert max(sleeps) <= 20.0 and min(sleeps) >= 0.8
    assert len(set(sleeps)) == len(sleeps)  # jittered


@pytest.mark.anyio
async def test_split_by_count_and_model(server: FakeLLMServer, clock: FakeClock) -> None:
    async with client_for(server, "openai", clock) as c:
        mixed = reqs(25, "openai")
        for r in mixed[20:]:
            r["model"] = "gpt-4o"
        results = await c.batch(mixed, max_requests=10)
    assert len(results) == 25
    sizes = sorted(len(b.lines) for b in server.batches.batches.values())
    assert sizes == [5, 10, 10]  # one model per OpenAI batch, at most 10 each


@pytest.mark.anyio
async def test_one_span_per_batch_with_request_events(
    server: FakeLLMServer, kind: str, clock: FakeClock
) -> None:
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    base = server.openai_url if kind == "openai" else server.url
    c = AsyncLLMClient(
        kind,
        api_key="sk-x",
        base_url=base,
        model=MODEL[kind],
        clock=clock,
        middleware=[Tracing(tracer_provider=tp)],
    )
    async with c:
        await c.batch(reqs(7, kind), max_requests=4)
    spans = [s for s in exporter.get_finished_spans() if s.name.startswith("batch")]
    assert len(spans) == 2
    assert sorted(len(s.events) for s in spans) == [3, 4]
    event = spans[0].events[0]
    assert event.name == "aio_llm.batch.request" and event.attributes is not None
    assert event.attributes["outcome"] == "succeeded"
    assert "q0" not in str(event.attributes)  # no prompt content
    assert (
        spans[0].attributes is not None and spans[0].attributes["gen_ai.operation.name"] == "batch"
    )
