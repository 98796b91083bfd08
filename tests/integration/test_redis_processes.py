"""Two processes sharing one Redis: one rate limit, one budget, one cache.

Each worker is a separate Python process (this file run as a script) with
its own ``AsyncLLMClient`` whose ``ClientConfig`` points ``ratelimit_backend``,
``budget_backend`` and ``cache_backend`` at the same Redis URL, talking to a
``FakeLLMServer`` in a third process.

Time is scaled for the rate-limit test. The acceptance scenario is 1,200
requests against a provider that allows 600 requests per minute: two
minutes of traffic. The server runs on a ``ScaledClock`` (``SCALE`` simulated
seconds per real second), so its sliding 60-second window — and the 429s it
answers beyond 600 requests in it — lasts ``60 / SCALE`` real seconds. The
client limiter cannot take that clock (the shared GCRA schedule lives on
Redis' own clock), so ``ClientConfig.rpm`` (always per real minute) is not
used for it: the worker builds the chain with ``default_middleware`` and
replaces its ``RateLimit`` by ``RateLimit(RateLimitConfig(rpm=..., period=60 /
SCALE, backend=redis_url))``, the same limit on the simulated minute. The
shared limit is 90% of the provider's (540 per simulated minute, burst 5%):
a GCRA limit at exactly the provider's rate admits its burst on top of the
rate in some 60-second window, which a strict sliding window refuses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from aio_llm.testing import FakeLLMServer, SpawnedServer

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "sk-processes-test-0000"
SCALE = 20.0
"""Simulated seconds per real second in the rate-limit test."""
PROVIDER_RPM = 600
"""The provider's limit (requests per simulated minute)."""
SHARED_RPM = 540
"""The limit both processes share through Redis (per simulated minute)."""
TOTAL = 1200
_READY = "READY"


# -- child processes ------------------------------------------------------------


class ScaledClock:
    """Monotonic time running ``scale`` times faster than the real clock."""

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def now(self) -> float:
        return time.monotonic() * self.scale

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds / self.scale)


def _child_env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT))


def _popen(args: dict[str, Any], *, stdin: int | None = subprocess.PIPE) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, json.dumps(args)],
        stdin=stdin,
        stdout=subprocess.PIPE,
        text=True,
        env=_child_env(),
        cwd=str(ROOT),
    )


def _read_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=30)
        raise AssertionError(f"child exited with {proc.returncode} before answering")
    return line.strip()


def _run_workers(jobs: list[dict[str, Any]], timeout: float = 120.0) -> list[dict[str, Any]]:
    """Start every worker, wait until all are ready, release them together, collect results."""
    procs = [_popen(job) for job in jobs]
    try:
        for proc in procs:
            assert _read_line(proc) == _READY
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("GO\n")
            proc.stdin.flush()
        results = [json.loads(_read_line(proc)) for proc in procs]
        for proc in procs:
            assert proc.wait(timeout=timeout) == 0
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    pipe.close()


def _spawn_scaled_server(rpm: int, scale: float) -> SpawnedServer:
    proc = _popen({"mode": "server", "rpm": rpm, "scale": scale}, stdin=subprocess.DEVNULL)
    try:
        line = _read_line(proc)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    assert line.startswith(_READY + " "), line
    return SpawnedServer(proc, line.split(" ", 1)[1])


