"""The circuit breaker: the standalone ``CircuitBreaker``, its middleware and its state machine."""

from __future__ import annotations

from ._breaker import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitBreakerMiddleware,
    CircuitBreakerStatistics,
    CircuitState,
    is_circuit_failure,
)

__all__ = [
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitBreakerMiddleware",
    "CircuitBreakerStatistics",
    "CircuitState",
    "is_circuit_failure",
]
