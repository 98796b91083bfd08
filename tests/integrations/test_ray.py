"""Ray Data on a local Ray instance: N actors share one rate limit, budget and cache via Redis."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import ray  # the 'ray' extra is part of the dev install
from anyio.from_thread import BlockingPortal, start_blocking_portal

from aio_llm import AsyncLLMClient, ClientConfig
from aio_llm.cost import CostManager
from aio_llm.cost.budgets import BudgetConfig, BudgetPeriod
from aio_llm.cost.ledger import RedisLedger
from aio_llm.integrations.ray import LLMPredictor
from aio_llm.middleware import BudgetMiddleware, Cache, RateLimit, RateLimitConfig, RedisCache
from aio_llm.testing import FakeLLMServer

pytestmark = [
    pytest.mark.redis,
    # two Ray Data runs per test, each starting its actors: on a loaded 2-core machine starting
    # them alone has taken a minute, so the suite's 120 s hang guard is too short here
    pytest.mark.timeout(600),
    # Ray's own modules warn about their own deprecated settings
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray"),
    pytest.mark.filterwarnings("ignore::FutureWarning:ray"),
]

RPM = 1200.0  # 20 requests a second, shared by every actor
BURST = 0.01  # GCRA tolerance: 12 requests at once
ACTORS = 3


def _redis_url(db: int) -> str:
    url = os.environ.get("LLM_TEST_REDIS_URL")
    if not url:
        pytest.fail("LLM_TEST_REDIS_URL is not set: run the suite with scripts/test")
    return url.rsplit("/", 1)[0] + f"/{db}"


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    import redis

    url = _redis_url(7)
    r = redis.Redis.from_url(url)
    r.flushdb()
    yield url
    r.flushdb()
    r.close()


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=True,
        configure_logging=False,
        runtime_env={"env_vars": {"PYTHONWARNINGS": "ignore"}},
    )
    # the actors build their clients with make_client below: ship this module's code to them
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # type: ignore[no-untyped-call]
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[FakeLLMServer, BlockingPortal]]:
    with start_blocking_portal("asyncio") as portal:
        srv = FakeLLMServer(latency=0.002)
        portal.call(srv.start)
        yield srv, portal
        portal.call(srv.aclose)


def make_client(base_url: str, redis_url: str, budget: float | None) -> AsyncLLMClient:
    """Built inside each actor: every policy that matters keeps its state in Redis."""
    manager = CostManager(ledger=RedisLedger(redis_url))
    if budget is not None:
        manager.set_budget("job", BudgetConfig(budget, BudgetPeriod.TOTAL))
    return AsyncLLMClient(
        "openai",
        api_key="sk-ray",
        base_url=base_url,
        model="gpt-4o-mini",
        cost_manager=manager,
        config=ClientConfig(),
        middleware=[
            # a generous per-operation timeout: a busy machine can stall an actor past the
            # default 0.5 s, and a bypassed cache would send the second pass upstream again
            Cache(RedisCache(redis_url, timeout=10.0)),
            BudgetMiddleware(manager),
            RateLimit(RateLimitConfig(rpm=RPM, burst=BURST, backend=redis_url)),
        ],
    )


def run(
    ds: Any, base_url: str, redis_url: str, budget: float | None = None
) -> list[dict[str, Any]]:
    out = ds.map_batches(
        LLMPredictor,
        fn_constructor_kwargs={
            "client_factory": lambda: make_client(base_url, redis_url, budget),
            "request_options": {"max_tokens": 20},
            "concurrency": 8,
        },
        compute=ray.data.ActorPoolStrategy(size=ACTORS),
        num_cpus=0.25,
        batch_size=10,
    )
    return list(out.take_all())


def test_actors_share_one_rate_limit_and_one_cache(
    ray_cluster: None, server: tuple[FakeLLMServer, BlockingPortal], redis_url: str
) -> None:
    srv, portal = server
    portal.call(srv.reset_stats)
    rows = 120
    ds = ray.data.from_items(
        [{"prompt": f"p{i}"} for i in range(rows)], override_num_blocks=ACTORS * 3
    )
    first = run(ds, srv.openai_url, redis_url)
    assert sorted(r["response"] for r in first) == sorted(f"Echo: p{i}" for i in range(rows))
    assert all(r["error"] is None for r in first)
    stamps = sorted(r.timestamp for r in srv.requests)
    assert len(stamps) == rows
    # the GCRA bound of ONE limiter: in any span of t seconds at most rate*t + burst + 1
    rate, burst = RPM / 60, RPM * BURST
    for i in range(len(stamps)):
        for j in range(i, len(stamps)):
            assert j - i + 1 <= rate * (stamps[j] - stamps[i]) + burst + 1 + 2  # 2: arrival jitter
    # three actors with a limiter each would have gone three times as fast
    assert stamps[-1] - stamps[0] >= (rows - burst - 1) / rate * 0.9
    # the second pass is answered by the shared cache: nothing reaches the server
    again = run(ds, srv.openai_url, redis_url)
    assert len(srv.requests) == rows
    assert all(r["cached"] for r in again)


def test_actors_share_one_budget(
    ray_cluster: None, server: tuple[FakeLLMServer, BlockingPortal], redis_url: str
) -> None:
    srv, portal = server
    portal.call(srv.reset_stats)
    probe = CostManager()
    price = probe.pricing.get("gpt-4o-mini")
    assert price is not None
    worst = price.worst_case(12, 20)
    budget = worst * 10  # 120 answers cost more: the budget must refuse some
    ds = ray.data.from_items(
        [{"prompt": f"b{i}"} for i in range(120)], override_num_blocks=ACTORS * 3
    )
    out = run(ds, srv.openai_url, redis_url, budget=budget)
    answered = [r for r in out if r["error"] is None]
    refused = [r for r in out if r["error"] is not None]
    assert answered and refused
    assert all(r["error"].startswith("BudgetExceededError") for r in refused)
    assert len(srv.requests) == len(answered)  # a refused request is never sent
    spent = sum(r["cost"] for r in answered)
    assert spent <= budget
    manager = CostManager(ledger=RedisLedger(redis_url))
    manager.set_budget("job", BudgetConfig(budget, BudgetPeriod.TOTAL))

    async def status() -> dict[str, Any]:
        try:
            return await manager.aget_budget_status("job")
        finally:
            await manager.aclose()

    ledger = portal.call(status)
    assert ledger["spent"] == pytest.approx(spent)
    assert ledger["spent"] <= budget and ledger["reserved"] == 0
