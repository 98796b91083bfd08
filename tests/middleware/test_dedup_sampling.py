"""Issue 15, point 2: dedup merges only what is meant to be identical, and costs add up.

Over loopback HTTP with the default chain (Dedup outside Budget): requests
that sample go upstream each on their own unless the caller opts in;
followers of a merged call report ``cached=True`` and ``cost=0.0``; the sum
of every response's ``cost`` equals what the ledger charged, also when the
first caller is cancelled.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from aio_llm import AsyncLLMClient, ChatResponse, ClientConfig
from aio_llm.testing import FakeLLMServer

ASK = [{"role": "user", "content": "pick a number"}]


@pytest.fixture
async def server() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer(latency=0.2) as srv:
        yield srv


def make(srv: FakeLLMServer, **config: Any) -> AsyncLLMClient:
    return AsyncLLMClient(
        "openai",
        api_key="sk-dedup-sampling",
        base_url=srv.openai_url,
        model="gpt-4o-mini",
        config=ClientConfig(**config),
    )


async def ten(c: AsyncLLMClient, copies: int = 10, **params: Any) -> list[ChatResponse]:
    out: list[ChatResponse] = []

    async def ask() -> None:
        out.append(await c.chat(ASK, **params))

    async with anyio.create_task_group() as tg:
        for _ in range(copies):
            tg.start_soon(ask)
    return out


def charged(c: AsyncLLMClient) -> float:
    return c.cost_manager.get_metrics().total_cost


def assert_costs_add_up(c: AsyncLLMClient, responses: list[ChatResponse]) -> None:
    costs = [r.cost for r in responses]
    assert all(cost is not None for cost in costs)
    assert math.isclose(sum(costs), charged(c), rel_tol=1e-9, abs_tol=1e-12)  # type: ignore[arg-type]
    assert charged(c) > 0


@pytest.mark.anyio
@pytest.mark.parametrize(
    "params",
    [
        {"temperature": 1.0},
        {},  # OpenAI samples when no temperature is given
        {"temperature": 0.0, "n": 3},
        {"temperature": 0.7, "top_p": 0.9},
    ],
)
async def test_requests_that_sample_are_never_merged(
    server: FakeLLMServer, params: dict[str, Any]
) -> None:
    async with make(server) as c:
        answers = await ten(c, **params)
        assert server.request_count == 10
        assert not any(r.cached for r in answers)
        assert c.metrics()["dedup.hits"] == 0
        assert_costs_add_up(c, answers)


@pytest.mark.anyio
@pytest.mark.parametrize("params", [{"temperature": 0.0}, {"temperature": 1.0, "seed": 42}])
async def test_deterministic_requests_share_one_call_and_followers_cost_nothing(
    server: FakeLLMServer, params: dict[str, Any]
) -> None:
    async with make(server) as c:
        answers = await ten(c, **params)
        assert server.request_count == 1
        leaders = [r for r in answers if not r.cached]
        followers = [r for r in answers if r.cached]
        assert len(leaders) == 1 and len(followers) == 9
        assert leaders[0].cost is not None and leaders[0].cost > 0
        assert all(r.cost == 0.0 for r in followers)
        assert all(r.content == leaders[0].content for r in followers)
        assert all(r.usage == leaders[0].usage for r in followers)  # usage says what it took
        assert_costs_add_up(c, answers)


@pytest.mark.anyio
async def test_the_caller_opts_in_per_call(server: FakeLLMServer) -> None:
    async with make(server) as c:
        answers = await ten(c, temperature=1.0, dedup=True)
        assert server.request_count == 1
        assert sum(r.cached for r in answers) == 9
        assert_costs_add_up(c, answers)
        server.reset_stats()
        await ten(c, temperature=0.0, dedup=False)  # and opts out
        assert server.request_count == 10


@pytest.mark.anyio
async def test_the_caller_opts_in_in_config(server: FakeLLMServer) -> None:
    async with make(server, dedup_sampling=True) as c:
        answers = await ten(c, temperature=1.0)
        assert server.request_count == 1
        assert_costs_add_up(c, answers)


def test_dedup_sampling_reads_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_DEDUP_SAMPLING", "1")
    assert ClientConfig.from_env().dedup_sampling is True


@pytest.mark.anyio
async def test_the_mock_provider_does_not_sample() -> None:
    async with AsyncLLMClient("mock", model="m") as c:
        mock = c.providers["mock"]
        mock.latency = 0.05  # type: ignore[attr-defined]
        answers = await ten(c)
        assert len(mock.calls) == 1  # type: ignore[attr-defined]
        assert sum(r.cached for r in answers) == 9


@pytest.mark.anyio
async def test_a_streaming_follower_is_replayed_and_costs_nothing(server: FakeLLMServer) -> None:
    async with make(server) as c:
        leader: list[ChatResponse] = []

        async def lead() -> None:
            leader.append(await c.chat(ASK, temperature=0))

        async with anyio.create_task_group() as tg:
            tg.start_soon(lead)
            await server.wait_until(lambda s: s.in_flight == 1)
            async with c.stream(ASK, temperature=0) as s:
                text = await s.text()
        assert server.request_count == 1
        assert s.response is not None and s.response.cached and s.response.cost == 0.0
        assert text == leader[0].content
        assert math.isclose(leader[0].cost or 0.0, charged(c))
        server.reset_stats()
        async with c.stream(ASK, temperature=1.0) as s:  # sampling: its own stream
            await s.text()
        assert server.request_count == 1 and s.response is not None and not s.response.cached


@pytest.mark.anyio
async def test_a_cancelled_leader_leaves_the_others_answered_and_costs_consistent(
    server: FakeLLMServer,
) -> None:
    async with make(server) as c:
        answers: list[ChatResponse] = []
        first = anyio.CancelScope()

        async def leader() -> None:
            with first:
                await c.chat(ASK, temperature=0)

        async def follower() -> None:
            answers.append(await c.chat(ASK, temperature=0))

        async with anyio.create_task_group() as tg:
            tg.start_soon(leader)
            await server.wait_until(lambda s: s.in_flight == 1)
            for _ in range(9):
                tg.start_soon(follower)
            await anyio.wait_all_tasks_blocked()
            first.cancel()
        assert [r.content for r in answers] == ["Echo: pick a number"] * 9
        assert server.request_count == 1  # the call went on for the others
        # one of the others got the response that stands for the call, and its cost
        assert sum(not r.cached for r in answers) == 1
        assert_costs_add_up(c, answers)


def test_what_samples() -> None:
    from aio_llm import ChatRequest
    from aio_llm.middleware.dedup import samples

    def req(**kw: Any) -> ChatRequest:
        return ChatRequest(model="m", messages=ASK, **kw)

    assert samples(req())
    assert samples(req(temperature=0.2))
    assert samples(req(temperature=0, n=2))
    assert samples(req(seed=1, n=2))
    assert samples(req(temperature=0, extra={"n": 2}))
    assert not samples(req(temperature=0))
    assert not samples(req(temperature=1.5, seed=7))
    assert not samples(req(), default_samples=False)  # the mock's kind
    assert samples(req(temperature=0.5), default_samples=False)
