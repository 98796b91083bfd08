"""Soak: many requests through the default chain against a misbehaving server.

A ``FakeLLMServer`` in a child process (this file run as a script) gives
``FAULT_RATE`` of the requests a fault drawn from ``FAULTS``: 429, 500, 503,
connection resets, slow answers (within and beyond the deadline), truncated
and broken streams, malformed bodies. The client sends a mix of chat and
stream requests at concurrency 256 (a few prompts repeat, so the cache and
dedup take part). Every request must end in a correct response or an
``LLMError``; afterwards no asyncio task and no file descriptor may be left
behind, and the resident memory may grow only by a bounded amount.

CI runs 5,000 requests; ``pytest tests/soak --soak-requests 100000 -s`` is the
long run (its figures are in docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from aio_llm import AsyncLLMClient, ClientConfig, LLMError
from aio_llm.testing import FakeLLMServer, Fault, SpawnedServer

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "sk-soak-test-0000"
CONCURRENCY = 256
FAULT_RATE = 0.05
STREAM_EVERY = 3
"""Every third request is a stream."""
REPEAT_EVERY = 20
"""Every twentieth request repeats an earlier prompt (cache hits, dedup followers)."""
TIMEOUT = 2.0
"""The client's deadline per call; the slowest fault outlasts it."""
RSS_GROWTH_LIMIT = 48 * 1024 * 1024
"""How much the resident set may grow between the warm-up and the end (bytes)."""
_READY = "READY"


def faults() -> list[Fault]:
    return [
        Fault.status(429, retry_after=0),
        Fault.status(500),
        Fault.status(503),
        Fault.reset(),
        Fault.latency(0.2),  # slow, still within the deadline
        Fault.latency(5.0),  # slower than the deadline
        Fault.truncate(after_chunks=2),  # cut mid-body
        Fault.truncate(after_chunks=2, clean=True),  # ends without the end marker
        Fault.stream_error(after_chunks=1),
        Fault.malformed(),
    ]


# -- the server child -------------------------------------------------------------


async def _serve() -> None:
    async with FakeLLMServer(stream_chunks=5, record_limit=0, seed=7) as srv:
        srv.fault_rate(FAULT_RATE, faults())
        sys.stdout.write(f"{_READY} {srv.url}\n")
        sys.stdout.flush()
        await anyio.to_thread.run_sync(sys.stdin.read)  # until the parent closes stdin


def spawn_faulty_server() -> SpawnedServer:
    proc = subprocess.Popen(
        [sys.executable, __file__],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        cwd=str(ROOT),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith(_READY + " "):
        proc.kill()
        proc.wait()
        raise RuntimeError(f"the soak server did not start: {line!r}")
    return SpawnedServer(proc, line.split(" ", 1)[1])


@pytest.fixture(scope="module")
def server() -> Iterator[SpawnedServer]:
    srv = spawn_faulty_server()
    try:
        yield srv
    finally:
        stdin = srv.process.stdin
        if stdin is not None:
            stdin.close()
        srv.close()


# -- measuring ----------------------------------------------------------------------


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def prompt(i: int) -> str:
    if i % REPEAT_EVERY == REPEAT_EVERY - 1:
        i -= 7
    return f"soak question {i}"


class Run:
    """Drives ``total`` requests through ``client`` with ``CONCURRENCY`` workers."""

    def __init__(self, client: AsyncLLMClient, total: int) -> None:
        self.client = client
        self.total = total
        self.outcomes: Counter[str] = Counter()
        self.wrong: list[str] = []
        self.untyped: list[BaseException] = []

    async def one(self, i: int) -> None:
        text = prompt(i)
        messages = [{"role": "user", "content": text}]
        expected = f"Echo: {text}"
        try:
            if i % STREAM_EVERY == 0:
                async with self.client.stream(messages) as s:
                    got = await s.text()
                kind = "ok:stream"
            else:
                got = (await self.client.chat(messages)).content
                kind = "ok:chat"
        except LLMError as exc:
            self.outcomes[type(exc).__name__] += 1
            return
        except Exception as exc:
            self.untyped.append(exc)
            self.outcomes["untyped:" + type(exc).__name__] += 1
            return
        self.outcomes[kind] += 1
        if got != expected:
            self.wrong.append(f"{i}: {got!r}")

    async def run(self, start: int, stop: int) -> None:
        indices = iter(range(start, stop))

        async def worker() -> None:
            for i in indices:
                await self.one(i)

        async with anyio.create_task_group() as tg:
            for _ in range(CONCURRENCY):
                tg.start_soon(worker)


@pytest.mark.soak
@pytest.mark.anyio
async def test_soak(server: SpawnedServer, soak_requests: int) -> None:
    total = soak_requests
    warmup = min(500, total // 10)
    config = ClientConfig(
        provider="openai",
        model="gpt-4o-mini",
        timeout=TIMEOUT,
        max_retries=2,
        retry_base_delay=0.01,
        retry_max_delay=0.05,
        # a run of faults (the seeded sequence has a few back to back) may trip a breaker
        # at 5 consecutive failures, and then the rest of the run only meets CircuitOpenError
        circuit_failure_threshold=20,
        circuit_timeout=1.0,
        cache_enabled=True,
        cache_max_entries=1000,
    )
    tasks_before = len(asyncio.all_tasks())
    fds_before = open_fds()
    rss_start = rss_bytes()
    began = time.perf_counter()
    async with AsyncLLMClient(
        "openai", api_key=API_KEY, base_url=server.openai_url, config=config
    ) as client:
        run = Run(client, total)
        await run.run(0, warmup)
        rss_warm = rss_bytes()
        await run.run(warmup, total)
        rss_end = rss_bytes()
        metrics = client.metrics()
    wall = time.perf_counter() - began
    await anyio.sleep(0)  # let closed transports run their last callbacks
    tasks_after = len(asyncio.all_tasks())
    fds_after = open_fds()
    stats = await anyio.to_thread.run_sync(server.stats)

    figures: dict[str, Any] = {
        "requests": total,
        "upstream_requests": stats["requests"],
        "faults_injected": stats["faults"],
        "outcomes": dict(sorted(run.outcomes.items())),
        "fds": [fds_before, fds_after],
        "tasks": [tasks_before, tasks_after],
        "rss_mb": [round(rss / 2**20, 1) for rss in (rss_start, rss_warm, rss_end)],
        "wall_s": round(wall, 1),
        "retries": metrics.get("retry.attempts"),
        "cache_hits": metrics.get("cache.hits"),
        "dedup_hits": metrics.get("dedup.hits"),
    }
    sys.stdout.write("\nsoak figures: " + json.dumps(figures) + "\n")

    assert not run.untyped, run.untyped[:5]
    assert not run.wrong, run.wrong[:5]
    assert sum(run.outcomes.values()) == total
    assert run.outcomes["ok:chat"] > 0 and run.outcomes["ok:stream"] > 0
    # the faults really happened, and some of them surfaced as typed errors
    assert stats["faults"] >= FAULT_RATE * total / 2
    assert sum(n for k, n in run.outcomes.items() if not k.startswith("ok:")) > 0
    # nothing left behind
    assert tasks_after == tasks_before
    assert fds_after == fds_before
    assert rss_end - rss_warm < RSS_GROWTH_LIMIT, figures["rss_mb"]  # start, warm, end


if __name__ == "__main__":
    anyio.run(_serve)
