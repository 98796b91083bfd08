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

Each name loads its module on first use (see ``aio_llm._exports``).
"""

import typing

from .._exports import lazy_exports as _lazy_exports

if typing.TYPE_CHECKING:
    from ._default import default_middleware as default_middleware
    from ._keys import RequestKeyer as RequestKeyer
    from ._keys import api_key_fingerprint as api_key_fingerprint
    from ._keys import request_key as request_key
    from .budget import BudgetMiddleware as BudgetMiddleware
    from .budget import BudgetStatistics as BudgetStatistics
    from .budget import cover_request as cover_request
    from .cache._cache import Cache as Cache
    from .cache._cache import CacheStatistics as CacheStatistics
    from .cache._stores import CacheBackend as CacheBackend
    from .cache._stores import MemoryCache as MemoryCache
    from .cache._stores import RedisCache as RedisCache
    from .circuit_breaker._breaker import CircuitBreaker as CircuitBreaker
    from .circuit_breaker._breaker import CircuitBreakerConfig as CircuitBreakerConfig
    from .circuit_breaker._breaker import CircuitBreakerMiddleware as CircuitBreakerMiddleware
    from .circuit_breaker._breaker import CircuitBreakerStatistics as CircuitBreakerStatistics
    from .circuit_breaker._breaker import CircuitState as CircuitState
    from .dedup import Dedup as Dedup
    from .dedup import Deduplicator as Deduplicator
    from .dedup import DedupStatistics as DedupStatistics
    from .fallback import Fallback as Fallback
    from .fallback import FallbackStatistics as FallbackStatistics
    from .fallback import should_fall_back as should_fall_back
    from .ratelimit._ratelimit import RateLimit as RateLimit
    from .ratelimit._ratelimit import RateLimitConfig as RateLimitConfig
    from .ratelimit._ratelimit import RateLimitStatistics as RateLimitStatistics
    from .retry._retry import AdaptiveRetry as AdaptiveRetry
    from .retry._retry import ExponentialBackoffRetry as ExponentialBackoffRetry
    from .retry._retry import FibonacciBackoffRetry as FibonacciBackoffRetry
    from .retry._retry import LinearBackoffRetry as LinearBackoffRetry
    from .retry._retry import Retry as Retry
    from .retry._retry import RetryConfig as RetryConfig
    from .retry._retry import RetryExecutor as RetryExecutor
    from .retry._retry import RetryStatistics as RetryStatistics
    from .retry._retry import RetryStrategy as RetryStrategy
    from .retry._retry import is_retryable as is_retryable
    from .retry._retry import is_transient as is_transient
    from .semantic_cache import ErrorBound as ErrorBound
    from .semantic_cache import LexicalVerifier as LexicalVerifier
    from .semantic_cache import LLMJudge as LLMJudge
    from .semantic_cache import RedisStore as RedisStore
    from .semantic_cache import SameAnswer as SameAnswer
    from .semantic_cache import SemanticCache as SemanticCache
    from .semantic_cache import SemanticCacheStatistics as SemanticCacheStatistics
    from .tracing._observability import Observability as Observability
    from .tracing._observability import RequestStats as RequestStats
    from .tracing._tracing import Tracing as Tracing

__all__, __getattr__, __dir__ = _lazy_exports(__name__)
