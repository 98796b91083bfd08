"""Retry: strategies, the retry loop (``RetryExecutor``) and the ``Retry`` middleware.

What is retried (``is_retryable``): connection errors and timeouts, and the
statuses 408, 409, 429, 5xx and 529. Never 400, 401, 403, 404 or 422, never
cancellation, never aio_llm's own refusals (open circuit, budget, local rate
limit). When the provider sent ``x-should-retry`` its word decides.

How long to wait: the strategy's backoff (capped at ``max_delay``) with full
jitter, a uniform draw in ``(0, backoff]``, so a crowd of clients spreads out.
A ``Retry-After``/``retry-after-ms`` from the provider is honoured exactly,
without jitter, up to ``retry_after_cap``; a longer one fails at once (better
than hanging for an hour). A wait that would end past the request's deadline
(the client's ``anyio.fail_after`` scope) is not started: the last error is
raised at once. The strategy's ``RetryBudget``, if any, must also grant a
token. Every give-up adds a note to the error saying why.

Streams need nothing special: for a streaming request ``next`` returns at
the first chunk, so only failures before it reach this loop; later ones
surface while the caller reads and are never retried.
"""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from ..clock import SYSTEM_CLOCK, Clock
from ..errors import APIConnectionError, APIError, APIStatusError, StreamError
from ..pipeline import Next
from ..types import ChatRequest, ChatResponse
from ._retry_budget import ErrorClassStatistics, RetryBudget, RetryBudgetStatistics, _Learner
from .tracing import EVENT_RETRY, record_event

if TYPE_CHECKING:
    from ..config import ClientConfig

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

T = TypeVar("T")
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


def _add_note(exc: BaseException, note: str) -> None:
    if sys.version_info >= (3, 11):
        exc.add_note(note)
    else:  # pragma: no cover - Python 3.10
        notes = getattr(exc, "__notes__", None)
        if isinstance(notes, list):
            notes.append(note)
        else:
            exc.__notes__ = [note]  # type: ignore[attr-defined]


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


@dataclass(frozen=True)
class RetryStatistics:
    """Counters of a ``RetryExecutor`` (and of the ``Retry`` middleware)."""

    calls: int
    retries: int
    """Retry attempts made (first tries not counted): the seed's ``retry.attempts``."""
    successful: int
    """Calls that succeeded after at least one retry."""
    failed: int
    """Calls that ended in a retryable error or after at least one retry."""
    total_delay: float
    exhausted: int
    """Gave up: the strategy allowed no more attempts."""
    refused_budget: int
    refused_deadline: int
    refused_retry_after: int


