"""Limits shared through a real Redis: GCRA across processes, shared OPEN circuits, outages."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import anyio
import pytest

from aio_llm.errors import CircuitOpenError, RateLimitExceededError, ServerError, error_for_status
from aio_llm.middleware import (
    CircuitBreakerConfig,
    CircuitBreakerMiddleware,
    CircuitState,
    RateLimit,
    RateLimitConfig,
)
from aio_llm.middleware._redis_limits import GCRA_SHA, RedisCircuitState, RedisGCRA
from aio_llm.testing.clock import FakeClock
from aio_llm.types import ChatRequest, ChatResponse

pytestmark = pytest.mark.redis

DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def request(model: str) -> ChatRequest:
    return ChatRequest(model=model, messages=[{"role": "user", "content": "hi"}])


async def answer(req: ChatRequest) -> ChatResponse:
    return ChatResponse.model_construct(content="ok")


def unique() -> str:
    return f"m-{uuid.uuid4().hex[:8]}"


# -- the GCRA script ----------------------------------------------------------


@pytest.mark.anyio
async def test_script_admits_the_burst_then_returns_the_wait(redis_url: str) -> None:
    gcra = RedisGCRA(redis_url)
    target = unique()
    try:
        args = {"request_interval": 10.0, "token_interval": 0.0, "tokens": 0.0, "tolerance": 20.0}
        assert await gcra.acquire(target, **args) == 0.0
        assert await gcra.acquire(target, **args) == 0.0
        wait = await gcra.acquire(target, **args)  # a third would exceed the 20s tolerance
        assert wait is not None and 9.9 < wait <= 10.0
        assert "up" in repr(gcra)
    finally:
        await gcra.aclose()


@pytest.mark.anyio
async def test_script_books_tokens_and_adjusts_them(redis_url: str) -> None:
    gcra = RedisGCRA(redis_url)
    target = unique()
    args = {"request_interval": 0.0, "token_interval": 0.01, "tolerance": 1.0}
    try:
        assert await gcra.acquire(target, tokens=90, **args) == 0.0
        wait = await gcra.acquire(target, tokens=50, **args)
        assert wait is not None and 0.3 < wait <= 0.4
        await gcra.adjust_tokens(target, token_interval=0.01, delta=-80)  # used only 10
        assert await gcra.acquire(target, tokens=50, **args) == 0.0
    finally:
        await gcra.aclose()


@pytest.mark.anyio
async def test_script_is_reloaded_after_a_script_flush(redis_url: str) -> None:
    gcra = RedisGCRA(redis_url)
    target = unique()
    try:
        await gcra._link.client().script_flush()
        wait = await gcra.acquire(
            target, request_interval=1.0, token_interval=0.0, tokens=0.0, tolerance=1.0
        )
        assert wait == 0.0  # NOSCRIPT answered, the script was sent in full
        assert await gcra._link.client().script_exists(GCRA_SHA) == [True]
    finally:
        await gcra.aclose()


# -- RateLimit over Redis ---------------------------------------------------------


@pytest.mark.anyio
async def test_two_limiters_share_one_limit(redis_url: str) -> None:
    config = RateLimitConfig(rpm=600, burst=0.01, backend=redis_url)  # 10/s, 6 at once
    a, b = RateLimit(config), RateLimit(config)
    model = unique()
    try:
        start = time.monotonic()
        for i in range(16):
            await (a if i % 2 else b)(request(model), answer)
        elapsed = time.monotonic() - start
        assert elapsed >= 0.9  # 16 = 6 at once + 10 paced at 10/s, whoever sends
        delayed = (
            a.metrics()["ratelimit.requests.delayed"],
            b.metrics()["ratelimit.requests.delayed"],
        )
        assert sum(delayed) >= 9  # type: ignore[arg-type]
    finally:
        await a.aclose()
        await b.aclose()


@pytest.mark.anyio
async def test_redis_wait_respects_the_deadline(redis_url: str) -> None:
    model = unique()
    async with RateLimit(RateLimitConfig(rpm=1, burst=1.0, backend=redis_url)) as rl:
        await rl(request(model), answer)
        with anyio.fail_after(2):
            with pytest.raises(RateLimitExceededError) as info:
                await rl(request(model), answer)
        assert info.value.retry_after is not None and info.value.retry_after > 50


@pytest.mark.anyio
async def test_unreachable_redis_fails_open_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rl = RateLimit(RateLimitConfig(rpm=600, backend=DEAD_REDIS))
    caplog.set_level(logging.WARNING, logger="aio_llm.middleware")
    try:
        for _ in range(5):
            assert (await rl(request("m"), answer)).content == "ok"
    finally:
        await rl.aclose()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "127.0.0.1:1" in warnings[0].getMessage()


@pytest.mark.anyio
async def test_unreachable_redis_fails_closed_when_asked() -> None:
    rl = RateLimit(RateLimitConfig(rpm=600, backend=DEAD_REDIS, fail_open=False))
    try:
        with pytest.raises(RateLimitExceededError, match="unreachable"):
            await rl(request("m"), answer)
    finally:
        await rl.aclose()


def test_log_lines_never_show_redis_credentials() -> None:
    from aio_llm.middleware._redis_limits import _safe_url

    assert _safe_url("redis://user:s3cret@cache:6380/2") == "redis://cache:6380/2"


WORKER = textwrap.dedent(
    """
    import json, sys, time
    import anyio
    from aio_llm.middleware import RateLimit, RateLimitConfig
    from aio_llm.types import ChatRequest, ChatResponse

    url, model, duration = sys.argv[1], sys.argv[2], float(sys.argv[3])

    async def main() -> None:
        rl = RateLimit(RateLimitConfig(rpm=600, burst=0.01, backend=url))
        times = []
        req = ChatRequest(model=model, messages=[{"role": "user", "content": "hi"}])
        print("ready", flush=True)
        start_at = float(sys.stdin.readline())  # the parent starts both at once

        async def upstream(r):
            times.append(time.time())
            return ChatResponse.model_construct(content="ok")

        async def worker() -> None:
            while time.time() < start_at + duration:
                await rl(req, upstream)

        await anyio.sleep(max(0.0, start_at - time.time()))
        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(worker)
        await rl.aclose()
        print(json.dumps(times))

    anyio.run(main)
    """
)


def test_two_processes_together_respect_one_limit(redis_url: str, tmp_path: Path) -> None:
    """600 requests/minute (10/s, a burst of 6) shared by two processes hammering it."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    model = unique()
    duration = 3.0
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), redis_url, model, repr(duration)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for _ in range(2)
    ]
    for proc in procs:  # both loaded and connected before the clock starts
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    start_at = time.time() + 0.2
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(f"{start_at!r}\n".encode())
        proc.stdin.flush()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
        results.append(json.loads(out))
    end = start_at + duration
    per_process = [[t for t in times if start_at <= t <= end] for times in results]
    assert all(len(p) >= 3 for p in per_process), [len(p) for p in per_process]  # both got in
    admitted = sorted(t for p in per_process for t in p)
    # at most rate * window + burst (+1, +0.05s for the clocks of two processes)
    for width in (0.5, 1.0, duration):
        lo, worst = 0, 0
        for hi, t in enumerate(admitted):
            while admitted[lo] < t - width:
                lo += 1
            worst = max(worst, hi - lo + 1)
        assert worst <= (width + 0.6 + 0.05) * 10 + 1, (width, worst)
    assert len(admitted) >= 0.8 * duration * 10  # and the limit is not starving them


