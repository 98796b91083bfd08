"""One way to open a Redis client: a pool that waits for a free connection.

``redis.asyncio``'s default pool holds 100 connections and raises
``MaxConnectionsError`` at once when they are all busy: at a concurrency
above that, a healthy Redis looked unreachable, the budget ledger refused
requests (or left reservations it could not release) and the limiter fell
back to local limits. A ``BlockingConnectionPool`` waits up to ``timeout``
for a connection instead; the scripts aio_llm runs take microseconds, so
the wait is short. ``redis.asyncio`` is imported here, on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_CONNECTIONS", "redis_client"]

MAX_CONNECTIONS = 128
"""Connections per client; more callers than this wait their turn."""


def redis_client(url: str, *, timeout: float, **options: Any) -> Any:
    """A ``redis.asyncio.Redis`` on a blocking pool of ``MAX_CONNECTIONS`` (it owns the pool)."""
    import redis.asyncio as aioredis

    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        **options,
    )
    return aioredis.Redis.from_pool(pool)
