"""The circuit breaker's state machine: plain, synchronous, driven by ``now``.

``BreakerStateMachine`` holds no clock and does no I/O: every method takes
the monotonic time, so the async shells in ``circuit_breaker`` stay thin and
the logic is tested with a fake clock and Hypothesis.

Admission hands out a *generation* number. Every state change starts a new
generation, and an outcome counts only for the generation its call was
admitted in: a call admitted while CLOSED that fails after the breaker
already opened changes nothing, and only calls admitted in HALF_OPEN are
probes.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["BreakerStateMachine", "CircuitBreakerConfig", "CircuitState"]


class CircuitState(enum.StrEnum):
    """CLOSED lets calls through, OPEN rejects them, HALF_OPEN lets a few probes through."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class CircuitBreakerConfig:
    """When a breaker opens, how long it stays open, and how it closes again.

    By default it opens the way resilience4j's breakers do: once at least
    ``minimum_calls`` calls ended within the last ``window`` seconds and at
    least ``failure_rate_threshold`` of them failed (or ``slow_call_rate_threshold``
    of them were slow). It stays OPEN for a short ``timeout``, then lets
    ``half_open_max_calls`` probes through: ``success_threshold`` good probes
    close it, a failed probe opens it again for twice as long (up to
    ``max_timeout``). ``failure_threshold`` adds the older rule, "N consecutive
    failures open it", for those who set it.

    Why: a count of consecutive failures cannot tell 5 errors out of 5 calls
    from 5 errors out of 5,000, so a busy, healthy service with a short burst
    of 502s was cut off for a full minute. A rate over a minimum number of
    calls opens only when most calls fail, and a short open period with
    probes brings traffic back seconds after the target recovers.
    """

    failure_threshold: int | None = None
    """Consecutive failures that open the breaker; None (default): only the rates decide."""
    success_threshold: int = 3
    """Successful probes in HALF_OPEN that close it again."""
    timeout: float = 5.0
    """Seconds the breaker stays OPEN after its first trip."""
    half_open_max_calls: int | None = None
    """Probes allowed in flight at once in HALF_OPEN; None: ``success_threshold``."""
    failure_rate_threshold: float | None = 0.5
    """Share of failed calls in the window that opens the breaker; None: off."""
    window: float = 60.0
    """Length in seconds of the sliding window behind the rates."""
    minimum_calls: int = 20
    """Calls the window must hold before a rate can open the breaker."""
    slow_call_threshold: float | None = None
    """A call lasting longer than this many seconds is slow; None: no slow-call detection."""
    slow_call_rate_threshold: float = 1.0
    """Share of slow calls in the window that opens the breaker."""
    backoff_multiplier: float = 2.0
    """Each trip without a recovery in between multiplies the open time by this."""
    max_timeout: float | None = None
    """The longest open time, however many trips; None: ten times ``timeout``, at least 60 s."""
    jitter: float = 0.1
    """Repeated trips add up to this fraction of the open time, drawn at random."""
    is_failure: Callable[[BaseException], bool] | None = None
    """Decides which exceptions count as failures; None: ``aio_llm``'s default."""

    def __post_init__(self) -> None:
        if self.failure_threshold is not None and self.failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1 (or None)")
        if self.success_threshold < 1:
            raise ValueError("success_threshold must be at least 1")
        if not self.timeout > 0:
            raise ValueError("timeout must be positive")
        if self.half_open_max_calls is not None and self.half_open_max_calls < 1:
            raise ValueError("half_open_max_calls must be at least 1")
        rate = self.failure_rate_threshold
        if rate is not None and not 0 < rate <= 1:
            raise ValueError("failure_rate_threshold must be in (0, 1]")
        if not 0 < self.slow_call_rate_threshold <= 1:
            raise ValueError("slow_call_rate_threshold must be in (0, 1]")
        if not self.window > 0:
            raise ValueError("window must be positive")
        if self.minimum_calls < 1:
            raise ValueError("minimum_calls must be at least 1")
        if self.slow_call_threshold is not None and not self.slow_call_threshold > 0:
            raise ValueError("slow_call_threshold must be positive")
        if self.backoff_multiplier < 1:
            raise ValueError("backoff_multiplier must be at least 1")
        if self.max_timeout is not None and self.max_timeout < self.timeout:
            raise ValueError("max_timeout must not be shorter than timeout")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be in [0, 1]")
        if self.failure_threshold is None and rate is None and self.slow_call_threshold is None:
            raise ValueError(
                "the breaker could never open: set failure_rate_threshold, "
                "failure_threshold or slow_call_threshold"
            )

    @property
    def longest_open(self) -> float:
        """The open time after many trips (``max_timeout`` or its default)."""
        if self.max_timeout is not None:
            return self.max_timeout
        return max(60.0, 10.0 * self.timeout)

    @property
    def probes(self) -> int:
        """Probes allowed in flight at once in HALF_OPEN."""
        return self.half_open_max_calls or self.success_threshold


