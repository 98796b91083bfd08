"""CircuitBreaker: state machine, standalone breaker, per-target middleware, streams."""

from __future__ import annotations

import random
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from aio_llm.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    BudgetExceededError,
    CircuitBreakerOpenError,
    CircuitOpenError,
    RateLimitExceededError,
    ServerError,
    StreamError,
    error_for_status,
)
from aio_llm.middleware import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitBreakerMiddleware,
    CircuitState,
)
from aio_llm.middleware.circuit_breaker._breaker import is_circuit_failure
from aio_llm.middleware.circuit_breaker._state import BreakerStateMachine
from aio_llm.testing.clock import FakeClock
from aio_llm.types import ChatChunk, ChatRequest, ChatResponse, ChunkStream, Usage

# the seed's explicit settings: five consecutive failures open it for 60 s
NO_RATE = CircuitBreakerConfig(
    failure_threshold=5, success_threshold=2, timeout=60.0, failure_rate_threshold=None
)


def request(model: str = "m", provider: str | None = None, *, stream: bool = False) -> ChatRequest:
    return ChatRequest(
        model=model, messages=[{"role": "user", "content": "hi"}], provider=provider, stream=stream
    )


def ok_response(text: str = "ok") -> ChatResponse:
    return ChatResponse.model_construct(content=text, usage=Usage(total_tokens=3))


class Upstream:
    """A fake ``next``: answers, or raises the queued exceptions first."""

    def __init__(self, clock: FakeClock | None = None, delay: float = 0.0) -> None:
        self.calls = 0
        self.errors: list[BaseException] = []
        self.clock = clock
        self.delay = delay

    async def __call__(self, req: ChatRequest) -> ChatResponse:
        self.calls += 1
        if self.clock is not None and self.delay:
            self.clock.advance(self.delay)
        if self.errors:
            raise self.errors.pop(0)
        return ok_response()


async def fail(exc: BaseException) -> None:
    raise exc


# -- config and classification ---------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"failure_threshold": 0},
        {"success_threshold": 0},
        {"timeout": 0},
        {"half_open_max_calls": 0},
        {"failure_rate_threshold": 1.5},
        {"minimum_calls": 0},
        {"window": -1},
        {"slow_call_threshold": 0},
        {"backoff_multiplier": 0.5},
        {"max_timeout": 1, "timeout": 10},
        {"jitter": 2},
    ],
)
def test_config_rejects_bad_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        CircuitBreakerConfig(**kwargs)


def test_defaults_are_rate_based() -> None:
    c = CircuitBreakerConfig()
    assert (c.failure_threshold, c.failure_rate_threshold, c.minimum_calls) == (None, 0.5, 20)
    assert (c.timeout, c.longest_open, c.success_threshold, c.probes) == (5.0, 60.0, 3, 3)
    seed = CircuitBreakerConfig(failure_threshold=5, success_threshold=2, timeout=60.0)
    assert (seed.failure_threshold, seed.probes, seed.longest_open) == (5, 2, 600.0)
    assert CircuitBreakerOpenError is CircuitOpenError


@pytest.mark.parametrize("status", [408, 500, 502, 503, 529])
def test_server_side_statuses_are_failures(status: int) -> None:
    assert is_circuit_failure(error_for_status(status, "x"))


def test_429_is_a_soft_failure() -> None:
    """429s count toward the failure rate, never toward the consecutive count."""
    assert is_circuit_failure(error_for_status(429, "x", headers={"retry-after": "1"}))
    clock = FakeClock()
    cfg = CircuitBreakerConfig(failure_threshold=3, minimum_calls=10, failure_rate_threshold=0.5)
    breaker = CircuitBreaker("t", cfg, clock=clock)
    throttled = error_for_status(429, "slow down")

    async def fail() -> None:
        raise throttled

    async def run() -> None:
        for _ in range(8):  # a burst from one exhausted quota: stays closed
            with pytest.raises(type(throttled)):
                await breaker.call(fail)
        assert breaker.state is CircuitState.CLOSED
        for _ in range(2):  # sustained throttling: the failure rate opens it
            with pytest.raises(type(throttled)):
                await breaker.call(fail)
        assert breaker.state is CircuitState.OPEN

    anyio.run(run)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_caller_side_statuses_are_not_failures(status: int) -> None:
    assert not is_circuit_failure(error_for_status(status, "x"))


