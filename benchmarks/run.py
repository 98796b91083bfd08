"""Benchmark aio_llm against raw aiohttp/httpx and the official SDKs: ``python benchmarks/run.py``.

A ``FakeLLMServer`` runs in a child process pinned to one core; every
measurement runs in its own fresh child process pinned to another core
(``_worker.py``). CPU µs per request = (user + system CPU time of the client
process during the measured phase, after warm-up) / requests; each figure is
the median of ``--runs`` runs (5), interleaved so that a burst of load on the
machine hits every client alike. The tables are printed and written into
``benchmarks/README.md`` between the result markers.

    python benchmarks/run.py                     # everything (~10 minutes)
    python benchmarks/run.py --quick             # a smoke run (~1-2 minutes)
    python benchmarks/run.py --sections cpu,micro --clients raw_aiohttp,aio_default_aiohttp
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import util as import_util
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from _clients import LABELS, OPTIONAL, REPLY, STREAM_CHUNKS  # noqa: E402
from _report import machine_line, render, update_readme  # noqa: E402

SECTIONS = ("cpu", "stream", "latency", "inflight", "cache", "rss", "import", "micro")
CPU_ROWS = (
    "raw_aiohttp",
    "raw_httpx",
    "openai_sdk",
    "anthropic_sdk",
    "litellm",
    "aio_bare_aiohttp",
    "aio_default_aiohttp",
    "aio_bare_httpx",
    "aio_default_httpx",
)
STREAM_ROWS = (
    "raw_aiohttp@stream",
    "openai_sdk@stream",
    "aio_bare_aiohttp@stream",
    "aio_default_aiohttp@stream",
)
LATENCY_ROWS = ("raw_aiohttp", "aio_default_aiohttp", "openai_sdk", "anthropic_sdk", "litellm")
INFLIGHT_ROWS = ("raw_aiohttp", "aio_default_aiohttp")
INFLIGHT = 2048
"""Requests in flight at once in the ``inflight`` section (server latency 500 ms)."""
CONCURRENCY = (1, 16, 128)


@dataclass
class Plan:
    """Request counts and time limits; ``--quick`` shrinks them all."""

    runs: int = 5
    requests: dict[int, int] = field(default_factory=lambda: {1: 2000, 16: 4000, 128: 6000})
    max_seconds: float = 2.0
    latency_window: float = 3.0
    inflight_window: float = 8.0
    rss_requests: int = 100_000
    cache_hits: int = 20_000
    import_reps: int = 5
    micro_requests: int = 20_000
    semantic_lookups: int = 200
    child_timeout: float = 180.0

    @classmethod
    def quick(cls) -> Plan:
        return cls(
            runs=1,
            requests={1: 300, 16: 600, 128: 1000},
            max_seconds=0.5,
            latency_window=1.0,
            inflight_window=3.0,
            rss_requests=10_000,
            cache_hits=3000,
            import_reps=3,
            micro_requests=3000,
            semantic_lookups=30,
        )


@dataclass
class Results:
    cpu: dict[str, dict[int, list[float]]] = field(default_factory=dict)
    latency: dict[str, list[float]] = field(default_factory=dict)
    inflight: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    cache: dict[str, list[float]] = field(default_factory=dict)
    rss: dict[str, Any] | None = None
    imports: dict[str, list[float]] = field(default_factory=dict)
    micro: dict[str, Any] | None = None
    errors: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def cores() -> tuple[int | None, int | None]:
    """(server core, client core), or Nones when there are not two cores to pin to."""
    try:
        available = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return None, None
    if len(available) < 2:
        return None, None
    return available[0], available[1]


def child(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one measurement in a fresh process; its last stdout line is the JSON result."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), LITELLM_LOCAL_MODEL_COST_MAP="True")
    proc = subprocess.run(
        [sys.executable, str(HERE / "_worker.py"), json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
    )
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(tail[:300])
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def available(row: str) -> str | None:
    """None if ``row`` can run, else why not."""
    module = OPTIONAL.get(row.partition("@")[0])
    if module is not None and import_util.find_spec(module) is None:
        return f"{module} is not installed"
    return None


class Runner:
    def __init__(self, plan: Plan, only: set[str] | None, log: Callable[[str], None]) -> None:
        self.plan = plan
        self.only = only
        self.log = log
        self.results = Results()
        self.server_core, self.client_core = cores()

    def rows(self, rows: tuple[str, ...]) -> list[str]:
        out = []
        for row in rows:
            if self.only is not None and row.partition("@")[0] not in self.only:
                continue
            why = available(row)
            if why is not None:
                self.results.skipped[row] = why
                continue
            out.append(row)
        return out

    def spawn_server(self, **options: Any) -> Any:
        from aio_llm.testing import FakeLLMServer

        srv = FakeLLMServer.spawn(
            reply=REPLY, stream_chunks=STREAM_CHUNKS, record_limit=0, **options
        )
        if self.server_core is not None:
            os.sched_setaffinity(srv.pid, {self.server_core})
        return srv

    def measure(self, key: str, spec: dict[str, Any]) -> dict[str, Any] | None:
        spec = dict(spec, core=self.client_core)
        try:
            return child(spec, self.plan.child_timeout)
        except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
            self.results.errors.setdefault(key, str(exc).splitlines()[0][:200])
            self.log(f"  ! {key}: {exc}")
            return None

    # -- sections ---------------------------------------------------------------
    def cpu(self, urls: dict[str, str], rows: list[str]) -> None:
        p = self.plan
        for run in range(p.runs):
            for row in rows:
                stream = row.endswith("@stream")
                for c in CONCURRENCY:
                    key = f"{row} c={c}"
                    if key in self.results.errors:
                        continue
                    n = p.requests[c] // (2 if stream else 1)
                    spec = {
                        "kind": "load",
                        "client": row,
                        "c": c,
                        "n": n,
                        "warmup": max(200, 2 * c),
                        "max_seconds": p.max_seconds,
                        "urls": urls,
                        "expect": STREAM_CHUNKS if stream else REPLY,
                    }
                    out = self.measure(key, spec)
                    if out is not None:
                        self.results.cpu.setdefault(row, {}).setdefault(c, []).append(
                            out["us_per_req"]
                        )
                        self.log(
                            f"  run {run + 1} {row:28} c={c:<3} {out['us_per_req']:9.1f} µs/req "
                            f"({out['n']} requests, {out['rps']:.0f} req/s)"
                        )

    def latency(self, urls: dict[str, str], rows: list[str]) -> None:
        p = self.plan
        for run in range(p.runs):
            for row in rows:
                spec = {
                    "kind": "window",
                    "client": row,
                    "c": 256,
                    "warmup": 512,
                    "window": p.latency_window,
                    "urls": urls,
                    "expect": REPLY,
                }
                out = self.measure(f"{row} latency", spec)
                if out is not None:
                    self.results.latency.setdefault(row, []).append(out["rps"])
                    self.log(
                        f"  run {run + 1} {row:28} 256 in flight @50 ms: {out['rps']:7.0f} req/s "
                        f"({out['us_per_req']:.0f} µs CPU/req)"
                    )

    def inflight(self, urls: dict[str, str], rows: list[str]) -> None:
        p = self.plan
        for run in range(p.runs):
            for row in rows:
                spec = {
                    "kind": "window",
                    "client": row,
                    "c": INFLIGHT,
                    "warmup": INFLIGHT,
                    "window": p.inflight_window,
                    "rss": True,
                    "urls": urls,
                    "expect": REPLY,
                }
                out = self.measure(f"{row} inflight", spec)
                if out is not None:
                    fig = {k: out[k] for k in ("rps", "us_per_req", "rss_kb_per_in_flight")}
                    self.results.inflight.setdefault(row, []).append(fig)
                    self.log(
                        f"  run {run + 1} {row:28} {INFLIGHT} in flight @500 ms: "
                        f"{out['rps']:7.0f} req/s, {out['us_per_req']:.0f} µs CPU/req, "
                        f"{out['rss_kb_per_in_flight']:.1f} KB RSS per request in flight"
                    )

    def cache(self, urls: dict[str, str]) -> None:
        for run in range(self.plan.runs):
            for row in ("aio_cache_hit", "aio_cache_hit_prebuilt"):
                spec = {
                    "kind": "load",
                    "client": row,
                    "c": 1,
                    "n": self.plan.cache_hits,
                    "warmup": 500,
                    "urls": urls,
                    "expect": REPLY,
                }
                out = self.measure(row, spec)
                if out is not None:
                    self.results.cache.setdefault(row, []).append(out["us_per_req"])
                    self.log(f"  run {run + 1} {row:28} {out['us_per_req']:7.1f} µs CPU per hit")

    def rss(self, urls: dict[str, str]) -> None:
        spec = {
            "kind": "rss",
            "client": "aio_default_aiohttp",
            "c": 16,
            "n": self.plan.rss_requests,
            "warmup": 1000,
            "urls": urls,
            "expect": REPLY,
        }
        out = self.measure("rss", spec)
        if out is not None:
            self.results.rss = out
            self.log(f"  RSS MB {out['rss_mb']} over {out['n']} requests")

    def imports(self) -> None:
        code = (
            "import sys, time; t = time.perf_counter(); import {m}; "
            "sys.stdout.write(repr(time.perf_counter() - t))"
        )
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        pin = self.client_core

        def pinned() -> None:
            if pin is not None:
                os.sched_setaffinity(0, {pin})

        for _ in range(self.plan.import_reps):
            for module in ("aio_llm", "openai"):
                cmd = [sys.executable, "-c", code.format(m=module)]
                out = subprocess.run(
                    cmd,
                    capture_output=True,
                    text=True,
                    env=env,
                    cwd="/",
                    check=True,
                    preexec_fn=pinned,
                )
                self.results.imports.setdefault(module, []).append(float(out.stdout) * 1e3)
        for module, times in self.results.imports.items():
            self.log(f"  import {module}: median {statistics.median(times):.1f} ms")

    def micro(self) -> None:
        spec = {
            "kind": "micro",
            "n": self.plan.micro_requests,
            "entries": 100_000,
            "lookups": self.plan.semantic_lookups,
        }
        out = self.measure("micro", spec)
        # The same lookups with every core (BLAS may use them all): unpinned.
        spec = dict(spec, parts=["semantic"])
        try:
            free = child(dict(spec, core=None), self.plan.child_timeout)
        except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
            self.results.errors["micro (unpinned)"] = str(exc).splitlines()[0][:200]
            free = None
        if out is not None:
            if free is not None:
                out["semantic_all_cores"] = free["semantic"]
            self.results.micro = out
            for name, value in out["middleware_us"].items():
                self.log(f"  {name:60} {value:7.2f} µs")
            for name, value in out["semantic"].items():
                self.log(f"  {name:60} {value:7.2f}")

    def run(self, sections: list[str]) -> Results:
        if "import" in sections:
            self.log("import time")
            self.imports()
        if "micro" in sections:
            self.log("middleware and semantic lookup, no HTTP")
            self.micro()
        if {"cpu", "stream", "cache", "rss"} & set(sections):
            srv = self.spawn_server()
            urls = {"openai": srv.openai_url, "anthropic": srv.url}
            try:
                if "cpu" in sections:
                    self.log("CPU per request, instant server")
                    self.cpu(urls, self.rows(CPU_ROWS))
                if "stream" in sections:
                    self.log("CPU per streamed request (20 chunks)")
                    self.cpu(urls, self.rows(STREAM_ROWS))
                if "cache" in sections:
                    self.log("exact-cache hit through the default chain")
                    self.cache(urls)
                if "rss" in sections:
                    self.log("resident memory over the default chain")
                    self.rss(urls)
            finally:
                srv.close()
        if "latency" in sections:
            srv = self.spawn_server(latency=0.05)
            urls = {"openai": srv.openai_url, "anthropic": srv.url}
            try:
                self.log("256 in flight, server latency 50 ms")
                self.latency(urls, self.rows(LATENCY_ROWS))
            finally:
                srv.close()
        if "inflight" in sections:
            srv = self.spawn_server(latency=0.5)
            urls = {"openai": srv.openai_url, "anthropic": srv.url}
            try:
                self.log(f"{INFLIGHT} in flight, server latency 500 ms")
                self.inflight(urls, self.rows(INFLIGHT_ROWS))
            finally:
                srv.close()
        return self.results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run, one run each")
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help=f"comma-separated, of {','.join(SECTIONS)}"
    )
    parser.add_argument("--clients", default=None, help="comma-separated row names to keep")
    parser.add_argument("--runs", type=int, default=None, help="runs per figure (median)")
    parser.add_argument(
        "--readme",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write the tables into README.md (default: only for a full run of every section)",
    )
    parser.add_argument("--json", default=None, help="also write the raw results to this file")
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {sorted(unknown)}")
    plan = Plan.quick() if args.quick else Plan()
    if args.runs is not None:
        plan.runs = args.runs
    only = set(args.clients.split(",")) if args.clients else None

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    load_before = os.getloadavg()
    started = time.perf_counter()
    runner = Runner(plan, only, log)
    if runner.client_core is None:
        log("warning: fewer than two cores to pin to; server and client share the CPU")
    results = runner.run(sections)
    elapsed = time.perf_counter() - started
    meta = {
        "machine": machine_line(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load": (load_before, os.getloadavg()),
        "elapsed_s": elapsed,
        "quick": args.quick,
        "runs": plan.runs,
        "plan": plan,
        "sections": sections,
        "labels": LABELS,
        "concurrency": CONCURRENCY,
    }
    markdown = render(results, meta)
    print(markdown)
    if args.json:
        Path(args.json).write_text(json.dumps(results.__dict__, indent=1, default=str))
    write = args.readme
    if write is None:
        write = not args.quick and set(sections) == set(SECTIONS) and only is None
    if write:
        update_readme(HERE / "README.md", markdown)
        log(f"wrote {HERE / 'README.md'}")
    log(f"done in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
