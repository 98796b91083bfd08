"""Markdown tables from a benchmark run, the targets with PASS/FAIL, and the README update."""

from __future__ import annotations

import os
import platform
import re
import statistics
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

BEGIN = "<!-- BEGIN RESULTS (written by benchmarks/run.py) -->"
END = "<!-- END RESULTS -->"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_line() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    libs = ", ".join(
        f"{name} {_version(dist)}"
        for name, dist in (
            ("aio_llm", "aio-llm"),
            ("aiohttp", "aiohttp"),
            ("httpx", "httpx"),
            ("openai", "openai"),
            ("anthropic", "anthropic"),
            ("litellm", "litellm"),
        )
    )
    return (
        f"{cpu}, {os.cpu_count()} cores, Linux {platform.release()}, "
        f"Python {platform.python_version()}; {libs}"
    )


def _median(values: Sequence[float] | None) -> float | None:
    return statistics.median(values) if values else None


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _ratios(results: Any, row: str, base: str, cs: Sequence[int]) -> str:
    cells = []
    for c in cs:
        r = _ratio(_cpu(results, row, c), _cpu(results, base, c))
        cells.append("n/a" if r is None else f"{r:.2f}")
    return " / ".join(cells)


def _cpu(results: Any, row: str, c: int) -> float | None:
    return _median(results.cpu.get(row, {}).get(c))


def _cpu_table(results: Any, meta: dict[str, Any]) -> list[str]:
    cs = meta["concurrency"]
    labels = meta["labels"]
    head = " | ".join(f"c={c}" for c in cs)
    lines = [
        f"| client | {head} | × raw aiohttp ({'/'.join(map(str, cs))}) "
        f"| × raw httpx ({'/'.join(map(str, cs))}) "
        "| 256 in flight at 50 ms (req/s) | × raw aiohttp |",
        "|---|" + "---:|" * len(cs) + "---:|---:|---:|---:|",
    ]
    rows = [r for r in labels if r in results.cpu or r in results.skipped or _errored(results, r)]
    raw_rps = _median(results.latency.get("raw_aiohttp"))
    for row in rows:
        stream = row.endswith("@stream")
        if row in results.skipped:
            why = f"n/a ({results.skipped[row]})"
            lines.append(f"| {labels[row]} | " + " | ".join([why] + ["—"] * (len(cs) + 3)) + " |")
            continue
        cells = [_num(_cpu(results, row, c)) for c in cs]
        base = "raw_aiohttp@stream" if stream else "raw_aiohttp"
        vs_aiohttp = _ratios(results, row, base, cs)
        vs_httpx = "—" if stream else _ratios(results, row, "raw_httpx", cs)
        rps = None if stream else _median(results.latency.get(row))
        rps_ratio = _ratio(rps, raw_rps)
        lines.append(
            f"| {labels[row]} | "
            + " | ".join(cells)
            + f" | {vs_aiohttp} | {vs_httpx} | {_num(rps) if rps else '—'} "
            + f"| {f'{rps_ratio:.2f}' if rps_ratio else '—'} |"
        )
    return lines


def _inflight(results: Any, row: str, key: str) -> float | None:
    """The median of ``key`` over the runs of the 2,048-in-flight section for ``row``."""
    return _median([run[key] for run in results.inflight.get(row, [])])


def _errored(results: Any, row: str) -> bool:
    return any(k.startswith(row + " ") for k in results.errors)


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**PASS**" if ok else "**FAIL**")