def test_network_errors_count_and_local_refusals_do_not() -> None:
    assert is_circuit_failure(APIConnectionError("reset"))
    assert is_circuit_failure(APITimeoutError("slow"))
    assert is_circuit_failure(StreamError("broke"))
    assert is_circuit_failure(ConnectionResetError())
    assert is_circuit_failure(RuntimeError("a wrapped service failed"))
    assert not is_circuit_failure(BudgetExceededError("no money"))
    assert not is_circuit_failure(RateLimitExceededError("local"))
    assert not is_circuit_failure(CircuitOpenError("inner"))


# -- the standalone breaker ---------------------------------------------------


@pytest.mark.anyio
async def test_opens_after_consecutive_failures_and_rejects_without_calling() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("svc", NO_RATE, clock=clock)
    for _ in range(4):
        with pytest.raises(APIConnectionError):
            await breaker.call(fail, APIConnectionError("down"))
    assert breaker.state is CircuitState.CLOSED
    with pytest.raises(APIConnectionError):
        await breaker.call(fail, APIConnectionError("down"))
    assert breaker.state is CircuitState.OPEN

    called = []
    clock.advance(10)
    with pytest.raises(CircuitOpenError) as info:
        await breaker.call(called.append, 1)
    assert called == []
    assert info.value.retry_after == pytest.approx(50.0)
    assert info.value.name == "svc"
    assert breaker.metrics() == {
        "circuit.state": "open",
        "circuit.requests.total": 6,
        "circuit.requests.successful": 0,
        "circuit.requests.failed": 5,
        "circuit.requests.rejected": 1,
    }


@pytest.mark.anyio
async def test_success_resets_the_consecutive_count() -> None:
    breaker = CircuitBreaker("svc", NO_RATE, clock=FakeClock())
    for _ in range(3):
        for _ in range(4):
            with pytest.raises(ValueError):
                await breaker.call(fail, ValueError("boom"))
        assert await breaker.call(lambda: "fine") == "fine"
    assert breaker.state is CircuitState.CLOSED
    assert breaker.statistics().consecutive_failures == 0


@pytest.mark.anyio
async def test_half_open_probes_close_the_breaker() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        "svc", CircuitBreakerConfig(failure_threshold=1, success_threshold=2), clock=clock
    )
    with pytest.raises(ValueError):
        await breaker.call(fail, ValueError())
    clock.advance(60)
    assert breaker.state is CircuitState.HALF_OPEN

    async def ok(x: int, *, y: int) -> int:
        return x + y

    assert await breaker.call(ok, 1, y=2) == 3
    assert breaker.state is CircuitState.HALF_OPEN
    assert await breaker.call(ok, 2, y=2) == 4
    assert breaker.state is CircuitState.CLOSED
    assert breaker.statistics().trips == 0


@pytest.mark.anyio
async def test_failed_probe_reopens_for_longer_with_jitter() -> None:
    clock = FakeClock()
    config = CircuitBreakerConfig(failure_threshold=1, timeout=10, jitter=0.2, max_timeout=35)
    breaker = CircuitBreaker("svc", config, clock=clock, rng=random.Random(7))
    with pytest.raises(ValueError):
        await breaker.call(fail, ValueError())
    assert breaker.statistics().retry_after == 10.0  # the first trip: exactly `timeout`
    expected = [(20.0, 24.0), (35.0, 35.0), (35.0, 35.0)]  # doubled, jittered, capped
    for low, high in expected:
        clock.advance(breaker.statistics().retry_after)
        with pytest.raises(ValueError):
            await breaker.call(fail, ValueError())
        assert breaker.state is CircuitState.OPEN
        assert low <= breaker.statistics().retry_after <= high


