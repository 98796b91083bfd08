"""Request statistics, metric sources and the ``app.ai`` client's observability API.

``RequestStats`` is a bounded recorder the ``Tracing`` middleware feeds on
every request, with or without an OpenTelemetry SDK: counters for requests,
errors, tokens, cost and cache hits, plus ring buffers of the most recent
durations for the percentiles. ``Observability`` joins one ``RequestStats``
with the metric sources of a client's middleware (each one's ``metrics()``
dict), exports those sources as OpenTelemetry observable instruments under
their ``app.ai`` names (``circuit.state``, ``retry.attempts``, ``cost.total``, ...)
and answers ``get_dashboard_data()``. (The ``app.ai`` client's process-wide
``get_observability()`` lives in ``aio_llm.compat``.)

    obs = Observability()
    op = obs.trace_operation("llm_call", model="gpt-4")
    obs.finish_operation(op, status="success")
    obs.get_dashboard_data()["avg_duration_ms"]
"""

from __future__ import annotations

import itertools
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal

from opentelemetry import metrics as otel_metrics
from opentelemetry import trace
from opentelemetry.metrics import CallbackOptions, MeterProvider, NoOpMeterProvider, Observation

from ...clock import SYSTEM_CLOCK, Clock
from ._stats import OTHER, TOKEN_USAGE, ModelStats, RequestStats, StatsSnapshot

__all__ = [
    "ModelStats",
    "Observability",
    "Operation",
    "RequestStats",
    "StatsSnapshot",
]

MetricsSource = Callable[[], Mapping[str, object]]

MONOTONIC_METRICS = frozenset(
    {
        "circuit.requests.total",
        "circuit.requests.successful",
        "circuit.requests.failed",
        "circuit.requests.rejected",
        "cost.total",
        "cost.requests",
        "retry.attempts",
        "retry.successful",
        "retry.failed",
        "retry.delay",
        "retry.calls",
        "retry.exhausted",
        "cache.hits",
        "cache.misses",
        "dedup.hits",
        "dedup.requests",
        "requests.total",
        "requests.errors",
        "requests.cancelled",
        "requests.streams",
        "requests.cached",
        "fallback.calls",
        "fallback.triggered",
        "fallback.attempts",
        "budget.refused",
        "ratelimit.requests.admitted",
        "ratelimit.requests.delayed",
        "ratelimit.requests.rejected",
    }
)
"""Cumulative totals, exported as observable counters; other numbers become gauges."""

_NAME_OK = re.compile(r"[A-Za-z][-_./A-Za-z0-9]{0,254}\Z")


class Operation:
    """A started ``trace_operation``; pass it to ``finish_operation``."""

    __slots__ = ("attributes", "finished", "name", "span", "start")

    def __init__(
        self, name: str, attributes: dict[str, Any], start: float, span: trace.Span | None
    ) -> None:
        self.name = name
        self.attributes = attributes
        self.start = start
        self.span = span
        self.finished = False

    def __repr__(self) -> str:
        state = "finished" if self.finished else "open"
        return f"<Operation {self.name!r} {state}>"


class _Source:
    __slots__ = ("fn", "monotonic")

    def __init__(self, fn: MetricsSource, monotonic: frozenset[str]) -> None:
        self.fn = fn
        self.monotonic = monotonic