class RetryExecutor:
    """Runs ``await fn(*args)`` and retries it as ``strategy`` says.

    ``await RetryExecutor(ExponentialBackoffRetry(RetryConfig(max_attempts=5))).execute(fn, a)``
    """

    __slots__ = (
        "_calls",
        "_clock",
        "_delay",
        "_exhausted",
        "_failed",
        "_ref_budget",
        "_ref_deadline",
        "_ref_retry_after",
        "_retries",
        "_rng",
        "_successful",
        "retry_after_cap",
        "strategy",
    )

    def __init__(
        self,
        strategy: RetryStrategy | None = None,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        retry_after_cap: float = 60.0,
    ) -> None:
        if not retry_after_cap >= 0:
            raise ValueError("retry_after_cap must be >= 0")
        self.strategy = strategy if strategy is not None else AdaptiveRetry()
        self._clock = clock if clock is not None else SYSTEM_CLOCK
        self._rng = rng if rng is not None else random.Random()
        self.retry_after_cap = retry_after_cap
        self._calls = self._retries = self._successful = self._failed = self._exhausted = 0
        self._ref_budget = self._ref_deadline = self._ref_retry_after = 0
        self._delay = 0.0

    async def execute(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await fn(*args)``, retried; raises the last error when retrying stops."""
        strategy = self.strategy
        if strategy.budget is not None:
            strategy.budget.deposit(self._clock.now())
        self._calls += 1
        attempt = 1
        previous: BaseException | None = None
        waited = 0.0
        while True:
            try:
                result = await fn(*args)
            except Exception as exc:
                if previous is not None:
                    strategy.observe(attempt, previous, waited, exc)
                wait = self._plan(attempt, exc)
                if wait is None:
                    raise
                previous = exc
            else:
                if previous is not None:
                    strategy.observe(attempt, previous, waited, None)
                    self._successful += 1
                return result
            self._retries += 1
            self._delay += wait
            waited = wait
            record_event(
                EVENT_RETRY,
                {"error.type": type(previous).__qualname__},
                attempt=attempt + 1,
                delay_s=wait,
            )
            await self._clock.sleep(wait)
            attempt += 1

    def _plan(self, attempt: int, exc: Exception) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` (then noted on ``exc``)."""
        strategy = self.strategy
        wait = strategy.delay(attempt, exc, self._rng)
        if wait is None:
            if strategy.should_retry(exc):
                self._exhausted += 1
                self._failed += 1
                _add_note(exc, f"aio_llm retry: gave up after {attempt} attempt(s)")
            elif attempt > 1:
                self._failed += 1
            return None
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, (int, float)):
            if retry_after > self.retry_after_cap:
                self._ref_retry_after += 1
                self._failed += 1
                _add_note(
                    exc,
                    f"aio_llm retry: not retried: Retry-After {retry_after:g}s is over the "
                    f"cap of {self.retry_after_cap:g}s",
                )
                return None
            wait = float(retry_after)
        deadline = anyio.current_effective_deadline()
        if deadline != math.inf:
            left = deadline - anyio.current_time()
            if wait >= left:
                self._ref_deadline += 1
                self._failed += 1
                _add_note(
                    exc,
                    f"aio_llm retry: not retried: the next attempt in {wait:.3g}s would start "
                    f"after the deadline (in {max(left, 0.0):.3g}s)",
                )
                return None
        budget = strategy.budget
        if budget is not None and not budget.try_withdraw(self._clock.now()):
            self._ref_budget += 1
            self._failed += 1
            _add_note(exc, "aio_llm retry: not retried: the retry budget is spent")
            return None
        return wait

    def statistics(self) -> RetryStatistics:
        return RetryStatistics(
            calls=self._calls,
            retries=self._retries,
            successful=self._successful,
            failed=self._failed,
            total_delay=self._delay,
            exhausted=self._exhausted,
            refused_budget=self._ref_budget,
            refused_deadline=self._ref_deadline,
            refused_retry_after=self._ref_retry_after,
        )

    def metrics(self) -> dict[str, object]:
        """The seed's ``retry.*`` metrics and a few more."""
        out: dict[str, object] = {
            "retry.attempts": self._retries,
            "retry.successful": self._successful,
            "retry.failed": self._failed,
            "retry.delay": self._delay,
            "retry.calls": self._calls,
            "retry.exhausted": self._exhausted,
            "retry.refused.budget": self._ref_budget,
            "retry.refused.deadline": self._ref_deadline,
            "retry.refused.retry_after": self._ref_retry_after,
        }
        budget = self.strategy.budget
        if budget is not None:
            out["retry.budget.tokens"] = budget.tokens
        return out

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {type(self.strategy).__name__} calls={self._calls} "
            f"retries={self._retries} successful={self._successful} failed={self._failed}>"
        )


class Retry(RetryExecutor):
    """Middleware: retries the rest of the chain as ``strategy`` says (see the module doc).

    Sits inside Fallback, so each fallback target gets its own retries, and
    outside CircuitBreaker and RateLimit, so every attempt is counted and
    throttled. ``Retry.from_config(config)`` builds it from ``ClientConfig``.
    """

    __slots__ = ()

    async def __call__(self, request: ChatRequest, next: Next) -> ChatResponse:
        return await self.execute(next, request)

    @classmethod
    def from_config(
        cls, config: ClientConfig, *, clock: Clock | None = None, rng: random.Random | None = None
    ) -> Retry:
        """``max_attempts = max_retries + 1``, ``retry_*`` fields, ``retry_strategy``."""
        retry_config = RetryConfig(
            max_attempts=config.max_retries + 1,
            base_delay=config.retry_base_delay,
            max_delay=max(config.retry_max_delay, config.retry_base_delay),
            exponential_base=config.retry_backoff_base,
        )
        kinds: dict[str, type[RetryStrategy]] = {
            "exponential": ExponentialBackoffRetry,
            "linear": LinearBackoffRetry,
            "fibonacci": FibonacciBackoffRetry,
            "adaptive": AdaptiveRetry,
        }
        strategy = kinds[config.retry_strategy](retry_config)
        return cls(strategy, clock=clock, rng=rng, retry_after_cap=config.retry_after_cap)