@pytest.mark.anyio
async def test_failure_rate_opens_only_past_the_minimum_throughput() -> None:
    clock = FakeClock()
    config = CircuitBreakerConfig(failure_threshold=100, minimum_calls=10, window=10)
    breaker = CircuitBreaker("svc", config, clock=clock)
    for i in range(9):
        if i % 2:
            await breaker.call(lambda: None)
        else:
            with pytest.raises(ValueError):
                await breaker.call(fail, ValueError())
    assert breaker.state is CircuitState.CLOSED  # 5/9 failed, but only 9 calls
    with pytest.raises(ValueError):
        await breaker.call(fail, ValueError())
    assert breaker.state is CircuitState.OPEN  # 6/10 >= 50%


@pytest.mark.anyio
async def test_failures_leave_the_window_as_time_passes() -> None:
    clock = FakeClock()
    config = CircuitBreakerConfig(failure_threshold=100, minimum_calls=4, window=10)
    breaker = CircuitBreaker("svc", config, clock=clock)
    for _ in range(3):
        with pytest.raises(ValueError):
            await breaker.call(fail, ValueError())
    clock.advance(11)
    assert breaker.machine.window_counts[0] == 3  # not rolled until the next call
    for _ in range(3):
        await breaker.call(lambda: None)
    with pytest.raises(ValueError):
        await breaker.call(fail, ValueError())
    assert breaker.machine.window_counts == (4, 1, 0)
    assert breaker.state is CircuitState.CLOSED


@pytest.mark.anyio
async def test_slow_calls_open_the_breaker() -> None:
    clock = FakeClock()
    config = CircuitBreakerConfig(
        slow_call_threshold=2.0, slow_call_rate_threshold=0.8, minimum_calls=5
    )
    breaker = CircuitBreaker("svc", config, clock=clock)

    async def slow() -> str:
        await clock.sleep(3.0)
        return "late"

    for _ in range(4):
        assert await breaker.call(slow) == "late"
    assert breaker.state is CircuitState.CLOSED
    assert await breaker.call(slow) == "late"
    assert breaker.state is CircuitState.OPEN
    assert breaker.statistics().window_slow_calls == 5


@pytest.mark.anyio
async def test_slow_probe_counts_as_a_failed_probe() -> None:
    clock = FakeClock()
    config = CircuitBreakerConfig(failure_threshold=1, slow_call_threshold=1.0)
    breaker = CircuitBreaker("svc", config, clock=clock)
    with pytest.raises(ValueError):
        await breaker.call(fail, ValueError())
    clock.advance(60)

    async def slow() -> None:
        await clock.sleep(2.0)

    await breaker.call(slow)
    assert breaker.state is CircuitState.OPEN


@pytest.mark.anyio
async def test_caller_errors_do_not_open_the_breaker() -> None:
    breaker = CircuitBreaker("svc", CircuitBreakerConfig(failure_threshold=1), clock=FakeClock())
    for status in (400, 401, 403, 404, 422):
        with pytest.raises(APIStatusError) as info:
            await breaker.call(fail, error_for_status(status, "your fault"))
        assert info.value.status_code == status
    assert breaker.state is CircuitState.CLOSED
    assert breaker.statistics().ignored == 5


@pytest.mark.anyio
async def test_custom_classifier() -> None:
    config = CircuitBreakerConfig(failure_threshold=1, is_failure=lambda e: "bad" in str(e))
    breaker = CircuitBreaker("svc", config, clock=FakeClock())
    with pytest.raises(ValueError):
        await breaker.call(fail, ValueError("fine"))
    assert breaker.state is CircuitState.CLOSED
    with pytest.raises(ValueError):
        await breaker.call(fail, ValueError("bad"))
    assert breaker.state is CircuitState.OPEN


