"""RequestStats, Observability (sources, instruments, dashboard) and the seed API."""

from __future__ import annotations

import gc
import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NoOpTracerProvider, StatusCode

from aio_llm.compat import get_observability
from aio_llm.middleware import Tracing
from aio_llm.middleware.tracing._observability import MONOTONIC_METRICS, Observability, RequestStats
from aio_llm.testing.clock import FakeClock
from aio_llm.types import ChatRequest, ChatResponse, Usage

# -- RequestStats --------------------------------------------------------------------


def test_percentiles_use_nearest_rank() -> None:
    stats = RequestStats()
    for ms in range(1, 101):
        stats.record("m", ms / 1000.0)
    s = stats.snapshot()
    assert s.requests == 100
    assert s.p50_duration_ms == pytest.approx(50.0)
    assert s.p95_duration_ms == pytest.approx(95.0)
    assert s.p99_duration_ms == pytest.approx(99.0)
    assert s.max_duration_ms == pytest.approx(100.0)
    assert s.avg_duration_ms == pytest.approx(50.5)


def test_window_bounds_memory_but_averages_cover_everything() -> None:
    stats = RequestStats(window=10)
    for ms in range(1, 101):
        stats.record("m", ms / 1000.0)
    s = stats.snapshot()
    assert s.p50_duration_ms == pytest.approx(95.0)  # the last ten: 91..100
    assert s.avg_duration_ms == pytest.approx(50.5)
    assert s.requests == 100


@given(
    st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), min_size=1, max_size=80),
    st.integers(min_value=1, max_value=32),
)
def test_percentiles_match_the_recent_window(values: list[float], window: int) -> None:
    stats = RequestStats(window=window)
    for v in values:
        stats.record("m", v)
    recent = sorted(v * 1000.0 for v in values[-window:])
    s = stats.snapshot()
    for q, got in ((0.5, s.p50_duration_ms), (0.95, s.p95_duration_ms), (0.99, s.p99_duration_ms)):
        assert got == pytest.approx(recent[max(0, math.ceil(q * len(recent)) - 1)])
    assert s.max_duration_ms == pytest.approx(max(values) * 1000.0)
    assert s.requests == len(values)


def test_counters_errors_models_and_reset() -> None:
    stats = RequestStats(max_models=2)
    stats.record("a", 0.1, input_tokens=10, output_tokens=5, cost=0.01)
    stats.record("b", 0.1, error_type="ServerError")
    stats.record("c", 0.1, cached=True, ttft=0.05)
    stats.record_cancelled()
    s = stats.snapshot()
    assert (s.requests, s.errors, s.cancelled, s.cache_hits, s.streams) == (3, 1, 1, 1, 1)
    assert s.error_rate == pytest.approx(1 / 3)
    assert s.cache_hit_rate == pytest.approx(1 / 3)
    assert s.errors_by_type == {"ServerError": 1}
    assert set(s.models) == {"a", "b", "_OTHER"}
    assert s.models["a"].input_tokens == 10 and s.models["a"].cost == pytest.approx(0.01)
    assert s.models["b"].errors == 1
    assert s.avg_ttft_ms == pytest.approx(50.0)
    assert "requests=3" in repr(stats)
    stats.reset()
    s = stats.snapshot()
    assert s.requests == 0 and s.p99_duration_ms == 0.0 and s.models == {}


