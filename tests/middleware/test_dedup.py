from __future__ import annotations

from typing import Any

import anyio
import pytest
from anyio import wait_all_tasks_blocked

from aio_llm.compat import get_deduplicator
from aio_llm.errors import RateLimitError
from aio_llm.middleware.dedup import Dedup, Deduplicator, samples
from aio_llm.types import ChatRequest, ChatResponse

pytestmark = pytest.mark.anyio


def _request(text: str = "Hello", **kw: object) -> ChatRequest:
    """A request meant to give one answer (``temperature=0``): dedup merges those."""
    kw.setdefault("temperature", 0)
    return ChatRequest(model="m", messages=[{"role": "user", "content": text}], **kw)


class Upstream:
    """A fake ``next``: counts calls and answers once ``release`` is set."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls = 0
        self.cancelled = 0
        self.release = anyio.Event()
        self.error = error
        self.requests: list[ChatRequest] = []

    async def __call__(self, request: ChatRequest) -> ChatResponse:
        self.calls += 1
        self.requests.append(request)
        try:
            await self.release.wait()
        except anyio.get_cancelled_exc_class():
            self.cancelled += 1
            raise
        if self.error is not None:
            raise self.error
        return ChatResponse(model=request.model, content=f"answer {self.calls}")


async def test_thousand_identical_concurrent_requests_make_one_call() -> None:
    upstream = Upstream()
    results: list[ChatResponse] = []
    async with Dedup() as dedup:

        async def caller() -> None:
            results.append(await dedup(_request(), upstream))

        async with anyio.create_task_group() as tg:
            for _ in range(1000):
                tg.start_soon(caller)
            await wait_all_tasks_blocked()
            assert dedup.metrics() == {"dedup.hits": 999, "dedup.in_flight": 1}
            upstream.release.set()
    assert upstream.calls == 1
    assert len(results) == 1000
    assert {r.content for r in results} == {"answer 1"}
    assert len({id(r) for r in results}) == 1000  # followers get their own copies
    assert dedup.statistics().hits == 999
    assert dedup.metrics()["dedup.in_flight"] == 0


async def test_cancelling_the_first_caller_still_answers_the_others() -> None:
    upstream = Upstream()
    results: list[ChatResponse] = []
    leader_scope = anyio.CancelScope()
    async with Dedup() as dedup:

        async def leader() -> None:
            with leader_scope:
                await dedup(_request(), upstream)
            results.append(ChatResponse(content="leader cancelled"))

        async def follower() -> None:
            results.append(await dedup(_request(), upstream))

        async with anyio.create_task_group() as tg:
            tg.start_soon(leader)
            await wait_all_tasks_blocked()
            for _ in range(999):
                tg.start_soon(follower)
            await wait_all_tasks_blocked()
            leader_scope.cancel()
            await wait_all_tasks_blocked()
            assert upstream.cancelled == 0
            upstream.release.set()
    assert upstream.calls == 1
    assert upstream.cancelled == 0
    answers = [r.content for r in results]
    assert answers.count("answer 1") == 999
    assert answers.count("leader cancelled") == 1


async def test_a_cancelled_leader_leaves_the_one_call_to_the_others() -> None:
    upstream = Upstream()
    flights = Deduplicator()  # not entered, not bound: plain tasks on asyncio
    results: list[str] = []
    leader_scope = anyio.CancelScope()

    async def call() -> str:
        return (await upstream(_request())).content

    async def leader() -> None:
        with leader_scope:
            await flights.deduplicate("k", call)

    async def follower() -> None:
        results.append(await flights.deduplicate("k", call))

    async with anyio.create_task_group() as tg:
        tg.start_soon(leader)
        await wait_all_tasks_blocked()
        for _ in range(20):
            tg.start_soon(follower)
        await wait_all_tasks_blocked()
        leader_scope.cancel()
        await wait_all_tasks_blocked()
        upstream.release.set()
    assert upstream.calls == 1 and upstream.cancelled == 0
    assert results == ["answer 1"] * 20
    assert leader_scope.cancelled_caught


async def test_a_call_cut_off_without_an_answer_is_a_timeout_for_every_waiter() -> None:
    """The flight's deadline can fire before its waiters' own: none of them gets ``None``."""
    from aio_llm.errors import APITimeoutError

    flights = Deduplicator()
    outcomes: list[object] = []

    async def never() -> ChatResponse:
        await anyio.sleep_forever()
        raise AssertionError

    async def waiter() -> None:
        try:
            outcomes.append(await flights.deduplicate("k", never))
        except APITimeoutError as exc:
            outcomes.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await wait_all_tasks_blocked()
        tg.start_soon(waiter)
        await wait_all_tasks_blocked()
        scope = flights._flights["k"].scope  # what the flight's deadline does when it fires
        assert scope is not None
        scope.cancel()
    assert len(outcomes) == 2
    assert all(isinstance(o, APITimeoutError) for o in outcomes), outcomes


async def test_the_call_is_cancelled_when_its_last_waiter_leaves() -> None:
    upstream = Upstream()
    flights = Deduplicator()

    async def call() -> str:
        return (await upstream(_request())).content

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(flights.deduplicate, "k", call)
        await wait_all_tasks_blocked()
        tg.cancel_scope.cancel()  # every waiter leaves
    await wait_all_tasks_blocked()
    assert upstream.calls == 1 and upstream.cancelled == 1
    assert not flights.has_flight("k")  # the next caller starts afresh
    upstream.release.set()
    assert await flights.deduplicate("k", call) == "answer 2"


async def test_the_shared_call_runs_until_the_latest_waiters_deadline() -> None:
    seen: list[float] = []
    release = anyio.Event()
    flights = Deduplicator()

    async def call() -> str:
        seen.append(anyio.current_effective_deadline())
        await release.wait()
        seen.append(anyio.current_effective_deadline())
        return "ok"

    async def ask(timeout: float) -> None:
        with anyio.fail_after(timeout):
            assert await flights.deduplicate("k", call) == "ok"

    async with anyio.create_task_group() as tg:
        tg.start_soon(ask, 50.0)
        await wait_all_tasks_blocked()
        tg.start_soon(ask, 100.0)
        await wait_all_tasks_blocked()
        release.set()
    now = anyio.current_time()
    assert now + 40 < seen[0] <= now + 50  # the leader's deadline first ...
    assert now + 90 < seen[1] <= now + 100  # ... then the follower's later one


async def test_closing_the_deduplicator_cancels_its_calls() -> None:
    upstream = Upstream()
    async with Deduplicator() as flights, anyio.create_task_group() as tg:

        async def ask() -> None:
            await flights.deduplicate("k", lambda: upstream(_request()))

        tg.start_soon(ask)
        await wait_all_tasks_blocked()
        tg.cancel_scope.cancel()
    assert upstream.cancelled == 1


async def test_errors_reach_every_waiter() -> None:
    upstream = Upstream(error=RateLimitError("slow down", status_code=429))
    errors: list[BaseException] = []
    async with Dedup() as dedup:

        async def caller() -> None:
            try:
                await dedup(_request(), upstream)
            except RateLimitError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(caller)
            await wait_all_tasks_blocked()
            upstream.release.set()
    assert upstream.calls == 1
    assert len(errors) == 50
    # the next request after a failure goes upstream again
    upstream.error = None
    async with Dedup() as dedup:
        assert (await dedup(_request(), upstream)).content == "answer 2"


async def test_call_is_cancelled_when_every_waiter_leaves() -> None:
    upstream = Upstream()
    async with Dedup() as dedup:
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(dedup, _request(), upstream)
            await wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
        await wait_all_tasks_blocked()
        assert upstream.cancelled == 1
        assert dedup.statistics().inflight == 0


async def test_different_requests_are_not_shared() -> None:
    upstream = Upstream()
    upstream.release.set()
    async with Dedup() as dedup, anyio.create_task_group() as tg:
        tg.start_soon(dedup, _request("a"), upstream)
        tg.start_soon(dedup, _request("b"), upstream)
        tg.start_soon(dedup, _request("a", temperature=0.5), upstream)
    assert upstream.calls == 3


async def test_cache_false_opts_out() -> None:
    upstream = Upstream()
    async with Dedup() as dedup, anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(dedup, _request(cache=False), upstream)
        await wait_all_tasks_blocked()
        upstream.release.set()
    assert upstream.calls == 3


async def test_stream_joins_a_plain_call_in_flight_and_replays_it() -> None:
    upstream = Upstream()
    out: dict[str, ChatResponse] = {}
    async with Dedup() as dedup:

        async def plain() -> None:
            out["plain"] = await dedup(_request(), upstream)

        async def streamed() -> None:
            out["stream"] = await dedup(_request(stream=True), upstream)

        async with anyio.create_task_group() as tg:
            tg.start_soon(plain)
            await wait_all_tasks_blocked()
            tg.start_soon(streamed)
            await wait_all_tasks_blocked()
            upstream.release.set()
    assert upstream.calls == 1
    stream = out["stream"].stream
    assert stream is not None
    chunks = [c.delta async for c in stream]
    assert "".join(chunks) == "answer 1"


async def test_stream_alone_goes_upstream_and_never_leads() -> None:
    upstream = Upstream()
    upstream.release.set()
    async with Dedup() as dedup:
        await dedup(_request(stream=True), upstream)
        assert upstream.requests[-1].stream is True
        assert not dedup.deduplicator.has_flight("anything")
    assert upstream.calls == 1


async def test_standalone_deduplicator_accepts_sync_and_async_executors() -> None:
    flights = get_deduplicator()
    assert flights is get_deduplicator()
    assert await flights.deduplicate(key="k1", executor=lambda: 42) == 42

    calls = 0
    gate = anyio.Event()

    async def expensive() -> str:
        nonlocal calls
        calls += 1
        await gate.wait()
        return "done"

    results: list[str] = []

    async def caller() -> None:
        results.append(await flights.deduplicate(key="k2", executor=expensive))

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(caller)
        await wait_all_tasks_blocked()
        gate.set()
    assert calls == 1
    assert results == ["done"] * 10


async def test_tenant_separates_flights() -> None:
    upstream = Upstream()
    async with Dedup(tenant=lambda r: r.metadata.get("tenant")) as dedup:
        async with anyio.create_task_group() as tg:
            tg.start_soon(dedup, _request(metadata={"tenant": "a"}), upstream)
            tg.start_soon(dedup, _request(metadata={"tenant": "b"}), upstream)
            await wait_all_tasks_blocked()
            upstream.release.set()
    assert upstream.calls == 2
    assert "inflight=0" in repr(dedup)


@pytest.mark.parametrize(
    ("params", "merged"),
    [
        ({"temperature": None}, False),  # the provider's default temperature samples
        ({"temperature": 0.7}, False),
        ({"temperature": 0.7, "seed": 1}, True),
        ({"temperature": 0}, True),
        ({"temperature": 0, "extra": {"n": 3}}, False),
    ],
)
async def test_only_requests_meant_to_give_one_answer_are_merged(
    params: dict[str, Any], merged: bool
) -> None:
    upstream = Upstream()
    async with Dedup() as dedup, anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(dedup, _request(**params), upstream)
        await wait_all_tasks_blocked()
        upstream.release.set()
    assert upstream.calls == (1 if merged else 3)
    assert samples(_request(**params)) is not merged


async def test_samples_merge_when_the_middleware_says_so() -> None:
    upstream = Upstream()
    async with Dedup(merge_samples=True) as dedup, anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(dedup, _request(temperature=1.0), upstream)
        await wait_all_tasks_blocked()
        upstream.release.set()
    assert upstream.calls == 1
