"""Soak: many requests through the default chain against a server with every kind of fault.

The adversarial raw-socket server runs in a child process (``tests/soak/_server.py``)
and gives ``FAULT_RATE`` of the requests a fault drawn evenly from 23 kinds:
statuses (429 with ``Retry-After: 0`` and with an absurd one, 500, 503, an
HTML 502, a 401 echoing the key), resets, slow answers within and beyond the
deadline, a stall after the headers, slowloris, bodies cut mid-way or shorter
than their ``Content-Length``, chunked bodies cut mid-chunk, streams without
their end marker or with an in-band error, malformed JSON, redirects to
another origin and to the same one, a stream starting with a byte-order mark,
a gzip bomb, bytes that are not HTTP, an empty 200. The client sends chats and
streams at concurrency 256 (a few prompts repeat, so the cache and dedup take
part) under a daily budget.

Every request must end in the right answer or an ``LLMError``; afterwards no
asyncio task, no file descriptor and no budget reservation may be left, no
request may have reached the redirect target, and resident memory may grow
only by a bounded amount after the warm-up.

CI runs 5,000 requests; ``pytest tests/soak --soak-requests 100000 -s --timeout 0``
is the long run (figures in docs/reliability.md). ``--soak-trace`` adds
tracemalloc snapshots and garbage-collector counts, diffed between the two
halves (several times slower).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from aio_llm import AsyncLLMClient, ClientConfig, LLMError
from aio_llm.cost import BudgetConfig, BudgetPeriod, CostManager
from aio_llm.cost.ledger import MemoryLedger

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "sk-soak-test-0000"
CONCURRENCY = 256
STREAM_EVERY = 3
"""Every third request is a stream."""
REPEAT_EVERY = 20
"""Every twentieth request repeats an earlier prompt (cache hits, dedup followers)."""
TIMEOUT = 2.0
"""The client's deadline per call; the slowest faults outlast it."""
RSS_GROWTH_LIMIT = 48 * 1024 * 1024
"""How much the resident set may grow between the warm-up and the end (bytes)."""
SAMPLES = 10
"""RSS is sampled this many times over the run."""


class FaultServer:
    """The child process running ``tests/soak/_server.py``."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.soak._server"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
            cwd=str(ROOT),
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line.startswith("READY "):
            self.close()
            raise RuntimeError(f"the soak server did not start: {line!r}")
        self.url = line.split(" ", 1)[1]

    def stats(self) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("stats\n")
        self.process.stdin.flush()
        return dict(json.loads(self.process.stdout.readline()))

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    srv = FaultServer()
    try:
        yield srv
    finally:
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


def mib(n: float) -> float:
    return round(n / 2**20, 1)


def python_blocks() -> int:
    """Memory blocks the Python allocator holds for live objects, after a full collection.

    Flat while RSS grows means the growth is the allocator keeping freed
    memory (fragmentation, high-water marks), not objects kept alive.
    """
    gc.collect()
    return sys.getallocatedblocks()


def rss_after_trim() -> int:
    """RSS once glibc has handed freed heap memory back to the system (Linux only)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    return rss_bytes()


class Trace:
    """tracemalloc snapshots and gc figures at the half and at the end (``--soak-trace``)."""

    def __init__(self, on: bool) -> None:
        self.on = on
        self.half: tracemalloc.Snapshot | None = None
        self.types_half: Counter[str] = Counter()
        self.report: dict[str, Any] = {}
        if on:
            tracemalloc.start(4)

    @staticmethod
    def _types() -> Counter[str]:
        return Counter(type(o).__qualname__ for o in gc.get_objects())

    def at_half(self) -> None:
        if self.on:
            gc.collect()
            self.half = tracemalloc.take_snapshot()
            self.types_half = self._types()
            self.report["gc_half"] = gc.get_stats()

    def at_end(self) -> None:
        if not self.on or self.half is None:
            return
        before_gc = tracemalloc.get_traced_memory()[0]
        collected = gc.collect()
        end = tracemalloc.take_snapshot()
        filters = [tracemalloc.Filter(False, tracemalloc.__file__)]
        diff = end.filter_traces(filters).compare_to(self.half.filter_traces(filters), "lineno")
        self.report["traced_mib_half_end"] = [
            mib(sum(s.size for s in self.half.statistics("filename"))),
            mib(sum(s.size for s in end.statistics("filename"))),
        ]
        self.report["traced_before_final_gc_mib"] = mib(before_gc)
        self.report["final_gc_collected"] = collected
        self.report["top_growth"] = [
            f"{s.size_diff / 1024:+.0f} KiB {s.count_diff:+d} {s.traceback[0]}" for s in diff[:15]
        ]
        types = self._types()
        growth = {t: n - self.types_half.get(t, 0) for t, n in types.items()}
        self.report["object_growth"] = sorted(growth.items(), key=lambda kv: -kv[1])[:12]
        self.report["gc_end"] = gc.get_stats()
        tracemalloc.stop()


def prompt(i: int) -> str:
    if i % REPEAT_EVERY == REPEAT_EVERY - 1:
        i -= 7
    return f"soak question {i}"


