"""BudgetMiddleware: reserve before sending, settle after, release on failure, price responses."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from aio_llm.config import ClientConfig
from aio_llm.cost import BudgetConfig, BudgetPeriod, CostManager
from aio_llm.cost.ledger._sqlite import SQLiteLedger
from aio_llm.errors import BudgetExceededError, ServerError
from aio_llm.middleware.budget import BudgetMiddleware
from aio_llm.streaming import ChunkAccumulator
from aio_llm.testing.clock import FakeClock
from aio_llm.tokens import estimate_request_tokens, max_request_tokens
from aio_llm.types import ChatChunk, ChatRequest, ChatResponse, ChunkStream, Message, Usage

PROMPT = "Summarise the following support ticket in two sentences: the printer is on fire."


def request(i: int = 0, **kw: object) -> ChatRequest:
    fields: dict[str, object] = {
        "model": "gpt-4o",
        "messages": [Message(role="user", content=f"{PROMPT} #{i}")],
        "max_tokens": 500,
    }
    fields.update(kw)
    return ChatRequest(**fields)


def real_usage(req: ChatRequest, output: int, cached: int = 0) -> Usage:
    """What a provider would report: fewer prompt tokens than the byte estimate."""
    prompt = sum(len(m.text) for m in req.messages) // 4 + 7
    return Usage(
        input_tokens=prompt,
        output_tokens=output,
        total_tokens=prompt + output,
        cached_input_tokens=cached,
    )


def answer(req: ChatRequest, output: int = 100, **kw: object) -> ChatResponse:
    return ChatResponse(
        id=f"resp-{req.messages[0].text[-4:]}",
        model=req.model,
        provider="fake",
        content="ok",
        usage=real_usage(req, output),
        **kw,
    )


def manager(limit: float | None = None, **kw: object) -> CostManager:
    m = CostManager(clock=FakeClock(), **kw)  # type: ignore[arg-type]
    if limit is not None:
        m.set_budget("daily", BudgetConfig(limit, BudgetPeriod.DAILY))
    return m


@pytest.mark.anyio
async def test_thousand_concurrent_requests_never_overshoot_a_hard_budget() -> None:
    limit = 2.0
    m = manager(limit)
    mw = BudgetMiddleware(m)
    rng = random.Random(7)
    answered: list[ChatResponse] = []
    refused: list[BudgetExceededError] = []
    worst = max(mw.worst_case(request(i)) for i in range(1000))

    async def next_(req: ChatRequest) -> ChatResponse:
        for _ in range(rng.randint(1, 6)):
            await anyio.lowlevel.checkpoint()
        return answer(req, output=rng.randint(50, req.max_tokens or 500))

    async def one(i: int) -> None:
        try:
            answered.append(await mw(request(i), next_))
        except BudgetExceededError as exc:
            refused.append(exc)

    async with anyio.create_task_group() as tg:
        for i in range(1000):
            tg.start_soon(one, i)

    assert len(answered) + len(refused) == 1000
    assert answered and refused
    status = m.get_budget_status("daily")
    assert status["reserved"] == 0.0
    spent = sum(r.cost or 0.0 for r in answered)
    assert status["spent"] == pytest.approx(spent, abs=1e-6)
    assert status["spent"] <= limit + worst  # never more than one request's estimate error
    assert status["spent"] <= limit  # here actual <= reserved, so not even that
    assert m.get_metrics().total_requests == len(answered)
    assert mw.statistics().refused == len(refused)
    assert m.metrics()["budget.refused"] == len(refused)


@pytest.mark.anyio
async def test_concurrent_requests_on_a_sqlite_ledger(tmp_path: Path) -> None:
    m = CostManager(clock=FakeClock(), ledger=SQLiteLedger(tmp_path / "b.db"))
    m.set_budget("daily", BudgetConfig(0.5))
    mw = BudgetMiddleware(m)
    results: list[object] = []

    async def next_(req: ChatRequest) -> ChatResponse:
        await anyio.lowlevel.checkpoint()
        return answer(req, output=400)

    async def one(i: int) -> None:
        try:
            results.append(await mw(request(i), next_))
        except BudgetExceededError as exc:
            results.append(exc)

    async with anyio.create_task_group() as tg:
        for i in range(200):
            tg.start_soon(one, i)
    status = await m.aget_budget_status("daily")
    ok = [r for r in results if isinstance(r, ChatResponse)]
    assert len(results) == 200 and 0 < len(ok) < 200
    assert status["reserved"] == 0.0 and status["spent"] <= 0.5
    assert status["spent"] == pytest.approx(sum(r.cost or 0 for r in ok), abs=1e-6)
    await m.aclose()


@pytest.mark.anyio
async def test_hard_limit_refuses_before_anything_is_sent() -> None:
    m = manager(0.001)
    mw = BudgetMiddleware(m)
    calls = 0

    async def next_(req: ChatRequest) -> ChatResponse:
        nonlocal calls
        calls += 1
        return answer(req)

    with pytest.raises(BudgetExceededError) as err:
        await mw(request(max_tokens=4000), next_)  # worst case $0.04 > $0.001
    assert calls == 0
    assert err.value.budget == "daily"
    assert err.value.requested is not None and err.value.requested > 0.001
    assert (await mw(request(max_tokens=50), next_)).cost is not None  # a small one fits
    assert calls == 1


@pytest.mark.anyio
async def test_reservation_is_released_on_failure_and_cancellation() -> None:
    m = manager(1.0)
    mw = BudgetMiddleware(m)

    async def failing(req: ChatRequest) -> ChatResponse:
        await anyio.lowlevel.checkpoint()
        raise ServerError("boom", status_code=500)

    with pytest.raises(ServerError):
        await mw(request(), failing)
    assert m.get_budget_status("daily")["reserved"] == 0.0

    async def hanging(req: ChatRequest) -> ChatResponse:
        await anyio.sleep_forever()
        raise AssertionError

    with anyio.move_on_after(0.01):
        await mw(request(), hanging)
    status = m.get_budget_status("daily")
    assert status["reserved"] == 0.0 and status["spent"] == 0.0
    assert mw.statistics().released == 2


@pytest.mark.anyio
async def test_every_response_gets_its_cost_and_is_recorded() -> None:
    m = manager()  # no budget: no ledger traffic, still priced and tracked
    mw = BudgetMiddleware(m)
    req = request(user="ann", metadata={"project": "web"})

    async def next_(r: ChatRequest) -> ChatResponse:
        return ChatResponse(
            id="x",
            model="gpt-4o-2024-08-06",
            usage=Usage(
                input_tokens=2000, output_tokens=300, total_tokens=2300, cached_input_tokens=1024
            ),
        )

    resp = await mw(req, next_)
    assert resp.cost == pytest.approx((976 * 2.5 + 1024 * 1.25 + 300 * 10.0) / 1e6)
    metrics = m.get_metrics()
    assert metrics.by_user == {"ann": pytest.approx(resp.cost)}
    assert metrics.by_project == {"web": pytest.approx(resp.cost)}
    assert metrics.cached_input_tokens == 1024


@pytest.mark.anyio
async def test_provider_cost_wins_and_unknown_models_cost_none() -> None:
    m = manager(10.0)
    mw = BudgetMiddleware(m)

    async def openrouter(r: ChatRequest) -> ChatResponse:
        return ChatResponse(
            id="o",
            model=r.model,
            usage=Usage(input_tokens=10, output_tokens=10, total_tokens=20, provider_cost=0.0042),
        )

    resp = await mw(request(model="anthropic/claude-sonnet-4"), openrouter)
    assert resp.cost == 0.0042
    assert m.get_budget_status("daily")["spent"] == pytest.approx(0.0042)

    async def plain(r: ChatRequest) -> ChatResponse:
        return ChatResponse(id="u", model=r.model, usage=Usage(input_tokens=10, output_tokens=10))

    # a hard budget cannot bound a model it has no price for: refused, nothing sent
    with pytest.raises(BudgetExceededError, match="no price"):
        await mw(request(model="acme/mystery"), plain)
    # a soft budget lets it through, uncosted
    m.set_budget("daily", BudgetConfig(10.0, BudgetPeriod.DAILY, hard=False))
    resp = await mw(request(model="acme/mystery"), plain)
    assert resp.cost is None
    assert m.get_metrics().unpriced_requests == 1


def test_worst_case_uses_max_tokens_or_the_model_limit() -> None:
    mw = BudgetMiddleware(manager())
    req = request(max_tokens=1000)
    inp = max_request_tokens(req)  # a bound, not the bytes/4 estimate
    assert inp >= 4 * estimate_request_tokens(req) - 16
    assert mw.worst_case(req) == pytest.approx((inp * 2.5 + 1000 * 10.0) / 1e6)
    no_max = request(max_tokens=None)
    assert mw.worst_case(no_max) == pytest.approx((inp * 2.5 + 16_384 * 10.0) / 1e6)
    extra = request(max_tokens=None, extra={"max_completion_tokens": 10})
    inp = max_request_tokens(extra)  # what ``extra`` carries may reach the prompt too
    assert mw.worst_case(extra) == pytest.approx((inp * 2.5 + 10 * 10.0) / 1e6)
    assert mw.worst_case(request(model="acme/mystery")) == 0.0


# -- streams ------------------------------------------------------------------------------------


class FakeSource:
    """Chunks of a streamed answer; ``usage`` arrives with the last chunk if given."""

    def __init__(self, deltas: list[str], usage: Usage | None, fail_first: bool = False) -> None:
        self._deltas = list(deltas)
        self._usage = usage
        self._fail_first = fail_first
        self._acc = ChunkAccumulator()
        self._acc.model = "gpt-4o"
        self._acc.id = "stream-1"

    async def next_chunks(self) -> list[ChatChunk] | None:
        await anyio.lowlevel.checkpoint()
        if self._fail_first:
            raise ServerError("upstream broke", status_code=502)
        if not self._deltas:
            return None
        delta = self._deltas.pop(0)
        chunk = ChatChunk(delta=delta, usage=self._usage if not self._deltas else None)
        self._acc.add(chunk)
        return [chunk]

    def build_response(self) -> ChatResponse:
        return self._acc.build(provider="fake")

    async def aclose(self) -> None:
        pass


def streaming(source: FakeSource) -> Callable[[ChatRequest], Awaitable[ChatResponse]]:
    async def next_(req: ChatRequest) -> ChatResponse:
        resp = ChatResponse(id="stream-1", model=req.model, provider="fake")
        resp.stream = ChunkStream(source)
        return resp

    return next_


@pytest.mark.anyio
async def test_stream_settles_with_its_final_usage_when_it_ends() -> None:
    m = manager(1.0)
    mw = BudgetMiddleware(m)
    use = Usage(input_tokens=100, output_tokens=300, total_tokens=400)
    resp = await mw(request(stream=True), streaming(FakeSource(["a", "b", "c"], use)))
    assert m.get_budget_status("daily")["reserved"] > 0  # held while the stream is open
    stream = resp.stream
    assert stream is not None
    assert [c.delta async for c in stream] == ["a", "b", "c"]
    expected = (100 * 2.5 + 300 * 10.0) / 1e6
    status = m.get_budget_status("daily")
    assert status["reserved"] == 0.0 and status["spent"] == pytest.approx(expected)
    assert resp.cost == pytest.approx(expected)
    assert stream.response is not None and stream.response.cost == pytest.approx(expected)
    assert m.get_metrics().estimated_requests == 0


@pytest.mark.anyio
async def test_stream_closed_early_without_usage_is_charged_an_estimate() -> None:
    m = manager(1.0)
    mw = BudgetMiddleware(m)
    req = request(stream=True)
    text = "word " * 200
    resp = await mw(req, streaming(FakeSource([text, "never read"], None)))
    assert resp.stream is not None
    async for _ in resp.stream:
        break
    await resp.stream.aclose()
    status = m.get_budget_status("daily")
    inp = estimate_request_tokens(req)
    expected = (inp * 2.5 + len(text.encode()) / 4 * 10.0) / 1e6
    assert status["reserved"] == 0.0
    assert status["spent"] == pytest.approx(expected, rel=0.01)
    assert resp.cost == pytest.approx(expected, rel=0.01)
    assert m.get_metrics().estimated_requests == 1
    assert mw.statistics().streams_estimated == 1


@pytest.mark.anyio
async def test_stream_failing_before_any_chunk_releases_its_reservation() -> None:
    m = manager(1.0)
    mw = BudgetMiddleware(m)
    resp = await mw(request(stream=True), streaming(FakeSource([], None, fail_first=True)))
    assert resp.stream is not None
    with pytest.raises(ServerError):
        async for _ in resp.stream:
            pass
    status = m.get_budget_status("daily")
    assert status["reserved"] == 0.0 and status["spent"] == 0.0


@pytest.mark.anyio
async def test_client_config_daily_budget_is_enforced() -> None:
    config = ClientConfig(daily_budget=0.01)
    m = CostManager.from_config(config, clock=FakeClock())
    mw = BudgetMiddleware(m)

    async def next_(req: ChatRequest) -> ChatResponse:
        return answer(req, output=500)

    served = 0
    with pytest.raises(BudgetExceededError, match="'daily'"):
        for i in range(100):
            await mw(request(i), next_)
            served += 1
    assert 0 < served < 100
    assert m.get_budget_status("daily")["spent"] <= 0.01


def test_middleware_repr_and_metrics() -> None:
    mw = BudgetMiddleware(manager(1.0))
    assert "budgets=['daily']" in repr(mw)
    assert mw.metrics()["cost.requests"] == 0
    assert mw.cost_manager.has_budgets


def test_worst_case_counts_every_choice_and_never_exceeds_the_model_limit() -> None:
    mw = BudgetMiddleware(manager())
    inp = max_request_tokens(request(max_tokens=None, extra={"n": 3}))
    # n choices of the model's whole output limit (16,384 for gpt-4o), not one
    three = request(max_tokens=None, extra={"n": 3})
    assert mw.worst_case(three) == pytest.approx((inp * 2.5 + 3 * 16_384 * 10.0) / 1e6)
    # asking for more than the model can write reserves what it can write
    huge = request(max_tokens=10**9)
    inp = max_request_tokens(huge)
    assert mw.worst_case(huge) == pytest.approx((inp * 2.5 + 16_384 * 10.0) / 1e6)


@pytest.mark.anyio
async def test_a_model_without_an_output_limit_is_sent_with_one() -> None:
    m = manager(10.0)
    m.pricing.register("acme/limitless", input=1.0, output=1.0)
    sent: list[ChatRequest] = []

    async def upstream(r: ChatRequest) -> ChatResponse:
        sent.append(r)
        return ChatResponse(id="x", model=r.model, usage=Usage(input_tokens=1, output_tokens=1))

    await BudgetMiddleware(m)(request(model="acme/limitless", max_tokens=None), upstream)
    assert sent[0].max_tokens == 4096  # the bound the reservation assumed holds upstream