@pytest.mark.parametrize("kw", [{"window": 0}, {"max_models": 0}])
def test_bad_arguments_raise(kw: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        RequestStats(**kw)


def test_empty_stats_have_zero_rates() -> None:
    s = RequestStats().snapshot()
    assert s.error_rate == 0.0 and s.cache_hit_rate == 0.0 and s.avg_duration_ms == 0.0


# -- sources and observable instruments ----------------------------------------------


@pytest.fixture
def reader() -> Iterator[tuple[InMemoryMetricReader, MeterProvider]]:
    r = InMemoryMetricReader()
    mp = MeterProvider(metric_readers=[r])
    yield r, mp
    mp.shutdown()


def points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    out: dict[str, list[Any]] = {}
    if data is None:
        return out
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                out.setdefault(m.name, []).extend(m.data.data_points)
    return out


class FakeBreaker:
    def __init__(self) -> None:
        self.state = {"openai:gpt-4o": "closed"}
        self.rejected = 0

    def metrics(self) -> dict[str, object]:
        return {"circuit.state": dict(self.state), "circuit.requests.rejected": self.rejected}


class FakeRetry:
    def __init__(self) -> None:
        self.attempts = 0

    def metrics(self) -> dict[str, object]:
        return {"retry.attempts": self.attempts, "retry.budget.tokens": 7.5, "bad name!": 1}


def test_sources_become_observable_instruments(
    reader: tuple[InMemoryMetricReader, MeterProvider],
) -> None:
    r, mp = reader
    obs = Observability(name="one", meter_provider=mp)
    breaker, retry = FakeBreaker(), FakeRetry()
    obs.register_source("breaker", breaker.metrics)
    obs.register_source("retry", retry.metrics)
    retry.attempts = 3
    breaker.state["openai:gpt-4o"] = "open"
    breaker.rejected = 2

    got = points(r)
    assert "bad name!" not in got
    (attempts,) = got["retry.attempts"]
    assert attempts.value == 3
    assert attempts.attributes == {"aio_llm.client": "one", "aio_llm.source": "retry"}
    (tokens,) = got["retry.budget.tokens"]
    assert tokens.value == 7.5
    (state,) = got["circuit.state"]
    assert state.value == 1
    assert state.attributes == {
        "aio_llm.client": "one",
        "aio_llm.source": "breaker",
        "aio_llm.key": "openai:gpt-4o",
        "aio_llm.state": "open",
    }
    (rejected,) = got["circuit.requests.rejected"]
    assert rejected.value == 2

    data = r.get_metrics_data()
    assert data is not None
    kinds = {
        m.name: type(m.data).__name__
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    }
    assert kinds["retry.attempts"] == "Sum"  # a counter: monotonic seed name
    assert kinds["retry.budget.tokens"] == "Gauge"
    assert "retry.attempts" in MONOTONIC_METRICS


def test_observabilities_on_one_provider_share_instruments(
    reader: tuple[InMemoryMetricReader, MeterProvider],
) -> None:
    r, mp = reader
    first, second = Observability(meter_provider=mp), Observability(meter_provider=mp)
    assert first.name != second.name
    retry_a, retry_b = FakeRetry(), FakeRetry()
    retry_a.attempts, retry_b.attempts = 1, 5
    first.register_source("retry", retry_a.metrics)
    second.register_source("retry", retry_b.metrics)
    got = {p.attributes["aio_llm.client"]: p.value for p in points(r)["retry.attempts"]}
    assert got == {first.name: 1, second.name: 5}
    del second, retry_b
    gc.collect()
    got = {p.attributes["aio_llm.client"]: p.value for p in points(r)["retry.attempts"]}
    assert got == {first.name: 1}


def test_sources_stay_until_removed() -> None:
    obs = Observability(meter_provider=NoOpMeterProvider())
    retry, breaker = FakeRetry(), FakeBreaker()
    remove_retry = obs.register_source("retry", retry.metrics)
    remove = obs.register_source("breaker", breaker.metrics)
    obs.register_source("plain", lambda: {"dedup.hits": 4})
    assert set(obs.collect()) == {"retry", "breaker", "plain"}
    del retry
    gc.collect()
    assert set(obs.collect()) == {"retry", "breaker", "plain"}  # held until removed
    remove_retry()
    remove()
    assert set(obs.collect()) == {"plain"}
    assert obs.metrics()["dedup.hits"] == 4
    assert obs.metrics()["requests.total"] == 0


# -- the seed's operations -------------------------------------------------------------


def test_seed_trace_and_finish_operation() -> None:
    clock = FakeClock()
    obs = Observability(
        tracer_provider=NoOpTracerProvider(), meter_provider=NoOpMeterProvider(), clock=clock
    )
    span = obs.trace_operation("llm_call", model="gpt-4")
    clock.advance(0.2)
    obs.finish_operation(span, status="success")
    obs.finish_operation(span, status="error")  # a second finish is ignored
    span = obs.trace_operation("llm_call", model="gpt-4")
    clock.advance(0.4)
    try:
        raise TimeoutError("took too long")
    except TimeoutError as e:
        obs.finish_operation(span, status="error", error=str(e))
    row = obs.get_dashboard_data()["operations"]["llm_call"]
    assert row["requests.total"] == 2 and row["requests.errors"] == 1
    assert row["gen_ai.client.operation.duration"]["avg"] == pytest.approx(0.3)
    assert "finished" in repr(span)


def test_operations_become_spans_with_an_sdk() -> None:
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    obs = Observability(tracer_provider=tp, meter_provider=NoOpMeterProvider())
    op = obs.trace_operation("llm_call", model="gpt-4", tags=["a"])
    obs.finish_operation(op, status="error", error="boom", input_tokens=3)
    with pytest.raises(KeyError), obs.operation("lookup"):
        raise KeyError("x")
    with obs.operation("ok") as ok:
        assert ok.span is not None
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"llm_call", "lookup", "ok"}
    call = spans["llm_call"]
    assert call.status.status_code is StatusCode.ERROR and call.status.description == "boom"
    attrs = dict(call.attributes or {})
    assert attrs["model"] == "gpt-4" and attrs["input_tokens"] == 3
    assert attrs["tags"] == "['a']"
    assert dict(spans["lookup"].attributes or {})["error.type"] == "KeyError"
    assert spans["ok"].status.status_code is StatusCode.UNSET
    tp.shutdown()


