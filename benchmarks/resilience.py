"""CPU cost of the resilience middleware on a successful request.

Retry + CircuitBreaker + RateLimit, built as the default chain builds them,
around a ``next`` that answers at once from memory. The cost per request is
the chain's CPU time (``time.process_time``) minus that of calling ``next``
alone, over ``--calls`` requests (best of ``--repeat`` runs). Two limiter
settings: no limit known (the limiter counts and passes) and an ``rpm``
high enough never to wait (the GCRA schedule books every request).

It also prices ``record_event`` with tracing off (what the middleware pay for
their span events when no OpenTelemetry SDK is set up).

    python benchmarks/resilience.py [--calls 200000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Awaitable, Callable

import anyio

from aio_llm import ChatRequest, ChatResponse, ClientConfig, Message, Usage
from aio_llm.middleware import (
    CircuitBreakerConfig,
    CircuitBreakerMiddleware,
    RateLimit,
    RateLimitConfig,
    Retry,
)
from aio_llm.middleware.events import EVENT_RETRY, record_event
from aio_llm.pipeline import Next, build_chain

TARGET_US = 10.0

REQUEST = ChatRequest(model="gpt-4o-mini", messages=[Message(role="user", content="Hello")])
RESPONSE = ChatResponse(
    id="chatcmpl-1",
    model="gpt-4o-mini",
    provider="openai",
    content="Hi",
    message=Message(role="assistant", content="Hi"),
    finish_reason="stop",
    usage=Usage(input_tokens=8, output_tokens=2, total_tokens=10),
)


async def answer(request: ChatRequest) -> ChatResponse:
    return RESPONSE


def resilience_chain(rpm: float | None) -> Next:
    """Retry → CircuitBreaker → RateLimit around ``answer``, from the default ``ClientConfig``."""
    config = ClientConfig(rpm=rpm)
    return build_chain(
        [
            Retry.from_config(config),
            CircuitBreakerMiddleware(
                CircuitBreakerConfig(
                    failure_threshold=config.circuit_failure_threshold,
                    success_threshold=config.circuit_success_threshold,
                    timeout=config.circuit_timeout,
                ),
                default_provider="openai",
            ),
            RateLimit(RateLimitConfig(rpm=config.rpm), default_provider="openai"),
        ],
        answer,
    )


async def cpu_per_call(handler: Callable[[ChatRequest], Awaitable[ChatResponse]], n: int) -> float:
    """Seconds of CPU per ``await handler(REQUEST)``."""
    request = REQUEST
    start = time.process_time()
    for _ in range(n):
        await handler(request)
    return (time.process_time() - start) / n


async def measure(calls: int, repeat: int) -> dict[str, float]:
    """µs of CPU per successful request added by the chain, best of ``repeat``."""
    out: dict[str, float] = {}
    for label, rpm in (("no limit known", None), ("rpm set (GCRA booking)", 1e12)):
        chain = resilience_chain(rpm)
        await cpu_per_call(chain, 1000)  # warm up: breaker and limiter state created
        best = float("inf")
        for _ in range(repeat):
            base = await cpu_per_call(answer, calls)
            full = await cpu_per_call(chain, calls)
            best = min(best, full - base)
        out[label] = best * 1e6
    return out


def record_event_off_ns(n: int = 1_000_000) -> float:
    """ns per ``record_event`` call (with a retry's attributes) when tracing is off."""
    attrs = {"error.type": "ServerError"}
    start = time.process_time()
    for _ in range(n):
        record_event(EVENT_RETRY, attrs, attempt=2, delay_s=0.5)
    return (time.process_time() - start) / n * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    figures = anyio.run(measure, args.calls, args.repeat)
    out = sys.stdout
    out.write(f"Retry + CircuitBreaker + RateLimit, CPU per successful request ({args.calls:,} ")
    out.write(f"calls, best of {args.repeat}; target < {TARGET_US:g} µs):\n")
    for label, us in figures.items():
        verdict = "ok" if us < TARGET_US else "OVER TARGET"
        out.write(f"  {label:<24} {us:6.2f} µs  {verdict}\n")
    out.write(f"record_event with tracing off: {record_event_off_ns():.0f} ns per call\n")


if __name__ == "__main__":
    main()
