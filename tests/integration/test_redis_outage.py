"""Redis dies in the middle of a run: requests keep succeeding, the shared cache comes back.

The client shares its cache and its rate limit through a private
redis-server (started here on a free port so the test can kill and restart
it); its budget stays in memory. While Redis is down the cache is bypassed
and the limiter fails open; once Redis is back (and the backends' retry
interval has passed on the client's clock) entries are shared again.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from aio_llm import AsyncLLMClient, ChatResponse, ClientConfig
from aio_llm.testing import FakeClock, FakeLLMServer
from tests.conftest import RedisServer

pytestmark = pytest.mark.redis

API_KEY = "sk-outage-test-0000"


@pytest.fixture
async def llm_server() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer(latency=0.002) as srv:
        yield srv


def make_client(srv: FakeLLMServer, redis_url: str, clock: FakeClock) -> AsyncLLMClient:
    config = ClientConfig(
        provider="openai",
        cache_enabled=True,
        cache_backend=redis_url,
        ratelimit_backend=redis_url,
        rpm=1_000_000,  # shared through Redis, never the bottleneck here
        budget_backend="memory",
        max_retries=0,
    )
    return AsyncLLMClient(
        "openai",
        api_key=API_KEY,
        base_url=srv.openai_url,
        model="gpt-4o-mini",
        config=config,
        clock=clock,
    )


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.mark.anyio
async def test_redis_outage_mid_run_then_recovery(
    private_redis: RedisServer, llm_server: FakeLLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aio_llm")
    clock = FakeClock()
    async with make_client(llm_server, private_redis.url, clock) as client:
        first = await client.chat(ask("warm"))
        again = await client.chat(ask("warm"))
        assert not first.cached and again.cached  # served from Redis

        # kill Redis while a batch is in flight
        killed = anyio.Event()

        def progress(done: int, total: int) -> None:
            if done == 40 and not killed.is_set():
                private_redis.stop()
                killed.set()

        batch: list[Any] = [{"messages": ask(f"batch {i}")} for i in range(150)]
        batch += [{"messages": ask("warm")}] * 10
        results = await client.gather(batch, concurrency=16, progress=progress)
        assert killed.is_set()
        assert all(isinstance(r, ChatResponse) and r.content for r in results)

        # still down: every request succeeds, the cache is bypassed
        sent = llm_server.request_count
        during = await client.chat(ask("warm"))
        assert not during.cached and during.content == "Echo: warm"
        assert llm_server.request_count == sent + 1
        metrics = client.metrics()
        assert metrics["cache.available"] is False
        assert metrics["ratelimit.requests.rejected"] == 0  # the limiter failed open
        assert metrics["requests.errors"] == 0

        # Redis returns (empty); after the retry interval the cache is shared again
        private_redis.start()
        clock.advance(10.0)
        after = await client.chat(ask("after the outage"))
        assert not after.cached
        assert client.metrics()["cache.available"] is True
        assert (await client.chat(ask("after the outage"))).cached

    # another client (think: another process) is served what the first stored after recovery
    async with make_client(llm_server, private_redis.url, FakeClock()) as other:
        sent = llm_server.request_count
        shared = await other.chat(ask("after the outage"))
        assert shared.cached and shared.content == after.content
        assert llm_server.request_count == sent

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("cache" in m and "unreachable" in m for m in warnings), warnings
    assert any("rate limit" in m and "unreachable" in m for m in warnings), warnings
    assert sum("cache" in m for m in warnings) == 1  # one warning per outage, not per request
    assert any("reachable again" in r.getMessage() for r in caplog.records)
    assert API_KEY not in caplog.text
