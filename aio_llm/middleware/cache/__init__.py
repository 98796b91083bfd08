"""The exact response cache: the middleware and its memory and Redis backends."""

from __future__ import annotations

from ._cache import (
    Cache,
    CacheBackend,
    CacheStatistics,
    MemoryCache,
    RedisCache,
)

__all__ = [
    "Cache",
    "CacheBackend",
    "CacheStatistics",
    "MemoryCache",
    "RedisCache",
]