# -- circuit breakers sharing OPEN ---------------------------------------------


@pytest.mark.anyio
async def test_an_open_circuit_is_seen_by_other_processes(redis_url: str) -> None:
    clock = FakeClock()
    config = CircuitBreakerConfig(failure_threshold=1, timeout=30)
    prefix = f"test-{uuid.uuid4().hex[:6]}:"
    a = CircuitBreakerMiddleware(
        config, clock=clock, shared=RedisCircuitState(redis_url, prefix=prefix)
    )
    b = CircuitBreakerMiddleware(
        config, clock=clock, shared=RedisCircuitState(redis_url, prefix=prefix)
    )
    calls = []

    async def down(req: ChatRequest) -> ChatResponse:
        calls.append(req.model)
        raise error_for_status(503, "down")

    try:
        with pytest.raises(ServerError):
            await a(request("m"), down)
        with pytest.raises(CircuitOpenError) as info:
            await b(request("m"), down)
        assert calls == ["m"]  # b never reached the network
        assert info.value.retry_after is not None and 29 < info.value.retry_after <= 30
        assert b.breaker(None, "m").state is CircuitState.OPEN
        assert (await b(request("other"), answer)).content == "ok"  # other targets unaffected
    finally:
        await a.aclose()
        await b.aclose()


@pytest.mark.anyio
async def test_circuit_with_unreachable_redis_degrades_to_local(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="aio_llm.middleware")
    clock = FakeClock()
    mw = CircuitBreakerMiddleware(
        CircuitBreakerConfig(failure_threshold=2), clock=clock, shared=DEAD_REDIS
    )
    try:
        for _ in range(3):
            clock.advance(2)  # past the shared state's refresh interval each time
            assert (await mw(request("m"), answer)).content == "ok"

        async def down(req: ChatRequest) -> ChatResponse:
            raise error_for_status(500, "down")

        for _ in range(2):
            with pytest.raises(ServerError):
                await mw(request("m"), down)
        assert mw.breaker(None, "m").state is CircuitState.OPEN  # local state still works
    finally:
        await mw.aclose()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
