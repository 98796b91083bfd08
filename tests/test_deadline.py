"""The per-call deadline: one timer for every call, with asyncio.timeout's cancellation rules."""

from __future__ import annotations

import asyncio
import math
import time

import anyio
import pytest

from aio_llm import APITimeoutError, AsyncLLMClient, ChatRequest, ChatResponse
from aio_llm._deadline import LoopDeadlines, ScopeDeadlines, call_deadline, current_deadline
from aio_llm.middleware import Dedup
from aio_llm.pipeline import Next
from aio_llm.providers import MockProvider

pytestmark = pytest.mark.anyio

HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Sleep:
    """Middleware: sleep ``seconds`` before passing the request on; record what it saw."""

    def __init__(self, seconds: float = 0.0, *, shield: bool = False, then: float = 0.0) -> None:
        self.seconds = seconds
        self.shield = shield
        self.then = then
        self.deadlines: list[float] = []
        self.finished = 0

    async def __call__(self, request: ChatRequest, next: Next) -> ChatResponse:
        self.deadlines.append(current_deadline())
        if self.shield:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(self.seconds)
            self.finished += 1
            await anyio.sleep(self.then)
        else:
            await anyio.sleep(self.seconds)
        return await next(request)


def make_client(*middleware: object) -> AsyncLLMClient:
    return AsyncLLMClient(MockProvider("hi"), middleware=list(middleware), model="m")


async def test_the_client_uses_one_loop_timer() -> None:
    async with make_client() as c:
        assert isinstance(c._deadlines, LoopDeadlines)


async def test_a_passed_deadline_raises_api_timeout_error_and_the_task_is_not_left_cancelled() -> (
    None
):
    async with make_client(Sleep(5)) as c:
        start = time.monotonic()
        with pytest.raises(APITimeoutError, match="deadline"):
            await c.chat(HELLO, timeout=0.05)
        assert time.monotonic() - start < 1.0
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0
        await anyio.sleep(0.01)  # the task goes on working normally afterwards


async def test_the_deadline_is_visible_to_middleware() -> None:
    probe = Sleep()
    async with make_client(probe) as c:
        loop = asyncio.get_running_loop()
        before = loop.time()
        await c.chat(HELLO, timeout=30)
        await c.chat(HELLO, timeout=None)
    assert before + 30 <= probe.deadlines[0] <= loop.time() + 30
    assert probe.deadlines[1] == math.inf
    assert current_deadline() == math.inf  # reset once the call ended


async def test_a_shorter_deadline_after_longer_ones_fires_on_time() -> None:
    async with make_client(Sleep(5)) as c:
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(lambda: _expect_timeout(c, 2.0))
            await anyio.sleep(0)
            start = time.monotonic()
            with pytest.raises(APITimeoutError):
                await c.chat(HELLO, timeout=0.05)
            assert time.monotonic() - start < 1.0
            tg.cancel_scope.cancel()


async def _expect_timeout(c: AsyncLLMClient, timeout: float) -> None:
    with pytest.raises(APITimeoutError):
        await c.chat(HELLO, timeout=timeout)


async def test_an_outside_cancellation_stays_a_cancellation() -> None:
    async with make_client(Sleep(5)) as c:
        # the caller's own anyio scope
        with anyio.move_on_after(0.05) as scope:
            await c.chat(HELLO, timeout=10)
        assert scope.cancelled_caught
        # asyncio.wait_for around the call
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(c.chat(HELLO, timeout=10), 0.05)
        # both at once: the caller's cancellation wins, it is not reported as our timeout
        with anyio.move_on_after(0.05) as scope:
            await c.chat(HELLO, timeout=0.05)
        assert scope.cancelled_caught


async def test_a_shielded_clean_up_inside_the_call_finishes_before_the_deadline_lands() -> None:
    slow_cleanup = Sleep(0.2, shield=True, then=5)
    async with make_client(slow_cleanup) as c:
        start = time.monotonic()
        with pytest.raises(APITimeoutError):
            await c.chat(HELLO, timeout=0.05)
        elapsed = time.monotonic() - start
    assert slow_cleanup.finished == 1  # the shield held
    assert 0.2 <= elapsed < 1.0