@pytest.mark.anyio
async def test_cancelled_probe_releases_its_slot() -> None:
    clock = FakeClock()
    config = CircuitBreakerConfig(failure_threshold=1, half_open_max_calls=1)
    breaker = CircuitBreaker("svc", config, clock=clock)
    with pytest.raises(ValueError):
        await breaker.call(fail, ValueError())
    clock.advance(60)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await breaker.call(anyio.sleep, 1)
    assert breaker.machine.probes_in_flight == 0
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.allow()
    assert breaker.statistics().ignored == 1


@pytest.mark.anyio
async def test_reset_closes_and_repr_shows_state() -> None:
    breaker = CircuitBreaker("svc", CircuitBreakerConfig(failure_threshold=1), clock=FakeClock())
    with pytest.raises(ValueError):
        await breaker.call(fail, ValueError())
    assert "open" in repr(breaker)
    breaker.reset()
    assert breaker.state is CircuitState.CLOSED
    assert breaker.allow()
    assert "closed" in repr(breaker)


def test_late_outcome_of_an_older_generation_is_ignored() -> None:
    m = BreakerStateMachine(CircuitBreakerConfig(failure_threshold=1))
    early = m.acquire(0.0)
    trip = m.acquire(0.0)
    assert early is not None and trip is not None
    m.on_failure(trip, 1.0)
    assert m.state(1.0) is CircuitState.OPEN
    m.on_success(early, 61.0)  # admitted while CLOSED, ends in HALF_OPEN: not a probe
    assert m.state(61.0) is CircuitState.HALF_OPEN
    assert m.probes_in_flight == 0


# -- the middleware -----------------------------------------------------------


@pytest.mark.anyio
async def test_middleware_keeps_one_breaker_per_provider_and_model() -> None:
    clock = FakeClock()
    mw = CircuitBreakerMiddleware(
        CircuitBreakerConfig(failure_threshold=2), clock=clock, default_provider="openai"
    )
    up = Upstream()
    up.errors = [error_for_status(503, "down"), error_for_status(503, "down")]
    for _ in range(2):
        with pytest.raises(ServerError):
            await mw(request("a"), up)
    with pytest.raises(CircuitOpenError) as info:
        await mw(request("a"), up)
    assert info.value.name == "openai:a"
    assert up.calls == 2
    assert (await mw(request("b"), up)).content == "ok"
    assert (await mw(request("a", "anthropic"), up)).content == "ok"
    metrics = mw.metrics()
    assert metrics["circuit.state"] == {
        "openai:a": "open",
        "openai:b": "closed",
        "anthropic:a": "closed",
    }
    assert metrics["circuit.requests.total"] == 5
    assert metrics["circuit.requests.rejected"] == 1
    assert metrics["circuit.requests.failed"] == 2
    assert metrics["circuit.requests.successful"] == 2
    assert set(mw.statistics()) == {"openai:a", "openai:b", "anthropic:a"}
    assert "openai:a=open" in repr(mw)


@pytest.mark.anyio
async def test_middleware_bounds_concurrent_probes() -> None:
    clock = FakeClock()
    mw = CircuitBreakerMiddleware(
        CircuitBreakerConfig(failure_threshold=1, half_open_max_calls=2, success_threshold=2),
        clock=clock,
    )
    with pytest.raises(ServerError):
        await mw(request(), _raiser(error_for_status(500, "x")))
    clock.advance(60)
    gate = anyio.Event()
    passed: list[int] = []
    outcomes: list[str] = []

    async def slow_next(req: ChatRequest) -> ChatResponse:
        passed.append(1)
        await gate.wait()
        return ok_response()

    async def one() -> None:
        try:
            await mw(request(), slow_next)
            outcomes.append("ok")
        except CircuitOpenError:
            outcomes.append("rejected")

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(one)
        await anyio.wait_all_tasks_blocked()
        assert len(passed) == 2
        gate.set()
    assert sorted(outcomes) == ["ok", "ok", "rejected", "rejected", "rejected"]
    assert mw.breaker(None, "m").state is CircuitState.CLOSED


