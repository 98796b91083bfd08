"""The ``aio-llm`` command (also ``python -m aio_llm``): chat, demo, fake-server, batch run."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio

__all__ = ["main"]


_DESCRIPTION = (
    "The aio_llm command line: one chat call to a provider, a fan-out demo against a local "
    "fake server, the fake server itself, and durable JSONL batch jobs."
)
_EPILOG = (
    "Keys come from the environment: OPENAI_API_KEY, ANTHROPIC_API_KEY or OPENROUTER_API_KEY "
    "(LLM_PROVIDER picks one when several are set). 'aio-llm COMMAND --help' describes a "
    "command's options."
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``aio-llm`` (every option has help text)."""
    from . import __version__

    parser = argparse.ArgumentParser(prog="aio-llm", description=_DESCRIPTION, epilog=_EPILOG)
    parser.add_argument(
        "--version", action="version", version=f"aio-llm {__version__}", help="print the version"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    chat = sub.add_parser(
        "chat",
        help="one chat call to a provider (keys from the environment)",
        description="Send one user message and print the answer on stdout; the provider, "
        "model, token counts, cost and latency go to stderr.",
    )
    chat.add_argument("prompt", help="the user message; - reads it from stdin")
    _connection_options(chat)
    chat.add_argument("--system", "-s", default=None, help="a system prompt")
    chat.add_argument("--stream", action="store_true", help="print the answer as it arrives")
    chat.add_argument(
        "--max-tokens", type=_positive_int, default=None, help="the most tokens to generate"
    )
    chat.add_argument(
        "--temperature", type=float, default=None, help="sampling temperature (0 is greedy)"
    )

    demo = sub.add_parser(
        "demo",
        help="a fan-out job against a local fake server, with injected faults",
        description="Start a FakeLLMServer on 127.0.0.1 and send it a fan-out job through "
        "the whole client (retries, cache, dedup, circuit breaker, cost), then print a "
        "summary and the client's metrics. Nothing leaves this machine.",
    )
    demo.add_argument(
        "--requests", "-n", type=_positive_int, default=500, help="requests to send (default: 500)"
    )
    demo.add_argument(
        "--concurrency",
        "-c",
        type=_positive_int,
        metavar="N",
        default=64,
        help="requests in flight at once (default: 64)",
    )
    demo.add_argument(
        "--latency", type=float, default=0.02, help="server latency in seconds (default: 0.02)"
    )
    demo.add_argument(
        "--faults",
        type=float,
        default=0.05,
        help="share of requests that get a 429, a 503 or a reset connection (default: 0.05)",
    )
    demo.add_argument(
        "--transport",
        choices=["aiohttp", "httpx"],
        default="aiohttp",
        help="the HTTP client library (default: aiohttp)",
    )
    demo.add_argument(
        "--watch", action="store_true", help="show a live table of progress, latency and cost"
    )
    demo.add_argument(
        "--seed",
        type=int,
        default=7,
        help="random seed for the prompts and the injected faults (default: 7)",
    )

    fake = sub.add_parser(
        "fake-server",
        help="serve the FakeLLMServer until interrupted",
        description="An OpenAI- and Anthropic-compatible test server that echoes the last "
        "user message; point a client at the /v1 URL it prints.",
    )
    fake.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    fake.add_argument(
        "--port", type=int, default=8000, help="port to bind; 0 picks a free one (default: 8000)"
    )
    fake.add_argument(
        "--latency", type=float, default=0.0, help="seconds before each answer (default: 0)"
    )
    fake.add_argument(
        "--stream-chunks",
        type=_positive_int,
        default=20,
        help="chunks per streamed answer (default: 20)",
    )
    fake.add_argument(
        "--fault-rate",
        type=float,
        default=0.0,
        help="share of requests that get a random fault (default: 0)",
    )

    batch = sub.add_parser(
        "batch",
        help="durable, resumable JSONL jobs",
        description="Durable, resumable JSONL jobs.",
    )
    batch_sub = batch.add_subparsers(dest="batch_command", required=True, metavar="COMMAND")
    run = batch_sub.add_parser(
        "run",
        help="answer every line of a JSONL file (rerun the same command to resume)",
        description="Each input line is an OpenAI batch-input line (custom_id, body) or a plain "
        "chat request. Results are checkpointed in OUT.checkpoint.sqlite3 as they arrive: "
        "after a crash or Ctrl-C the same command sends only what has no result yet.",
    )
    run.add_argument("input", help="the JSONL file of requests; - reads it from stdin")
    run.add_argument(
        "--out", "-o", required=True, metavar="FILE", help="the file the JSONL results go to"
    )
    run.add_argument(
        "--via",
        choices=["live", "batch"],
        default="live",
        help="live fan-out, or the provider's Batch API (half price, <= 24 h) (default: live)",
    )
    run.add_argument(
        "--concurrency",
        "-c",
        type=_positive_int,
        metavar="N",
        default=16,
        help="requests in flight at once (default: 16)",
    )
    run.add_argument(
        "--budget", type=float, default=None, metavar="USD", help="a cap for the whole job"
    )
    _connection_options(run, model_help="the model for lines that name none")
    run.add_argument("--retry-failed", action="store_true", help="send failed lines again")
    run.add_argument(
        "--poll-interval",
        type=float,
        metavar="SECONDS",
        default=10.0,
        help="seconds between Batch API status checks (default: 10)",
    )
    run.add_argument("--no-progress", action="store_true", help="do not show progress")
    return parser


def _connection_options(
    parser: argparse.ArgumentParser, model_help: str = "the model (default: LLM_MODEL)"
) -> None:
    parser.add_argument("--model", "-m", default=None, metavar="NAME", help=model_help)
    parser.add_argument(
        "--provider",
        "-p",
        default=None,
        metavar="NAME",
        help="openai, anthropic, gemini, bedrock, azure-openai, openrouter, openai-compatible, "
        "mock, ... (default: "
        "LLM_PROVIDER, else the provider whose key is set; openai-compatible with --base-url)",
    )
    parser.add_argument(
        "--base-url",
        default=None,
        metavar="URL",
        help="the provider's API URL, e.g. http://127.0.0.1:4000/v1 for a local "
        "OpenAI-compatible server",
    )
    parser.add_argument(
        "--api-key-env",
        default=None,
        metavar="NAME",
        help="read the API key from this environment variable instead of the provider's own",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "batch":
            with _input_file(args.input) as args.input:
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
    except _UsageError as exc:
        print(f"aio-llm {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from .errors import LLMError

        if isinstance(exc, LLMError):
            print(f"aio-llm: {type(exc).__name__}: {_in_flags(exc)}", file=sys.stderr)
            return 1
        raise
    return 2


class _UsageError(Exception):
    """A command-line mistake found after parsing (exit status 2, like argparse's)."""


# Library errors name the keyword arguments of the Python API; on the command line
# the same thing is an option.
_KEYWORDS = {
    "model": "--model",
    "api_key": "--api-key-env NAME",
    "base_url": "--base-url",
    "provider": "--provider",
}
_KEYWORD_RE = re.compile(r"(?<![\w-])(model|api_key|base_url|provider)=(?:\.\.\.)?")
_BARE_RE = re.compile(r"(?<![\w-])(base_url)(?![\w=])")


def _in_flags(exc: BaseException) -> str:
    """The message of ``exc`` with the Python API's keyword arguments named as CLI options."""
    from .errors import APIError

    text = str(exc)
    if isinstance(exc, APIError):  # the server's words: leave them alone
        return text
    text = _KEYWORD_RE.sub(lambda m: _KEYWORDS[m.group(1)], text)
    return _BARE_RE.sub(lambda m: _KEYWORDS[m.group(1)], text)


def _client(args: argparse.Namespace) -> Any:
    """An ``AsyncLLMClient`` for the connection options of ``args``."""
    from .client._client import AsyncLLMClient

    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise _UsageError(f"--api-key-env {args.api_key_env}: that variable is not set")
    provider = args.provider
    if provider is None and args.base_url and not os.environ.get("LLM_PROVIDER"):
        provider = "openai-compatible"
    return AsyncLLMClient(provider, model=args.model, api_key=api_key, base_url=args.base_url)


def _read_stdin(what: str) -> str:
    if sys.stdin is None or sys.stdin.closed:
        raise _UsageError(f"{what} is - but there is no standard input")
    return sys.stdin.read()


async def _batch_run(args: argparse.Namespace) -> int:
    from .batch import run_jsonl

    async with _client(args) as client:
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


@contextlib.contextmanager
def _input_file(name: str) -> Iterator[str]:
    """``name``, or for ``-`` a temporary file holding stdin for the length of the run.

    The job reads its input by path (a rerun checks each line against the
    checkpoint), so piping the same lines again resumes the job.
    """
    if name != "-":
        yield name
        return
    with tempfile.TemporaryDirectory(prefix="aio-llm-stdin-") as tmp:
        path = Path(tmp) / "stdin.jsonl"
        path.write_text(_read_stdin("the input"), encoding="utf-8")
        yield str(path)


async def _chat(args: argparse.Namespace) -> int:
    prompt = _read_stdin("the prompt") if args.prompt == "-" else args.prompt
    if not prompt.strip():
        raise _UsageError("the prompt is empty")
    messages: list[dict[str, Any]] = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": prompt})
    params: dict[str, Any] = {}
    if args.max_tokens:
        params["max_tokens"] = args.max_tokens
    if args.temperature is not None:
        params["temperature"] = args.temperature
    async with _client(args) as client:
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


class _Tally:
    """What the demo's answers say so far: successes, failures, latencies, cost."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.results: list[Any] = [None] * total
        self.done = 0
        self.failed = 0
        self.cached = 0
        self.cost = 0.0
        self.latencies: list[float] = []

    def add(self, index: int, result: Any) -> None:
        self.results[index] = result
        self.done += 1
        if isinstance(result, BaseException):
            self.failed += 1
            return
        self.latencies.append(result.latency_ms)
        self.cached += bool(result.cached)
        self.cost += result.cost or 0.0

    @classmethod
    def of(cls, results: list[Any]) -> _Tally:
        tally = cls(len(results))
        for i, r in enumerate(results):
            tally.add(i, r)
        return tally

    def percentiles(self) -> tuple[float | None, float | None]:
        """p50 and p95 of the answers' latencies (ms), ``None`` before there are two."""
        if len(self.latencies) < 2:
            return (self.latencies[0],) * 2 if self.latencies else (None, None)
        cuts = statistics.quantiles(self.latencies, n=100, method="inclusive")
        return cuts[49], cuts[94]


async def _run_watched(client: Any, requests: list[dict[str, Any]], concurrency: int) -> list[Any]:
    from .client._progress import progress_interval

    tally = _Tally(len(requests))
    tty = sys.stdout.isatty()
    interval = 0.25 if tty else progress_interval()
    lines = 0
    last = time.monotonic()
    async for index, result in client.as_completed(requests, concurrency=concurrency):
        tally.add(index, result)
        now = time.monotonic()
        if now - last >= interval:
            last = now
            lines = _redraw(_live_rows(client.metrics(), tally), lines, tty)
    _redraw(_live_rows(client.metrics(), tally), lines, tty)
    return tally.results


def _live_rows(m: dict[str, Any], tally: _Tally) -> list[tuple[str, str]]:
    p50, p95 = tally.percentiles()
    return [
        ("progress", f"{tally.done}/{tally.total}"),
        ("in flight", str(m.get("requests.in_flight", 0))),
        ("failed", str(tally.failed)),
        ("retries", str(m.get("retry.attempts", 0))),
        ("cache hits", str(tally.cached)),
        ("dedup hits", str(m.get("dedup.hits", 0))),
        ("p50 / p95 ms", f"{_f(p50)} / {_f(p95)}"),
        ("cost USD", f"{tally.cost:.6f}"),
    ]


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _redraw(rows: list[tuple[str, str]], previous: int, tty: bool) -> int:
    """Draw ``rows``: in place on a terminal, as a new block of plain lines elsewhere."""
    out = sys.stdout
    if tty:
        if previous:
            out.write(f"\x1b[{previous}F")
        for name, value in rows:
            out.write(f"\x1b[2K  {name:<16} {value}\n")
    else:
        out.write("  ".join(f"{name}: {value}" for name, value in rows) + "\n")
    out.flush()
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
    """The job's summary, then every ``client.metrics()`` key the summary does not show."""
    from .errors import LLMError

    tally = _Tally.of(results)
    kinds: dict[str, int] = {}
    for r in results:
        if isinstance(r, BaseException):
            name = type(r).__name__ if isinstance(r, LLMError) else f"untyped {type(r).__name__}"
            kinds[name] = kinds.get(name, 0) + 1
    p50, p95 = tally.percentiles()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    summary: list[tuple[str, str]] = [
        ("requests", str(len(results))),
        ("succeeded", str(len(results) - tally.failed)),
        ("failed", ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items())) or "0"),
        ("answered from cache", str(tally.cached)),
        ("upstream HTTP requests", str(upstream)),
        ("latency p50 / p95", f"{_f(p50)} / {_f(p95)} ms"),
        ("cost (sum of answers)", f"${tally.cost:.6f}"),
        ("wall time", f"{wall:.2f} s ({len(results) / wall:.0f} req/s)"),
        ("CPU, client + server", f"{cpu * 1e6 / max(1, len(results)):.0f} µs/request"),
        ("peak RSS", f"{rss_mb:.0f} MB"),
    ]
    metrics: list[tuple[str, str]] = []
    for key in sorted(m):
        if key in _SHOWN:
            continue
        value = m[key]
        if isinstance(value, float):
            text = f"{value:.6f}" if "cost" in key else f"{value:.2f}"
        elif isinstance(value, dict):
            text = ", ".join(f"{k}={_short(v)}" for k, v in sorted(value.items())) or "-"
        else:
            text = str(value)
        metrics.append((key, text))
    width = max(len(k) for k, _ in summary + metrics)
    for title, rows in (("job", summary), ("client.metrics()", metrics)):
        print()
        print(f"{title:<{width}}  value")
        print(f"{'-' * width}  {'-' * 30}")
        for key, text in rows:
            print(f"{key:<{width}}  {text}")


# metrics keys the job summary already shows under a clearer name
_SHOWN = frozenset({"requests"})


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