# -- the dashboard ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_dashboard_and_client_metrics_agree() -> None:
    clock = FakeClock()
    obs = Observability(meter_provider=NoOpMeterProvider(), clock=clock)
    tracing = Tracing(
        stats=obs.stats,
        tracer_provider=NoOpTracerProvider(),
        meter_provider=NoOpMeterProvider(),
        clock=clock,
    )
    breaker, retry = FakeBreaker(), FakeRetry()
    obs.register_source("breaker", breaker.metrics)
    obs.register_source("retry", retry.metrics)
    retry.attempts = 2
    req = ChatRequest(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])

    async def answer(r: ChatRequest) -> ChatResponse:
        clock.advance(0.1)
        return ChatResponse(usage=Usage(input_tokens=4, output_tokens=6), cost=0.5)

    async def cached(r: ChatRequest) -> ChatResponse:
        return ChatResponse(cached=True)

    async def fail(r: ChatRequest) -> ChatResponse:
        clock.advance(0.3)
        raise ConnectionError("down")

    await tracing(req, answer)
    await tracing(req, cached)
    with pytest.raises(ConnectionError):
        await tracing(req, fail)

    d = obs.get_dashboard_data()
    m = tracing.metrics()
    # one scheme: the dashboard's flat keys are client.metrics()'s names and values
    assert {k: d[k] for k in m} == m
    assert d["requests.total"] == 3 and d["requests.errors"] == 1
    assert d["requests.error_rate"] == pytest.approx(1 / 3)
    duration = d["gen_ai.client.operation.duration"]
    assert duration["avg"] == pytest.approx(0.4 / 3) and duration["count"] == 3
    assert d["avg_duration_ms"] == pytest.approx(400 / 3)  # the seed's one dashboard name
    assert duration["p50"] == pytest.approx(0.1) and duration["p99"] == pytest.approx(0.3)
    assert d["gen_ai.client.token.usage"] == {"input": 4, "output": 6}
    assert d["cost.total"] == pytest.approx(0.5)
    assert d["requests.cached"] == 1 and d["requests.cache_hit_rate"] == pytest.approx(1 / 3)
    assert d["circuit.state"] == {"openai:gpt-4o": "closed"}
    assert d["retry.attempts"] == 2 and d["circuit.requests.rejected"] == 0
    assert d["errors_by_type"] == {"ConnectionError": 1}
    assert d["models"]["gpt-4o"]["requests.total"] == 3
    assert d["sources"]["retry"]["retry.attempts"] == 2
    assert d["uptime_seconds"] == pytest.approx(0.4)


def test_get_observability_is_the_process_default(fresh_defaults: None) -> None:
    obs = get_observability()
    assert get_observability() is obs
    assert obs.name == "default"
    assert isinstance(obs.stats, RequestStats)
    assert "avg_duration_ms" in obs.get_dashboard_data()
    assert "Observability" in repr(obs)
