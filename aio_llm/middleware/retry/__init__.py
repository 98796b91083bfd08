"""Retry: the middleware, ``RetryExecutor``, the backoff strategies and the retry budget."""

from __future__ import annotations

from ._retry import (
    AdaptiveRetry,
    ErrorClassStatistics,
    ExponentialBackoffRetry,
    FibonacciBackoffRetry,
    LinearBackoffRetry,
    Retry,
    RetryBudget,
    RetryBudgetStatistics,
    RetryConfig,
    RetryExecutor,
    RetryStatistics,
    RetryStrategy,
    is_retryable,
    is_transient,
)

__all__ = [
    "AdaptiveRetry",
    "ErrorClassStatistics",
    "ExponentialBackoffRetry",
    "FibonacciBackoffRetry",
    "LinearBackoffRetry",
    "Retry",
    "RetryBudget",
    "RetryBudgetStatistics",
    "RetryConfig",
    "RetryExecutor",
    "RetryStatistics",
    "RetryStrategy",
    "is_retryable",
    "is_transient",
]
