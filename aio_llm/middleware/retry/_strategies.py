"""Retry strategies and what is safe to retry (used by ``aio_llm.middleware.retry``).

A strategy answers one question: after ``attempt`` attempts ended in
``error``, how long to wait before the next one, or ``None`` to stop. Delays
are capped at ``max_delay`` and drawn with full jitter from the injected
``rng``; ``AdaptiveRetry`` also learns per error class and holds a retry
budget (see ``_retry_budget``).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from ...errors import APIConnectionError, APIError, APIStatusError, StreamError
from ._budget import ErrorClassStatistics, RetryBudget, _Learner

__all__ = [
    "AdaptiveRetry",
    "ExponentialBackoffRetry",
    "FibonacciBackoffRetry",
    "LinearBackoffRetry",
    "RetryConfig",
    "RetryStrategy",
    "is_retryable",
    "is_transient",
]

_RETRY_STATUSES = frozenset({408, 409, 429})


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a failure that may pass by itself, judged by its kind alone.

    Connection errors and timeouts (aio_llm's and the built-in ones raised by
    plain functions given to ``RetryExecutor``), 408, 409, 429, 5xx and 529,
    and a stream that broke off before its first chunk.
    """
    if not isinstance(exc, Exception):  # cancellation, KeyboardInterrupt, ...
        return False
    if isinstance(exc, APIConnectionError):
        return True
    if isinstance(exc, APIStatusError):
        status = exc.status_code
        return status is not None and (status in _RETRY_STATUSES or status >= 500)
    if isinstance(exc, StreamError):
        return isinstance(exc.__cause__, APIConnectionError)
    return isinstance(exc, (ConnectionError, TimeoutError))


def is_retryable(exc: BaseException) -> bool:
    """Whether a retry may help: ``x-should-retry`` when the provider sent it, else
    ``is_transient``."""
    if isinstance(exc, APIError) and exc.should_retry is not None:
        return exc.should_retry
    return is_transient(exc)


@dataclass(frozen=True)
class RetryConfig:
    """How many attempts and how long to wait between them.

    ``max_attempts`` counts the first try (``ClientConfig.max_retries=3`` is
    ``max_attempts=4``). ``jitter`` is the share of each wait that is drawn
    at random: 1 (or True) is full jitter, uniform in ``(0, delay]``; 0 (or
    False) waits the exact backoff.
    """

    max_attempts: int = 4
    base_delay: float = 0.5
    """The first backoff in seconds."""
    max_delay: float = 30.0
    """No single wait is longer (before jitter)."""
    exponential_base: float = 2.0
    jitter: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or self.max_attempts < 1:
            raise ValueError("max_attempts must be an int >= 1 (it counts the first try)")
        if not (math.isfinite(self.base_delay) and self.base_delay >= 0):
            raise ValueError("base_delay must be a finite number >= 0")
        if not (math.isfinite(self.max_delay) and self.max_delay >= self.base_delay):
            raise ValueError("max_delay must be finite and >= base_delay")
        if not (math.isfinite(self.exponential_base) and self.exponential_base >= 1):
            raise ValueError("exponential_base must be a finite number >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1 (or a bool)")


def _power(base: float, exponent: int) -> float:
    try:
        return float(base**exponent)
    except OverflowError:
        return math.inf


