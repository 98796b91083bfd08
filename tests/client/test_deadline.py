"""The per-call deadline: an anyio cancel scope around the whole chain (``Session.call``).

No assertion here depends on how fast the machine is: a call that must time
out sleeps far longer than its deadline, and a generous ``fail_after``
only guards against a hang.
"""

from __future__ import annotations

import asyncio
import math

import anyio
import pytest

from aio_llm import APITimeoutError, AsyncLLMClient, ChatRequest, ChatResponse
from aio_llm.middleware import Dedup
from aio_llm.pipeline import MiddlewareLike, Next
from aio_llm.providers import MockProvider
from aio_llm.transports.base import call_deadline

pytestmark = pytest.mark.anyio

HELLO = [{"role": "user", "content": "hello"}]
FOREVER = 600.0  # a wait only a deadline ends
GUARD = 30.0  # a hang guard, never reached when the code is right


class Hint:
    """Middleware: record the transport's hint (``call_deadline``) and anyio's deadline."""

    def __init__(self) -> None:
        self.seen: list[tuple[float | None, float]] = []

    async def __call__(self, request: ChatRequest, next: Next) -> ChatResponse:
        self.seen.append((call_deadline.get(), anyio.current_effective_deadline()))
        return await next(request)


class Sleep:
    """Middleware: sleep ``seconds`` before passing the request on; record the deadline seen."""

    def __init__(self, seconds: float = 0.0, *, shield: bool = False, then: float = 0.0) -> None:
        self.seconds = seconds
        self.shield = shield
        self.then = then
        self.deadlines: list[float] = []
        self.finished = 0

    async def __call__(self, request: ChatRequest, next: Next) -> ChatResponse:
        self.deadlines.append(anyio.current_effective_deadline())
        if self.shield:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(self.seconds)
            self.finished += 1
            await anyio.sleep(self.then)
        else:
            await anyio.sleep(self.seconds)
        return await next(request)


def make_client(*middleware: MiddlewareLike) -> AsyncLLMClient:
    return AsyncLLMClient(MockProvider("hi"), middleware=list(middleware), model="m")


async def test_a_passed_deadline_raises_api_timeout_error_and_leaves_the_task_usable() -> None:
    async with make_client(Sleep(FOREVER)) as c:
        with anyio.fail_after(GUARD), pytest.raises(APITimeoutError, match="deadline"):
            await c.chat(HELLO, timeout=0.05)
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0
        await anyio.sleep(0)  # the task goes on working normally afterwards
        assert c.metrics()["requests.errors"] == 1 and c.metrics()["requests.in_flight"] == 0


async def test_the_deadline_is_visible_to_middleware() -> None:
    probe = Sleep()
    async with make_client(probe) as c:
        before = anyio.current_time()
        await c.chat(HELLO, timeout=30)
        after = anyio.current_time()
        await c.chat(HELLO, timeout=None)
    assert before + 30 <= probe.deadlines[0] <= after + 30
    assert probe.deadlines[1] == math.inf
    assert anyio.current_effective_deadline() == math.inf  # nothing left behind


async def test_the_request_timeout_and_the_client_default_apply_when_the_call_gives_none() -> None:
    probe = Sleep()
    client = AsyncLLMClient(MockProvider("hi"), middleware=[probe], model="m")
    client.config = client.config.model_copy(update={"timeout": 40.0})
    async with client as c:
        await c.chat(HELLO)
        await c.chat(request=ChatRequest(model="m", messages=HELLO, timeout=20))
    now = anyio.current_time()
    assert now + 30 < probe.deadlines[0] <= now + 40
    assert now + 10 < probe.deadlines[1] <= now + 20


async def test_a_short_deadline_fires_while_longer_ones_wait() -> None:
    async with make_client(Sleep(FOREVER)) as c, anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(_expect_timeout, c, GUARD * 2)
        await anyio.wait_all_tasks_blocked()
        with anyio.fail_after(GUARD), pytest.raises(APITimeoutError):
            await c.chat(HELLO, timeout=0.05)
        tg.cancel_scope.cancel()


async def _expect_timeout(c: AsyncLLMClient, timeout: float) -> None:
    with pytest.raises(APITimeoutError):
        await c.chat(HELLO, timeout=timeout)


async def test_an_outside_cancellation_stays_a_cancellation() -> None:
    async with make_client(Sleep(FOREVER)) as c:
        # the caller's own anyio scope
        with anyio.move_on_after(0.05) as scope:
            await c.chat(HELLO, timeout=GUARD)
        assert scope.cancelled_caught
        # asyncio.wait_for around the call
        with pytest.raises(TimeoutError) as info:
            await asyncio.wait_for(c.chat(HELLO, timeout=GUARD), 0.05)
        assert not isinstance(info.value, APITimeoutError)
        # both at once: the caller's cancellation wins; it is not reported as our timeout
        with anyio.move_on_after(0.05) as scope:
            await c.chat(HELLO, timeout=0.05)
        assert scope.cancelled_caught


