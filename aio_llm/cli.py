"""The ``aio-llm`` command (also ``python -m aio_llm``): chat, demo, fake-server, batch run."""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections.abc import Sequence
from typing import Any

import anyio

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aio-llm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    chat = sub.add_parser("chat", help="one chat call to a real provider (keys from the env)")
    chat.add_argument("prompt", help="the user message")
    chat.add_argument("--model", "-m", default=None)
    chat.add_argument(
        "--provider",
        "-p",
        default=None,
        help="openai, anthropic, gemini, bedrock, azure-openai, ...",
    )
    chat.add_argument("--system", default=None, help="a system prompt")
    chat.add_argument("--stream", action="store_true", help="print the answer as it arrives")
    chat.add_argument("--max-tokens", type=int, default=None)

    demo = sub.add_parser("demo", help="a fan-out job against a local FakeLLMServer")
    demo.add_argument("--requests", "-n", type=int, default=500)
    demo.add_argument("--concurrency", "-c", type=int, default=64)
    demo.add_argument("--latency", type=float, default=0.02, help="server latency, seconds")
    demo.add_argument("--faults", type=float, default=0.05, help="share of injected faults")
    demo.add_argument("--transport", choices=["aiohttp", "httpx"], default="aiohttp")
    demo.add_argument("--watch", action="store_true", help="a live metrics table while running")
    demo.add_argument("--seed", type=int, default=7)

    fake = sub.add_parser("fake-server", help="serve the FakeLLMServer until interrupted")
    fake.add_argument("--host", default="127.0.0.1")
    fake.add_argument("--port", type=int, default=8000)
    fake.add_argument("--latency", type=float, default=0.0)
    fake.add_argument("--stream-chunks", type=int, default=20)
    fake.add_argument("--fault-rate", type=float, default=0.0, help="share of random faults")

    batch = sub.add_parser("batch", help="durable, resumable JSONL jobs")
    batch_sub = batch.add_subparsers(dest="batch_command", required=True)
    run = batch_sub.add_parser(
        "run",
        help="answer every line of a JSONL file (rerun the same command to resume)",
        description="Each input line is an OpenAI batch-input line (custom_id, body) or a plain "
        "chat request. Results are checkpointed in OUT.checkpoint.sqlite3 as they arrive: "
        "after a crash or Ctrl-C the same command sends only what has no result yet.",
    )
    run.add_argument("input", help="the JSONL file of requests")
    run.add_argument("--out", "-o", required=True, help="where the JSONL results go")
    run.add_argument(
        "--via",
        choices=["live", "batch"],
        default="live",
        help="live fan-out, or the provider's Batch API (half price, <= 24 h)",
    )
    run.add_argument("--concurrency", "-c", type=int, default=16)
    run.add_argument("--budget", type=float, default=None, help="USD cap for the whole job")
    run.add_argument("--provider", "-p", default=None)
    run.add_argument("--model", "-m", default=None, help="for lines that name none")
    run.add_argument("--retry-failed", action="store_true", help="send failed lines again")
    run.add_argument("--poll-interval", type=float, default=10.0, help="batch polling, seconds")
    run.add_argument("--no-progress", action="store_true")

    args = parser.parse_args(argv)
    try:
        if args.command == "batch":
            return anyio.run(_batch_run, args)
        if args.command == "chat":
            return anyio.run(_chat, args)
        if args.command == "demo":
            return anyio.run(_demo, args)
        if args.command == "fake-server":
            from .testing import run_fake_server

            def ready(url: str) -> None:
                print(f"FakeLLMServer on {url} (OpenAI base URL {url}/v1; Ctrl-C to stop)")
                sys.stdout.flush()

            run_fake_server(
                args.host,
                args.port,
                latency=args.latency,
                stream_chunks=args.stream_chunks,
                fault_rate=args.fault_rate,
                on_ready=ready,
            )
            return 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from .errors import LLMError

        if isinstance(exc, LLMError):
            print(f"aio-llm: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        raise
    return 2


async def _batch_run(args: argparse.Namespace) -> int:
    from .batch import run_jsonl
    from .client._client import AsyncLLMClient

    async with AsyncLLMClient(args.provider, model=args.model) as client:
        summary = await run_jsonl(
            client,
            args.input,
            args.out,
            via=args.via,
            concurrency=args.concurrency,
            budget=args.budget,
            retry_failed=args.retry_failed,
            progress=not args.no_progress,
            poll_interval=args.poll_interval,
            max_poll_interval=max(60.0, args.poll_interval),
        )
    print(summary)
    return 0 if summary.pending == 0 else 3


async def _chat(args: argparse.Namespace) -> int:
    from .client._client import AsyncLLMClient

    messages: list[dict[str, Any]] = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": args.prompt})
    params: dict[str, Any] = {}
    if args.max_tokens:
        params["max_tokens"] = args.max_tokens
    async with AsyncLLMClient(args.provider, model=args.model) as client:
        if args.stream:
            async with client.stream(messages, **params) as s:
                async for chunk in s:
                    print(chunk.delta, end="", flush=True)
            print()
            final = s.response
        else:
            final = await client.chat(messages, **params)
            print(final.content)
    if final is not None:
        cost = "n/a" if final.cost is None else f"${final.cost:.6f}"
        print(
            f"[{final.provider} {final.model}: {final.usage.input_tokens} in, "
            f"{final.usage.output_tokens} out, {cost}, {final.latency_ms:.0f} ms]",
            file=sys.stderr,
        )
    return 0


# -- demo ---------------------------------------------------------------------
_PROMPTS = [
    "Summarise the plot of Hamlet in one sentence.",
    "What is the capital of Australia?",
    "Explain backpressure in asyncio.",
    "Give three names for a grey cat.",
    "Translate 'good morning' into French.",
]


def _demo_requests(n: int, seed: int) -> list[dict[str, Any]]:
    import random

    rng = random.Random(seed)
    reqs = []
    for i in range(n):
        # one request in five repeats a popular prompt: cache and dedup at work
        if rng.random() < 0.2:
            text = rng.choice(_PROMPTS)
        else:
            text = f"Task {i}: write a haiku about the number {i}."
        reqs.append(
            {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": text}],
                "max_tokens": 64,
                "user": f"tenant-{i % 4}",
            }
        )
    return reqs


async def _demo(args: argparse.Namespace) -> int:
    from .client._client import AsyncLLMClient
    from .config import ClientConfig
    from .testing import FakeLLMServer, Fault

    kinds = [Fault.status(429, retry_after=0.05), Fault.status(503), Fault.reset()]
    async with FakeLLMServer(latency=args.latency, ratelimit_headers=True, seed=args.seed) as srv:
        if args.faults > 0:
            srv.fault_rate(args.faults, kinds, seed=args.seed)
        config = ClientConfig(
            transport=args.transport,
            cache_enabled=True,
            daily_budget=50.0,
            max_retries=4,
            retry_base_delay=0.02,
            retry_max_delay=0.5,
            circuit_failure_threshold=50,
            timeout=30.0,
        )
        requests = _demo_requests(args.requests, args.seed)
        print(
            f"aio-llm demo: {len(requests)} requests, concurrency {args.concurrency}, "
            f"{args.faults:.0%} injected faults, FakeLLMServer at {srv.url} ({args.transport})",
            flush=True,
        )
        async with AsyncLLMClient(
            "openai", api_key="sk-demo-not-a-real-key", base_url=srv.openai_url, config=config
        ) as client:
            cpu0, wall0 = time.process_time(), time.perf_counter()
            if args.watch:
                results = await _run_watched(client, requests, args.concurrency)
            else:
                results = await client.gather(
                    requests, concurrency=args.concurrency, return_exceptions=True, progress=True
                )
            wall = time.perf_counter() - wall0
            cpu = time.process_time() - cpu0
            _print_table(client.metrics(), results, wall, cpu, srv.request_count)
    return 0


async def _run_watched(client: Any, requests: list[dict[str, Any]], concurrency: int) -> list[Any]:
    done = anyio.Event()
    out: list[Any] = []

    async def run() -> None:
        out.extend(await client.gather(requests, concurrency=concurrency, return_exceptions=True))
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        lines = 0
        while not done.is_set():
            lines = _redraw(_live_rows(client.metrics(), len(requests)), lines)
            with anyio.move_on_after(0.25):
                await done.wait()
        _redraw(_live_rows(client.metrics(), len(requests)), lines)
    return out


def _live_rows(m: dict[str, Any], total: int) -> list[tuple[str, str]]:
    finished = int(m.get("requests", 0)) - int(m.get("in_flight", 0))
    return [
        ("progress", f"{finished}/{total}"),
        ("in flight", str(m.get("in_flight", 0))),
        ("errors", str(m.get("errors", 0))),
        ("retries", str(m.get("retry.attempts", 0))),
        ("cache hits", str(m.get("cache.hits", 0))),
        ("dedup hits", str(m.get("dedup.hits", 0))),
        ("p50 / p95 ms", f"{_f(m.get('duration_ms.p50'))} / {_f(m.get('duration_ms.p95'))}"),
        ("cost USD", f"{float(m.get('cost.total', 0.0)):.6f}"),
    ]


def _f(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1f}"


def _redraw(rows: list[tuple[str, str]], previous: int) -> int:
    if previous and sys.stdout.isatty():
        sys.stdout.write(f"\x1b[{previous}F")
    for name, value in rows:
        sys.stdout.write(f"\x1b[2K  {name:<16} {value}\n")
    sys.stdout.flush()
    return len(rows)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in value.items()) + "}"
    return str(value)


