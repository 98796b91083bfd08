"""Circuit breaking: stop calling a target that keeps failing, then probe it back.

``CircuitBreaker`` wraps any callable (``await breaker.call(fn, *args)``,
``fn`` sync or async); ``CircuitBreakerMiddleware`` keeps one breaker per
(provider, model), created on first use. Both are thin async shells around
``BreakerStateMachine`` (see ``_circuit_state``), which decides from
consecutive failures, a failure-rate window with a minimum number of calls,
and slow calls. An OPEN breaker raises ``CircuitOpenError`` at once, with
``retry_after``, and nothing reaches the network.

What counts as a failure (``is_circuit_failure``): 408 and 5xx answers,
timeouts, connection errors and broken or unreadable answers. A 400, 401,
403, 404 or 422 is the caller's problem, aio_llm's own refusals (budget,
local rate limit) are not the target's fault, and a cancelled call gives no
verdict: such calls release their HALF_OPEN probe slot without counting.
Neither does a 429: the target is healthy but says "slower", which RateLimit
(inside the breaker) answers by holding for ``Retry-After`` and cutting the
rate; opening the circuit would turn a few seconds of throttling into a
whole ``timeout`` of refusals.
A streaming call is judged when its stream ends (``on_close``): success if
it completed, failure if it broke with a failure-class error, no verdict if
the caller closed it early.

With ``shared`` (a Redis URL, ``ClientConfig.circuit_backend``) a breaker
that trips writes a key that expires when it would let probes through, and
every process reads it (at most once a second per target) and treats the
target as OPEN too.
"""

from __future__ import annotations

import inspect
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

import anyio

from ... import log as _log
from ...clock import SYSTEM_CLOCK, Clock
from ...errors import APIError, APIStatusError, CircuitOpenError, LLMError, RateLimitError
from ...pipeline import EmbedNext, Next
from ...types import ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse
from ..events import EVENT_CIRCUIT_REJECTED, record_event
from ._state import BreakerStateMachine, CircuitBreakerConfig, CircuitState

if TYPE_CHECKING:
    from ...types import ChunkStream
    from .._redis_limits import RedisCircuitState

__all__ = [
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitBreakerMiddleware",
    "CircuitBreakerStatistics",
    "CircuitState",
    "is_circuit_failure",
]

T = TypeVar("T")
R = TypeVar("R", ChatRequest, EmbeddingRequest)
P = ParamSpec("P")


def is_circuit_failure(exc: BaseException) -> bool:
    """The default verdict: does ``exc`` say the target is unhealthy?"""
    if isinstance(exc, APIStatusError):
        status = exc.status_code or 0
        # a 429 counts too, as a soft failure (see BreakerStateMachine.on_failure)
        return status in (408, 429) or status >= 500
    if isinstance(exc, APIError):
        return True  # connection errors, timeouts, broken or unreadable answers
    if isinstance(exc, LLMError):
        return False  # aio_llm's own refusals and the caller's invalid input
    return isinstance(exc, Exception)


@dataclass(frozen=True, slots=True)
class CircuitBreakerStatistics:
    """A snapshot of one breaker."""

    name: str
    state: CircuitState
    total: int
    successful: int
    failed: int
    rejected: int
    ignored: int
    consecutive_failures: int
    window_calls: int
    window_failures: int
    window_slow_calls: int
    probes_in_flight: int
    trips: int
    retry_after: float