def _raiser(exc: BaseException) -> Any:
    async def next_(req: ChatRequest) -> ChatResponse:
        raise exc

    return next_


class ScriptedSource:
    """A ChunkSource that yields ``chunks`` then ends, or raises ``error`` at the end."""

    def __init__(self, n: int, error: BaseException | None = None) -> None:
        self.left = n
        self.error = error

    async def next_chunks(self) -> list[ChatChunk] | None:
        if self.left:
            self.left -= 1
            return [ChatChunk(delta="x")]
        if self.error is not None:
            raise self.error
        return None

    def build_response(self) -> ChatResponse:
        return ok_response("xxx")

    async def aclose(self) -> None:
        self.left = 0


def streaming_next(source: ScriptedSource) -> Any:
    async def next_(req: ChatRequest) -> ChatResponse:
        response = ok_response("")
        stream = ChunkStream(source)
        await stream.prefetch()
        response.stream = stream
        return response

    return next_


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("error", "read_all", "expected"),
    [
        (None, True, "success"),
        (StreamError("broke off"), True, "failure"),
        (error_for_status(400, "in-band caller error"), True, "ignored"),
        (None, False, "ignored"),
    ],
)
async def test_stream_outcome_is_recorded_when_the_stream_ends(
    error: BaseException | None, read_all: bool, expected: str
) -> None:
    clock = FakeClock()
    mw = CircuitBreakerMiddleware(CircuitBreakerConfig(failure_threshold=1), clock=clock)
    breaker = mw.breaker(None, "m")
    response = await mw(request(stream=True), streaming_next(ScriptedSource(3, error)))
    stream = response.stream
    assert stream is not None
    stats = breaker.statistics()
    assert (stats.successful, stats.failed, stats.ignored) == (0, 0, 0)  # not judged yet
    if read_all:
        try:
            async for _ in stream:
                pass
        except Exception:
            pass
    else:
        await stream.__anext__()
        await stream.aclose()
    stats = breaker.statistics()
    counts = {"success": stats.successful, "failure": stats.failed, "ignored": stats.ignored}
    assert counts == {k: int(k == expected) for k in counts}
    expected_state = CircuitState.OPEN if expected == "failure" else CircuitState.CLOSED
    assert breaker.state is expected_state


@pytest.mark.anyio
async def test_stream_closed_early_releases_the_probe() -> None:
    clock = FakeClock()
    mw = CircuitBreakerMiddleware(
        CircuitBreakerConfig(failure_threshold=1, half_open_max_calls=1), clock=clock
    )
    with pytest.raises(APIConnectionError):
        await mw(request(stream=True), _raiser(APIConnectionError("down")))
    clock.advance(60)
    response = await mw(request(stream=True), streaming_next(ScriptedSource(2)))
    assert not mw.breaker(None, "m").allow()  # the probe is in flight
    assert response.stream is not None
    await response.stream.aclose()
    assert mw.breaker(None, "m").allow()


@pytest.mark.anyio
async def test_stream_that_ended_during_prefetch_is_judged_when_read() -> None:
    mw = CircuitBreakerMiddleware(clock=FakeClock())
    head = await mw(request(stream=True), streaming_next(ScriptedSource(0)))
    assert head.stream is not None and not head.stream.closed  # on_close still works
    assert [c async for c in head.stream] == []
    assert mw.breaker(None, "m").statistics().successful == 1


# -- Hypothesis: the state machine never admits what it must not ----------------


