"""``default_middleware``: the default chain for a ``ClientConfig`` (see ``aio_llm.middleware``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..clock import Clock
from ..config import ClientConfig
from ..pipeline import MiddlewareLike

if TYPE_CHECKING:
    from ..providers.base import Provider

__all__ = ["default_middleware"]


def default_middleware(
    config: ClientConfig,
    *,
    clock: Clock | None = None,
    cost_manager: Any = None,
    providers: Mapping[str, Provider] | None = None,
    default_provider: str | None = None,
    tenant: Any = None,
    observability: Any = None,
    client: Any = None,
) -> list[MiddlewareLike]:
    """A fresh default chain for ``config``, outermost first (see the module docstring)."""
    from ._keys import RequestKeyer
    from .budget import BudgetMiddleware
    from .circuit_breaker._breaker import CircuitBreakerConfig, CircuitBreakerMiddleware
    from .dedup import Dedup
    from .fallback import Fallback
    from .ratelimit._ratelimit import RateLimit, RateLimitConfig
    from .retry._retry import Retry
    from .tracing._tracing import Tracing

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
        from .cache._cache import Cache

        chain.append(Cache.from_config(config, keyer=keyer, clock=clock))
    if config.semantic_cache_max_error is not None or config.semantic_cache_threshold is not None:
        from .semantic_cache import SemanticCache

        chain.append(SemanticCache.from_config(config, keyer=keyer, clock=clock, client=client))
    if config.dedup_enabled:
        chain.append(
            Dedup(
                keyer=keyer,
                merge_samples=config.dedup_sampling,
                deterministic_providers=[
                    label for label, p in (providers or {}).items() if not p.samples_by_default
                ],
            )
        )
    chain.append(BudgetMiddleware(cost_manager))
    if config.fallbacks:
        chain.append(Fallback(config.fallbacks))
    chain.append(Retry.from_config(config, clock=clock))
    chain.append(
        CircuitBreakerMiddleware(
            CircuitBreakerConfig(
                failure_threshold=config.circuit_failure_threshold,
                failure_rate_threshold=config.circuit_failure_rate,
                minimum_calls=config.circuit_minimum_calls,
                window=config.circuit_window,
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
