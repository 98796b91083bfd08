"""Redis dies in the middle of a run: requests keep succeeding, the shared cache comes back.

The client shares its cache and its rate limit through a private
redis-server (started here on a free port so the test can kill and restart
it); its budget stays in memory. While Redis is down the cache is bypassed
and the limiter fails open; once Redis is back (and the backends' retry
interval has passed on the client's clock) entries are shared again.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest

from aio_llm import AsyncLLMClient, ChatResponse, ClientConfig
from aio_llm.testing import FakeClock, FakeLLMServer

pytestmark = pytest.mark.redis

API_KEY = "sk-outage-test-0000"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class KillableRedis:
    """A private redis-server on a fixed port, killed and restarted at will."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is needed for this test")
        self.binary = binary
        self.port = _free_port()
        self.dir = tempfile.mkdtemp(prefix="aio-llm-outage-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", self.dir]
        self.proc = subprocess.Popen(
            [self.binary, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        pytest.fail("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def redis_server() -> Iterator[KillableRedis]:
    server = KillableRedis()
    server.start()
    try:
        yield server
    finally:
        server.kill()
        shutil.rmtree(server.dir, ignore_errors=True)


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
    redis_server: KillableRedis, llm_server: FakeLLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aio_llm")
    clock = FakeClock()
    async with make_client(llm_server, redis_server.url, clock) as client:
        first = await client.chat(ask("warm"))
        again = await client.chat(ask("warm"))
        assert not first.cached and again.cached  # served from Redis

        # kill Redis while a batch is in flight
        killed = anyio.Event()

        def progress(done: int, total: int) -> None:
            if done == 40 and not killed.is_set():
                redis_server.kill()
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
        assert metrics["errors"] == 0

        # Redis returns (empty); after the retry interval the cache is shared again
        redis_server.start()
        clock.advance(10.0)
        after = await client.chat(ask("after the outage"))
        assert not after.cached
        assert client.metrics()["cache.available"] is True
        assert (await client.chat(ask("after the outage"))).cached

    # another client (think: another process) is served what the first stored after recovery
    async with make_client(llm_server, redis_server.url, FakeClock()) as other:
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
