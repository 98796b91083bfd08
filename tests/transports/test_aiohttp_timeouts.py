"""The aiohttp transport's read timeout, and when a deadline around the call makes it moot."""

from __future__ import annotations

import time

import anyio
import pytest

from aio_llm import APITimeoutError
from aio_llm.testing import FakeLLMServer, Fault
from aio_llm.transports.aiohttp import AiohttpTransport

pytestmark = pytest.mark.anyio

BODY = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _hang_for(transport: AiohttpTransport, server: FakeLLMServer) -> float:
    server.enqueue(Fault.hang())
    start = time.monotonic()
    with pytest.raises(APITimeoutError):
        await transport.request(
            "POST", server.url + "/v1/chat/completions", {"Authorization": "Bearer x"}, BODY
        )
    return time.monotonic() - start


async def test_the_read_timeout_bounds_a_stalled_response_outside_any_call() -> None:
    async with FakeLLMServer() as server:
        transport = AiohttpTransport(read_timeout=0.2)
        try:
            assert await _hang_for(transport, server) >= 0.15  # the read timer, not a hang
        finally:
            await transport.aclose()


async def test_the_read_timeout_still_applies_when_it_comes_before_the_deadline() -> None:
    async with FakeLLMServer() as server:
        transport = AiohttpTransport(read_timeout=0.2)
        try:
            with anyio.fail_after(30.0):  # far later than the read timeout
                assert await _hang_for(transport, server) >= 0.15  # the read timer, not a hang
        finally:
            await transport.aclose()


async def test_no_read_timer_when_the_deadline_comes_first() -> None:
    transport = AiohttpTransport(read_timeout=60.0)
    try:
        assert transport._timeout_for_call() is transport._timeout  # no deadline: read timer
        with anyio.fail_after(5.0):
            assert transport._timeout_for_call() is transport._connect_only
            with anyio.CancelScope(shield=True):  # a shield hides the deadline
                assert transport._timeout_for_call() is transport._timeout
        assert transport._connect_only.sock_read is None
        assert transport._connect_only.sock_connect == transport._timeout.sock_connect
        with anyio.fail_after(120.0):
            assert transport._timeout_for_call() is transport._timeout
    finally:
        await transport.aclose()
