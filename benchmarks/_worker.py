"""One measurement in a fresh child process: ``python benchmarks/_worker.py SPEC_JSON``.

The child pins itself to ``spec["core"]`` before importing anything heavy,
opens one client, warms it up, then measures. CPU time is the process's
user + system time (``os.times``, every thread included) over the measured
phase only. The result is one JSON line on stdout.

Kinds:

* ``load``: ``n`` requests (or until ``max_seconds``) with ``c`` in flight;
  CPU µs per request, wall time, requests per second.
* ``window``: ``c`` in flight for ``window`` seconds of wall time
  (throughput with server latency); requests that finish inside the window
  count toward the rate. With ``"rss": true`` it also reports the resident
  memory after the first request and half-way through the window (``c`` in
  flight), and the difference per request in flight.
* ``rss``: ``n`` requests with ``c`` in flight; resident memory after the
  warm-up, half-way and at the end.
* ``micro``: the in-process figures of ``_micro.py`` (no server).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import time
from typing import Any


def _pin(core: int | None) -> None:
    if core is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})


def _cpu() -> float:
    return time.process_time()  # user + system of every thread, ns resolution


def rss_mb() -> float:
    """Current resident set size in MB (``VmRSS``)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def drive(
    call: Any, c: int, start: int, end: int, deadline: float = float("inf")
) -> tuple[int, int]:
    """Send requests ``start..end`` with ``c`` in flight; stop issuing after ``deadline``.

    Returns (requests done, requests done before the deadline).
    """
    state = [start, 0, 0]
    clock = time.perf_counter

    async def worker() -> None:
        while True:
            i = state[0]
            if i >= end or clock() > deadline:
                return
            state[0] = i + 1
            await call(i)
            state[1] += 1
            if clock() <= deadline:
                state[2] += 1

    await asyncio.gather(*(worker() for _ in range(c)))
    return state[1], state[2]


async def _load(spec: dict[str, Any]) -> dict[str, Any]:
    from _clients import open_client

    c = spec["c"]
    client = await open_client(spec["client"], spec["urls"], c)
    try:
        first = await client.call(0)
        gc.collect()
        rss_idle = rss_mb()
        expect = spec.get("expect")
        if expect is not None and first != expect:
            raise RuntimeError(f"unexpected answer {first!r} (expected {expect!r})")
        warmup = spec.get("warmup", 200)
        await drive(client.call, c, 1, 1 + warmup)
        base = 1 + warmup
        kind = spec["kind"]
        if kind == "rss":
            return await _rss(client.call, c, base, spec["n"])
        cpu0, t0 = _cpu(), time.perf_counter()
        rss_busy: list[float] = []
        if kind == "window":
            deadline = t0 + spec["window"]

            async def sample() -> None:  # half-way, with c requests in flight
                await asyncio.sleep(spec["window"] / 2)
                rss_busy.append(rss_mb())

            sampler = asyncio.ensure_future(sample()) if spec.get("rss") else None
            done, inside = await drive(client.call, c, base, sys.maxsize, deadline)
            if sampler is not None:
                await sampler
        else:
            deadline = t0 + spec.get("max_seconds", float("inf"))
            done, inside = await drive(client.call, c, base, base + spec["n"], deadline)
        cpu1, t1 = _cpu(), time.perf_counter()
    finally:
        await client.aclose()
    wall = t1 - t0
    out = {
        "n": done,
        "cpu_s": cpu1 - cpu0,
        "wall_s": wall,
        "us_per_req": (cpu1 - cpu0) / done * 1e6 if done else None,
        "rps": done / wall if wall else None,
    }
    if kind == "window":
        out["rps"] = inside / spec["window"]
    if rss_busy:
        out["rss_idle_mb"] = rss_idle
        out["rss_busy_mb"] = rss_busy[0]
        out["rss_kb_per_in_flight"] = (rss_busy[0] - rss_idle) * 1024 / c
    return out


async def _rss(call: Any, c: int, base: int, n: int) -> dict[str, Any]:
    gc.collect()
    marks = {"start": rss_mb()}
    half = n // 2
    cpu0 = _cpu()
    await drive(call, c, base, base + half)
    gc.collect()
    marks["half"] = rss_mb()
    await drive(call, c, base + half, base + n)
    gc.collect()
    marks["end"] = rss_mb()
    return {"n": n, "rss_mb": marks, "us_per_req": (_cpu() - cpu0) / n * 1e6}


def main() -> None:
    spec = json.loads(sys.argv[1])
    _pin(spec.get("core"))
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    if spec["kind"] == "micro":
        from _micro import run_micro

        result = asyncio.run(run_micro(spec))
    else:
        result = asyncio.run(_load(spec))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
