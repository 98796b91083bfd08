"""RateLimit: GCRA schedule, learned limits, AIMD, deadlines, streams (fake clock)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from aio_llm.errors import RateLimitError, RateLimitExceededError, error_for_status
from aio_llm.middleware import RateLimit, RateLimitConfig
from aio_llm.middleware.ratelimit._state import GCRABucket, TargetLimits, parse_reset
from aio_llm.testing.clock import FakeClock
from aio_llm.tokens import estimate_request_tokens
from aio_llm.types import ChatChunk, ChatRequest, ChatResponse, ChunkStream, Usage

WALL = 1767225600.0 - 1000.0  # FakeClock().time() - FakeClock().now()


def request(
    model: str = "m", *, max_tokens: int | None = None, stream: bool = False, text: str = "hi"
) -> ChatRequest:
    return ChatRequest(
        model=model,
        messages=[{"role": "user", "content": text}],
        max_tokens=max_tokens,
        stream=stream,
    )


class Upstream:
    """A fake ``next``: queued errors first, then answers with ``headers`` and ``usage``."""

    def __init__(self) -> None:
        self.calls = 0
        self.errors: list[BaseException] = []
        self.headers: dict[str, str] | None = None
        self.total_tokens = 0

    async def __call__(self, req: ChatRequest) -> ChatResponse:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        response = ChatResponse.model_construct(
            content="ok", usage=Usage(total_tokens=self.total_tokens)
        )
        response.headers = self.headers
        return response


def limiter(clock: FakeClock, **kwargs: Any) -> RateLimit:
    return RateLimit(RateLimitConfig(**kwargs), clock=clock)


# -- config -------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rpm": 0},
        {"tpm": -1},
        {"period": 0},
        {"burst": 0},
        {"burst": 2},
        {"decrease": 1},
        {"increase": 0},
        {"min_factor": 0},
        {"cooldown": -1},
        {"backend": "postgres://x"},
    ],
)
def test_config_rejects_bad_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RateLimitConfig(**kwargs)


# -- admission ----------------------------------------------------------------


@pytest.mark.anyio
async def test_no_limits_admits_everything_without_waiting() -> None:
    clock = FakeClock()
    rl = limiter(clock)
    up = Upstream()
    for _ in range(1000):
        await rl(request(), up)
    assert clock.sleeps == []
    assert not rl.limits(None, "m").active
    assert rl.metrics()["ratelimit.requests.admitted"] == 1000


@pytest.mark.anyio
async def test_rpm_allows_a_burst_then_paces() -> None:
    clock = FakeClock()
    rl = limiter(clock, rpm=60, burst=0.1)  # 1 per second, 6 at once
    up = Upstream()
    start = clock.now()
    for _ in range(16):
        await rl(request(), up)
    assert clock.sleeps == [pytest.approx(1.0)] * 10
    assert clock.now() - start == pytest.approx(10.0)
    stats = rl.statistics()["m"]
    assert (stats.admitted, stats.delayed, stats.rpm) == (16, 10, 60.0)
    assert stats.wait_seconds == pytest.approx(10.0)


@pytest.mark.anyio
async def test_limits_are_per_provider_and_model() -> None:
    clock = FakeClock()
    rl = RateLimit(RateLimitConfig(rpm=60, burst=1 / 60), clock=clock, default_provider="openai")
    up = Upstream()
    await rl(request("a"), up)
    await rl(request("b"), up)
    await rl(ChatRequest(model="a", messages=[{"role": "user", "content": "x"}], provider="p"), up)
    assert clock.sleeps == []
    await rl(request("a"), up)
    assert clock.sleeps == [pytest.approx(1.0)]
    assert set(rl.statistics()) == {"openai:a", "openai:b", "p:a"}


@pytest.mark.anyio
async def test_tokens_are_estimated_then_corrected_from_usage() -> None:
    clock = FakeClock()
    rl = limiter(clock, tpm=6000, burst=0.5)  # 100 tokens/s, 3000 at once
    up = Upstream()
    req = request(max_tokens=2000)
    estimate = estimate_request_tokens(req) + 2000
    up.total_tokens = estimate  # the usage matches the estimate
    await rl(req, up)
    tat = rl.limits(None, "m").tokens.bucket
    assert tat is not None
    await rl(req, up)  # needs 2000 more: ~1000 over the burst -> waits
    assert clock.sleeps == [pytest.approx((2 * estimate - 3000) / 100)]

    clock2 = FakeClock()
    rl2 = limiter(clock2, tpm=6000, burst=0.5)
    up.total_tokens = 10  # the answer was short: most of the booking comes back
    await rl2(req, up)
    await rl2(req, up)
    assert clock2.sleeps == []


@pytest.mark.anyio
async def test_a_request_larger_than_the_burst_still_goes_when_the_bucket_is_full() -> None:
    clock = FakeClock()
    rl = limiter(clock, tpm=600, burst=0.1)  # 10 tokens/s, 60 at once
    up = Upstream()
    await rl(request(max_tokens=500), up)
    assert clock.sleeps == []
    await rl(request(max_tokens=500), up)  # waits until the first one is paid off
    assert clock.sleeps[0] == pytest.approx((500 + estimate_request_tokens(request())) / 10)


@pytest.mark.anyio
async def test_a_wait_past_the_deadline_fails_at_once_and_books_nothing() -> None:
    clock = FakeClock()
    rl = limiter(clock, rpm=1, burst=1.0)
    up = Upstream()
    await rl(request(), up)
    with anyio.fail_after(5):
        with pytest.raises(RateLimitExceededError) as info:
            await rl(request(), up)
    assert info.value.retry_after == pytest.approx(60.0)
    assert clock.sleeps == []
    assert up.calls == 1
    await rl(request(), up)  # no deadline: it waits the same 60s, nothing was booked
    assert clock.sleeps == [pytest.approx(60.0)]
    assert rl.metrics()["ratelimit.requests.rejected"] == 1


@pytest.mark.anyio
async def test_a_cancelled_waiter_gives_its_slot_back() -> None:
    clock = FakeClock()
    rl = limiter(clock, rpm=60, burst=1 / 60)
    up = Upstream()
    await rl(request(), up)

    class Stuck(FakeClock):
        async def sleep(self, seconds: float) -> None:
            self.sleeps.append(seconds)
            await anyio.sleep_forever()

    stuck = Stuck(start=clock.now())
    rl._clock = stuck  # same state, but this clock's sleep never ends
    async with anyio.create_task_group() as tg:
        tg.start_soon(rl, request(), up)
        await anyio.wait_all_tasks_blocked()
        assert stuck.sleeps == [pytest.approx(1.0)]
        tg.cancel_scope.cancel()
    assert up.calls == 1
    rl._clock = clock
    await rl(request(), up)
    assert clock.sleeps == [pytest.approx(1.0)]  # not 2.0: the cancelled slot was refunded


# -- learning from headers ----------------------------------------------------


@pytest.mark.anyio
async def test_learns_openai_limits_and_waits_for_the_announced_reset() -> None:
    clock = FakeClock()
    rl = limiter(clock)
    up = Upstream()
    up.headers = {
        "x-ratelimit-limit-requests": "600",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "2.5s",
        "x-ratelimit-limit-tokens": "90000",
        "x-ratelimit-remaining-tokens": "89000",
        "x-ratelimit-reset-tokens": "666ms",
    }
    await rl(request(), up)
    stats = rl.statistics()["m"]
    assert (stats.rpm, stats.tpm) == (600.0, 90000.0)
    up.headers = None
    await rl(request(), up)
    assert clock.sleeps == [pytest.approx(2.5)]
    await rl(request(), up)  # the window has reset: only the learned 600 rpm applies
    assert clock.sleeps == [pytest.approx(2.5)]


@pytest.mark.anyio
async def test_configured_limit_wins_when_lower_than_the_learned_one() -> None:
    clock = FakeClock()
    rl = limiter(clock, rpm=100)
    up = Upstream()
    up.headers = {"x-ratelimit-limit-requests": "5000", "x-ratelimit-remaining-requests": "4999"}
    await rl(request(), up)
    assert rl.statistics()["m"].rpm == 100.0


@pytest.mark.anyio
async def test_learns_anthropic_headers_with_an_rfc3339_reset() -> None:
    clock = FakeClock()
    rl = limiter(clock)
    up = Upstream()
    up.headers = {
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-requests-reset": "2026-01-01T00:00:01Z",
        "anthropic-ratelimit-tokens-limit": "40000",
        "anthropic-ratelimit-tokens-remaining": "0",
        "anthropic-ratelimit-tokens-reset": "2026-01-01T00:00:04Z",
    }
    await rl(request(), up)
    assert (rl.statistics()["m"].rpm, rl.statistics()["m"].tpm) == (50.0, 40000.0)
    up.headers = None
    await rl(request(), up)
    assert clock.sleeps == [pytest.approx(4.0)]


def test_parse_reset_formats() -> None:
    wall = 1_000_000_000.0
    assert parse_reset("1s", wall) == 1.0
    assert parse_reset("6m0s", wall) == 360.0
    assert parse_reset("1h2m3.5s", wall) == 3723.5
    assert parse_reset("20ms", wall) == pytest.approx(0.02)
    assert parse_reset("1.5ms", wall) == pytest.approx(0.0015)
    assert parse_reset("0s", wall) == 0.0
    assert parse_reset("7", wall) == 7.0
    assert parse_reset(str(wall + 30), wall) == 30.0
    assert parse_reset(str(int((wall + 2) * 1000)), wall) == 2.0
    assert parse_reset("2001-09-09T01:46:50Z", wall) == 10.0
    assert parse_reset("soon", wall) is None
    assert parse_reset("2001-09-09T01:46:50", wall) is None  # no zone: ambiguous


# -- 429 and AIMD -------------------------------------------------------------


@pytest.mark.anyio
async def test_429_holds_for_retry_after_and_cuts_the_rate_once_per_volley() -> None:
    clock = FakeClock()
    rl = limiter(clock, rpm=600, decrease=0.5, increase=0.25, cooldown=1.0)
    gate = anyio.Event()

    async def throttled(req: ChatRequest) -> ChatResponse:
        await gate.wait()
        raise error_for_status(429, "slow down", headers={"retry-after": "3"})

    async def one() -> None:
        with pytest.raises(RateLimitError):
            await rl(request(), throttled)

    async with anyio.create_task_group() as tg:  # three requests in flight, three 429s
        for _ in range(3):
            tg.start_soon(one)
        await anyio.wait_all_tasks_blocked()
        gate.set()
    up = Upstream()
    lim = rl.limits(None, "m")
    assert lim.factor == 0.5  # three 429s in the same second: one cut
    assert rl.statistics()["m"].rpm == 300.0
    await rl(request(), up)
    assert clock.sleeps == [pytest.approx(3.0)]  # the Retry-After hold
    assert lim.factor == 0.75  # additive increase
    await rl(request(), up)
    assert lim.factor == 1.0
    assert rl.metrics()["ratelimit.throttled"] == 3


@pytest.mark.anyio
async def test_429_without_a_known_limit_starts_one_at_the_sent_rate_then_drops_it() -> None:
    clock = FakeClock()
    rl = limiter(clock, decrease=0.5, increase=0.5)
    up = Upstream()
    for _ in range(40):
        await rl(request(), up)
    up.errors = [error_for_status(429, "slow down")]
    with pytest.raises(RateLimitError):
        await rl(request(), up)
    lim = rl.limits(None, "m")
    assert lim.active
    assert rl.statistics()["m"].rpm == pytest.approx(20.5)  # 41 sent, halved
    await rl(request(), up)
    assert lim.factor == 1.0
    assert not lim.active  # recovered: back to free passage


@pytest.mark.anyio
async def test_insufficient_quota_is_not_a_reason_to_slow_down() -> None:
    clock = FakeClock()
    rl = limiter(clock, rpm=60)
    up = Upstream()
    up.errors = [error_for_status(429, "pay up", code="insufficient_quota")]
    with pytest.raises(RateLimitError):
        await rl(request(), up)
    assert rl.limits(None, "m").factor == 1.0


# -- streams and introspection -------------------------------------------------


class OneChunk:
    def __init__(self, usage: int) -> None:
        self.done = False
        self.usage = usage

    async def next_chunks(self) -> list[ChatChunk] | None:
        if self.done:
            return None
        self.done = True
        return [ChatChunk(delta="x", usage=Usage(total_tokens=self.usage))]

    def build_response(self) -> ChatResponse:
        return ChatResponse.model_construct(content="x", usage=Usage(total_tokens=self.usage))

    async def aclose(self) -> None:
        self.done = True


@pytest.mark.anyio
async def test_stream_usage_settles_the_token_booking_at_the_end() -> None:
    clock = FakeClock()
    rl = limiter(clock, tpm=6000, burst=0.5)

    async def next_(req: ChatRequest) -> ChatResponse:
        response = ChatResponse.model_construct(content="")
        stream = ChunkStream(OneChunk(usage=5))
        await stream.prefetch()
        response.stream = stream
        return response

    bucket_tat = []
    for _ in range(3):
        response = await rl(request(max_tokens=2900, stream=True), next_)
        bucket = rl.limits(None, "m").tokens.bucket
        assert bucket is not None
        bucket_tat.append(bucket.tat)
        assert response.stream is not None
        async for _ in response.stream:
            pass
    assert clock.sleeps == []  # each 2900-token booking shrank to 5 when its stream ended


def test_repr_and_metrics_shape() -> None:
    rl = limiter(FakeClock(), rpm=60, tpm=1000)
    rl.limits("openai", "gpt")
    assert "openai:gpt" in repr(rl)
    metrics = rl.metrics()
    assert metrics["ratelimit.limits"] == {
        "openai:gpt": {"rpm": 60.0, "tpm": 1000.0, "factor": 1.0}
    }
    assert "factor=1.00" in repr(rl.limits("openai", "gpt"))


# -- properties ---------------------------------------------------------------


def max_in_window(events: list[tuple[float, float]], width: float) -> float:
    """The largest total cost of events whose times fall in any closed window of ``width``."""
    events = sorted(events)
    best = total = 0.0
    lo = 0
    for t, cost in events:
        total += cost
        while events[lo][0] < t - width - 1e-9:
            total -= events[lo][1]
            lo += 1
        best = max(best, total)
    return best


@settings(max_examples=300, deadline=None)
@given(
    interval=st.floats(0.01, 2.0),
    burst=st.floats(1.0, 20.0),
    steps=st.lists(
        st.tuples(st.floats(0.0, 5.0), st.floats(0.1, 30.0), st.booleans()), max_size=60
    ),
    width=st.floats(0.5, 30.0),
)
def test_gcra_never_admits_more_than_rate_times_window_plus_burst(
    interval: float, burst: float, steps: list[tuple[float, float, bool]], width: float
) -> None:
    bucket = GCRABucket(interval, burst * interval)
    now = 0.0
    admitted: list[tuple[float, float]] = []
    for dt, cost, blocking in steps:
        now += dt
        if blocking:  # book and wait
            admitted.append((now + bucket.reserve(now, cost), cost))
        elif bucket.wait_time(now, cost) == 0:  # try without waiting
            bucket.reserve(now, cost)
            admitted.append((now, cost))
    largest = max((c for _, c in admitted), default=0.0)
    bound = width / interval + max(burst, largest)
    assert max_in_window(admitted, width) <= bound + 1e-6


class LimiterMachine(RuleBasedStateMachine):
    """Requests, 429s, successes and time, in any order, against one target's limits."""

    @initialize(rpm=st.sampled_from([6.0, 60.0, 600.0]), burst=st.sampled_from([0.05, 0.1, 0.5]))
    def setup(self, rpm: float, burst: float) -> None:
        self.clock = FakeClock()
        self.rpm = rpm
        self.burst = burst
        self.lim = TargetLimits(
            rpm, None, period=60.0, burst=burst, decrease=0.5, increase=0.1, min_factor=0.1
        )
        self.admitted: list[tuple[float, float]] = []
        self.last_cut = -1e9

    @rule(blocking=st.booleans())
    def send(self, blocking: bool) -> None:
        now = self.clock.now()
        if blocking:
            self.admitted.append((now + self.lim.reserve(now, 0.0), 1.0))
        elif self.lim.wait_time(now, 0.0) == 0:
            self.lim.reserve(now, 0.0)
            self.admitted.append((now, 1.0))

    @rule(dt=st.floats(0.0, 20.0))
    def advance(self, dt: float) -> None:
        self.clock.advance(dt)

    @rule(retry_after=st.sampled_from([None, 0.5, 5.0, 60.0]))
    def throttled(self, retry_after: float | None) -> None:
        now = self.clock.now()
        before = self.lim.factor
        self.lim.on_rate_limited(now, retry_after)
        if now - self.last_cut >= 1.0:
            self.last_cut = now
            assert self.lim.factor == pytest.approx(max(0.1, before * 0.5))
        else:
            assert self.lim.factor == before
        if retry_after:
            assert self.lim.wait_time(now, 0.0) >= retry_after - 1e-9

    @precondition(lambda self: self.lim.factor < 1.0)
    @rule()
    def succeed(self) -> None:
        before = self.lim.factor
        self.lim.on_success()
        assert self.lim.factor == pytest.approx(min(1.0, before + 0.1))

    @invariant()
    def within_limits(self) -> None:
        if not hasattr(self, "lim"):
            return
        assert 0.1 <= self.lim.factor <= 1.0
        rpm, _ = self.lim.effective()
        assert rpm == pytest.approx(self.rpm * self.lim.factor)
        # the GCRA bound at the full rate, whatever AIMD and holds did: in any
        # window, the window's share of the limit plus the burst plus one request
        fastest = 60.0 / self.rpm
        for width in (1.0, 10.0, 60.0):
            bound = (width + self.burst * 60.0) / fastest + 1
            assert max_in_window(self.admitted, width) <= bound + 1e-6


LimiterMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLimiterMachine = LimiterMachine.TestCase