async def test_a_shielded_clean_up_inside_the_call_finishes_before_the_deadline_lands() -> None:
    slow_cleanup = Sleep(0.2, shield=True, then=FOREVER)
    async with make_client(slow_cleanup) as c:
        with anyio.fail_after(GUARD), pytest.raises(APITimeoutError):
            await c.chat(HELLO, timeout=0.05)
    assert slow_cleanup.finished == 1  # the shield held


async def test_a_callers_shield_does_not_stop_the_calls_own_deadline() -> None:
    async with make_client(Sleep(FOREVER)) as c:
        with anyio.CancelScope(shield=True):
            with anyio.fail_after(GUARD), pytest.raises(APITimeoutError):
                await c.chat(HELLO, timeout=0.05)


async def test_streams_share_the_deadline_over_the_whole_block() -> None:
    async with make_client() as c:
        with anyio.fail_after(GUARD), pytest.raises(APITimeoutError):
            async with c.stream(HELLO, timeout=0.05) as s:
                async for _ in s:
                    await anyio.sleep(FOREVER)
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0
        assert anyio.current_effective_deadline() == math.inf


async def test_a_stream_that_fails_to_open_leaves_its_scope() -> None:
    async with make_client(Sleep(FOREVER)) as c:
        for _ in range(2):  # and the next one times out the same way
            with anyio.fail_after(GUARD), pytest.raises(APITimeoutError):
                async with c.stream(HELLO, timeout=0.05):
                    raise AssertionError("the stream should not have opened")  # pragma: no cover
            assert anyio.current_effective_deadline() == math.inf


async def test_a_shared_call_outlives_the_deadline_of_the_caller_that_started_it() -> None:
    started, release = anyio.Event(), anyio.Event()

    class Held:
        """Middleware: record the deadline seen, then wait for ``release``."""

        def __init__(self) -> None:
            self.deadlines: list[float] = []

        async def __call__(self, request: ChatRequest, next: Next) -> ChatResponse:
            self.deadlines.append(anyio.current_effective_deadline())
            started.set()
            await release.wait()
            return await next(request)

    probe = Held()
    dedup = Dedup()
    async with AsyncLLMClient(MockProvider("hi"), model="m", middleware=[dedup, probe]) as c:
        async with anyio.create_task_group() as tg:
            first_done = anyio.Event()

            async def first() -> None:
                with pytest.raises(APITimeoutError):
                    await c.chat(HELLO, timeout=2.0, temperature=0)  # long enough to be joined
                first_done.set()

            async def second() -> None:
                answer = await c.chat(HELLO, timeout=None, temperature=0)  # joins the call
                assert answer.content == "hi"

            tg.start_soon(first)
            await started.wait()
            tg.start_soon(second)
            while dedup.deduplicator.hits == 0:
                await anyio.sleep(0)
            await first_done.wait()  # the leader's deadline passed ...
            release.set()  # ... and the shared call still answers the other caller
    # the shared call started under the first caller's deadline and outlived it: the
    # other caller, with no deadline, extended it
    assert probe.deadlines[0] < math.inf


async def test_the_transport_hint_is_the_calls_deadline_and_is_cleared_after_it() -> None:
    hint = Hint()
    async with make_client(hint) as c:
        await c.chat(HELLO, timeout=30)
        await c.chat(HELLO, timeout=None)
        async with c.stream(HELLO, timeout=20) as s:
            assert call_deadline.get() is not None  # the block is inside the deadline
            await s.text()
        assert call_deadline.get() is None
        for _ in range(2):  # a stream whose deadline passed leaves nothing behind either
            with anyio.fail_after(GUARD), pytest.raises(APITimeoutError):
                async with c.stream(HELLO, timeout=0.05):
                    await anyio.sleep(FOREVER)
            assert call_deadline.get() is None
    (chat_hint, chat_deadline), (none_hint, none_deadline), (stream_hint, stream_deadline) = (
        hint.seen[:3]
    )
    assert chat_hint == chat_deadline < math.inf  # what anyio says, without asking it
    assert none_hint is None and none_deadline == math.inf
    assert stream_hint == stream_deadline < math.inf
    assert call_deadline.get() is None


async def test_a_shared_call_does_not_take_the_leaders_hint() -> None:
    hint = Hint()
    async with AsyncLLMClient(MockProvider("hi"), model="m", middleware=[Dedup(), hint]) as c:
        await c.chat(HELLO, timeout=30, temperature=0)  # runs in the deduplicator's task
    # its deadline may move when callers join: the transport must ask anyio
    assert hint.seen[0][0] is None and hint.seen[0][1] < math.inf
