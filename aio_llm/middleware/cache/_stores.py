"""Where the exact cache keeps its entries: ``MemoryCache`` and ``RedisCache``.

Both offer ``await get(key)`` / ``await set(key, value, ttl=...)`` (the
``app.ai`` client's ``get_cache()`` API). ``MemoryCache`` also answers synchronously
(``get_nowait``), which keeps a cache hit to one dict lookup. ``RedisCache``
keeps JSON values (never pickle) in Redis, with one warning when
Redis becomes unreachable, bypass while it is, and recovery when it returns.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from ..._extras import require_redis
from ..._json import dumps, loads
from ...clock import SYSTEM_CLOCK, Clock
from ...types import ChatResponse

__all__ = ["CacheBackend", "MemoryCache", "RedisCache"]

logger = logging.getLogger("aio_llm.cache")


class CacheBackend(Protocol):
    """Where cached responses live: async get/set by string key."""

    async def get(self, key: str) -> Any | None: ...

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None: ...


class MemoryCache:
    """An in-process LRU cache with a TTL; ``get_nowait``/``set_nowait`` never wait.

    ``ttl`` is the default lifetime in seconds (``None``: until evicted);
    ``max_entries`` bounds the size, least recently used out first.
    """

    __slots__ = ("_clock", "_data", "evictions", "max_entries", "ttl")

    def __init__(
        self, max_entries: int = 10_000, *, ttl: float | None = None, clock: Clock | None = None
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        if ttl is not None and ttl <= 0:
            raise ValueError("ttl must be positive or None")
        self.max_entries = max_entries
        self.ttl = ttl
        self._clock = clock or SYSTEM_CLOCK
        self._data: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self.evictions = 0

    def get_nowait(self, key: str) -> Any | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock.now():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return entry[1]

    def set_nowait(self, key: str, value: Any, ttl: float | None = None) -> None:
        ttl = self.ttl if ttl is None else ttl
        expires = float("inf") if ttl is None else self._clock.now() + ttl
        data = self._data
        data[key] = (expires, value)
        data.move_to_end(key)
        while len(data) > self.max_entries:
            data.popitem(last=False)
            self.evictions += 1

    async def get(self, key: str) -> Any | None:
        return self.get_nowait(key)

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        self.set_nowait(key, value, ttl)

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def clear(self) -> None:
        self._data.clear()

    async def aclose(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"MemoryCache(entries={len(self._data)}/{self.max_entries}, ttl={self.ttl})"


def _encode(value: Any) -> bytes:
    if isinstance(value, ChatResponse):
        return dumps({"t": "chat", "v": value.model_dump(mode="json")})
    return dumps({"t": "json", "v": value})


def _glob_escape(text: str) -> str:
    """``text`` as a literal in a Redis MATCH pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _decode(data: bytes | None) -> Any:
    if data is None:
        return None
    envelope = loads(data)
    if envelope.get("t") == "chat":
        return ChatResponse.model_validate(envelope["v"])
    return envelope.get("v")


class RedisCache:
    """A cache in Redis, shared by every process using the URL (the ``redis`` extra).

    ``url`` is ``redis://[:password@]host[:port][/db]`` (``rediss://`` for
    TLS). Entries are JSON (never pickle) under ``{namespace}:{key}``.
    ``timeout`` bounds each Redis operation; after a failure the cache is
    bypassed for ``retry_interval`` seconds, then Redis is tried again.
    """

    __slots__ = (
        "_clock",
        "_errors",
        "_prefix",
        "_redis",
        "_retry_at",
        "_where",
        "available",
        "errors",
        "retry_interval",
        "ttl",
    )

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "aio_llm:cache",
        ttl: float | None = None,
        timeout: float = 0.5,
        retry_interval: float = 5.0,
        clock: Clock | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError("url must start with redis:// or rediss://")
        if timeout <= 0 or retry_interval < 0:
            raise ValueError("timeout must be positive and retry_interval not negative")
        aioredis = require_redis("cache_backend='redis://...' (RedisCache)")
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import RedisError

        db = (parts.path or "/0").strip("/") or "0"
        self._redis: Any = aioredis.Redis(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 6379,
            db=int(db),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            ssl=parts.scheme == "rediss",
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self._prefix = namespace + ":"
        self._where = f"{parts.hostname}:{parts.port or 6379}/{db}"  # never the password
        self._errors: tuple[type[BaseException], ...] = (OSError, asyncio.TimeoutError, RedisError)
        self._clock = clock or SYSTEM_CLOCK
        self._retry_at = 0.0
        self.available = True
        self.errors = 0
        self.retry_interval = retry_interval
        self.ttl = ttl

    async def get(self, key: str) -> Any | None:
        if not self.available and self._clock.now() < self._retry_at:
            return None
        try:
            value = _decode(await self._redis.get(self._prefix + key))
        except self._errors as exc:
            await self._failed(exc)
            return None
        except (ValueError, TypeError, AttributeError):  # an entry that does not decode: a miss
            self.errors += 1
            return None
        self._recovered()
        return value

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        if not self.available and self._clock.now() < self._retry_at:
            return
        ttl = self.ttl if ttl is None else ttl
        try:
            ms = None if ttl is None else max(1, int(float(ttl) * 1000))
            await self._redis.set(self._prefix + key, _encode(value), px=ms)
        except self._errors as exc:
            await self._failed(exc)
            return
        self._recovered()

    async def delete(self, key: str) -> None:
        try:
            await self._redis.delete(self._prefix + key)
        except self._errors as exc:
            await self._failed(exc)

    async def clear(self) -> None:
        """Delete every entry of this cache's namespace."""
        try:
            batch: list[bytes] = []
            async for name in self._redis.scan_iter(match=_glob_escape(self._prefix) + "*"):
                batch.append(name)
                if len(batch) >= 500:
                    await self._redis.delete(*batch)
                    batch.clear()
            if batch:
                await self._redis.delete(*batch)
        except self._errors as exc:
            await self._failed(exc)

    async def aclose(self) -> None:
        await self._redis.aclose()

    async def _failed(self, exc: BaseException) -> None:
        self.errors += 1
        self._retry_at = self._clock.now() + self.retry_interval
        if self.available:
            self.available = False
            logger.warning(
                "Redis cache at %s is unreachable (%s); caching is bypassed until it returns",
                self._where,
                type(exc).__name__,
            )
        try:  # drop dead connections so the next probe connects afresh
            await self._redis.connection_pool.disconnect()
        except Exception:  # pragma: no cover - best effort
            pass

    def _recovered(self) -> None:
        if not self.available:
            self.available = True
            logger.info("Redis cache at %s is reachable again", self._where)

    def __repr__(self) -> str:
        state = "up" if self.available else "down"
        return f"RedisCache({self._where}, {state}, errors={self.errors})"