_BUCKETS = 10


class _Window:
    """Calls, failures and slow calls over the last ``window`` seconds, in 10 buckets."""

    __slots__ = ("_calls", "_epoch", "_failures", "_slow", "_width", "calls", "failures", "slow")

    def __init__(self, window: float) -> None:
        self._width = window / _BUCKETS
        self._epoch = 0
        self._calls = [0] * _BUCKETS
        self._failures = [0] * _BUCKETS
        self._slow = [0] * _BUCKETS
        self.calls = self.failures = self.slow = 0

    def _roll(self, now: float) -> int:
        epoch = int(now // self._width)
        if epoch != self._epoch:
            for e in range(max(self._epoch + 1, epoch - _BUCKETS + 1), epoch + 1):
                i = e % _BUCKETS
                self.calls -= self._calls[i]
                self.failures -= self._failures[i]
                self.slow -= self._slow[i]
                self._calls[i] = self._failures[i] = self._slow[i] = 0
            self._epoch = epoch
        return epoch % _BUCKETS

    def add(self, now: float, failed: bool, slow: bool) -> None:
        i = self._roll(now)
        self._calls[i] += 1
        self.calls += 1
        if failed:
            self._failures[i] += 1
            self.failures += 1
        if slow:
            self._slow[i] += 1
            self.slow += 1

    def clear(self) -> None:
        for i in range(_BUCKETS):
            self._calls[i] = self._failures[i] = self._slow[i] = 0
        self.calls = self.failures = self.slow = 0


class BreakerStateMachine:
    """CLOSED → OPEN → HALF_OPEN → CLOSED, with every method taking ``now``.

    ``acquire(now)`` admits a call and returns its generation (None: rejected);
    the call then ends with exactly one of ``on_success``, ``on_failure`` or
    ``release`` (neither: cancelled, or an error that is not the target's fault).
    """

    __slots__ = (
        "_consecutive",
        "_generation",
        "_half_open_ok",
        "_probes",
        "_rng",
        "_state",
        "_window",
        "config",
        "on_change",
        "open_until",
        "trips",
    )

    def __init__(self, config: CircuitBreakerConfig, rng: random.Random | None = None) -> None:
        self.config = config
        self._rng = rng if rng is not None else random.Random()
        self._window = _Window(config.window)
        self._state = CircuitState.CLOSED
        self._generation = 0
        self._consecutive = 0
        self._probes = 0
        self._half_open_ok = 0
        self.open_until = 0.0
        self.trips = 0
        """Trips since the breaker last closed after a recovery."""
        self.on_change: Callable[[CircuitState, CircuitState], None] | None = None
        """Called with ``(old, new)`` after every change of state."""

    # -- queries ----------------------------------------------------------
    def state(self, now: float) -> CircuitState:
        """The state at ``now``; an OPEN breaker whose time is up turns HALF_OPEN."""
        if self._state is CircuitState.OPEN and now >= self.open_until:
            self._enter(CircuitState.HALF_OPEN)
        return self._state

    def allow(self, now: float) -> bool:
        """Whether ``acquire(now)`` would admit a call."""
        state = self.state(now)
        if state is CircuitState.CLOSED:
            return True
        return state is CircuitState.HALF_OPEN and self._probes < self.config.probes

    def retry_after(self, now: float) -> float:
        """Seconds until an OPEN breaker lets probes through (0 when not OPEN)."""
        if self.state(now) is CircuitState.OPEN:
            return self.open_until - now
        return 0.0

    @property
    def probes_in_flight(self) -> int:
        return self._probes

    @property
    def consecutive_failures(self) -> int:
        return self._consecutive

    @property
    def window_counts(self) -> tuple[int, int, int]:
        """``(calls, failures, slow calls)`` in the sliding window."""
        w = self._window
        return w.calls, w.failures, w.slow

    # -- admission and outcomes -------------------------------------------
    def acquire(self, now: float) -> int | None:
        """Admit a call and return its generation, or None when it must be rejected."""
        state = self._state
        if state is CircuitState.CLOSED:
            return self._generation
        if state is CircuitState.OPEN:
            if now < self.open_until:
                return None
            self._enter(CircuitState.HALF_OPEN)
        if self._probes >= self.config.probes:
            return None
        self._probes += 1
        return self._generation

    def on_success(self, generation: int, now: float, duration: float = 0.0) -> None:
        """A call admitted in ``generation`` succeeded after ``duration`` seconds."""
        if generation != self._generation:
            return
        slow_after = self.config.slow_call_threshold
        slow = slow_after is not None and duration > slow_after
        if self._state is CircuitState.HALF_OPEN:
            self._probes -= 1
            if slow:
                self._trip(now)
                return
            self._half_open_ok += 1
            if self._half_open_ok >= self.config.success_threshold:
                self.trips = 0
                self._enter(CircuitState.CLOSED)
            return
        if self._state is CircuitState.CLOSED:
            self._consecutive = 0
            self._window.add(now, False, slow)
            if slow:
                self._check_rates(now)

    def on_failure(
        self, generation: int, now: float, duration: float = 0.0, *, soft: bool = False
    ) -> None:
        """A call admitted in ``generation`` failed after ``duration`` seconds.

        A ``soft`` failure (a 429: the target is healthy but throttling) counts
        toward the failure rate of the window, so sustained throttling opens
        the breaker, but not toward the consecutive failures: a burst of 429s
        from one exhausted quota window must not open it for ``timeout``.
        """
        if generation != self._generation:
            return
        if self._state is CircuitState.HALF_OPEN:
            self._probes -= 1
            self._trip(now)
            return
        if self._state is CircuitState.CLOSED:
            slow_after = self.config.slow_call_threshold
            if soft:
                self._window.add(now, True, False)
                self._check_rates(now)
                return
            self._consecutive += 1
            self._window.add(now, True, slow_after is not None and duration > slow_after)
            threshold = self.config.failure_threshold
            if threshold is not None and self._consecutive >= threshold:
                self._trip(now)
            else:
                self._check_rates(now)

    def release(self, generation: int) -> None:
        """A call ended without a verdict (cancelled, or not the target's fault)."""
        if generation == self._generation and self._state is CircuitState.HALF_OPEN:
            self._probes -= 1

    # -- forced changes ---------------------------------------------------
    def force_open(self, now: float, until: float) -> bool:
        """Open until ``until`` (another process saw the target fail); True if it changed."""
        if self._state is CircuitState.OPEN and self.open_until >= until:
            return False
        if until <= now:
            return False
        self.open_until = until
        if self._state is not CircuitState.OPEN:
            self._enter(CircuitState.OPEN)
        return True

    def reset(self) -> None:
        """Back to CLOSED with every count cleared."""
        self.trips = 0
        self.open_until = 0.0
        self._enter(CircuitState.CLOSED)

    # -- internals --------------------------------------------------------
    def _check_rates(self, now: float) -> None:
        w = self._window
        cfg = self.config
        if w.calls < cfg.minimum_calls:
            return
        rate = cfg.failure_rate_threshold
        if rate is not None and w.failures >= rate * w.calls:
            self._trip(now)
        elif (
            cfg.slow_call_threshold is not None and w.slow >= cfg.slow_call_rate_threshold * w.calls
        ):
            self._trip(now)

    def _trip(self, now: float) -> None:
        cfg = self.config
        self.trips += 1
        duration = cfg.timeout * cfg.backoff_multiplier ** (self.trips - 1)
        if self.trips > 1 and cfg.jitter:
            duration *= 1.0 + cfg.jitter * self._rng.random()
        self.open_until = now + min(duration, cfg.longest_open)
        self._enter(CircuitState.OPEN)

    def _enter(self, state: CircuitState) -> None:
        old = self._state
        self._state = state
        self._generation += 1
        self._probes = 0
        self._half_open_ok = 0
        if old is not state and self.on_change is not None:
            self.on_change(old, state)  # before a close clears the window it reports
        if state is CircuitState.CLOSED:
            self._consecutive = 0
            self._window.clear()

    def __repr__(self) -> str:
        return (
            f"<BreakerStateMachine {self._state.value} failures={self._consecutive} "
            f"probes={self._probes} trips={self.trips}>"
        )