class CircuitBreaker:
    """One circuit: ``await breaker.call(fn, *args)`` or use it as middleware state."""

    __slots__ = (
        "_classify",
        "_clock",
        "_machine",
        "_shared_checked",
        "failed",
        "ignored",
        "name",
        "rejected",
        "successful",
        "total",
    )

    def __init__(
        self,
        name: str = "default",
        config: CircuitBreakerConfig | None = None,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        config = config if config is not None else CircuitBreakerConfig()
        self.name = name
        self._machine = BreakerStateMachine(config, rng)
        self._clock = clock if clock is not None else SYSTEM_CLOCK
        self._classify = config.is_failure or is_circuit_failure
        self._machine.on_change = self._log_change
        self._shared_checked = float("-inf")
        self.total = self.successful = self.failed = self.rejected = self.ignored = 0

    @property
    def config(self) -> CircuitBreakerConfig:
        return self._machine.config

    @property
    def state(self) -> CircuitState:
        """The current state (an OPEN breaker whose time is up reads HALF_OPEN)."""
        return self._machine.state(self._clock.now())

    @property
    def machine(self) -> BreakerStateMachine:
        """The synchronous state machine behind this breaker."""
        return self._machine

    def allow(self) -> bool:
        """Whether a call made now would be let through."""
        return self._machine.allow(self._clock.now())

    def reset(self) -> None:
        """Close the breaker and forget every failure (statistics stay)."""
        self._machine.reset()

    @overload
    async def call(self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T: ...

    @overload
    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T: ...

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` through the breaker; raises ``CircuitOpenError`` if OPEN.

        ``fn`` may be a coroutine function or a plain function.
        """
        started = self._clock.now()
        generation = self._admit(started)
        try:
            result = fn(*args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
        except BaseException as exc:
            self._record_error(generation, exc, started)
            raise
        self._record_success(generation, started)
        return result

    # -- the pieces the middleware uses -----------------------------------
    def _admit(self, now: float) -> int:
        self.total += 1
        generation = self._machine.acquire(now)
        if generation is None:
            self.rejected += 1
            retry_after = self._machine.retry_after(now)
            record_event(EVENT_CIRCUIT_REJECTED, circuit=self.name, retry_after_s=retry_after)
            raise CircuitOpenError(
                f"the circuit for {self.name} is open; retry in {retry_after:.1f}s",
                name=self.name,
                retry_after=retry_after,
            )
        return generation

    def _record_success(self, generation: int, started: float) -> None:
        now = self._clock.now()
        self.successful += 1
        self._machine.on_success(generation, now, now - started)

    def _record_error(self, generation: int, exc: BaseException, started: float) -> bool:
        """Record how a call failed; True when this tripped the breaker OPEN."""
        if isinstance(exc, anyio.get_cancelled_exc_class()) or not self._classify(exc):
            self.ignored += 1
            self._machine.release(generation)
            return False
        now = self._clock.now()
        self.failed += 1
        before = self._machine.trips
        soft = isinstance(exc, RateLimitError)
        self._machine.on_failure(generation, now, now - started, soft=soft)
        return self._machine.trips != before

    def _log_change(self, old: CircuitState, new: CircuitState) -> None:
        """INFO: every transition, with what caused it."""
        logger = _log.circuit
        if not logger.isEnabledFor(logging.INFO):
            return
        m = self._machine
        if new is CircuitState.OPEN:
            calls, failures, _ = m.window_counts
            logger.info(
                "Circuit %s: %s -> open for %.1f s (%d consecutive failures, %d of %d calls "
                "failed in the window)",
                self.name,
                old.value,
                max(m.open_until - self._clock.now(), 0.0),
                m.consecutive_failures,
                failures,
                calls,
            )
        else:
            logger.info("Circuit %s: %s -> %s", self.name, old.value, new.value)

    def statistics(self) -> CircuitBreakerStatistics:
        now = self._clock.now()
        m = self._machine
        calls, failures, slow = m.window_counts
        return CircuitBreakerStatistics(
            name=self.name,
            state=m.state(now),
            total=self.total,
            successful=self.successful,
            failed=self.failed,
            rejected=self.rejected,
            ignored=self.ignored,
            consecutive_failures=m.consecutive_failures,
            window_calls=calls,
            window_failures=failures,
            window_slow_calls=slow,
            probes_in_flight=m.probes_in_flight,
            trips=m.trips,
            retry_after=m.retry_after(now),
        )

    def metrics(self) -> dict[str, object]:
        """The ``app.ai`` client's ``circuit.*`` metrics for this breaker."""
        return {
            "circuit.state": self.state.value,
            "circuit.requests.total": self.total,
            "circuit.requests.successful": self.successful,
            "circuit.requests.failed": self.failed,
            "circuit.requests.rejected": self.rejected,
        }

    def __repr__(self) -> str:
        return (
            f"<CircuitBreaker {self.name!r} {self.state.value} "
            f"failures={self._machine.consecutive_failures} rejected={self.rejected}>"
        )


class _StreamVerdict:
    """Judges a streaming call when its stream ends."""

    __slots__ = ("_breaker", "_first_chunk", "_generation", "_key", "_owner", "_started")

    def __init__(
        self,
        owner: CircuitBreakerMiddleware,
        key: str,
        breaker: CircuitBreaker,
        generation: int,
        started: float,
    ) -> None:
        self._owner = owner
        self._key = key
        self._breaker = breaker
        self._generation = generation
        self._started = started
        self._first_chunk = breaker._clock.now() - started
        """Slow-call detection judges a stream by its time to first chunk."""

    async def __call__(self, stream: ChunkStream) -> None:
        b = self._breaker
        if stream.completed:
            b.successful += 1
            b._machine.on_success(self._generation, b._clock.now(), self._first_chunk)
        elif stream.error is not None:
            if b._record_error(self._generation, stream.error, self._started):
                await self._owner._publish(self._key, b)
        else:
            b.ignored += 1
            b._machine.release(self._generation)


class CircuitBreakerMiddleware:
    """One ``CircuitBreaker`` per (provider, model), created on first use.

    ``default_provider`` names the provider for requests whose ``provider``
    is None. ``shared`` is a Redis URL (or a ``RedisCircuitState``) through
    which processes share OPEN states; call ``aclose()`` when done with it.
    """

    __slots__ = ("_breakers", "_clock", "_config", "_default_provider", "_rng", "_shared")

    def __init__(
        self,
        config: CircuitBreakerConfig | None = None,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        shared: str | RedisCircuitState | None = None,
        default_provider: str | None = None,
    ) -> None:
        self._config = config if config is not None else CircuitBreakerConfig()
        self._clock = clock if clock is not None else SYSTEM_CLOCK
        self._rng = rng if rng is not None else random.Random()
        self._default_provider = default_provider or ""
        self._breakers: dict[tuple[str, str], CircuitBreaker] = {}
        if isinstance(shared, str):
            from .._redis_limits import RedisCircuitState

            shared = RedisCircuitState(shared, clock=self._clock)
        self._shared = shared

    def breaker(self, provider: str | None, model: str) -> CircuitBreaker:
        """The breaker for (``provider``, ``model``), created if needed."""
        key = (provider or self._default_provider, model)
        b = self._breakers.get(key)
        if b is None:
            b = self._breakers[key] = CircuitBreaker(
                f"{key[0]}:{model}" if key[0] else model,
                self._config,
                clock=self._clock,
                rng=random.Random(self._rng.random()),
            )
        return b

    async def __call__(self, request: ChatRequest, next: Next) -> ChatResponse:
        b = self._breakers.get((request.provider or self._default_provider, request.model))
        if b is None:
            b = self.breaker(request.provider, request.model)
        response, generation, started = await self._through(b, next, request)
        stream = response.stream
        if stream is None:
            b._record_success(generation, started)
        else:
            await stream.on_close(_StreamVerdict(self, b.name, b, generation, started))
        return response

    async def embed(self, request: EmbeddingRequest, next: EmbedNext) -> EmbeddingResponse:
        """Embedding requests count toward (and are refused by) the same per-model breaker."""
        b = self.breaker(request.provider, request.model)
        response, generation, started = await self._through(b, next, request)
        b._record_success(generation, started)
        return response

    async def _through(
        self, b: CircuitBreaker, call: Callable[[R], Awaitable[T]], request: R
    ) -> tuple[T, int, float]:
        """``call(request)`` if ``b`` lets it through; a failure is recorded and raised."""
        started = self._clock.now()
        generation = await self._admit(b, started)
        try:
            return await call(request), generation, started
        except BaseException as exc:
            if b._record_error(generation, exc, started) and self._shared is not None:
                await self._publish(b.name, b)
            raise

    async def _admit(self, b: CircuitBreaker, now: float) -> int:
        """Let a call through ``b`` or raise ``CircuitOpenError``; its generation."""
        if self._shared is not None:
            await self._check_shared(b, now)
        return b._admit(now)

    async def _check_shared(self, b: CircuitBreaker, now: float) -> None:
        shared = self._shared
        if shared is None or now - b._shared_checked < shared.refresh_interval:
            return
        b._shared_checked = now
        remaining = await shared.open_remaining(b.name)
        if remaining is not None and remaining > 0:
            b._machine.force_open(now, now + remaining)

    async def _publish(self, key: str, b: CircuitBreaker) -> None:
        if self._shared is None:
            return
        with anyio.CancelScope(shield=True):
            await self._shared.publish_open(key, b._machine.retry_after(self._clock.now()))

    def statistics(self) -> dict[str, CircuitBreakerStatistics]:
        """Every breaker's snapshot, keyed by its name (``provider:model``)."""
        return {b.name: b.statistics() for b in self._breakers.values()}

    def metrics(self) -> dict[str, object]:
        """``circuit.state`` per target and the ``circuit.requests.*`` sums."""
        bs = list(self._breakers.values())
        return {
            "circuit.state": {b.name: b.state.value for b in bs},
            "circuit.requests.total": sum(b.total for b in bs),
            "circuit.requests.successful": sum(b.successful for b in bs),
            "circuit.requests.failed": sum(b.failed for b in bs),
            "circuit.requests.rejected": sum(b.rejected for b in bs),
        }

    async def __aenter__(self) -> CircuitBreakerMiddleware:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the shared backend's connections, if any."""
        if self._shared is not None:
            await self._shared.aclose()

    def __repr__(self) -> str:
        states = ", ".join(f"{b.name}={b.state.value}" for b in self._breakers.values())
        return f"<CircuitBreakerMiddleware {states or 'no targets yet'}>"