class Run:
    """Drives requests through ``client`` with ``CONCURRENCY`` workers."""

    def __init__(self, client: AsyncLLMClient) -> None:
        self.client = client
        self.outcomes: Counter[str] = Counter()
        self.wrong: list[str] = []
        self.untyped: list[BaseException] = []
        self.leaked_key: list[str] = []

    async def one(self, i: int) -> None:
        text = prompt(i)
        messages = [{"role": "user", "content": text}]
        expected = f"Echo: {text}"
        try:
            if i % STREAM_EVERY == 0:
                async with self.client.stream(messages, temperature=0) as s:
                    got = await s.text()
                kind = "ok:stream"
            else:
                got = (await self.client.chat(messages, temperature=0)).content
                kind = "ok:chat"
        except LLMError as exc:
            self.outcomes[type(exc).__name__] += 1
            if API_KEY in str(exc) or API_KEY in repr(vars(exc)):
                self.leaked_key.append(repr(exc))
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
async def test_soak(server: FaultServer, soak_requests: int, soak_trace: bool) -> None:
    total = soak_requests
    warmup = min(5000, total // 10)
    config = ClientConfig(
        provider="openai",
        model="gpt-4o-mini",
        timeout=TIMEOUT,
        max_retries=2,
        retry_base_delay=0.01,
        retry_max_delay=0.05,
        # an absurd Retry-After holds the model for at most this: short, so the
        # soak measures the client rather than the holds
        retry_after_cap=0.05,
        # a run of faults may trip a breaker at 5 consecutive failures, and then
        # the rest of the run only meets CircuitOpenError
        circuit_failure_threshold=20,
        circuit_timeout=1.0,
        cache_enabled=True,
        cache_max_entries=1000,
        max_response_bytes=1 << 20,  # a gzip bomb is refused at 1 MiB
    )
    ledger = MemoryLedger()
    costs = CostManager(ledger=ledger)
    costs.set_budget("daily", BudgetConfig(1_000_000.0, BudgetPeriod.DAILY))
    tasks_before = len(asyncio.all_tasks())
    fds_before = open_fds()
    rss_start = rss_bytes()
    trace = Trace(soak_trace)
    began = time.perf_counter()
    rss: list[int] = []
    async with AsyncLLMClient(
        "openai", api_key=API_KEY, base_url=server.url + "/v1", config=config, cost_manager=costs
    ) as client:
        run = Run(client)
        await run.run(0, warmup)
        rss_warm = rss_bytes()
        blocks = [python_blocks()]
        step = max((total - warmup) // SAMPLES, 1)
        for k, start in enumerate(range(warmup, total, step)):
            await run.run(start, min(start + step, total))
            rss.append(rss_bytes())
            if k == SAMPLES // 2 - 1:
                blocks.append(python_blocks())
                trace.at_half()
        trace.at_end()
        rss_end = rss_bytes()
        blocks.append(python_blocks())
        rss_trimmed = rss_after_trim()
        metrics = client.metrics()
        budget = costs.get_budget_status("daily")
    wall = time.perf_counter() - began
    await anyio.sleep(0)  # let closed transports run their last callbacks
    tasks_after = len(asyncio.all_tasks())
    fds_after = open_fds()
    stats = await anyio.to_thread.run_sync(server.stats)
    half = rss[len(rss) // 2 - 1] if len(rss) >= 2 else rss_warm

    figures: dict[str, Any] = {
        "requests": total,
        "upstream_requests": stats.get("requests"),
        "faults_injected": stats.get("faults"),
        "fault_kinds": stats.get("kinds"),
        "faults": {k[6:]: v for k, v in sorted(stats.items()) if k.startswith("fault:")},
        "requests_at_the_redirect_target": stats.get("elsewhere", 0),
        "outcomes": dict(sorted(run.outcomes.items())),
        "fds": [fds_before, fds_after],
        "tasks": [tasks_before, tasks_after],
        "reserved_usd_at_end": budget["reserved"],
        "open_reservations": ledger.open_reservations,
        "rss_mib": {
            "start": mib(rss_start),
            "after_warmup": mib(rss_warm),
            "samples": [mib(r) for r in rss],
            "half": mib(half),
            "end": mib(rss_end),
            "end_after_malloc_trim": mib(rss_trimmed),
        },
        "python_blocks_warm_half_end": blocks,
        "wall_s": round(wall, 1),
        "retries": metrics.get("retry.attempts"),
        "cache_hits": metrics.get("cache.hits"),
        "dedup_hits": metrics.get("dedup.hits"),
        "ratelimit": {k: v for k, v in metrics.items() if k.startswith("ratelimit.")},
        **({"trace": trace.report} if soak_trace else {}),
    }
    sys.stdout.write("\nsoak figures: " + json.dumps(figures, default=str) + "\n")

    assert not run.untyped, run.untyped[:5]
    assert not run.wrong, run.wrong[:5]
    assert not run.leaked_key, run.leaked_key[:3]
    assert sum(run.outcomes.values()) == total
    assert run.outcomes["ok:chat"] > 0 and run.outcomes["ok:stream"] > 0
    assert stats.get("faults", 0) >= 0.05 * total / 2  # the faults really happened
    assert stats.get("elsewhere", 0) == 0  # no redirect was followed
    assert sum(n for k, n in run.outcomes.items() if not k.startswith("ok:")) > 0
    # nothing left behind
    assert tasks_after == tasks_before
    assert fds_after == fds_before
    assert budget["reserved"] == 0 and ledger.open_reservations == 0
    assert rss_end - rss_warm < RSS_GROWTH_LIMIT, figures["rss_mib"]
