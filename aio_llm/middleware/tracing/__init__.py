"""Telemetry: the OpenTelemetry ``Tracing`` middleware, request statistics and metric sources."""

from __future__ import annotations

from ._observability import (
    ModelStats,
    Observability,
    Operation,
    RequestStats,
    StatsSnapshot,
)
from ._tracing import (
    CAPTURE_ENV,
    DURATION_BUCKETS,
    EVENT_CACHE_HIT,
    EVENT_CIRCUIT_REJECTED,
    EVENT_DEDUP_HIT,
    EVENT_FALLBACK,
    EVENT_RATE_LIMITED,
    EVENT_RETRY,
    TOKEN_BUCKETS,
    Tracing,
    record_event,
    set_attribute,
    tracing_active,
)

__all__ = [
    "CAPTURE_ENV",
    "DURATION_BUCKETS",
    "EVENT_CACHE_HIT",
    "EVENT_CIRCUIT_REJECTED",
    "EVENT_DEDUP_HIT",
    "EVENT_FALLBACK",
    "EVENT_RATE_LIMITED",
    "EVENT_RETRY",
    "ModelStats",
    "Observability",
    "Operation",
    "RequestStats",
    "StatsSnapshot",
    "TOKEN_BUCKETS",
    "Tracing",
    "record_event",
    "set_attribute",
    "tracing_active",
]