async def test_a_callers_shield_does_not_stop_the_calls_own_deadline() -> None:
    async with make_client(Sleep(5)) as c:
        with anyio.CancelScope(shield=True):
            start = time.monotonic()
            with pytest.raises(APITimeoutError):
                await c.chat(HELLO, timeout=0.05)
        assert time.monotonic() - start < 1.0


async def test_memory_stays_bounded_behind_one_slow_call() -> None:
    deadlines = LoopDeadlines(asyncio.get_running_loop())
    stuck = deadlines.start(60)
    for _ in range(20_000):
        deadlines.finish(deadlines.start(60), None)
    queue = stuck.queue
    assert len(queue) <= 2 * 1024 + 1  # compacted, not 20,001 entries
    deadlines.finish(stuck, None)
    deadlines.finish(deadlines.start(60), None)
    assert len(queue) == 0
    # many distinct timeouts leave no empty queues behind
    for i in range(1000):
        deadlines.finish(deadlines.start(1 + i / 1000), None)
    assert len(deadlines._queues) <= 9
    deadlines.close()


async def test_streams_share_the_deadline_over_the_whole_block() -> None:
    async with make_client() as c:
        start = time.monotonic()
        with pytest.raises(APITimeoutError):
            async with c.stream(HELLO, timeout=0.05) as s:
                async for _ in s:
                    await anyio.sleep(5)
        assert time.monotonic() - start < 1.0
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0


async def test_scope_deadlines_on_other_backends() -> None:
    deadlines = ScopeDeadlines()
    d = deadlines.start(0.05)
    try:
        await anyio.sleep(5)
    except BaseException as exc:
        assert deadlines.finish(d, exc)
    else:  # pragma: no cover
        raise AssertionError("the scope did not cancel the sleep")
    d = deadlines.start(5)
    assert not deadlines.finish(d, None)


async def test_streams_closed_out_of_order_or_elsewhere_leave_no_deadline_behind() -> None:
    async with make_client() as c:
        s1, s2 = c.stream(HELLO, timeout=0.2), c.stream(HELLO, timeout=0.2)
        await s1.__aenter__()
        await s2.__aenter__()
        assert call_deadline() < math.inf
        await s1.__aexit__(None, None, None)  # out of order
        assert call_deadline() < math.inf  # s2 still open: its deadline holds
        await s2.__aexit__(None, None, None)
        assert call_deadline() == math.inf
        s3 = c.stream(HELLO, timeout=30)
        await s3.__aenter__()
        async with anyio.create_task_group() as tg:  # handed over: closed by another task
            tg.start_soon(s3.__aexit__, None, None, None)
        assert call_deadline() == math.inf
        assert current_deadline() == math.inf


class Probe:
    """Middleware: record the call's own deadline as seen from inside, then sleep."""

    def __init__(self, sleep: float = 0.0) -> None:
        self.sleep = sleep
        self.seen: list[float] = []

    async def __call__(self, request: ChatRequest, next: Next) -> ChatResponse:
        self.seen.append(call_deadline())
        await anyio.sleep(self.sleep)
        return await next(request)


async def test_a_task_spawned_inside_a_call_is_not_bound_by_its_deadline() -> None:
    probe = Probe(0.3)
    async with AsyncLLMClient(
        MockProvider("hi"), model="m", middleware=[Dedup(shared_task=True), probe]
    ) as c:
        async with anyio.create_task_group() as tg:

            async def first() -> None:
                with pytest.raises(APITimeoutError):
                    await c.chat(HELLO, timeout=0.1)

            tg.start_soon(first)
            await anyio.sleep(0.01)
            answer = await c.chat(HELLO, timeout=None)  # joins the shared call
    # the shared call runs in the client's task group: no caller's deadline applies to it
    assert probe.seen == [math.inf]
    assert answer.content == "hi"


async def test_expired_deadlines_leave_no_queues_behind() -> None:
    deadlines = LoopDeadlines(asyncio.get_running_loop())

    async def call(i: int) -> None:
        d = deadlines.start(0.01 + i * 1e-7)  # every call a different length, all time out
        try:
            await anyio.sleep(10)
        except BaseException as exc:
            assert deadlines.finish(d, exc)
            return
        raise AssertionError("the deadline did not fire")

    async with anyio.create_task_group() as tg:
        for i in range(2000):
            tg.start_soon(call, i)
    assert len(deadlines._queues) == 0
    deadlines.close()
