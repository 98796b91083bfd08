"""Resilience over the wire: the default chain against FakeLLMServer on both transports.

Every fault the server can script (429 with ``Retry-After``, 500, 503, 529,
connection reset, truncated answers, slow answers, hangs) ends either in a
success after retries or in a typed error before the call's deadline; a
fallback provider answers when the primary fails; streams are retried only
before their first chunk; and the inner middleware leave span events on the
request's OpenTelemetry span. The outage and rate-limit scenarios are in
``test_outage.py``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from opentelemetry.sdk.trace import ReadableSpan

from aio_llm import (
    APIConnectionError,
    APITimeoutError,
    AsyncLLMClient,
    ClientConfig,
    FallbackTarget,
    OverloadedError,
    RateLimitError,
    ServerError,
    StreamError,
)
from aio_llm.errors import APIError
from aio_llm.middleware import (
    Cache,
    CircuitBreakerConfig,
    CircuitBreakerMiddleware,
    Dedup,
    Fallback,
    RateLimit,
    RateLimitConfig,
    Retry,
    Tracing,
)
from aio_llm.middleware.events import (
    EVENT_CIRCUIT_REJECTED,
    EVENT_DEDUP_HIT,
    EVENT_FALLBACK,
    EVENT_RATE_LIMITED,
    EVENT_RETRY,
)
from aio_llm.testing import FakeLLMServer, Fault
from aio_llm.testing.clock import FakeClock
from tests.conftest import OTel

API_KEY = "sk-test"
GUARD = 30.0  # a hang guard: a test never needs it when the code is right
MODEL = "gpt-4o-mini"
HELLO = [{"role": "user", "content": "Hello"}]
CONTEXT_400 = {
    "error": {
        "message": "This model's maximum context length is 128000 tokens.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
}


@pytest.fixture
async def server() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer(stream_chunks=6) as srv:
        yield srv


def config(transport: str, **fields: Any) -> ClientConfig:
    """Fast backoff so retries cost milliseconds; everything else as shipped."""
    fields.setdefault("retry_base_delay", 0.01)
    fields.setdefault("retry_max_delay", 0.05)
    return ClientConfig(transport=transport, **fields)


def client(srv: FakeLLMServer, transport: str, **kwargs: Any) -> AsyncLLMClient:
    """A client with the real default middleware chain, pointed at ``srv``."""
    cfg = kwargs.pop("config", None) or config(transport)
    return AsyncLLMClient(
        "openai", api_key=API_KEY, base_url=srv.openai_url, model=MODEL, config=cfg, **kwargs
    )


async def settled(srv: FakeLLMServer) -> None:
    """Every request the server received has been answered or abandoned."""
    await srv.wait_until(lambda s: s.in_flight == 0, timeout=3)


# -- the fault matrix ---------------------------------------------------------------

TRANSIENT = {
    "429+retry-after": Fault.status(429, retry_after=0.05),
    "429+retry-after-ms": Fault.status(429, retry_after_ms=20),
    "500": Fault.status(500),
    "503": Fault.status(503),
    "529": Fault.status(529),
    "reset": Fault.reset(),
    "truncated-body": Fault.truncate(),
    "slow-then-500": Fault.latency(0.05) + Fault.status(500),
}


@pytest.mark.anyio
@pytest.mark.parametrize("name", sorted(TRANSIENT))
async def test_transient_fault_recovers_after_retries(
    server: FakeLLMServer, transport: str, name: str
) -> None:
    fault = TRANSIENT[name]
    server.enqueue(fault, fault)  # two failures, then the normal answer
    async with client(server, transport) as c:
        start = time.monotonic()
        r = await c.chat(HELLO, timeout=5)
        elapsed = time.monotonic() - start
        m = c.metrics()
    assert r.content == "Echo: Hello"
    assert server.request_count == 3
    assert m["retry.attempts"] == 2 and m["retry.successful"] == 1
    if fault.retry_after is not None:  # honoured exactly, twice
        assert elapsed >= 2 * fault.retry_after
    await settled(server)


PERSISTENT: dict[str, tuple[Fault, type[Exception], int]] = {
    # fault served to every request -> the error the caller sees, upstream attempts
    "429+retry-after": (Fault.status(429, retry_after=0.02), RateLimitError, 4),
    "500": (Fault.status(500), ServerError, 4),
    "503": (Fault.status(503), ServerError, 4),
    "529": (Fault.status(529), OverloadedError, 4),
    "reset": (Fault.reset(), APIConnectionError, 4),
    "truncated-body": (Fault.truncate(), APIConnectionError, 4),
    "read-timeout": (Fault.latency(30), APITimeoutError, 1),
    "hang": (Fault.hang(), APITimeoutError, 1),
}


@pytest.mark.anyio
@pytest.mark.parametrize("name", sorted(PERSISTENT))
async def test_persistent_fault_ends_in_typed_error_within_deadline(
    server: FakeLLMServer, transport: str, name: str
) -> None:
    fault, error, attempts = PERSISTENT[name]
    server.set_fault(fault)
    deadline = 0.6
    async with client(server, transport) as c:
        start = time.monotonic()
        with anyio.fail_after(GUARD), pytest.raises(error) as info:
            await c.chat(HELLO, timeout=deadline)
        elapsed = time.monotonic() - start
        # the HTTP request was abandoned: nothing is left waiting on the server
        await settled(server)
    # the retries ran out (or the deadline passed) before the deadline: a typed error,
    # never APITimeoutError unless the server hangs
    assert server.request_count == attempts
    if error is APITimeoutError:
        assert elapsed >= deadline - 0.05  # it took the deadline, not a retry, to end it
        assert server.disconnects == 1
    assert isinstance(info.value, APIError)
    assert API_KEY not in str(info.value)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "fault",
    [Fault.status(503), Fault.status(429, retry_after=0.01), Fault.reset(), Fault.truncate(0)],
    ids=["503", "429", "reset", "truncated-before-first-chunk"],
)
async def test_stream_failing_before_first_chunk_is_retried(
    server: FakeLLMServer, transport: str, fault: Fault
) -> None:
    server.enqueue(fault)
    async with client(server, transport) as c:
        async with c.stream(HELLO, timeout=5) as s:
            text = await s.text()
        assert c.metrics()["retry.attempts"] == 1
    assert text == "Echo: Hello"
    assert s.completed
    assert server.request_count == 2
    await settled(server)


@pytest.mark.anyio
async def test_stream_truncated_after_three_chunks_is_not_retried(
    server: FakeLLMServer, transport: str
) -> None:
    server.enqueue(Fault.truncate(3))
    deltas: list[str] = []
    async with client(server, transport) as c:
        with pytest.raises(StreamError):
            async with c.stream(HELLO, timeout=5) as s:
                async for chunk in s:
                    deltas.append(chunk.delta)
        assert c.metrics()["retry.attempts"] == 0
    assert len([d for d in deltas if d]) == 3
    assert server.request_count == 1
    await settled(server)


@pytest.mark.anyio
async def test_stream_that_hangs_ends_at_the_deadline(
    server: FakeLLMServer, transport: str
) -> None:
    server.set_fault(Fault.hang())
    async with client(server, transport) as c:
        with anyio.fail_after(GUARD), pytest.raises(APITimeoutError):
            async with c.stream(HELLO, timeout=0.3) as s:
                await s.text()
        await settled(server)
    assert server.request_count == 1


@pytest.mark.anyio
async def test_a_volley_of_429s_holds_the_target_without_opening_its_circuit(
    server: FakeLLMServer, transport: str
) -> None:
    # eight requests in flight together all meet a quota shared with someone else
    server.latency = 0.02
    server.enqueue(*[Fault.status(429, retry_after=0.1)] * 8)
    reqs = [{"messages": [{"role": "user", "content": f"q{i}"}]} for i in range(8)]
    async with client(server, transport) as c:
        start = time.monotonic()
        results = await c.gather(reqs, concurrency=8)
        elapsed = time.monotonic() - start
        m = c.metrics()
    assert [r.content for r in results] == [f"Echo: q{i}" for i in range(8)]
    assert server.request_count == 16
    assert m["circuit.state"]["openai:gpt-4o-mini"] == "closed"
    assert m["circuit.requests.rejected"] == 0
    assert m["ratelimit.throttled"] == 8
    assert elapsed >= 0.1  # the retries waited for the Retry-After


# -- deadlines ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_retry_after_past_the_deadline_fails_at_once(
    server: FakeLLMServer, transport: str
) -> None:
    server.enqueue(Fault.status(429, retry_after=10))
    async with client(server, transport) as c:
        with anyio.fail_after(GUARD), pytest.raises(RateLimitError) as info:
            await c.chat(HELLO, timeout=0.5)
        # refused at once: a sleep would have ended at the deadline, in APITimeoutError
        assert c.metrics()["retry.refused.deadline"] == 1
        assert c.metrics()["retry.delay"] == 0
    assert info.value.retry_after == 10
    assert any("deadline" in note for note in getattr(info.value, "__notes__", []))
    assert server.request_count == 1


@pytest.mark.anyio
async def test_deadline_covers_every_retry_and_backoff(
    server: FakeLLMServer, transport: str
) -> None:
    server.set_fault(Fault.status(503))
    cfg = config(
        transport,
        max_retries=20,
        retry_base_delay=0.05,
        retry_max_delay=0.2,
        retry_strategy="exponential",
        circuit_failure_threshold=100,
    )
    async with client(server, transport, config=cfg) as c:
        with anyio.fail_after(GUARD), pytest.raises((ServerError, APITimeoutError)):
            await c.chat(HELLO, timeout=0.3)
        await settled(server)
    # 20 retries with their backoff take seconds: the 0.3 s deadline cut them short
    assert 2 <= server.request_count < 21


# -- fallback -----------------------------------------------------------------------


@pytest.fixture
async def backup() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer(reply="from the backup") as srv:
        yield srv


def with_backup(
    primary: FakeLLMServer, backup: FakeLLMServer, transport: str, **fields: Any
) -> AsyncLLMClient:
    cfg = config(
        transport, fallbacks=(FallbackTarget(provider="backup", model="gpt-4o"),), **fields
    )
    return client(
        primary,
        transport,
        config=cfg,
        providers={
            "backup": {"kind": "openai", "api_key": "sk-backup", "base_url": backup.openai_url}
        },
    )


@pytest.mark.anyio
async def test_fallback_after_retries_then_on_open_circuit(
    server: FakeLLMServer, backup: FakeLLMServer, transport: str
) -> None:
    server.set_fault(Fault.status(500))
    async with with_backup(server, backup, transport, circuit_failure_threshold=5) as c:
        first = await c.chat(HELLO, timeout=5)
        assert server.request_count == 4  # the primary's own retries ran out first
        more = [await c.chat([{"role": "user", "content": f"q{i}"}], timeout=5) for i in range(6)]
        m = c.metrics()
    for r in (first, *more):
        assert (r.provider, r.model, r.content) == ("backup", "gpt-4o", "from the backup")
    # the 5th failure opened the primary's circuit: later calls went straight to the backup
    assert server.request_count == 5
    assert backup.request_count == 7
    assert m["circuit.state"]["openai:gpt-4o-mini"] == "open"
    assert m["fallback.successful"] == 7
    assert backup.requests[0].headers["authorization"] == "Bearer sk-backup"


@pytest.mark.anyio
async def test_context_window_error_falls_back_without_retrying(
    server: FakeLLMServer, backup: FakeLLMServer, transport: str
) -> None:
    server.enqueue(Fault.status(400, body=CONTEXT_400))
    async with with_backup(server, backup, transport) as c:
        r = await c.chat(HELLO, timeout=5)
        assert c.metrics()["retry.attempts"] == 0
    assert (r.provider, r.model) == ("backup", "gpt-4o")
    assert server.request_count == 1 and backup.request_count == 1
    assert backup.last_request.json()["model"] == "gpt-4o"


@pytest.mark.anyio
async def test_when_every_target_fails_the_last_error_names_the_others(
    server: FakeLLMServer, backup: FakeLLMServer, transport: str
) -> None:
    server.set_fault(Fault.status(503))
    backup.set_fault(Fault.status(529))
    async with with_backup(server, backup, transport) as c:
        with pytest.raises(OverloadedError) as info:
            await c.chat(HELLO, timeout=5)
    notes = getattr(info.value, "__notes__", [])
    assert any(":gpt-4o-mini failed: InternalServerError" in n for n in notes), notes


# -- span events ----------------------------------------------------------------------


def traced_chain(
    otel: OTel, clock: FakeClock, *, failure_threshold: int = 5, **limits: Any
) -> list[Any]:
    """The default chain's order, with Tracing on a private SDK provider."""
    return [
        Tracing(
            provider="openai",
            tracer_provider=otel.tracer_provider,
            meter_provider=otel.meter_provider,
            clock=clock,
        ),
        Cache(provider="openai", clock=clock),
        Dedup(provider="openai"),
        Fallback([FallbackTarget(model="gpt-4o")]),
        Retry.from_config(config("aiohttp"), clock=clock),
        CircuitBreakerMiddleware(
            CircuitBreakerConfig(failure_threshold=failure_threshold, timeout=60),
            clock=clock,
            default_provider="openai",
        ),
        RateLimit(RateLimitConfig(**limits), clock=clock, default_provider="openai"),
    ]


