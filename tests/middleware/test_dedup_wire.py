"""Dedup over real loopback HTTP: 1,000 identical concurrent chats, one upstream call."""

from __future__ import annotations

import anyio
import pytest

from aio_llm import AsyncLLMClient, ClientConfig
from aio_llm.testing import FakeLLMServer

HELLO = [{"role": "user", "content": "the same question"}]  # with temperature=0: one answer


def client(srv: FakeLLMServer, **kwargs: object) -> AsyncLLMClient:
    return AsyncLLMClient(
        "openai",
        api_key="sk-dedup",
        base_url=srv.openai_url,
        model="gpt-4o-mini",
        config=ClientConfig(),
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.anyio
async def test_default_chain_sends_one_request_for_1000_identical_chats() -> None:
    async with FakeLLMServer(latency=0.2) as srv, client(srv) as c:
        answers: list[str] = []

        async def ask() -> None:
            answers.append((await c.chat(HELLO, temperature=0)).content)

        async with anyio.create_task_group() as tg:
            for _ in range(1000):
                tg.start_soon(ask)
        assert srv.request_count == 1
        assert answers == ["Echo: the same question"] * 1000
        assert c.metrics()["dedup.hits"] == 999


@pytest.mark.anyio
async def test_cancelling_the_first_caller_still_answers_the_others() -> None:
    async with FakeLLMServer(latency=0.3) as srv, client(srv) as c:  # the default chain
        answers: list[str] = []
        first = anyio.CancelScope()

        async def leader() -> None:
            with first:
                await c.chat(HELLO, temperature=0)

        async def follower() -> None:
            answers.append((await c.chat(HELLO, temperature=0)).content)

        async with anyio.create_task_group() as tg:
            tg.start_soon(leader)
            await srv.wait_until(lambda s: s.in_flight == 1, timeout=5)
            for _ in range(999):
                tg.start_soon(follower)
            while c.metrics()["dedup.hits"] < 999:  # every follower is waiting on the call
                await anyio.lowlevel.checkpoint()
            first.cancel()
        assert answers == ["Echo: the same question"] * 999
        assert srv.request_count == 1  # the shared call outlived the caller that started it