async def _worker(args: dict[str, Any]) -> dict[str, Any]:
    from aio_llm import AsyncLLMClient, BudgetExceededError, ChatRequest, ClientConfig
    from aio_llm.cost import CostManager
    from aio_llm.cost.ledger._redis import RedisLedger
    from aio_llm.middleware import RateLimit, RateLimitConfig, default_middleware
    from aio_llm.providers import create_provider

    url = args["redis_url"]
    config = ClientConfig(
        provider="openai",
        base_url=args["base_url"],
        cache_enabled=True,
        cache_backend=url,
        ratelimit_backend=url,
        budget_backend=url,
        rpm=args.get("rpm", 100_000),  # shared through Redis, high enough not to slow these
        daily_budget=args.get("budget"),
        max_retries=2,
        retry_base_delay=0.01,
    )
    # a private key prefix keeps this test's budget apart from other tests on the same Redis
    ledger = RedisLedger(url, key_prefix=f"aio_llm:budget:{args['prefix']}")
    costs = CostManager.from_config(config, ledger=ledger)
    provider = create_provider("openai", api_key=API_KEY, base_url=args["base_url"])
    stamps: list[float] = []
    middleware = None
    if args["mode"] == "rate":
        template = AsyncLLMClient(provider, config=config, cost_manager=costs)
        chain = default_middleware(
            config,
            cost_manager=costs,
            providers=template.providers,
            default_provider=provider.label,
            tenant=template.tenant_of,
        )
        limit = RateLimitConfig(
            rpm=SHARED_RPM, period=60.0 / args["scale"], burst=0.05, backend=url
        )
        chain = [RateLimit(limit) if isinstance(mw, RateLimit) else mw for mw in chain]

        async def stamp(request: ChatRequest, next: Any) -> Any:
            stamps.append(time.time())  # admitted by the shared limiter
            return await next(request)

        chain.append(stamp)
        middleware = chain
    client = AsyncLLMClient(provider, config=config, cost_manager=costs, middleware=middleware)
    requests = [
        {"model": args["model"], "max_tokens": 16, "messages": [{"role": "user", "content": p}]}
        for p in args["prompts"]
    ]
    sys.stdout.write(_READY + "\n")
    sys.stdout.flush()
    await anyio.to_thread.run_sync(sys.stdin.readline)
    out: dict[str, Any] = {"ok": 0, "errors": {}, "cost": 0.0, "cached": [], "contents": []}
    try:
        async with client:
            results = await client.gather(
                requests, concurrency=args["concurrency"], return_exceptions=True
            )
            limiter = next((mw for mw in client.middleware if isinstance(mw, RateLimit)), None)
            if limiter is not None:
                out["limiter"] = {k: v.admitted for k, v in limiter.statistics().items()}
    finally:
        await costs.aclose()
    errors: Counter[str] = Counter()
    for r in results:
        if isinstance(r, BaseException):
            errors[type(r).__name__] += 1
            assert isinstance(r, BudgetExceededError) or args["mode"] != "budget", r
        else:
            out["ok"] += 1
            out["cost"] += r.cost or 0.0
            out["cached"].append(r.cached)
            out["contents"].append(r.content)
    out["errors"] = dict(errors)
    out["stamps"] = stamps
    return out


def _child_main(args: dict[str, Any]) -> None:
    if args["mode"] == "server":
        from aio_llm.testing import run_fake_server

        def ready(url: str) -> None:
            sys.stdout.write(f"{_READY} {url}\n")
            sys.stdout.flush()

        run_fake_server(
            "127.0.0.1",
            0,
            on_ready=ready,
            rate_limit_rpm=args["rpm"],
            clock=ScaledClock(args["scale"]),
            record_limit=0,
        )
        return
    result = anyio.run(_worker, args)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


# -- tests ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[SpawnedServer]:
    with FakeLLMServer.spawn(record_limit=0) as srv:
        yield srv


def _job(
    mode: str, redis_url: str, base_url: str, prompts: list[str], **extra: Any
) -> dict[str, Any]:
    job = {
        "mode": mode,
        "redis_url": redis_url,
        "base_url": base_url,
        "prompts": prompts,
        "model": "gpt-4o-mini",
        "concurrency": 16,
        "prefix": uuid.uuid4().hex,
    }
    job.update(extra)
    return job


