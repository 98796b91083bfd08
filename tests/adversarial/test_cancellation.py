"""Cancellation at random points leaves nothing behind: no task, no file descriptor, no
connection, no request counted in flight.

A seeded ``random.Random`` decides, for each of several hundred calls, what
the server does (answers at once, late, a stream a chunk at a time, or
stalls) and how and when the caller gives up (``asyncio.wait_for``,
``task.cancel()``, an anyio scope, the client's ``timeout=``, leaving a
stream early, breaking out of ``as_completed``, a failing ``gather``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import random
from collections.abc import AsyncGenerator
from typing import Any, cast

import anyio
import pytest

from aio_llm import AsyncLLMClient

from .conftest import CANCELLATIONS, bare_config, give_up, make_provider
from .rawserver import Conn, RawServer, Seen, answer, sse_events

CALLS = 300


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.anyio
async def test_random_cancellations_leave_nothing_behind(kind: str, transport: str) -> None:
    rng = random.Random(f"cancel-{kind}-{transport}")
    behaviour = [rng.choice(["now", "late", "dribble", "stall"]) for _ in range(CALLS * 3)]

    async def handler(req: Seen, conn: Conn) -> None:
        what = behaviour[len(srv.requests) % len(behaviour)]
        if what == "now":
            await answer(req, conn, "ok")
        elif what == "late":
            await anyio.sleep(rng.uniform(0, 0.02))
            await answer(req, conn, "ok")
        elif what == "dribble" and req.wants_stream:
            await conn.chunked(200, sse_events(req, ["a", "b", "c", "d"]), pause=0.003)
        elif what == "dribble":
            await answer(req, conn, "ok")
        else:
            await conn.until_closed()

    tasks_before = len(asyncio.all_tasks())
    fds_before = _fds()
    async with RawServer(handler) as srv:
        provider = make_provider(kind, srv.url)
        async with AsyncLLMClient(provider, config=bare_config(transport, timeout=2.0)) as client:

            async def call(i: int, timeout: float | None = None) -> None:
                messages = [{"role": "user", "content": f"q{i}"}]
                kw: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
                if i % 3 == 0:
                    async with client.stream(messages, max_tokens=8, **kw) as s:
                        async for _ in s:
                            if rng.random() < 0.2:
                                break  # leave the stream early
                else:
                    await client.chat(messages, max_tokens=8, **kw)

            async def one(i: int) -> None:
                how, when = rng.choice(CANCELLATIONS), rng.uniform(0, 0.03)
                await give_up(how, when, functools.partial(call, i))

            async with anyio.create_task_group() as tg:
                for i in range(CALLS):
                    tg.start_soon(one, i)
            # fan-outs given up half-way
            jobs = [{"messages": [{"role": "user", "content": f"g{i}"}]} for i in range(20)]
            with anyio.move_on_after(0.01):
                await client.gather(jobs, concurrency=8, return_exceptions=True)
            seen = 0
            completed = cast(AsyncGenerator[Any, None], client.as_completed(jobs, concurrency=8))
            async with contextlib.aclosing(completed) as results:
                async for _ in results:
                    seen += 1
                    if seen == 2:
                        break  # the other workers are cancelled as the generator closes
            # the workers of as_completed run in the client's task group: cancelled as the
            # generator closed, they finish at their next checkpoint
            await anyio.wait_all_tasks_blocked()
            assert client.metrics()["requests.in_flight"] == 0
        await srv.wait_idle(timeout=5.0)  # every connection closed
    await anyio.sleep(0)
    assert len(asyncio.all_tasks()) == tasks_before
    assert _fds() == fds_before
