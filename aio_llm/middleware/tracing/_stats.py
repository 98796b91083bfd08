"""``RequestStats``: bounded counters and recent-latency percentiles per client.

Public through ``aio_llm.middleware``; kept in its own module because the
``Tracing`` middleware imports it on the hot path without the rest.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DURATION",
    "OTHER",
    "TIME_TO_FIRST_CHUNK",
    "TOKEN_USAGE",
    "ModelStats",
    "RequestStats",
    "StatsSnapshot",
]

OTHER = "_OTHER"

# the OpenTelemetry GenAI client metrics: the histograms ``Tracing`` records and the keys
# of ``client.metrics()`` that summarise them
DURATION = "gen_ai.client.operation.duration"
TOKEN_USAGE = "gen_ai.client.token.usage"
TIME_TO_FIRST_CHUNK = "gen_ai.client.operation.time_to_first_chunk"
"""Where models beyond ``max_models`` are counted (the semantic conventions' fallback value)."""


@dataclass(frozen=True, slots=True)
class ModelStats:
    """Totals for one requested model."""

    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0


@dataclass(frozen=True, slots=True)
class StatsSnapshot:
    """A consistent read of a ``RequestStats``; percentiles cover the recent window."""

    requests: int
    errors: int
    cancelled: int
    streams: int
    cache_hits: int
    input_tokens: int
    output_tokens: int
    cost: float
    avg_duration_ms: float
    p50_duration_ms: float
    p95_duration_ms: float
    p99_duration_ms: float
    max_duration_ms: float
    avg_ttft_ms: float
    p95_ttft_ms: float
    errors_by_type: Mapping[str, int]
    models: Mapping[str, ModelStats]

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def cache_hit_rate(self) -> float:
        return self.cache_hits / self.requests if self.requests else 0.0


class _Ring:
    """The last ``size`` samples; O(1) to add, sorted on demand."""

    __slots__ = ("count", "data", "pos")

    def __init__(self, size: int) -> None:
        self.data = [0.0] * size
        self.pos = 0
        self.count = 0

    def add(self, value: float) -> None:
        data = self.data
        data[self.pos] = value
        self.pos = (self.pos + 1) % len(data)
        if self.count < len(data):
            self.count += 1

    def quantiles(self, *qs: float) -> list[float]:
        if not self.count:
            return [0.0 for _ in qs]
        ordered = sorted(self.data[: self.count])
        n = len(ordered)
        return [ordered[max(0, math.ceil(q * n) - 1)] for q in qs]


class RequestStats:
    """Counters and recent-latency percentiles for the requests one client sent.

    Memory is bounded: ``window`` recent durations (and stream times to first
    token) feed the percentiles, at most ``max_models`` models are broken
    down (the rest are counted under ``OTHER``). Averages, counters and the
    maximum cover every request since creation or ``reset()``. Recording
    takes a lock, so several event loops in several threads may share one.
    """

    __slots__ = (
        "_cache_hits",
        "_cancelled",
        "_cost",
        "_durations",
        "_errors",
        "_errors_by_type",
        "_input",
        "_lock",
        "_max_ms",
        "_max_models",
        "_models",
        "_output",
        "_requests",
        "_streams",
        "_total_ms",
        "_total_ttft_ms",
        "_ttfts",
        "_window",
    )

    def __init__(self, *, window: int = 2048, max_models: int = 256) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        if max_models < 1:
            raise ValueError("max_models must be at least 1")
        self._window = window
        self._max_models = max_models
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget everything recorded so far."""
        with self._lock:
            self._requests = self._errors = self._cancelled = self._streams = 0
            self._cache_hits = self._input = self._output = 0
            self._cost = self._total_ms = self._max_ms = self._total_ttft_ms = 0.0
            self._errors_by_type: dict[str, int] = {}
            self._models: dict[str, list[Any]] = {}
            self._durations = _Ring(self._window)
            self._ttfts = _Ring(max(1, self._window // 4))

    def record(
        self,
        model: str,
        duration: float,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cost: float | None = None,
        cached: bool = False,
        ttft: float | None = None,
        error_type: str | None = None,
    ) -> None:
        """Count one finished request; ``duration`` and ``ttft`` in seconds.

        Positional arguments are accepted (the tracing middleware's per-request
        call skips keyword handling that way).
        """
        ms = duration * 1000.0
        with self._lock:
            self._requests += 1
            self._total_ms += ms
            if ms > self._max_ms:
                self._max_ms = ms
            self._durations.add(ms)
            self._input += input_tokens
            self._output += output_tokens
            if cost:
                self._cost += cost
            if cached:
                self._cache_hits += 1
            if ttft is not None:
                self._streams += 1
                self._total_ttft_ms += ttft * 1000.0
                self._ttfts.add(ttft * 1000.0)
            if error_type is not None:
                self._errors += 1
                self._errors_by_type[error_type] = self._errors_by_type.get(error_type, 0) + 1
            row = self._models.get(model)
            if row is None:
                if len(self._models) >= self._max_models:
                    model = OTHER
                row = self._models.setdefault(model, [0, 0, 0, 0, 0.0])
            row[0] += 1
            row[1] += error_type is not None
            row[2] += input_tokens
            row[3] += output_tokens
            row[4] += cost or 0.0

    def record_cancelled(self) -> None:
        """Count a request its caller cancelled (neither a success nor an error)."""
        with self._lock:
            self._cancelled += 1

    def snapshot(self) -> StatsSnapshot:
        """Everything recorded so far, read under the lock."""
        with self._lock:
            n = self._requests
            p50, p95, p99 = self._durations.quantiles(0.5, 0.95, 0.99)
            (ttft95,) = self._ttfts.quantiles(0.95)
            return StatsSnapshot(
                requests=n,
                errors=self._errors,
                cancelled=self._cancelled,
                streams=self._streams,
                cache_hits=self._cache_hits,
                input_tokens=self._input,
                output_tokens=self._output,
                cost=self._cost,
                avg_duration_ms=self._total_ms / n if n else 0.0,
                p50_duration_ms=p50,
                p95_duration_ms=p95,
                p99_duration_ms=p99,
                max_duration_ms=self._max_ms,
                avg_ttft_ms=self._total_ttft_ms / self._streams if self._streams else 0.0,
                p95_ttft_ms=ttft95,
                errors_by_type=dict(self._errors_by_type),
                models={m: ModelStats(*row) for m, row in self._models.items()},
            )

    statistics = snapshot

    def metrics(self) -> dict[str, object]:
        """The snapshot under the names of ``client.metrics()`` (docs/observability.md).

        Where the OpenTelemetry GenAI conventions name a metric, the key is that name and
        the value summarises the histogram in the conventions' unit (seconds, tokens);
        the ``requests.*`` counters are aio_llm's own (the conventions have none).
        """
        s = self.snapshot()
        n = s.requests
        return {
            "requests.total": n,
            "requests.errors": s.errors,
            "requests.cancelled": s.cancelled,
            "requests.error_rate": s.error_rate,
            "requests.streams": s.streams,
            "requests.cached": s.cache_hits,
            "requests.cache_hit_rate": s.cache_hit_rate,
            DURATION: {
                "count": n,
                "sum": s.avg_duration_ms * n / 1000.0,
                "avg": s.avg_duration_ms / 1000.0,
                "p50": s.p50_duration_ms / 1000.0,
                "p95": s.p95_duration_ms / 1000.0,
                "p99": s.p99_duration_ms / 1000.0,
                "max": s.max_duration_ms / 1000.0,
            },
            TIME_TO_FIRST_CHUNK: {
                "count": s.streams,
                "avg": s.avg_ttft_ms / 1000.0,
                "p95": s.p95_ttft_ms / 1000.0,
            },
            TOKEN_USAGE: {"input": s.input_tokens, "output": s.output_tokens},
        }

    def __repr__(self) -> str:
        return (
            f"<RequestStats requests={self._requests} errors={self._errors} "
            f"avg_ms={self._total_ms / self._requests if self._requests else 0.0:.1f}>"
        )
