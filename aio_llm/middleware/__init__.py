"""The built-in middleware and the default chain.

Default order, outermost first::

    Tracing → Cache → SemanticCache → Dedup → Budget → Fallback → Retry
            → CircuitBreaker → RateLimit → provider

Tracing is outermost so one span covers everything, cache hits included. A
cache hit or a dedup follower costs nothing, so both sit outside Budget.
Fallback sits outside Retry so each target gets its own retries and Fallback
sees what is left after they ran out (an open circuit, a context-window
error, exhausted retries). Retry wraps the breaker and the limiter, so every
attempt is counted by the breaker and throttled by the limiter.

Modules are imported when first used, so ``import aio_llm`` stays light.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._lazy import lazy_getattr
from ..clock import Clock
from ..config import ClientConfig
from ..pipeline import MiddlewareLike

if TYPE_CHECKING:
    from ..providers.base import Provider
    from .budget import BudgetMiddleware, BudgetStatistics
    from .cache import Cache, CacheBackend, CacheStatistics, MemoryCache, RedisCache
    from .circuit_breaker import (
        CircuitBreaker,
        CircuitBreakerConfig,
        CircuitBreakerMiddleware,
        CircuitBreakerStatistics,
        CircuitState,
    )
    from .dedup import Dedup, Deduplicator, DedupStatistics
    from .fallback import Fallback, FallbackStatistics, should_fall_back
    from .ratelimit import RateLimit, RateLimitConfig, RateLimitStatistics
    from .retry import (
        AdaptiveRetry,
        ExponentialBackoffRetry,
        FibonacciBackoffRetry,
        LinearBackoffRetry,
        Retry,
        RetryConfig,
        RetryExecutor,
        RetryStatistics,
        RetryStrategy,
        is_retryable,
        is_transient,
    )
    from .semantic_cache import SemanticCache, SemanticCacheStatistics
    from .tracing import Tracing, record_event

__all__ = [
    "AdaptiveRetry",
    "BudgetMiddleware",
    "BudgetStatistics",
    "Cache",
    "CacheBackend",
    "CacheStatistics",
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitBreakerMiddleware",
    "CircuitBreakerStatistics",
    "CircuitState",
    "Dedup",
    "DedupStatistics",
    "Deduplicator",
    "ExponentialBackoffRetry",
    "Fallback",
    "FallbackStatistics",
    "FibonacciBackoffRetry",
    "LinearBackoffRetry",
    "MemoryCache",
    "RateLimit",
    "RateLimitConfig",
    "RateLimitStatistics",
    "RedisCache",
    "Retry",
    "RetryConfig",
    "RetryExecutor",
    "RetryStatistics",
    "RetryStrategy",
    "SemanticCache",
    "SemanticCacheStatistics",
    "Tracing",
    "default_middleware",
    "is_retryable",
    "is_transient",
    "record_event",
    "should_fall_back",
]

_WHERE = {
    "AdaptiveRetry": "retry",
    "BudgetMiddleware": "budget",
    "BudgetStatistics": "budget",
    "Cache": "cache",
    "CacheBackend": "cache",
    "CacheStatistics": "cache",
    "CircuitBreaker": "circuit_breaker",
    "CircuitBreakerConfig": "circuit_breaker",
    "CircuitBreakerMiddleware": "circuit_breaker",
    "CircuitBreakerStatistics": "circuit_breaker",
    "CircuitState": "circuit_breaker",
    "Dedup": "dedup",
    "DedupStatistics": "dedup",
    "Deduplicator": "dedup",
    "ExponentialBackoffRetry": "retry",
    "Fallback": "fallback",
    "FallbackStatistics": "fallback",
    "FibonacciBackoffRetry": "retry",
    "LinearBackoffRetry": "retry",
    "MemoryCache": "cache",
    "RateLimit": "ratelimit",
    "RateLimitConfig": "ratelimit",
    "RateLimitStatistics": "ratelimit",
    "RedisCache": "cache",
    "Retry": "retry",
    "RetryConfig": "retry",
    "RetryExecutor": "retry",
    "RetryStatistics": "retry",
    "RetryStrategy": "retry",
    "SemanticCache": "semantic_cache",
    "SemanticCacheStatistics": "semantic_cache",
    "Tracing": "tracing",
    "is_retryable": "retry",
    "is_transient": "retry",
    "record_event": "tracing",
    "should_fall_back": "fallback",
}


__getattr__ = lazy_getattr(__name__, _WHERE, globals())


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def default_middleware(
    config: ClientConfig,
    *,
    clock: Clock | None = None,
    cost_manager: Any = None,
    providers: Mapping[str, Provider] | None = None,
    default_provider: str | None = None,
    tenant: Any = None,
    observability: Any = None,
) -> list[MiddlewareLike]:
    """A fresh default chain for ``config``, outermost first (see the module docstring)."""
    from ..cache_key import RequestKeyer
    from .budget import BudgetMiddleware
    from .circuit_breaker import CircuitBreakerConfig, CircuitBreakerMiddleware
    from .dedup import Dedup
    from .fallback import Fallback
    from .ratelimit import RateLimit, RateLimitConfig
    from .retry import Retry
    from .tracing import Tracing

    chain: list[MiddlewareLike] = [
        Tracing(
            provider=default_provider,
            providers=dict(providers or {}),
            capture_content=config.capture_content or None,
            stats=getattr(observability, "stats", None),
            clock=clock,
        )
    ]
    keyer = RequestKeyer(provider=default_provider, tenant=tenant)
    if config.cache_enabled:
        from .cache import Cache

        chain.append(Cache.from_config(config, keyer=keyer, clock=clock))
    if config.semantic_cache_threshold is not None:
        from .semantic_cache import SemanticCache

        chain.append(
            SemanticCache(
                threshold=config.semantic_cache_threshold,
                ttl=config.cache_ttl,
                max_entries=config.cache_max_entries,
                keyer=keyer,
                clock=clock,
            )
        )
    if config.dedup_enabled:
        # the leader runs the call in its own task (~5 µs instead of ~25 µs for a
        # shared task); if it is cancelled a waiter takes over
        chain.append(Dedup(keyer=keyer, shared_task=False))
    chain.append(BudgetMiddleware(cost_manager))
    if config.fallbacks:
        chain.append(Fallback(config.fallbacks))
    chain.append(Retry.from_config(config, clock=clock))
    chain.append(
        CircuitBreakerMiddleware(
            CircuitBreakerConfig(
                failure_threshold=config.circuit_failure_threshold,
                success_threshold=config.circuit_success_threshold,
                timeout=config.circuit_timeout,
            ),
            clock=clock,
            shared=None
            if config.circuit_backend == "memory"
            else config.backend_url(config.circuit_backend),
            default_provider=default_provider,
        )
    )
    chain.append(
        RateLimit(
            RateLimitConfig(
                rpm=config.rpm,
                tpm=config.tpm,
                backend=config.backend_url(config.ratelimit_backend),
                fail_open=config.ratelimit_fail_open,
                max_hold=config.retry_after_cap,
            ),
            clock=clock,
            default_provider=default_provider,
        )
    )
    return chain