def _print_table(
    m: dict[str, Any], results: list[Any], wall: float, cpu: float, upstream: int
) -> None:
    from .errors import LLMError

    ok = [r for r in results if not isinstance(r, BaseException)]
    failed = [r for r in results if isinstance(r, BaseException)]
    kinds: dict[str, int] = {}
    for r in failed:
        name = type(r).__name__ if isinstance(r, LLMError) else f"untyped {type(r).__name__}"
        kinds[name] = kinds.get(name, 0) + 1
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows: list[tuple[str, str]] = [
        ("requests", str(len(results))),
        ("succeeded", str(len(ok))),
        ("failed", ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items())) or "0"),
        ("upstream HTTP requests", str(upstream)),
        ("wall time", f"{wall:.2f} s ({len(results) / wall:.0f} req/s)"),
        ("CPU, client + server", f"{cpu * 1e6 / max(1, len(results)):.0f} µs/request"),
        ("peak RSS", f"{rss_mb:.0f} MB"),
    ]
    for key in sorted(m):
        value = m[key]
        if isinstance(value, float):
            text = f"{value:.6f}" if key.startswith("cost") else f"{value:.2f}"
        elif isinstance(value, dict):
            text = ", ".join(f"{k}={_short(v)}" for k, v in sorted(value.items())) or "-"
        else:
            text = str(value)
        rows.append((key, text))
    width = max(len(k) for k, _ in rows)
    print()
    print(f"{'metric':<{width}}  value")
    print(f"{'-' * width}  {'-' * 30}")
    for key, text in rows:
        print(f"{key:<{width}}  {text}")


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
