"""Fallback across (provider, model) targets."""

from __future__ import annotations

import anyio
import pytest

from aio_llm.config import ClientConfig, FallbackTarget
from aio_llm.errors import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    CircuitOpenError,
    ContextWindowExceededError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    UnprocessableEntityError,
    error_for_status,
)
from aio_llm.middleware import ExponentialBackoffRetry, Retry, RetryConfig
from aio_llm.middleware.fallback import Fallback, should_fall_back
from aio_llm.pipeline import build_chain
from aio_llm.testing.clock import FakeClock
from aio_llm.types import ChatRequest, ChatResponse

REQUEST = ChatRequest(
    model="gpt-4o", provider="openai", messages=[{"role": "user", "content": "hi"}]
)
Outcome = BaseException | None


def notes_of(exc: BaseException) -> list[str]:
    notes: list[str] = getattr(exc, "__notes__", [])
    return notes


class Targets:
    """A fake ``next``: per (provider, model), an error to raise (or None: answer)."""

    def __init__(self, outcomes: dict[tuple[str | None, str], Outcome | list[Outcome]]) -> None:
        self.outcomes = outcomes
        self.calls: list[tuple[str | None, str]] = []

    async def __call__(self, request: ChatRequest) -> ChatResponse:
        key = (request.provider, request.model)
        self.calls.append(key)
        await anyio.lowlevel.checkpoint()
        outcome = self.outcomes.get(key)
        if isinstance(outcome, list):
            outcome = outcome.pop(0) if len(outcome) > 1 else outcome[0]
        if outcome is not None:
            raise outcome
        # the provider says who answered
        return ChatResponse(content="hello", provider=request.provider or "", model=request.model)


def targets(*pairs: tuple[str | None, str | None]) -> list[FallbackTarget]:
    return [FallbackTarget(provider=p, model=m) for p, m in pairs]


@pytest.mark.anyio
async def test_primary_answers_without_fallback() -> None:
    fb = Fallback(targets(("anthropic", "claude")))
    nxt = Targets({})
    response = await fb(REQUEST, nxt)
    assert (response.provider, response.model) == ("openai", "gpt-4o")
    assert nxt.calls == [("openai", "gpt-4o")]
    assert fb.statistics().triggered == 0


@pytest.mark.anyio
async def test_tries_targets_in_order_and_reports_who_answered() -> None:
    fb = Fallback(targets(("anthropic", "claude"), ("openrouter", "llama"), ("mock", "m")))
    nxt = Targets(
        {
            ("openai", "gpt-4o"): ServerError("down", status_code=503),
            ("anthropic", "claude"): CircuitOpenError("open"),
        }
    )
    response = await fb(REQUEST, nxt)
    assert (response.provider, response.model) == ("openrouter", "llama")
    assert nxt.calls == [("openai", "gpt-4o"), ("anthropic", "claude"), ("openrouter", "llama")]
    stats = fb.statistics()
    assert (stats.calls, stats.triggered, stats.attempts, stats.successful, stats.failed) == (
        1, 1, 2, 1, 0,
    )  # fmt: skip
    assert stats.tried == {"anthropic:claude": 1, "openrouter:llama": 1}
    assert stats.answered == {"openrouter:llama": 1}
    m = fb.metrics()
    assert m["fallback.attempts"] == 2 and m["fallback.successful"] == 1