class Observability:
    """Request statistics plus the metric sources of a client's middleware.

    ``register_source(name, fn)`` adds a zero-argument callable returning a
    metrics dict (a middleware's bound ``metrics``) and returns the function
    that removes it (a client calls it when it closes); every numeric key
    becomes an observable OpenTelemetry instrument of that name on ``meter_provider``
    (the global one by default), a string value (``circuit.state``) a gauge
    of 1 with the value as ``aio_llm.state``, and a mapping one observation
    per key under ``aio_llm.key``; every observation also carries
    ``aio_llm.source`` and ``aio_llm.client`` (``name``). Sources should
    report every key from the start: instruments are created when a new key
    is first seen. Instances on one meter provider share its instruments.
    """

    _counter = itertools.count(1)

    def __init__(
        self,
        *,
        name: str | None = None,
        stats: RequestStats | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.name = name or f"client-{next(Observability._counter)}"
        self.stats = stats if stats is not None else RequestStats()
        self._tracer_provider = tracer_provider
        self._clock = clock or SYSTEM_CLOCK
        self._created = self._clock.time()
        self._sources: dict[str, _Source] = {}
        self._operations: dict[str, RequestStats] = {}
        self._lock = threading.Lock()
        mp = meter_provider if meter_provider is not None else otel_metrics.get_meter_provider()
        self._exporter = None if isinstance(mp, NoOpMeterProvider) else _exporter_for(mp)
        if self._exporter is not None:
            with self._exporter.lock:
                self._exporter.members.add(self)
        self._cache: tuple[float, dict[str, dict[str, object]]] | None = None

    # -- metric sources ------------------------------------------------------
    def register_source(
        self, name: str, metrics: MetricsSource, *, monotonic: Iterable[str] = ()
    ) -> Callable[[], None]:
        """Add (or replace) the source ``name``; returns a function that removes it."""
        source = _Source(metrics, MONOTONIC_METRICS.union(monotonic))
        with self._lock:
            self._sources[name] = source
            self._cache = None
        self._instrument(source, metrics())

        def unregister() -> None:
            with self._lock:
                if self._sources.get(name) is source:
                    del self._sources[name]
                    self._cache = None

        return unregister

    def collect(self) -> dict[str, dict[str, object]]:
        """Each live source's current metrics, by source name."""
        return self._collect(instrument=True)

    def _collect(self, *, instrument: bool) -> dict[str, dict[str, object]]:
        out: dict[str, dict[str, object]] = {}
        with self._lock:
            items = list(self._sources.items())
        for name, source in items:
            values = dict(source.fn())
            if instrument:  # never while the SDK is collecting: it holds its locks
                self._instrument(source, values)
            out[name] = values
        return out

    def metrics(self) -> dict[str, object]:
        """The request statistics and every source's keys in one flat dict."""
        merged: dict[str, object] = self.stats.metrics()
        for values in self.collect().values():
            merged.update(values)
        return merged

    def _instrument(self, source: _Source, values: Mapping[str, object]) -> None:
        if self._exporter is not None:
            self._exporter.ensure(source, values)

    def _observe(self, key: str) -> Iterator[Observation]:
        now = time.monotonic()
        cache = self._cache
        if cache is None or now - cache[0] > 0.5:
            cache = self._cache = (now, self._collect(instrument=False))
        for source_name, values in cache[1].items():
            if key in values:
                attrs = {"aio_llm.client": self.name, "aio_llm.source": source_name}
                yield from _observations(values[key], attrs)

    # -- the ``app.ai`` client's operations -------------------------------------------------
    def trace_operation(self, name: str, **attributes: Any) -> Operation:
        """Start timing ``name`` (and an OpenTelemetry span when an SDK is set)."""
        span = None
        tp = self._tracer_provider or trace.get_tracer_provider()
        if not isinstance(tp, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
            span = tp.get_tracer("aio_llm").start_span(
                name, attributes={k: _attr(v) for k, v in attributes.items() if v is not None}
            )
        return Operation(name, attributes, self._clock.now(), span)

    def finish_operation(
        self,
        operation: Operation,
        status: Literal["success", "error"] | str = "success",
        error: BaseException | str | None = None,
        **attributes: Any,
    ) -> None:
        """End ``operation``; ``error`` marks it failed. A second call does nothing."""
        if operation.finished:
            return
        operation.finished = True
        duration = self._clock.now() - operation.start
        attrs = {**operation.attributes, **attributes}
        failed = status != "success" or error is not None
        error_type = None
        if failed:
            error_type = type(error).__qualname__ if isinstance(error, BaseException) else OTHER
        with self._lock:
            stats = self._operations.get(operation.name)
            if stats is None:
                key = operation.name if len(self._operations) < 64 else OTHER
                stats = self._operations.setdefault(key, RequestStats(window=512, max_models=32))
        stats.record(
            str(attrs.get("model", "")),
            duration,
            input_tokens=int(attrs.get("input_tokens", 0) or 0),
            output_tokens=int(attrs.get("output_tokens", 0) or 0),
            cost=float(attrs.get("cost", 0.0) or 0.0),
            error_type=error_type,
        )
        span = operation.span
        if span is not None:
            for k, v in attributes.items():
                if v is not None:
                    span.set_attribute(k, _attr(v))
            if failed:
                span.set_attribute("error.type", error_type or OTHER)
                span.set_status(trace.StatusCode.ERROR, str(error) if error else None)
            span.end()

    @contextmanager
    def operation(self, name: str, **attributes: Any) -> Iterator[Operation]:
        """``trace_operation`` + ``finish_operation`` around a block; an exception marks it."""
        op = self.trace_operation(name, **attributes)
        try:
            yield op
        except BaseException as exc:
            self.finish_operation(op, "error", exc)
            raise
        self.finish_operation(op)

    # -- the dashboard -----------------------------------------------------------
    def get_dashboard_data(self) -> dict[str, Any]:
        """Every metric under the names of ``client.metrics()``, plus breakdowns.

        The flat keys are the request statistics and every source's keys, added up over
        the sources (a mapping such as ``circuit.state`` is merged, a string kept per
        source). Then the breakdowns: ``models`` and ``operations`` (each row in the same
        names), ``errors_by_type``, ``sources`` (each source's own keys) and
        ``uptime_seconds``; and ``avg_duration_ms``, the one name the ``app.ai`` dashboard
        example reads (``gen_ai.client.operation.duration["avg"]`` in milliseconds).
        """
        s = self.stats.snapshot()
        sources = self.collect()
        data: dict[str, Any] = self.stats.metrics()
        own = set(data)  # Tracing's source reports these very statistics: never twice
        for name, values in sources.items():
            for key, value in values.items():
                if key not in own:
                    _merge(data, key, value, name)
        data.setdefault("cost.total", s.cost)  # a client's cost manager, else the recorded
        with self._lock:
            operations = dict(self._operations)
        data.update(
            avg_duration_ms=s.avg_duration_ms,
            errors_by_type=dict(s.errors_by_type),
            models={m: _model_row(v) for m, v in s.models.items()},
            operations={n: st.metrics() for n, st in operations.items()},
            sources=sources,
            uptime_seconds=self._clock.time() - self._created,
        )
        return data

    def __repr__(self) -> str:
        return f"<Observability sources={sorted(self._sources)} stats={self.stats!r}>"


class _Exporter:
    """The observable instruments on one meter provider, read from every live member.

    The SDK keeps only the first callback of an instrument name, so the
    ``Observability`` objects on one provider share one instrument per name.
    """

    def __init__(self, provider: MeterProvider) -> None:
        self.meter = provider.get_meter("aio_llm")
        self.names: set[str] = set()
        self.members: weakref.WeakSet[Observability] = weakref.WeakSet()
        self.lock = threading.Lock()

    def ensure(self, source: _Source, values: Mapping[str, object]) -> None:
        for key, value in values.items():
            if key in self.names or not _NAME_OK.match(key) or key.startswith("gen_ai."):
                continue  # gen_ai.* are the histograms Tracing records itself
            if not isinstance(value, (int, float, str, Mapping)):
                continue
            with self.lock:
                if key in self.names:
                    continue
                self.names.add(key)
            callback = _Observer(self, key)
            if key in source.monotonic:
                self.meter.create_observable_counter(key, callbacks=[callback])
            else:
                self.meter.create_observable_gauge(key, callbacks=[callback])


class _Observer:
    """An observable instrument's callback: one key, from every member."""

    __slots__ = ("exporter", "key")

    def __init__(self, exporter: _Exporter, key: str) -> None:
        self.exporter = exporter
        self.key = key

    def __call__(self, options: CallbackOptions) -> Iterable[Observation]:
        out: list[Observation] = []
        with self.exporter.lock:
            members = list(self.exporter.members)
        for member in members:
            out.extend(member._observe(self.key))
        return out


_exporters: weakref.WeakKeyDictionary[MeterProvider, _Exporter] = weakref.WeakKeyDictionary()
_exporters_lock = threading.Lock()


def _exporter_for(provider: MeterProvider) -> _Exporter:
    with _exporters_lock:
        exporter = _exporters.get(provider)
        if exporter is None:
            exporter = _exporters[provider] = _Exporter(provider)
        return exporter


def _observations(value: object, attrs: dict[str, Any]) -> Iterator[Observation]:
    if isinstance(value, bool):
        yield Observation(int(value), attrs)
    elif isinstance(value, (int, float)):
        yield Observation(value, attrs)
    elif isinstance(value, str):
        yield Observation(1, {**attrs, "aio_llm.state": value})
    elif isinstance(value, Mapping):
        for k, v in value.items():
            if isinstance(v, (int, float, str)):
                yield from _observations(v, {**attrs, "aio_llm.key": str(k)})


def _merge(data: dict[str, Any], key: str, value: object, source: str) -> None:
    """Add one source's ``key`` into the dashboard's totals."""
    have = data.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float, Mapping)):
        data[key] = {**have, source: value} if isinstance(have, dict) else {source: value}
    elif isinstance(value, Mapping):
        data[key] = {**have, **value} if isinstance(have, dict) else dict(value)
    elif isinstance(have, (int, float)) and not isinstance(have, bool):
        data[key] = have + value
    else:
        data[key] = value


def _model_row(m: ModelStats) -> dict[str, Any]:
    return {
        "requests.total": m.requests,
        "requests.errors": m.errors,
        TOKEN_USAGE: {"input": m.input_tokens, "output": m.output_tokens},
        "cost.total": m.cost,
    }


def _attr(value: Any) -> Any:
    return value if isinstance(value, (str, bool, int, float)) else str(value)
