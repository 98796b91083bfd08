"""Retry strategies, classification, the retry loop and the retry budget."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import anyio
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from aio_llm.config import ClientConfig
from aio_llm.errors import (
    APIConnectionError,
    APIResponseError,
    APITimeoutError,
    BudgetExceededError,
    CircuitOpenError,
    InvalidRequestError,
    RateLimitError,
    RateLimitExceededError,
    ServerError,
    StreamError,
    error_for_status,
)
from aio_llm.middleware import (
    AdaptiveRetry,
    ExponentialBackoffRetry,
    FibonacciBackoffRetry,
    LinearBackoffRetry,
    Retry,
    RetryConfig,
    RetryExecutor,
    RetryStrategy,
    is_retryable,
    is_transient,
)
from aio_llm.middleware.retry._budget import RetryBudget
from aio_llm.pipeline import build_chain
from aio_llm.streaming import replay_as_stream
from aio_llm.testing.clock import FakeClock
from aio_llm.types import ChatRequest, ChatResponse

REQUEST = ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}])
NO_JITTER = RetryConfig(max_attempts=4, base_delay=0.5, max_delay=30.0, jitter=0)


def notes_of(exc: BaseException) -> list[str]:
    notes: list[str] = getattr(exc, "__notes__", [])
    return notes


class Script:
    """A fake ``next``: raises or returns the scripted outcomes in order (the last repeats)."""

    def __init__(self, *outcomes: BaseException | ChatResponse) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[ChatRequest] = []

    async def __call__(self, request: ChatRequest) -> ChatResponse:
        self.calls.append(request)
        outcome = self.outcomes[min(len(self.calls), len(self.outcomes)) - 1]
        await anyio.lowlevel.checkpoint()
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def ok(content: str = "ok") -> ChatResponse:
    return ChatResponse(content=content, provider="p", model="m")


def status(code: int, **headers: str) -> Exception:
    return error_for_status(code, f"HTTP {code}", provider="p", headers=headers or None)


# -- classification -------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (400, False), (401, False), (403, False), (404, False), (408, True), (409, True),
        (410, False), (418, False), (422, False), (429, True), (500, True), (501, True),
        (502, True), (503, True), (504, True), (520, True), (529, True),
    ],
)  # fmt: skip
def test_status_classification(code: int, expected: bool) -> None:
    assert is_retryable(status(code)) is expected
    assert is_transient(status(code)) is expected


def test_context_window_is_not_retryable() -> None:
    exc = error_for_status(400, "maximum context length is 8192 tokens", code="x")
    assert type(exc).__name__ == "ContextWindowExceededError"
    assert not is_retryable(exc)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (APIConnectionError("reset"), True),
        (APITimeoutError("read timeout"), True),
        (ConnectionResetError(), True),
        (TimeoutError(), True),
        (APIResponseError("malformed JSON"), False),
        (StreamError("malformed JSON in the stream"), False),
        (CircuitOpenError("open"), False),
        (BudgetExceededError("over"), False),
        (InvalidRequestError("bad"), False),
        (RateLimitExceededError("local"), False),
        (ValueError("bug"), False),
        (asyncio.CancelledError(), False),
        (KeyboardInterrupt(), False),
    ],
)
def test_error_classification(exc: BaseException, expected: bool) -> None:
    assert is_retryable(exc) is expected


def test_stream_broken_by_connection_is_retryable() -> None:
    try:
        try:
            raise APIConnectionError("reset")
        except APIConnectionError as cause:
            raise StreamError("the stream broke off") from cause
    except StreamError as exc:
        assert is_retryable(exc)


def test_x_should_retry_decides() -> None:
    assert not is_retryable(status(503, **{"x-should-retry": "false"}))
    assert is_retryable(status(400, **{"x-should-retry": "true"}))
    assert is_transient(status(503, **{"x-should-retry": "false"}))


@pytest.mark.anyio
async def test_x_should_retry_overrides_in_the_loop() -> None:
    clock = FakeClock()
    no = Script(status(500, **{"x-should-retry": "false"}), ok())
    with pytest.raises(ServerError):
        await Retry(ExponentialBackoffRetry(NO_JITTER), clock=clock)(REQUEST, no)
    assert len(no.calls) == 1
    yes = Script(status(400, **{"x-should-retry": "true"}), ok())
    assert (await Retry(ExponentialBackoffRetry(NO_JITTER), clock=clock)(REQUEST, yes)).content
    assert len(yes.calls) == 2


# -- strategies -----------------------------------------------------------------


def delays(strategy: RetryStrategy, n: int, error: BaseException | None = None) -> list[float]:
    rng = random.Random(0)
    exc = error if error is not None else ServerError("x")
    out = [strategy.delay(a, exc, rng) for a in range(1, n + 1)]
    assert out[-1] is None  # attempt n is the last one allowed
    return [d for d in out if d is not None]


def test_exponential_sequence() -> None:
    cfg = RetryConfig(max_attempts=8, base_delay=0.5, max_delay=10.0, jitter=0)
    assert delays(ExponentialBackoffRetry(cfg), 8) == [0.5, 1, 2, 4, 8, 10, 10]


def test_linear_sequence() -> None:
    cfg = RetryConfig(max_attempts=6, base_delay=0.5, max_delay=2.0, jitter=0)
    assert delays(LinearBackoffRetry(cfg), 6) == [0.5, 1.0, 1.5, 2.0, 2.0]


def test_fibonacci_sequence() -> None:
    cfg = RetryConfig(max_attempts=8, base_delay=1.0, max_delay=10.0, jitter=0)
    assert delays(FibonacciBackoffRetry(cfg), 8) == [1, 1, 2, 3, 5, 8, 10]


def test_adaptive_starts_exponential() -> None:
    cfg = RetryConfig(max_attempts=5, base_delay=0.5, max_delay=30.0, jitter=0)
    assert delays(AdaptiveRetry(cfg), 5) == [0.5, 1, 2, 4]


def test_strategy_stops_at_max_attempts_and_on_non_retryable() -> None:
    s = ExponentialBackoffRetry(RetryConfig(max_attempts=3, jitter=0))
    rng = random.Random(0)
    assert s.delay(2, ServerError("x"), rng) is not None
    assert s.delay(3, ServerError("x"), rng) is None
    assert s.delay(1, status(400), rng) is None


def test_huge_attempt_numbers_do_not_overflow() -> None:
    cfg = RetryConfig(max_attempts=10_000, base_delay=1.0, max_delay=5.0, exponential_base=10.0)
    s = ExponentialBackoffRetry(cfg)
    assert 0 < (s.delay(5000, ServerError("x"), random.Random(1)) or 0) <= 5.0
    assert FibonacciBackoffRetry(cfg).backoff(5000, ServerError("x")) >= 5.0


@pytest.mark.parametrize(
    "strategy_cls", [ExponentialBackoffRetry, LinearBackoffRetry, FibonacciBackoffRetry]
)
def test_full_jitter_bounds(strategy_cls: type[RetryStrategy]) -> None:
    cfg = RetryConfig(max_attempts=7, base_delay=1.0, max_delay=8.0)
    exact = strategy_cls(RetryConfig(max_attempts=7, base_delay=1.0, max_delay=8.0, jitter=0))
    jittered = strategy_cls(cfg)
    rng = random.Random(1234)
    for attempt in range(1, 7):
        cap = exact.delay(attempt, ServerError("x"), rng)
        assert cap is not None
        samples = [jittered.delay(attempt, ServerError("x"), rng) for _ in range(2000)]
        assert all(s is not None and 0 < s <= cap for s in samples)
        mean = sum(s for s in samples if s is not None) / len(samples)
        assert 0.4 * cap < mean < 0.6 * cap  # uniform over (0, cap]
        assert max(s for s in samples if s is not None) > 0.95 * cap


def test_partial_jitter_and_seeded_determinism() -> None:
    s = ExponentialBackoffRetry(RetryConfig(base_delay=2.0, jitter=0.25))
    a = [s.delay(1, ServerError("x"), random.Random(7)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    rng = random.Random(3)
    assert all(1.5 < (s.delay(1, ServerError("x"), rng) or 0) <= 2.0 for _ in range(500))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"base_delay": -1},
        {"base_delay": 5, "max_delay": 1},
        {"exponential_base": 0.5},
        {"jitter": 1.5},
        {"max_delay": float("inf")},
    ],
)
def test_config_rejects_bad_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RetryConfig(**kwargs)


def test_seed_config_and_bool_jitter() -> None:
    cfg = RetryConfig(max_attempts=5, base_delay=1.0, exponential_base=2.0, jitter=True)
    assert cfg.jitter == 1
    assert RetryConfig(jitter=False).jitter == 0
    with pytest.raises(ValueError):
        RetryExecutor(retry_after_cap=-1)


# -- the retry loop ------------------------------------------------------------


@pytest.mark.anyio
async def test_retries_until_success() -> None:
    clock = FakeClock()
    retry = Retry(ExponentialBackoffRetry(NO_JITTER), clock=clock)
    nxt = Script(ServerError("a"), APIConnectionError("b"), ok("done"))
    response = await retry(REQUEST, nxt)
    assert response.content == "done"
    assert len(nxt.calls) == 3 and all(r is REQUEST for r in nxt.calls)
    assert clock.sleeps == [0.5, 1.0]
    stats = retry.statistics()
    assert (stats.calls, stats.retries, stats.successful, stats.failed) == (1, 2, 1, 0)
    assert stats.total_delay == 1.5


@pytest.mark.anyio
async def test_exhausted_raises_the_last_error_with_a_note() -> None:
    clock = FakeClock()
    retry = Retry(ExponentialBackoffRetry(NO_JITTER), clock=clock)
    errors = [ServerError(f"e{i}", status_code=503) for i in range(4)]
    nxt = Script(*errors)
    with pytest.raises(ServerError) as info:
        await retry(REQUEST, nxt)
    assert info.value is errors[-1]
    assert len(nxt.calls) == 4  # max_attempts counts the first try
    assert clock.sleeps == [0.5, 1.0, 2.0]
    assert any("gave up after 4 attempt" in n for n in notes_of(info.value))
    assert retry.statistics().exhausted == 1
    assert retry.statistics().failed == 1


@pytest.mark.anyio
async def test_non_retryable_fails_at_once() -> None:
    clock = FakeClock()
    retry = Retry(ExponentialBackoffRetry(NO_JITTER), clock=clock)
    for code in (400, 401, 403, 404, 422):
        nxt = Script(status(code), ok())
        with pytest.raises(type(status(code))):
            await retry(REQUEST, nxt)
        assert len(nxt.calls) == 1
    assert clock.sleeps == []
    assert retry.statistics().failed == 0


@pytest.mark.anyio
async def test_a_retry_ending_in_a_non_retryable_error_counts_as_failed() -> None:
    retry = Retry(ExponentialBackoffRetry(NO_JITTER), clock=FakeClock())
    with pytest.raises(InvalidRequestError):
        await retry(REQUEST, Script(ServerError("x"), InvalidRequestError("bad")))
    assert retry.statistics().failed == 1


@pytest.mark.anyio
async def test_retry_after_is_honoured_exactly() -> None:
    clock = FakeClock()
    retry = Retry(ExponentialBackoffRetry(RetryConfig()), clock=clock, rng=random.Random(0))
    nxt = Script(
        status(429, **{"retry-after": "3"}), status(503, **{"retry-after-ms": "250"}), ok()
    )
    await retry(REQUEST, nxt)
    assert clock.sleeps == [3.0, 0.25]


@pytest.mark.anyio
async def test_retry_after_over_the_cap_fails_at_once() -> None:
    clock = FakeClock()
    retry = Retry(ExponentialBackoffRetry(NO_JITTER), clock=clock, retry_after_cap=60.0)
    nxt = Script(RateLimitError("slow down", retry_after=3600.0), ok())
    with pytest.raises(RateLimitError) as info:
        await retry(REQUEST, nxt)
    assert len(nxt.calls) == 1 and clock.sleeps == []
    assert any("over the cap" in n for n in notes_of(info.value))
    assert retry.statistics().refused_retry_after == 1


@pytest.mark.anyio
async def test_never_sleeps_into_the_deadline() -> None:
    retry = Retry(ExponentialBackoffRetry(NO_JITTER))  # the real clock: a sleep would show
    nxt = Script(RateLimitError("slow down", retry_after=5.0), ok())
    start = anyio.current_time()
    with pytest.raises(RateLimitError) as info, anyio.fail_after(1.0):
        await retry(REQUEST, nxt)
    assert anyio.current_time() - start < 0.5
    assert len(nxt.calls) == 1
    assert any("deadline" in n for n in notes_of(info.value))
    assert retry.statistics().refused_deadline == 1


@pytest.mark.anyio
async def test_backoff_past_the_deadline_fails_at_once() -> None:
    clock = FakeClock()
    cfg = RetryConfig(max_attempts=5, base_delay=2.0, jitter=0)
    retry = Retry(ExponentialBackoffRetry(cfg), clock=clock)
    nxt = Script(ServerError("a"), ServerError("b"), ok())
    with anyio.fail_after(3.0), pytest.raises(ServerError) as info:
        await retry(REQUEST, nxt)
    # 2 s fits in the 3 s budget (the fake clock does not spend it); 4 s does not.
    assert clock.sleeps == [2.0]
    assert str(info.value).startswith("b")


@pytest.mark.anyio
async def test_cancellation_is_never_retried() -> None:
    retry = Retry(ExponentialBackoffRetry(NO_JITTER), clock=FakeClock())
    nxt = Script(ok())
    with anyio.CancelScope() as scope:
        scope.cancel()
        await retry(REQUEST, nxt)
    assert scope.cancelled_caught
    assert retry.statistics().retries == 0


@pytest.mark.anyio
async def test_stream_response_is_returned_as_is() -> None:
    streamed = replay_as_stream(ok("streamed"))
    assert streamed.stream is not None
    retry = Retry(ExponentialBackoffRetry(NO_JITTER), clock=FakeClock())
    nxt = Script(ServerError("before the first chunk"), streamed)
    request = REQUEST.model_copy(update={"stream": True})
    response = await retry(request, nxt)
    assert response is streamed and len(nxt.calls) == 2
    chunks = [c.delta async for c in response.stream]  # type: ignore[union-attr]
    assert chunks == ["streamed"]


@pytest.mark.anyio
async def test_retry_in_a_chain_and_metrics() -> None:
    clock = FakeClock()
    retry = Retry(ExponentialBackoffRetry(NO_JITTER), clock=clock)
    handler = build_chain([retry], Script(ServerError("x"), ok()))
    await handler(REQUEST)
    with pytest.raises(ServerError):
        await build_chain([retry], Script(ServerError("y")))(REQUEST)
    m = retry.metrics()
    assert m["retry.attempts"] == 1 + 3
    assert m["retry.successful"] == 1
    assert m["retry.failed"] == 1
    assert m["retry.delay"] == 0.5 + 0.5 + 1.0 + 2.0
    assert m["retry.calls"] == 2
    assert "retry.budget.tokens" not in m
    assert "calls=2" in repr(retry)


@pytest.mark.anyio
async def test_executor_standalone_seed_api() -> None:
    calls: list[tuple[int, int]] = []

    async def flaky(a: int, b: int) -> int:
        calls.append((a, b))
        if len(calls) < 3:
            raise ConnectionResetError("reset")
        return a + b

    config = RetryConfig(max_attempts=5, base_delay=1.0, exponential_base=2.0)
    executor = RetryExecutor(ExponentialBackoffRetry(config), clock=FakeClock())
    assert await executor.execute(flaky, 1, 2) == 3
    assert calls == [(1, 2)] * 3
    assert RetryExecutor(AdaptiveRetry()).strategy.budget is not None


def test_from_config() -> None:
    retry = Retry.from_config(ClientConfig(max_retries=2, retry_strategy="linear"))
    assert isinstance(retry.strategy, LinearBackoffRetry)
    assert retry.strategy.config.max_attempts == 3
    assert retry.retry_after_cap == 60.0
    assert isinstance(Retry.from_config(ClientConfig()).strategy, AdaptiveRetry)
    assert isinstance(Retry().strategy, AdaptiveRetry)


# -- adaptive ------------------------------------------------------------------


@pytest.mark.anyio
async def test_adaptive_stops_retrying_what_never_recovers() -> None:
    clock = FakeClock()
    cfg = RetryConfig(max_attempts=5, base_delay=0.5, jitter=0)
    strategy = AdaptiveRetry(cfg, budget=RetryBudget(ratio=10, max_tokens=1000))
    retry = Retry(strategy, clock=clock)
    counts = []
    for _ in range(6):
        nxt = Script(status(503))
        with pytest.raises(ServerError):
            await retry(REQUEST, nxt)
        counts.append(len(nxt.calls))
    assert counts[0] == 5
    assert counts[-1] == 2  # one probe retry left
    learned = strategy.classes()["503"]
    assert learned.success_rate < 0.1
    assert learned.delay == cfg.max_delay or learned.delay > cfg.base_delay
    # another class is unaffected
    assert strategy.max_attempts_for(status(429)) == 5


@pytest.mark.anyio
async def test_adaptive_learns_shorter_delays_when_first_retries_work() -> None:
    clock = FakeClock()
    cfg = RetryConfig(max_attempts=4, base_delay=1.0, jitter=0)
    strategy = AdaptiveRetry(cfg, budget=RetryBudget(ratio=1))
    retry = Retry(strategy, clock=clock)
    for _ in range(10):
        await retry(REQUEST, Script(APITimeoutError("t"), ok()))
    learned = strategy.classes()["APITimeoutError"]
    assert learned.delay == pytest.approx(0.9**10)
    assert learned.success_rate == 1.0 and learned.retries_to_recover == 1.0
    assert clock.sleeps[-1] == pytest.approx(0.9**9)
    # recovering probes raise the success rate again
    for _ in range(3):
        await retry(REQUEST, Script(status(503), status(503), ok()))
    assert strategy.classes()["503"].retries_to_recover > 1.0


@pytest.mark.anyio
async def test_adaptive_budget_stops_retries_when_most_calls_fail() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.1, min_retries_per_second=0.0, max_tokens=5)
    retry = Retry(AdaptiveRetry(RetryConfig(max_attempts=4), budget=budget), clock=clock)
    calls = 0
    for _ in range(100):
        nxt = Script(APIConnectionError("down"))
        with pytest.raises(APIConnectionError):
            await retry(REQUEST, nxt)
        calls += len(nxt.calls)
    retries = calls - 100
    assert retries <= 5 + 0.1 * 100
    assert retry.statistics().refused_budget > 0
    assert retry.metrics()["retry.budget.tokens"] == budget.tokens >= 0


def test_adaptive_rejects_bad_arguments() -> None:
    for kwargs in ({"alpha": 0}, {"target_success": 2}, {"decrease": 0}, {"increase": 0.5}):
        with pytest.raises(ValueError):
            AdaptiveRetry(**kwargs)


# -- the retry budget ----------------------------------------------------------


def test_budget_basics() -> None:
    b = RetryBudget(ratio=0.5, min_retries_per_second=1.0, max_tokens=2, initial=0)
    assert not b.try_withdraw(0.0)
    b.deposit(0.0)
    b.deposit(0.0)
    assert b.has_capacity(0.0) and b.try_withdraw(0.0) and not b.try_withdraw(0.0)
    assert b.try_withdraw(1.0)  # one second refilled one token
    b.deposit(100.0)
    assert b.tokens == 2  # capped
    s = b.statistics()
    assert (s.requests, s.retries, s.refused) == (3, 2, 2)
    assert "tokens=2.00/2" in repr(b)
    for kwargs in (
        {"ratio": -1},
        {"min_retries_per_second": -1},
        {"max_tokens": 0.5},
        {"initial": 20},
    ):
        with pytest.raises(ValueError):
            RetryBudget(**kwargs)


class BudgetMachine(RuleBasedStateMachine):
    """Tokens never go negative; retries never exceed initial + ratio*requests + rate*elapsed."""

    def __init__(self) -> None:
        super().__init__()
        self.initial = 3.0
        self.budget = RetryBudget(
            ratio=0.1, min_retries_per_second=0.5, max_tokens=10, initial=self.initial
        )
        self.now = 0.0
        self.requests = 0
        self.granted = 0

    @rule()
    def request(self) -> None:
        self.budget.deposit(self.now)
        self.requests += 1

    @rule()
    def retry(self) -> None:
        before = self.budget.tokens
        if self.budget.try_withdraw(self.now):
            self.granted += 1
        else:
            assert before < 1.0 or self.budget.tokens < 1.0

    @rule(dt=st.floats(min_value=0.0, max_value=5.0, allow_nan=False))
    def advance(self, dt: float) -> None:
        self.now += dt

    @precondition(lambda self: self.budget.tokens >= 1)
    @rule()
    def retry_when_full(self) -> None:
        assert self.budget.try_withdraw(self.now)
        self.granted += 1

    @invariant()
    def never_negative(self) -> None:
        assert 0.0 <= self.budget.tokens <= self.budget.max_tokens

    @invariant()
    def retries_bounded(self) -> None:
        bound = self.initial + 0.1 * self.requests + 0.5 * self.now
        assert self.granted <= bound + 1e-9
        assert self.budget.statistics().retries == self.granted


BudgetMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=60, deadline=None)
TestBudgetMachine = BudgetMachine.TestCase
