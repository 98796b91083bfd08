"""The retry budget (a token bucket capping retries to a share of the traffic) and
``AdaptiveRetry``'s per-error-class memory.

Retries multiply load exactly when a provider is least able to take it. The
budget keeps that bounded: every first attempt deposits ``ratio`` tokens,
time adds ``min_retries_per_second`` tokens per second (so a quiet client
can still retry now and then), the bucket holds at most ``max_tokens``, and
every retry must withdraw one whole token. With no token there is no retry:
the caller gets the error at once. When most calls fail, retries therefore
fall to about ``ratio`` of the requests instead of ``max_attempts`` times
them (the scheme of gRPC retry throttling and of Envoy's retry budgets).

Invariant: the tokens never go negative, and the retries granted never
exceed ``initial + ratio * requests + min_retries_per_second * elapsed``.

The class is plain and synchronous: callers pass ``now`` (monotonic seconds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["ErrorClassStatistics", "RetryBudget", "RetryBudgetStatistics"]


@dataclass(frozen=True)
class RetryBudgetStatistics:
    """A snapshot of a ``RetryBudget``."""

    tokens: float
    max_tokens: float
    ratio: float
    min_retries_per_second: float
    requests: int
    """First attempts that deposited tokens."""
    retries: int
    """Retries granted (tokens withdrawn)."""
    refused: int
    """Retries refused because the bucket was empty."""


class RetryBudget:
    """Token bucket deciding whether one more retry is affordable.

    ``ratio``: tokens per first attempt (0.2: retries are at most ~20% of
    requests under sustained failure). ``min_retries_per_second``: tokens
    added per second whatever the traffic. ``max_tokens``: the bucket's size,
    so a long healthy period cannot bank an unbounded burst of retries.
    ``initial``: tokens at start (default: a full bucket).
    """

    __slots__ = (
        "_last",
        "_refused",
        "_requests",
        "_retries",
        "_tokens",
        "max_tokens",
        "min_retries_per_second",
        "ratio",
    )

    def __init__(
        self,
        ratio: float = 0.2,
        *,
        min_retries_per_second: float = 1.0,
        max_tokens: float = 10.0,
        initial: float | None = None,
    ) -> None:
        if not (math.isfinite(ratio) and ratio >= 0):
            raise ValueError("ratio must be a finite number >= 0")
        if not (math.isfinite(min_retries_per_second) and min_retries_per_second >= 0):
            raise ValueError("min_retries_per_second must be a finite number >= 0")
        if not (math.isfinite(max_tokens) and max_tokens >= 1):
            raise ValueError("max_tokens must be a finite number >= 1")
        start = max_tokens if initial is None else initial
        if not (math.isfinite(start) and 0 <= start <= max_tokens):
            raise ValueError("initial must be between 0 and max_tokens")
        self.ratio = ratio
        self.min_retries_per_second = min_retries_per_second
        self.max_tokens = max_tokens
        self._tokens = float(start)
        self._last: float | None = None
        self._requests = 0
        self._retries = 0
        self._refused = 0

    def _refill(self, now: float) -> None:
        last = self._last
        self._last = now
        if last is not None and now > last and self.min_retries_per_second:
            self._tokens = min(
                self.max_tokens, self._tokens + (now - last) * self.min_retries_per_second
            )

    def deposit(self, now: float) -> None:
        """Record a first attempt: add ``ratio`` tokens."""
        self._refill(now)
        self._requests += 1
        self._tokens = min(self.max_tokens, self._tokens + self.ratio)

    def has_capacity(self, now: float) -> bool:
        """Whether a retry would be granted now (withdraws nothing)."""
        self._refill(now)
        return self._tokens >= 1.0

    def try_withdraw(self, now: float) -> bool:
        """Take one token for a retry; ``False`` (and nothing taken) when short of one."""
        self._refill(now)
        if self._tokens < 1.0:
            self._refused += 1
            return False
        self._tokens -= 1.0
        self._retries += 1
        return True

    @property
    def tokens(self) -> float:
        return self._tokens

    def statistics(self) -> RetryBudgetStatistics:
        return RetryBudgetStatistics(
            tokens=self._tokens,
            max_tokens=self.max_tokens,
            ratio=self.ratio,
            min_retries_per_second=self.min_retries_per_second,
            requests=self._requests,
            retries=self._retries,
            refused=self._refused,
        )

    def __repr__(self) -> str:
        return (
            f"RetryBudget(tokens={self._tokens:.2f}/{self.max_tokens:g}, ratio={self.ratio:g}, "
            f"requests={self._requests}, retries={self._retries}, refused={self._refused})"
        )


@dataclass(frozen=True)
class ErrorClassStatistics:
    """What ``AdaptiveRetry`` learned about one error class."""

    delay: float
    """The learned wait before a first retry, in seconds."""
    success_rate: float
    """EWMA of the retries after this error that succeeded."""
    retries_to_recover: float
    """EWMA of the retry number on which calls recovered."""
    observations: int


class _ClassState:
    __slots__ = ("delay", "observations", "recover", "success")

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.success = 1.0
        self.recover = 1.0
        self.observations = 0


class _Learner:
    """``AdaptiveRetry``'s memory: per error class, a learned delay and success EWMA.

    Plain and synchronous, no randomness and no time: the same outcomes in the
    same order always teach the same thing.
    """

    __slots__ = (
        "_classes",
        "_initial",
        "alpha",
        "decrease",
        "increase",
        "max_delay",
        "min_delay",
        "target_success",
    )

    _MAX_CLASSES = 256

    def __init__(
        self,
        initial_delay: float,
        *,
        min_delay: float,
        max_delay: float,
        alpha: float,
        target_success: float,
        decrease: float,
        increase: float,
    ) -> None:
        if not 0 < alpha <= 1:
            raise ValueError("alpha must be in (0, 1]")
        if not 0 < target_success <= 1:
            raise ValueError("target_success must be in (0, 1]")
        if not 0 < decrease <= 1:
            raise ValueError("decrease must be in (0, 1]")
        if not (math.isfinite(increase) and increase >= 1):
            raise ValueError("increase must be a finite number >= 1")
        self._initial = initial_delay
        self.min_delay = min_delay
        self.max_delay = max_delay
        self.alpha = alpha
        self.target_success = target_success
        self.decrease = decrease
        self.increase = increase
        self._classes: dict[str, _ClassState] = {}

    def delay(self, key: str) -> float:
        state = self._classes.get(key)
        return self._initial if state is None else state.delay

    def retries(self, key: str, configured: int) -> int:
        """Retries allowed for ``key``: ``configured``, scaled down by a poor success rate."""
        state = self._classes.get(key)
        if state is None or state.success >= self.target_success or configured <= 1:
            return configured
        return max(1, math.ceil(configured * state.success / self.target_success))

    def record(self, key: str, succeeded: bool, retry_number: int) -> None:
        """A retry number ``retry_number`` made after a ``key`` error succeeded or not."""
        state = self._classes.get(key)
        if state is None:
            if len(self._classes) >= self._MAX_CLASSES:
                return
            state = self._classes[key] = _ClassState(self._initial)
        a = self.alpha
        state.observations += 1
        if succeeded:
            state.success += a * (1.0 - state.success)
            state.recover += a * (retry_number - state.recover)
            state.delay = max(self.min_delay, state.delay * self.decrease)
        else:
            state.success -= a * state.success
            state.delay = min(self.max_delay, state.delay * self.increase)

    def statistics(self) -> dict[str, ErrorClassStatistics]:
        return {
            key: ErrorClassStatistics(s.delay, s.success, s.recover, s.observations)
            for key, s in self._classes.items()
        }