@pytest.mark.anyio
async def test_none_keeps_the_requests_provider_or_model_and_duplicates_are_skipped() -> None:
    fb = Fallback(
        [
            {"model": "gpt-4o"},  # same provider, same model: the primary again, skipped
            {"model": "gpt-4o-mini"},
            {"provider": "azure"},
        ]
    )
    nxt = Targets(
        {
            ("openai", "gpt-4o"): RateLimitError("busy"),
            ("openai", "gpt-4o-mini"): APIConnectionError("reset"),
        }
    )
    response = await fb(REQUEST, nxt)
    assert nxt.calls == [("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("azure", "gpt-4o")]
    assert (response.provider, response.model) == ("azure", "gpt-4o")


@pytest.mark.anyio
async def test_request_is_switched_with_model_copy() -> None:
    seen: list[ChatRequest] = []

    async def nxt(request: ChatRequest) -> ChatResponse:
        seen.append(request)
        if len(seen) == 1:
            raise ServerError("x")
        return ChatResponse(provider=request.provider or "", model=request.model)

    req = REQUEST.model_copy(update={"temperature": 0.3, "user": "u1", "stream": True})
    await Fallback(targets(("anthropic", "claude")))(req, nxt)
    assert seen[1].temperature == 0.3 and seen[1].user == "u1" and seen[1].stream
    assert seen[1].messages == req.messages
    assert req.provider == "openai"  # the original is untouched


@pytest.mark.parametrize(
    "error",
    [
        BadRequestError("bad", status_code=400),
        UnprocessableEntityError("bad", status_code=422),
        BudgetExceededError("over budget"),
        InvalidRequestError("invalid"),
        ValueError("a bug"),
    ],
)
@pytest.mark.anyio
async def test_no_fallback_on_caller_errors(error: Exception) -> None:
    fb = Fallback(targets(("anthropic", "claude")))
    nxt = Targets({("openai", "gpt-4o"): error})
    with pytest.raises(type(error)) as info:
        await fb(REQUEST, nxt)
    assert info.value is error
    assert nxt.calls == [("openai", "gpt-4o")]
    assert fb.statistics().triggered == 0


@pytest.mark.parametrize(
    "error",
    [
        ContextWindowExceededError("prompt is too long", status_code=400),
        CircuitOpenError("open"),
        AuthenticationError("bad key", status_code=401),
        PermissionDeniedError("no", status_code=403),
        NotFoundError("no such model", status_code=404),
        RateLimitError("busy", status_code=429),
        ServerError("overloaded", status_code=529),
        error_for_status(503, "down", headers={"x-should-retry": "false"}),
        APIConnectionError("reset"),
    ],
)
@pytest.mark.anyio
async def test_fallback_triggers(error: Exception) -> None:
    assert should_fall_back(error)
    fb = Fallback(targets(("anthropic", "claude")))
    response = await fb(REQUEST, Targets({("openai", "gpt-4o"): error}))
    assert response.provider == "anthropic"


@pytest.mark.anyio
async def test_all_failing_raises_the_last_error_with_notes() -> None:
    fb = Fallback(targets(("anthropic", "claude"), (None, "gpt-4o-mini")))
    primary = ServerError("primary down", status_code=500)
    second = CircuitOpenError("breaker open")
    last = RateLimitError("last busy", status_code=429)
    nxt = Targets(
        {
            ("openai", "gpt-4o"): primary,
            ("anthropic", "claude"): second,
            ("openai", "gpt-4o-mini"): last,
        }
    )
    with pytest.raises(RateLimitError) as info:
        await fb(REQUEST, nxt)
    assert info.value is last
    notes = notes_of(info.value)
    assert len(notes) == 2
    assert "openai:gpt-4o failed: InternalServerError: primary down" in notes[0]
    assert "anthropic:claude failed: CircuitOpenError" in notes[1]
    assert fb.statistics().failed == 1 and fb.statistics().successful == 0


@pytest.mark.anyio
async def test_a_non_fallback_error_on_a_target_stops_the_chain() -> None:
    fb = Fallback(targets(("anthropic", "claude"), ("mock", "m")))
    bad = BadRequestError("claude rejects this", status_code=400)
    nxt = Targets({("openai", "gpt-4o"): ServerError("x"), ("anthropic", "claude"): bad})
    with pytest.raises(BadRequestError) as info:
        await fb(REQUEST, nxt)
    assert info.value is bad
    assert ("mock", "m") not in nxt.calls
    assert any("openai:gpt-4o failed" in n for n in notes_of(info.value))


@pytest.mark.anyio
async def test_custom_predicate() -> None:
    def only_budget(exc: BaseException) -> bool:
        return isinstance(exc, BudgetExceededError)

    fb = Fallback(targets((None, "cheaper")), on=only_budget)
    response = await fb(REQUEST, Targets({("openai", "gpt-4o"): BudgetExceededError("over")}))
    assert response.model == "cheaper"
    with pytest.raises(ServerError):
        await fb(REQUEST, Targets({("openai", "gpt-4o"): ServerError("x")}))


@pytest.mark.anyio
async def test_cancellation_is_not_fallen_back() -> None:
    fb = Fallback(targets(("anthropic", "claude")))
    nxt = Targets({})
    with anyio.CancelScope() as scope:
        scope.cancel()
        await fb(REQUEST, nxt)
    assert scope.cancelled_caught
    assert fb.statistics().triggered == 0


@pytest.mark.anyio
async def test_each_target_gets_its_own_retries_behind_fallback() -> None:
    clock = FakeClock()
    retry = Retry(
        ExponentialBackoffRetry(RetryConfig(max_attempts=3, base_delay=1.0, jitter=0)), clock=clock
    )
    fb = Fallback(targets(("anthropic", "claude")))
    nxt = Targets(
        {
            ("openai", "gpt-4o"): ServerError("down", status_code=503),
            ("anthropic", "claude"): [ServerError("blip", status_code=502), None],
        }
    )
    response = await build_chain([fb, retry], nxt)(REQUEST)
    assert response.provider == "anthropic"
    assert nxt.calls == [("openai", "gpt-4o")] * 3 + [("anthropic", "claude")] * 2
    assert clock.sleeps == [1.0, 2.0, 1.0]
    assert retry.statistics().exhausted == 1


def test_from_client_config_and_bad_targets() -> None:
    config = ClientConfig(fallbacks=[{"provider": "anthropic", "model": "claude"}])
    fb = Fallback(config.fallbacks)
    assert fb.targets == (FallbackTarget(provider="anthropic", model="claude"),)
    assert "anthropic:claude" in repr(fb) and "calls=0" in repr(fb)
    with pytest.raises(ValueError):
        Fallback([{}])
    with pytest.raises(ValueError):
        Fallback([{"provider": "x", "bogus": "y"}])


@pytest.mark.anyio
async def test_no_targets_is_a_pass_through() -> None:
    fb = Fallback([])
    with pytest.raises(ServerError):
        await fb(REQUEST, Targets({("openai", "gpt-4o"): ServerError("x")}))
    assert fb.statistics().triggered == 0