class BreakerMachine(RuleBasedStateMachine):
    """Calls start, end (ok / fail / slow / cancel) and time passes, in any order."""

    @initialize(
        failure_threshold=st.integers(1, 4),
        success_threshold=st.integers(1, 3),
        probes=st.integers(1, 3),
        rate=st.sampled_from([None, 0.5, 1.0]),
        slow=st.sampled_from([None, 2.0]),
        seed=st.integers(0, 1000),
    )
    def setup(
        self,
        failure_threshold: int,
        success_threshold: int,
        probes: int,
        rate: float | None,
        slow: float | None,
        seed: int,
    ) -> None:
        self.config = CircuitBreakerConfig(
            failure_threshold=failure_threshold,
            success_threshold=success_threshold,
            half_open_max_calls=probes,
            timeout=10.0,
            failure_rate_threshold=rate,
            minimum_calls=3,
            window=30.0,
            slow_call_threshold=slow,
            jitter=0.5,
            max_timeout=100.0,
        )
        self.clock = FakeClock()
        self.m = BreakerStateMachine(self.config, random.Random(seed))
        self.inflight: list[tuple[int, float]] = []  # (generation, started)
        self.opened_at: float | None = None  # when we last saw it trip

    @rule()
    def start(self) -> None:
        now = self.clock.now()
        state = self.m.state(now)
        allowed = self.m.allow(now)
        generation = self.m.acquire(now)
        assert (generation is not None) == allowed
        if generation is not None:
            # never admitted while OPEN before its time
            assert state is not CircuitState.OPEN
            if self.opened_at is not None:
                assert now >= self.opened_at + self.config.timeout - 1e-9
            self.inflight.append((generation, now))
        else:
            assert state is not CircuitState.CLOSED

    def _finish(self, index: int, kind: str) -> None:
        generation, started = self.inflight.pop(index % len(self.inflight))
        now = self.clock.now()
        before = self.m.state(now)
        trips = self.m.trips
        if kind == "ok":
            self.m.on_success(generation, now, 0.0)
        elif kind == "slow":
            self.m.on_success(generation, now, 5.0)
        elif kind == "fail":
            self.m.on_failure(generation, now, now - started)
        else:
            self.m.release(generation)
        if self.m.trips > trips:  # it tripped: OPEN for at least `timeout`
            self.opened_at = now
            assert self.m.state(now) is CircuitState.OPEN
            assert self.m.open_until - now >= self.config.timeout - 1e-9
        if kind == "cancel":
            assert self.m.state(now) is before  # no verdict, no transition

    @precondition(lambda self: self.inflight)
    @rule(i=st.integers(0, 100))
    def succeed(self, i: int) -> None:
        self._finish(i, "ok")

    @precondition(lambda self: self.inflight)
    @rule(i=st.integers(0, 100))
    def fail(self, i: int) -> None:
        self._finish(i, "fail")

    @precondition(lambda self: self.inflight)
    @rule(i=st.integers(0, 100))
    def slow(self, i: int) -> None:
        self._finish(i, "slow")

    @precondition(lambda self: self.inflight)
    @rule(i=st.integers(0, 100))
    def cancel(self, i: int) -> None:
        self._finish(i, "cancel")

    @rule(dt=st.floats(0.0, 25.0, allow_nan=False))
    def advance(self, dt: float) -> None:
        self.clock.advance(dt)

    @precondition(lambda self: self.m.state(self.clock.now()) is CircuitState.OPEN)
    @rule()
    def reject(self) -> None:
        now = self.clock.now()
        assert self.m.acquire(now) is None
        assert 0 < self.m.retry_after(now) <= self.config.longest_open

    @invariant()
    def state_is_consistent(self) -> None:
        if not hasattr(self, "m"):
            return
        now = self.clock.now()
        state = self.m.state(now)
        assert isinstance(state, CircuitState)
        probes = self.m.probes_in_flight
        assert 0 <= probes <= self.config.probes
        if state is CircuitState.CLOSED:
            assert self.m.allow(now) and probes == 0
            assert self.m.consecutive_failures < (self.config.failure_threshold or 1 << 30)
        elif state is CircuitState.OPEN:
            assert not self.m.allow(now) and probes == 0
            assert now < self.m.open_until
        else:
            assert self.m.allow(now) == (probes < self.config.probes)


BreakerMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestBreakerMachine = BreakerMachine.TestCase
