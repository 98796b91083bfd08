"""Rate limiting: the middleware, its GCRA buckets and the providers' rate-limit headers."""

from __future__ import annotations

from ._ratelimit import (
    GCRABucket,
    RateLimit,
    RateLimitConfig,
    RateLimitStatistics,
    TargetLimits,
)

__all__ = [
    "GCRABucket",
    "RateLimit",
    "RateLimitConfig",
    "RateLimitStatistics",
    "TargetLimits",
]