def _max_in_window(times: list[float], window: float) -> int:
    """The most events in any half-open window ``[t, t + window)``."""
    best = lo = 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def test_two_processes_share_one_rate_limit(redis_url: str) -> None:
    tag = uuid.uuid4().hex[:8]
    model = f"shared-rpm-{tag}"  # its own limiter key in Redis
    half = TOTAL // 2
    with _spawn_scaled_server(PROVIDER_RPM, SCALE) as srv:
        jobs = [
            _job(
                "rate",
                redis_url,
                srv.openai_url,
                [f"rate {tag} p{p} #{i}" for i in range(half)],
                model=model,
                scale=SCALE,
            )
            for p in range(2)
        ]
        results = _run_workers(jobs)
        stats = srv.stats()

    assert [r["ok"] for r in results] == [half, half], [r["errors"] for r in results]
    assert stats["requests"] == TOTAL
    assert stats["rate_limited"] == 0  # no upstream 429, ever
    assert sum(sum(r["limiter"].values()) for r in results) == TOTAL  # all went through it
    # both processes were sending at the same time...
    a, b = (sorted(r["stamps"]) for r in results)
    overlap = min(a[-1], b[-1]) - max(a[0], b[0])
    assert overlap > 0.8 * min(a[-1] - a[0], b[-1] - b[0])
    # ...and together kept one limit: 1,200 requests over more than two simulated minutes
    merged = sorted(a + b)
    sim = [(t - merged[0]) * SCALE for t in merged]
    assert len(sim) == TOTAL
    assert sim[-1] >= 120.0, sim[-1]
    assert _max_in_window(sim, 60.0) <= PROVIDER_RPM
    rate = (TOTAL - 1) / sim[-1] * 60.0  # requests per simulated minute, burst included
    assert rate <= SHARED_RPM * 1.05, rate


def test_two_processes_share_one_budget(redis_url: str, server: SpawnedServer) -> None:
    from aio_llm import ClientConfig
    from aio_llm.cost import CostManager
    from aio_llm.cost.ledger._redis import RedisLedger

    tag = uuid.uuid4().hex[:8]
    per_process = 120
    prompts = [[f"budget {tag} p{p} #{i:04d}" for i in range(per_process)] for p in range(2)]
    # price of one answer, measured by a single worker with no budget
    (probe,) = _run_workers([_job("budget", redis_url, server.openai_url, [f"budget probe {tag}"])])
    unit = probe["cost"]
    assert unit > 0
    # more than one process spends alone, less than both would spend on their own budgets
    budget = round(per_process * unit * 1.4, 9)
    prefix = uuid.uuid4().hex
    jobs = [
        _job("budget", redis_url, server.openai_url, ps, budget=budget, prefix=prefix)
        for ps in prompts
    ]
    results = _run_workers(jobs)

    spent_by_responses = sum(r["cost"] for r in results)
    refused = sum(r["errors"].get("BudgetExceededError", 0) for r in results)
    assert all(r["ok"] > 0 for r in results)  # both processes spent from it
    assert refused > 0 and sum(r["ok"] for r in results) + refused == 2 * per_process
    assert spent_by_responses <= budget + 1e-9

    async def ledger_status() -> dict[str, Any]:
        config = ClientConfig(daily_budget=budget, budget_backend=redis_url)
        manager = CostManager.from_config(
            config, ledger=RedisLedger(redis_url, key_prefix=f"aio_llm:budget:{prefix}")
        )
        try:
            return await manager.aget_budget_status("daily")
        finally:
            await manager.aclose()

    status = anyio.run(ledger_status)
    assert status["spent"] <= budget
    assert status["spent"] == pytest.approx(spent_by_responses, rel=1e-6, abs=1e-9)
    assert status["reserved"] == 0.0


def test_second_process_is_served_the_first_ones_cached_answer(
    redis_url: str, server: SpawnedServer
) -> None:
    prompt = f"cache me {uuid.uuid4().hex}"
    before = server.stats()["requests"]
    (first,) = _run_workers([_job("cache", redis_url, server.openai_url, [prompt])])
    (second,) = _run_workers([_job("cache", redis_url, server.openai_url, [prompt])])
    assert first["cached"] == [False] and second["cached"] == [True]
    assert second["contents"] == first["contents"] == [f"Echo: {prompt}"]
    assert second["cost"] == 0.0
    assert server.stats()["requests"] - before == 1  # only the first process went upstream


if __name__ == "__main__":
    _child_main(json.loads(sys.argv[1]))
