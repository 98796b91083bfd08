"""``client.embed`` travels the embedding chain: tracing, budget, retry, breaker, rate limit."""

from __future__ import annotations

from typing import Any

import pytest

from aio_llm import (
    APITimeoutError,
    AsyncLLMClient,
    BudgetExceededError,
    CircuitOpenError,
    ClientConfig,
    InvalidRequestError,
    ServerError,
)
from aio_llm.cost import BudgetConfig, BudgetPeriod, CostManager
from aio_llm.middleware import Tracing, default_middleware
from aio_llm.testing import FakeLLMServer, Fault
from tests.conftest import OTel

pytestmark = pytest.mark.anyio

MODEL = "text-embedding-3-small"
EMBED = "/v1/embeddings"


def client(srv: FakeLLMServer, transport: str, **kwargs: Any) -> AsyncLLMClient:
    kwargs.setdefault(
        "config",
        ClientConfig(transport=transport, retry_base_delay=0.001, retry_max_delay=0.002),
    )
    return AsyncLLMClient("openai", api_key="sk-embed", base_url=srv.openai_url, **kwargs)


async def test_a_transient_failure_is_retried(server: FakeLLMServer, transport: str) -> None:
    server.enqueue(Fault.status(503), path=EMBED)
    async with client(server, transport) as c:
        response = await c.embed(["a", "b"], model=MODEL)
        assert len(response.vectors) == 2
        assert c.metrics()["retry.attempts"] >= 1
    assert server.request_count == 2


async def test_the_breaker_opens_for_a_failing_embedding_model(
    server: FakeLLMServer, transport: str
) -> None:
    server.set_fault(Fault.status(500), path=EMBED)
    config = ClientConfig(transport=transport, max_retries=0, circuit_failure_threshold=2)
    async with client(server, transport, config=config) as c:
        for _ in range(2):
            with pytest.raises(ServerError):
                await c.embed("x", model=MODEL)
        sent = server.request_count
        with pytest.raises(CircuitOpenError):
            await c.embed("x", model=MODEL)
        assert server.request_count == sent  # refused without a byte sent


async def test_embeddings_are_priced_and_count_against_budgets(
    server: FakeLLMServer, transport: str
) -> None:
    manager = CostManager()
    async with client(server, transport, cost_manager=manager) as c:
        response = await c.embed(["one text", "another"], model=MODEL)
        assert response.cost is not None and response.cost > 0
        assert manager.get_metrics().total_cost == pytest.approx(response.cost)
        manager.set_budget("all", BudgetConfig(response.cost / 10, BudgetPeriod.TOTAL))
        sent = server.request_count
        with pytest.raises(BudgetExceededError):
            await c.embed(["a much longer text " * 50], model=MODEL)
        assert server.request_count == sent


async def test_the_rate_limiter_admits_embeddings(server: FakeLLMServer, transport: str) -> None:
    config = ClientConfig(transport=transport, rpm=6000)
    async with client(server, transport, config=config) as c:
        await c.embed("x", model=MODEL)
        assert c.metrics()["ratelimit.requests.admitted"] >= 1


async def test_tracing_records_an_embeddings_span(
    server: FakeLLMServer, transport: str, otel: OTel
) -> None:
    config = ClientConfig(transport=transport)
    probe = AsyncLLMClient("openai", api_key="sk-embed", base_url=server.openai_url, config=config)
    chain = default_middleware(config, providers=probe.providers, default_provider="openai")
    traced = Tracing(
        provider="openai",
        providers=probe.providers,
        tracer_provider=otel.tracer_provider,
        meter_provider=otel.meter_provider,
    )
    chain = [traced if isinstance(mw, Tracing) else mw for mw in chain]
    async with client(server, transport, middleware=chain) as c:
        await c.embed(["a", "b", "c"], model=MODEL)
    span = otel.span()
    assert span.name == f"embeddings {MODEL}"
    attrs = dict(span.attributes or {})
    assert attrs["gen_ai.operation.name"] == "embeddings"
    tokens = attrs["gen_ai.usage.input_tokens"]
    assert isinstance(tokens, int) and tokens > 0


async def test_invalid_embedding_requests_are_refused_before_sending(
    server: FakeLLMServer, transport: str
) -> None:
    async with client(server, transport) as c:
        for texts in ([], [""], ["ok", 3]):
            with pytest.raises(InvalidRequestError):
                await c.embed(texts, model=MODEL)  # type: ignore[arg-type]
        with pytest.raises(InvalidRequestError):
            await c.embed("x", model=MODEL, provider="nope")
    assert server.request_count == 0


@pytest.mark.anyio
async def test_an_embed_deadline_is_an_api_timeout(server: FakeLLMServer, transport: str) -> None:
    server.enqueue(Fault.hang(), path="/v1/embeddings")
    async with client(server, transport) as c:
        with pytest.raises(APITimeoutError):
            await c.embed("hello", model="text-embedding-3-small", timeout=0.2)
