"""Exact response cache: the middleware and its two backends.

``Cache`` answers a request from the cache when an equal request (same key,
see ``aio_llm.middleware._keys``: provider, model, messages, sampling parameters,
tools, response format, seed, extra and the tenant) was answered before and
its entry has not expired. Hits come back with ``cached=True`` and
``cost=0.0`` (``usage`` still describes the original call); a streaming
request is answered by replaying the entry as a stream. Only complete,
successful answers are stored: a plain response once it arrived, a stream
once it was read to its end (``stream.completed``). ``request.cache=False``
skips the cache both ways; ``request.cache_ttl`` sets the entry's TTL.

Backends. ``MemoryCache`` is an in-process LRU bounded by entry count, with
a TTL, written for aio_llm rather than using aiocache's ``SimpleMemoryCache``: that
one has no size bound, keeps an event-loop timer per entry and costs a
coroutine plus its plugin/timeout wrappers on every lookup, while a hit here
is one dict lookup, synchronous. ``RedisCache`` keeps JSON entries in Redis
(the ``redis`` package) to share entries between processes; values are
JSON (``ChatResponse.model_dump``), never pickle. If Redis cannot be
reached it logs one warning, bypasses the cache (requests still succeed)
and probes again every ``retry_interval`` seconds until Redis is back.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from types import TracebackType

from ..._output import fits
from ...clock import Clock
from ...config import ClientConfig
from ...pipeline import Next
from ...streaming import replay_as_stream
from ...types import ChatRequest, ChatResponse, ChunkStream
from .._keys import RequestKeyer, TenantFn
from ._stores import CacheBackend, MemoryCache, RedisCache

__all__ = ["Cache", "CacheBackend", "CacheStatistics", "MemoryCache", "RedisCache"]


@dataclass(frozen=True)
class CacheStatistics:
    """Counters of a ``Cache`` middleware."""

    hits: int
    misses: int
    stores: int
    bypassed: int
    """Requests with ``cache=False``."""


class Cache:
    """Middleware: serve repeated requests from an exact cache (see the module doc)."""

    __slots__ = (
        "_key",
        "_memory",
        "_owns_backend",
        "backend",
        "bypassed",
        "hits",
        "misses",
        "stores",
        "ttl",
    )

    def __init__(
        self,
        backend: CacheBackend | None = None,
        *,
        ttl: float = 3600.0,
        keyer: RequestKeyer | None = None,
        provider: str | None = None,
        tenant: str | TenantFn | None = None,
        clock: Clock | None = None,
    ) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self._owns_backend = backend is None
        self.backend: CacheBackend = backend if backend is not None else MemoryCache(clock=clock)
        self._memory = self.backend if isinstance(self.backend, MemoryCache) else None
        self._key = keyer if keyer is not None else RequestKeyer(provider=provider, tenant=tenant)
        self.ttl = ttl
        self.hits = self.misses = self.stores = self.bypassed = 0

    @classmethod
    def from_config(
        cls, config: ClientConfig, *, keyer: RequestKeyer | None = None, clock: Clock | None = None
    ) -> Cache:
        """The cache ``config`` asks for: ``cache_backend`` memory or a Redis URL."""
        where = config.backend_url(config.cache_backend)
        backend: CacheBackend
        if where == "memory":
            backend = MemoryCache(config.cache_max_entries, clock=clock)
        else:
            backend = RedisCache(where, clock=clock)
        cache = cls(backend, ttl=config.cache_ttl, keyer=keyer, clock=clock)
        cache._owns_backend = True
        return cache

    async def __aenter__(self) -> Cache:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the backend if this cache created it (e.g. the Redis connections)."""
        if self._owns_backend:
            close = getattr(self.backend, "aclose", None)
            if close is not None:
                await close()

    async def __call__(self, request: ChatRequest, next: Next) -> ChatResponse:
        if not request.cache:
            self.bypassed += 1
            return await next(request)
        key = self._key(request)
        memory = self._memory
        hit = memory.get_nowait(key) if memory is not None else await self.backend.get(key)
        if hit is not None:
            self.hits += 1
            return replay_as_stream(hit) if request.stream else hit.model_copy()
        self.misses += 1
        response = await next(request)
        ttl = request.cache_ttl or self.ttl
        stream = response.stream
        if stream is not None:
            await stream.on_close(functools.partial(self._store_stream, request, key, ttl))
        elif not response.cached and fits(request, response):  # never keep a bad answer
            await self._store(key, response, ttl)
        return response

    async def lookup(self, request: ChatRequest) -> ChatResponse | None:
        """The cached answer to ``request`` (counted as a hit or miss), or ``None``.

        For callers that answer requests outside the chain (provider batches).
        """
        if not request.cache:
            return None
        hit = await self.backend.get(self._key(request))
        if hit is None:
            self.misses += 1
            return None
        self.hits += 1
        return hit.model_copy()  # type: ignore[no-any-return]

    async def store(self, request: ChatRequest, response: ChatResponse) -> None:
        """Keep ``response`` as the answer to ``request`` (skipped with ``cache=False``)."""
        if request.cache and not response.cached:
            await self._store(self._key(request), response, request.cache_ttl or self.ttl)

    async def _store(self, key: str, response: ChatResponse, ttl: float) -> None:
        entry = response.model_copy(update={"cached": True, "cost": 0.0})
        self.stores += 1
        if self._memory is not None:
            self._memory.set_nowait(key, entry, ttl)
        else:
            await self.backend.set(key, entry, ttl)

    async def _store_stream(
        self, request: ChatRequest, key: str, ttl: float, stream: ChunkStream
    ) -> None:
        response = stream.response
        if stream.completed and stream.error is None and response is not None:
            if fits(request, response):
                await self._store(key, response, ttl)

    def statistics(self) -> CacheStatistics:
        return CacheStatistics(self.hits, self.misses, self.stores, self.bypassed)

    def metrics(self) -> dict[str, object]:
        out: dict[str, object] = {
            "cache.hits": self.hits,
            "cache.misses": self.misses,
            "cache.stores": self.stores,
        }
        available = getattr(self.backend, "available", None)
        if available is not None:
            out["cache.available"] = available
        return out

    def __repr__(self) -> str:
        return f"Cache({self.backend!r}, ttl={self.ttl}, hits={self.hits}, misses={self.misses})"