class RetryStrategy:
    """Decides whether to retry and how long to wait; subclasses give ``backoff``.

    ``delay(attempt, error, rng)`` is called after attempt number ``attempt``
    (1 = the first try) failed with ``error``; it returns the seconds to wait
    before the next attempt, or ``None`` to stop. ``observe`` is told how each
    retry turned out (``AdaptiveRetry`` learns from it). ``budget``, when set,
    must grant a token for every retry.
    """

    __slots__ = ("budget", "config")

    def __init__(
        self, config: RetryConfig | None = None, *, budget: RetryBudget | None = None
    ) -> None:
        self.config = config if config is not None else RetryConfig()
        self.budget = budget

    def backoff(self, attempt: int, error: BaseException) -> float:
        """The wait before retry number ``attempt``, before the cap and jitter."""
        raise NotImplementedError

    def should_retry(self, error: BaseException) -> bool:
        return is_retryable(error)

    def max_attempts_for(self, error: BaseException) -> int:
        return self.config.max_attempts

    def delay(self, attempt: int, error: BaseException, rng: random.Random) -> float | None:
        if attempt >= self.max_attempts_for(error) or not self.should_retry(error):
            return None
        config = self.config
        wait = min(self.backoff(attempt, error), config.max_delay)
        if config.jitter:
            wait *= 1.0 - config.jitter * rng.random()
        return wait

    def observe(
        self, attempt: int, previous: BaseException, waited: float, error: BaseException | None
    ) -> None:
        """Attempt ``attempt`` (>= 2), made after ``previous`` and ``waited`` s, ended in
        ``error`` (``None``: success)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r}, budget={self.budget!r})"


class ExponentialBackoffRetry(RetryStrategy):
    """``base_delay * exponential_base ** (n - 1)`` before retry ``n``: 0.5, 1, 2, 4, ..."""

    __slots__ = ()

    def backoff(self, attempt: int, error: BaseException) -> float:
        c = self.config
        return c.base_delay * _power(c.exponential_base, attempt - 1) if c.base_delay else 0.0


class LinearBackoffRetry(RetryStrategy):
    """``base_delay * n`` before retry ``n``: 0.5, 1, 1.5, 2, ..."""

    __slots__ = ()

    def backoff(self, attempt: int, error: BaseException) -> float:
        return self.config.base_delay * attempt


class FibonacciBackoffRetry(RetryStrategy):
    """``base_delay * F(n)`` before retry ``n``, F = 1, 1, 2, 3, 5, 8, ..."""

    __slots__ = ()

    def backoff(self, attempt: int, error: BaseException) -> float:
        c = self.config
        a, b = 1, 1
        for _ in range(attempt - 1):
            a, b = b, a + b
            if c.base_delay * a >= c.max_delay:
                break
        return c.base_delay * a


class AdaptiveRetry(RetryStrategy):
    """Exponential backoff that learns per error class, inside a retry budget.

    The error class is the HTTP status (``"429"``, ``"503"``) or the error type
    (``"APITimeoutError"``). For each class it keeps, from the retries that
    followed such an error:

    - a learned first delay, adjusted AIMD-style: a retry that succeeded
      shrinks it by ``decrease``, one that failed again grows it by
      ``increase`` (between ``base_delay / 10`` and ``max_delay``), so the wait
      settles where most first retries work; retry ``n`` waits
      ``learned * exponential_base ** (n - 1)``, jittered;
    - an EWMA (weight ``alpha``) of whether a retry succeeded. Below
      ``target_success`` the retries allowed shrink in proportion, to one probe
      (kept so that recovery is noticed): a 503 that retries never cure stops
      costing ``max_attempts`` calls each;
    - an EWMA of the retry number on which calls recovered (informational).

    ``budget`` (default ``RetryBudget()``) bounds retries to a share of the
    traffic, so they stop when most calls fail. All of it is deterministic
    given the rng and clock: the learning uses no randomness or time.
    """

    __slots__ = ("_learner",)

    def __init__(
        self,
        config: RetryConfig | None = None,
        *,
        budget: RetryBudget | None = None,
        alpha: float = 0.2,
        target_success: float = 0.5,
        decrease: float = 0.9,
        increase: float = 1.5,
    ) -> None:
        super().__init__(config, budget=budget if budget is not None else RetryBudget())
        c = self.config
        self._learner = _Learner(
            c.base_delay,
            min_delay=c.base_delay / 10.0,
            max_delay=c.max_delay,
            alpha=alpha,
            target_success=target_success,
            decrease=decrease,
            increase=increase,
        )

    def backoff(self, attempt: int, error: BaseException) -> float:
        first = self._learner.delay(_error_class(error))
        return first * _power(self.config.exponential_base, attempt - 1) if first else 0.0

    def max_attempts_for(self, error: BaseException) -> int:
        return 1 + self._learner.retries(_error_class(error), self.config.max_attempts - 1)

    def observe(
        self, attempt: int, previous: BaseException, waited: float, error: BaseException | None
    ) -> None:
        if error is None:
            self._learner.record(_error_class(previous), True, attempt - 1)
        elif self.should_retry(error):
            self._learner.record(_error_class(previous), False, attempt - 1)

    def classes(self) -> dict[str, ErrorClassStatistics]:
        """What was learned, per error class."""
        return self._learner.statistics()


def _error_class(exc: BaseException) -> str:
    if isinstance(exc, APIStatusError) and exc.status_code is not None:
        return str(exc.status_code)
    return type(exc).__name__