def targets(results: Any, meta: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """(target, limit, measured, passed) for every target the run can judge."""
    out: list[tuple[str, str, str, bool | None]] = []
    for c in meta["concurrency"]:
        r = _ratio(_cpu(results, "aio_default_aiohttp", c), _cpu(results, "raw_aiohttp", c))
        out.append(
            (f"default chain on aiohttp vs raw aiohttp, c={c}", "≤ 1.25×", _x(r), _le(r, 1.25))
        )
    for c in meta["concurrency"]:
        r = _ratio(_cpu(results, "aio_default_httpx", c), _cpu(results, "raw_httpx", c))
        out.append(
            (
                f"default chain on httpx vs raw httpx (same pool), c={c}",
                "≤ 1.15×",
                _x(r),
                _le(r, 1.15),
            )
        )
    for c in meta["concurrency"]:
        r = _ratio(
            _cpu(results, "aio_default_aiohttp@stream", c), _cpu(results, "raw_aiohttp@stream", c)
        )
        out.append(
            (
                f"streaming 20 chunks, default chain vs raw aiohttp lines, c={c}",
                "≤ 1.3×",
                _x(r),
                _le(r, 1.3),
            )
        )
    hit = _median(results.cache.get("aio_cache_hit"))
    pre = _median(results.cache.get("aio_cache_hit_prebuilt"))
    shown = f"{_num(hit, 1)} µs" + (f" ({_num(pre, 1)} µs with a prebuilt request)" if pre else "")
    out.append(("exact-cache hit through the whole chain (CPU)", "≤ 30 µs", shown, _le(hit, 30)))
    r = _ratio(
        _median(results.latency.get("aio_default_aiohttp")),
        _median(results.latency.get("raw_aiohttp")),
    )
    out.append(
        (
            "256 in flight at 50 ms: default chain vs raw aiohttp",
            "≥ 0.85×",
            _x(r),
            None if r is None else r >= 0.85,
        )
    )
    r = _ratio(
        _inflight(results, "aio_default_aiohttp", "rps"), _inflight(results, "raw_aiohttp", "rps")
    )
    out.append(
        (
            "2,048 in flight at 500 ms: default chain vs raw aiohttp (throughput)",
            "≥ 0.95×",
            _x(r),
            None if r is None else r >= 0.95,
        )
    )
    a, o = _median(results.imports.get("aio_llm")), _median(results.imports.get("openai"))
    r = _ratio(a, o)
    shown = f"{_x(r)} ({_num(a, 0)} ms vs {_num(o, 0)} ms)" if r else "n/a"
    out.append(("`import aio_llm` vs `import openai`", "≤ 0.35×", shown, _le(r, 0.35)))
    rss = results.rss["rss_mb"] if results.rss else None
    n = results.rss["n"] if results.rss else 0
    if rss:
        growth = rss["end"] - rss["half"]
        out.append(
            (
                f"RSS after {n:,} requests (default chain)",
                "≤ 60 MB",
                f"{rss['end']:.1f} MB (start {rss['start']:.1f})",
                rss["end"] <= 60,
            )
        )
        out.append(
            (
                f"RSS growth from request {n // 2:,} to {n:,}",
                "≤ 2 MB",
                f"{growth:+.1f} MB",
                growth <= 2,
            )
        )
    else:
        out.append(("RSS after 100,000 requests (default chain)", "≤ 60 MB", "n/a", None))
    micro = results.micro or {}
    mw = micro.get("middleware_us", {})
    sem = micro.get("semantic", {})
    res = mw.get("resilience (Retry + CircuitBreaker + RateLimit)")
    out.append(
        (
            "resilience middleware per successful request (issue 3)",
            "< 10 µs",
            f"{_num(res, 2)} µs",
            None if res is None else res < 10,
        )
    )
    look = sem.get("VectorIndex.search ms (median wall)")
    miss = sem.get("SemanticCache miss (embed + search + verify + store) ms (median wall)")
    look384 = sem.get("VectorIndex.search (384-d) ms (median wall)")
    free = micro.get("semantic_all_cores", {}).get("VectorIndex.search ms (median wall)")
    out.append(
        (
            "semantic lookup over 100,000 entries (issue 4)",
            "≤ 2 ms",
            f"{_num(look, 2)} ms on one core (a whole SemanticCache miss: {_num(miss, 2)} ms; "
            f"{_num(free, 2)} ms with BLAS free to use both cores; 384-d MiniLM vectors: "
            f"{_num(look384, 2)} ms)",
            _le(look, 2.0),
        )
    )
    tr = mw.get("Tracing")
    out.append(
        (
            "tracing middleware, no SDK (issue 6)",
            "< 3 µs",
            f"{_num(tr, 2)} µs",
            None if tr is None else tr < 3,
        )
    )
    sdk = mw.get("Tracing with SDK + in-memory exporter")
    out.append(
        (
            "tracing middleware, SDK + in-memory exporter (issue 6)",
            "(reported)",
            f"{_num(sdk, 1)} µs",
            None,
        )
    )
    return out


def _x(r: float | None) -> str:
    return "n/a" if r is None else f"{r:.2f}×"


def _le(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


def render(results: Any, meta: dict[str, Any]) -> str:
    load_before, load_after = meta["load"]
    plan = meta["plan"]
    lines = [
        f"Run of {meta['date']}{' (--quick)' if meta['quick'] else ''}: {meta['machine']}.",
        "",
        f"Load average (1/5/15 min) before {'/'.join(f'{x:.2f}' for x in load_before)}, "
        f"after {'/'.join(f'{x:.2f}' for x in load_after)}; the run took "
        f"{meta['elapsed_s']:.0f} s; each figure is the median of {meta['runs']} run(s); "
        f"up to {'/'.join(f'{v:,}' for v in plan.requests.values())} requests per "
        f"measurement at c={'/'.join(map(str, plan.requests))} "
        f"(capped at {plan.max_seconds:g} s).",
        "",
    ]
    if results.cpu or results.latency:
        lines += ["### CPU µs per request (client process, server on its own core)", ""]
        lines += _cpu_table(results, meta)
        lines += [""]
    lines += ["### Targets", "", "| target | limit | measured | verdict |", "|---|---|---|---|"]
    for name, limit, measured, ok in targets(results, meta):
        lines.append(f"| {name} | {limit} | {measured} | {_verdict(ok)} |")
    lines.append("")
    micro = results.micro or {}
    if micro.get("middleware_us"):
        lines += [
            "### The library's own CPU per request, no HTTP (µs)",
            "",
            "Each middleware alone (and groups) around a provider answering from memory,",
            "minus that provider alone; one request at a time.",
            "",
            "| what | µs |",
            "|---|---:|",
        ]
        for name, value in micro["middleware_us"].items():
            lines.append(f"| {name} | {value:.2f} |")
        lines.append("")
    if results.inflight:
        lines += [
            "### 2,048 requests in flight, server latency 500 ms",
            "",
            "| client | req/s | × raw aiohttp | CPU µs per request "
            "| RSS KB per request in flight |",
            "|---|---:|---:|---:|---:|",
        ]
        raw = _inflight(results, "raw_aiohttp", "rps")
        for row in results.inflight:
            rps = _inflight(results, row, "rps")
            ratio = _ratio(rps, raw)
            lines.append(
                f"| {meta['labels'][row]} | {_num(rps)} | {f'{ratio:.2f}' if ratio else '—'} "
                f"| {_num(_inflight(results, row, 'us_per_req'))} "
                f"| {_num(_inflight(results, row, 'rss_kb_per_in_flight'), 1)} |"
            )
        lines.append("")
    if results.rss:
        rss = results.rss["rss_mb"]
        lines.append(
            f"RSS over {results.rss['n']:,} requests at c=16 through the default chain: "
            f"{rss['start']:.1f} MB after warm-up, {rss['half']:.1f} MB at "
            f"{results.rss['n'] // 2:,}, {rss['end']:.1f} MB at {results.rss['n']:,}."
        )
        lines.append("")
    if results.errors:
        lines += ["Errors:", ""]
        lines += [f"- {key}: {msg}" for key, msg in sorted(results.errors.items())]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def update_readme(path: Path, markdown: str) -> None:
    """Replace what stands between the result markers (append them if missing)."""
    block = f"{BEGIN}\n\n{markdown}\n{END}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        text = text.rstrip() + "\n\n## Results\n\n" + block + "\n"
    path.write_text(text)
