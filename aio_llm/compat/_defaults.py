"""The ``app.ai`` client's process-wide objects, each built on first use behind one lock.

``get_cost_manager()``, ``get_observability()``, ``get_cache()``,
``get_deduplicator()``, ``get_circuit_breaker(name)`` and
``aio_llm.facade.get_llm_client_service()`` each return one object per
process, configured from the ``LLM_*`` variables when first asked for. They
all go through ``ProcessDefault``: one mechanism, one re-entrant lock (a
default may be built from others). Clients never use them: each
``AsyncLLMClient`` builds and owns its own cost manager, cache and
deduplicator. ``reset_defaults()`` forgets them all (tests, or after the
environment changed).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from ..config import ClientConfig
from ..cost import CostManager
from ..middleware.cache._stores import MemoryCache, RedisCache
from ..middleware.circuit_breaker._breaker import CircuitBreaker, CircuitBreakerConfig
from ..middleware.dedup import Deduplicator
from ..middleware.tracing._observability import Observability

__all__ = [
    "ProcessDefault",
    "get_cache",
    "get_circuit_breaker",
    "get_cost_manager",
    "get_deduplicator",
    "get_observability",
    "reset_defaults",
]

T = TypeVar("T")

_lock = threading.RLock()
_registry: list[ProcessDefault[object]] = []


class ProcessDefault(Generic[T]):
    """Objects the whole process shares: one per key, built by ``build(key)`` on first use.

    ``usable`` says whether a stored object may still be handed out (a closed
    service is built anew).
    """

    __slots__ = ("_build", "_usable", "_values")

    def __init__(
        self, build: Callable[[Hashable], T], *, usable: Callable[[T], bool] | None = None
    ) -> None:
        self._build = build
        self._usable = usable
        self._values: dict[Hashable, T] = {}
        with _lock:
            _registry.append(self)  # type: ignore[arg-type]

    def get(self, key: Hashable = None, build: Callable[[], T] | None = None) -> T:
        """The object for ``key``, built now (by ``build`` if given) if there is none."""
        with _lock:
            value = self._values.get(key)
            if value is None or (self._usable is not None and not self._usable(value)):
                value = self._values[key] = build() if build is not None else self._build(key)
            return value

    def reset(self) -> list[T]:
        """Forget every object; returns them (the caller may close them)."""
        with _lock:
            values = list(self._values.values())
            self._values.clear()
        return values


def reset_defaults() -> None:
    """Forget every process-wide object; the next call builds it from the environment again.

    Objects that can be closed (the facade's service) are closed.
    """
    with _lock:
        forgotten = [value for default in _registry for value in default.reset()]
    for value in forgotten:
        close = getattr(value, "close", None)
        if callable(close):
            close()


def _env_cost_manager(_: Hashable) -> CostManager:
    return CostManager.from_config(ClientConfig.from_env())


def _env_cache(_: Hashable) -> MemoryCache | RedisCache:
    config = ClientConfig.from_env()
    where = config.backend_url(config.cache_backend)
    if where == "memory":
        return MemoryCache(config.cache_max_entries, ttl=config.cache_ttl)
    return RedisCache(where, ttl=config.cache_ttl)


_cost_manager = ProcessDefault(_env_cost_manager)
_observability = ProcessDefault(lambda _: Observability(name="default"))
_cache: ProcessDefault[MemoryCache | RedisCache] = ProcessDefault(_env_cache)
_deduplicator = ProcessDefault(lambda _: Deduplicator())
_breakers: ProcessDefault[CircuitBreaker] = ProcessDefault(lambda name: CircuitBreaker(str(name)))


def get_cost_manager() -> CostManager:
    """The process's ``CostManager``, built from the ``LLM_*`` variables on first use."""
    return _cost_manager.get()


def get_observability() -> Observability:
    """The process's ``Observability`` (the facade's service records into it)."""
    return _observability.get()


def get_cache() -> MemoryCache | RedisCache:
    """The process's response cache, built on first use from the ``LLM_*`` settings.

    ``LLM_CACHE_BACKEND`` picks memory (default) or a Redis URL;
    ``LLM_CACHE_TTL`` is the default TTL and ``LLM_CACHE_MAX_ENTRIES`` bounds
    the memory cache.
    """
    return _cache.get()


def get_deduplicator() -> Deduplicator:
    """The process's ``Deduplicator`` (unbound: a cancelled leader's waiter takes over)."""
    return _deduplicator.get()


def get_circuit_breaker(name: str, config: CircuitBreakerConfig | None = None) -> CircuitBreaker:
    """The process's standalone ``CircuitBreaker`` called ``name`` (created on first use).

    ``config`` applies only when the breaker is created.
    """
    return _breakers.get(name, lambda: CircuitBreaker(name, config))