def events(span: ReadableSpan, name: str) -> list[dict[str, Any]]:
    return [dict(e.attributes or {}) for e in span.events if e.name == name]


@pytest.mark.anyio
async def test_retry_event_and_cache_hit_on_real_request_spans(
    server: FakeLLMServer, transport: str, otel: OTel
) -> None:
    clock = FakeClock()
    server.enqueue(Fault.status(503))
    async with client(server, transport, middleware=traced_chain(otel, clock)) as c:
        first = await c.chat(HELLO, timeout=5)
        again = await c.chat(HELLO, timeout=5)
    assert not first.cached and again.cached
    assert server.request_count == 2  # one 503, one answer; the repeat came from the cache
    miss, hit = otel.spans()
    [retry] = events(miss, EVENT_RETRY)
    assert retry["attempt"] == 2
    assert retry["error.type"] == "InternalServerError"
    assert 0 < retry["delay_s"] <= 0.01
    assert miss.attributes is not None and miss.attributes["aio_llm.retry.count"] == 1
    assert miss.attributes["aio_llm.cache.hit"] is False
    assert hit.attributes is not None and hit.attributes["aio_llm.cache.hit"] is True
    assert not events(hit, EVENT_RETRY)


@pytest.mark.anyio
async def test_fallback_circuit_ratelimit_and_dedup_events(
    server: FakeLLMServer, transport: str, otel: OTel
) -> None:
    clock = FakeClock()
    # breaker opens on the first failure; one request a second per model, no burst
    chain = traced_chain(otel, clock, failure_threshold=1, rpm=60.0, burst=1 / 60)
    server.latency = 0.05
    async with client(server, transport, middleware=chain) as c:
        # 1) gpt-4o-mini answers 500, which opens its breaker: the retry is rejected by
        #    the open circuit, and gpt-4o answers
        server.enqueue(Fault.status(500))
        r1 = await c.chat([{"role": "user", "content": "one"}], timeout=5)
        # 2) gpt-4o-mini is rejected by its open circuit: gpt-4o answers, after a limiter wait
        r2 = await c.chat([{"role": "user", "content": "two"}], timeout=5)
        # 3) two identical concurrent requests: the second joins the first
        async with anyio.create_task_group() as tg:
            for _ in range(2):
                tg.start_soon(
                    functools.partial(c.chat, temperature=0), [{"role": "user", "content": "three"}]
                )
    assert r1.model == r2.model == "gpt-4o"
    spans = otel.spans()
    assert len(spans) == 4
    s1, s2 = spans[0], spans[1]
    [retry] = events(s1, EVENT_RETRY)
    assert retry["error.type"] == "InternalServerError"
    assert len(events(s1, EVENT_CIRCUIT_REJECTED)) == 1
    [fb1] = events(s1, EVENT_FALLBACK)
    assert fb1 == {
        "from": "default:gpt-4o-mini",
        "to": "default:gpt-4o",
        "error.type": "CircuitOpenError",
    }
    assert not events(s1, EVENT_RATE_LIMITED)
    [rejected] = events(s2, EVENT_CIRCUIT_REJECTED)
    assert rejected["circuit"] == "openai:gpt-4o-mini" and rejected["retry_after_s"] > 0
    [fb2] = events(s2, EVENT_FALLBACK)
    assert fb2["error.type"] == "CircuitOpenError"
    [wait] = events(s2, EVENT_RATE_LIMITED)  # gpt-4o was used a moment ago: 1 rpm-second
    assert wait["wait_s"] == pytest.approx(1.0)
    dedup = [e for s in spans[2:] for e in events(s, EVENT_DEDUP_HIT)]
    assert len(dedup) == 1
    assert server.request_count == 4  # 500, gpt-4o, gpt-4o, and one for the joined pair
