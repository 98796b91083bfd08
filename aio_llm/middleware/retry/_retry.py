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

import logging
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from ... import log as _log
from ..._waits import server_wait
from ...clock import SYSTEM_CLOCK, Clock
from ...pipeline import EmbedNext, Next
from ...types import ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse
from ..events import EVENT_RETRY, record_event
from ._budget import ErrorClassStatistics, RetryBudget, RetryBudgetStatistics
from ._strategies import (
    AdaptiveRetry,
    ExponentialBackoffRetry,
    FibonacciBackoffRetry,
    LinearBackoffRetry,
    RetryConfig,
    RetryStrategy,
    is_retryable,
    is_transient,
)

if TYPE_CHECKING:
    from ...config import ClientConfig

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


@dataclass(frozen=True)
class RetryStatistics:
    """Counters of a ``RetryExecutor`` (and of the ``Retry`` middleware)."""

    calls: int
    retries: int
    """Retry attempts made (first tries not counted): the ``app.ai`` client's ``retry.attempts``."""
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
            if _log.retry.isEnabledFor(logging.INFO):
                _log_retry(args, attempt, wait, previous)
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
                exc.add_note(f"aio_llm retry: gave up after {attempt} attempt(s)")
            elif attempt > 1:
                self._failed += 1
            return None
        retry_after = server_wait(getattr(exc, "retry_after", None))
        if retry_after is not None:
            if retry_after > self.retry_after_cap:
                self._ref_retry_after += 1
                self._failed += 1
                exc.add_note(
                    f"aio_llm retry: not retried: Retry-After {retry_after:g}s is over the "
                    f"cap of {self.retry_after_cap:g}s",
                )
                return None
            wait = retry_after
        deadline = anyio.current_effective_deadline()
        if deadline != math.inf:
            left = deadline - anyio.current_time()
            if wait >= left:
                self._ref_deadline += 1
                self._failed += 1
                exc.add_note(
                    f"aio_llm retry: not retried: the next attempt in {wait:.3g}s would start "
                    f"after the deadline (in {max(left, 0.0):.3g}s)",
                )
                return None
        budget = strategy.budget
        if budget is not None and not budget.try_withdraw(self._clock.now()):
            self._ref_budget += 1
            self._failed += 1
            exc.add_note("aio_llm retry: not retried: the retry budget is spent")
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
        """The ``app.ai`` client's ``retry.*`` metrics and a few more."""
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

    async def embed(self, request: EmbeddingRequest, next: EmbedNext) -> EmbeddingResponse:
        """Embedding requests are retried like chat requests, from the same budget."""
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


def _log_retry(args: tuple[Any, ...], attempt: int, wait: float, exc: BaseException) -> None:
    """INFO: the retry about to happen, in the words of the official SDKs."""
    request = args[0] if args else None
    model = getattr(request, "model", None)
    provider = getattr(request, "provider", None)
    target = f"{provider}:{model}" if provider else model
    _log.retry.info(
        "Retrying request%s in %.2f seconds (attempt %d) after %s: %s",
        f" to {target}" if target else "",
        wait,
        attempt + 1,
        type(exc).__name__,
        exc,
    )
