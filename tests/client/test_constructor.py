"""Issue 15, point 6: the official SDKs' constructor arguments, and every timeout checked.

``AsyncLLMClient(max_retries=..., timeout=..., default_headers=...)`` as an
``openai.AsyncOpenAI`` user writes it; ``timeout`` as seconds, an
``aio_llm.Timeout`` or an ``httpx.Timeout``; bad values refused with an
error that says what to pass. Over loopback HTTP on both transports.
"""

from __future__ import annotations

import math
from typing import Any

import anyio
import httpx
import pytest

from aio_llm import (
    APITimeoutError,
    AsyncLLMClient,
    ClientConfig,
    ConfigurationError,
    InternalServerError,
    InvalidRequestError,
    LLMClient,
    Timeout,
)
from aio_llm.testing import FakeLLMServer, Fault

HELLO = [{"role": "user", "content": "Hello"}]
KEY = "sk-ctor-0123456789"


def make(srv: FakeLLMServer, transport: str, **kw: Any) -> AsyncLLMClient:
    config = ClientConfig(transport=transport, retry_base_delay=0, retry_max_delay=0)
    return AsyncLLMClient(
        "openai", api_key=KEY, base_url=srv.openai_url, model="gpt-4o-mini", config=config, **kw
    )


@pytest.mark.anyio
@pytest.mark.parametrize("retries", [0, 2])
async def test_max_retries_like_the_sdk(
    server: FakeLLMServer, transport: str, retries: int
) -> None:
    server.set_fault(Fault.status(500))
    async with make(server, transport, max_retries=retries) as c:
        assert c.config.max_retries == retries
        with pytest.raises(InternalServerError):
            await c.chat(HELLO)
    assert server.request_count == 1 + retries


@pytest.mark.anyio
async def test_timeout_seconds_is_the_whole_call(server: FakeLLMServer, transport: str) -> None:
    server.set_fault(Fault.hang())
    async with make(server, transport, timeout=0.3) as c:
        assert c.config.timeout == 0.3
        with pytest.raises(APITimeoutError):
            await c.chat(HELLO)


@pytest.mark.anyio
async def test_httpx_timeout_sets_connect_and_read(server: FakeLLMServer, transport: str) -> None:
    """``httpx.Timeout(60, connect=5)`` as the SDKs take it: the read timeout fires here."""
    server.set_fault(Fault.hang())
    c = make(server, transport, timeout=httpx.Timeout(0.3, connect=5.0), max_retries=0)
    assert (c.config.connect_timeout, c.config.read_timeout) == (5.0, 0.3)
    assert c.config.timeout == 600.0  # httpx has no total: the client's stays
    async with c:
        with anyio.fail_after(30), pytest.raises(APITimeoutError):
            await c.chat(HELLO, timeout=None)  # no deadline: only the read timeout stops it


@pytest.mark.anyio
async def test_aio_llm_timeout(server: FakeLLMServer, transport: str) -> None:
    c = make(server, transport, timeout=Timeout(30.0, connect=2.0))
    assert (c.config.timeout, c.config.connect_timeout, c.config.read_timeout) == (30.0, 2.0, 600.0)
    async with c:
        assert (await c.chat(HELLO)).content == "Echo: Hello"
    assert make(server, transport, timeout=Timeout(read=None)).config.read_timeout is None
    assert make(server, transport, timeout=None).config.timeout is None
    assert make(server, transport, timeout=math.inf).config.timeout is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("5", r"not str '5' \(write timeout=5\)"),
        (0, "more than 0 seconds"),
        (-1.0, "more than 0 seconds"),
        (math.nan, "not NaN"),
        (True, "not bool"),
        ([5], "not list"),
        (Timeout, "not type"),
        (httpx.Timeout(0, connect=1.0), r"timeout.read must be more than 0"),
    ],
)
def test_bad_client_timeouts_are_refused(value: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        AsyncLLMClient("mock", timeout=value)


def test_bad_timeout_objects_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="Timeout.connect must be more than 0"):
        Timeout(connect=0)
    with pytest.raises(ConfigurationError, match="Timeout.total must be a number"):
        Timeout("30")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["3", -1, 2.5, True])
def test_bad_max_retries_are_refused(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="max_retries"):
        AsyncLLMClient("mock", max_retries=value)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("5", "not str"),
        (0, "more than 0"),
        (-2, "more than 0"),
        (math.nan, "NaN"),
        (httpx.Timeout(5.0), "not an httpx.Timeout"),
        (Timeout(connect=1.0), "connect and read timeouts are the client's"),
    ],
)
async def test_bad_call_timeouts_are_refused_before_sending(
    server: FakeLLMServer, value: Any, message: str
) -> None:
    async with make(server, "aiohttp") as c:
        with pytest.raises(InvalidRequestError, match=message):
            await c.chat(HELLO, timeout=value)
        with pytest.raises(InvalidRequestError, match=message):
            async with c.stream(HELLO, timeout=value):
                pass
        with pytest.raises(InvalidRequestError, match="timeout"):
            await c.chat(request={"model": "m", "messages": HELLO, "timeout": "5"})
    assert server.request_count == 0


@pytest.mark.anyio
async def test_call_timeout_as_timeout_total(server: FakeLLMServer) -> None:
    server.set_fault(Fault.hang())
    async with make(server, "aiohttp") as c:
        with pytest.raises(APITimeoutError):
            await c.chat(HELLO, timeout=Timeout(0.2))


@pytest.mark.anyio
async def test_default_headers_go_with_every_request(server: FakeLLMServer, transport: str) -> None:
    headers = {"X-Team": "search", "User-Agent": "my-app/1.0"}
    async with make(
        server,
        transport,
        default_headers=headers,
        providers={"second": {"kind": "openai", "api_key": KEY, "base_url": server.openai_url}},
    ) as c:
        await c.chat(HELLO)
        await c.chat(HELLO, provider="second")
        async with c.stream(HELLO) as s:
            await s.text()
    for sent in server.requests:
        assert sent.headers["x-team"] == "search"
        assert sent.headers["user-agent"] == "my-app/1.0"
        assert sent.headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("headers", [{"X-Id": 1}, ["X-Id"], {1: "x"}])
def test_bad_default_headers_are_refused(headers: Any) -> None:
    with pytest.raises(ConfigurationError, match="default_headers"):
        AsyncLLMClient("mock", default_headers=headers)


def test_the_sync_client_takes_the_same_arguments() -> None:
    with LLMClient("mock", max_retries=1, timeout=Timeout(20.0, read=5.0)) as c:
        config = c.async_client.config
        assert (config.max_retries, config.timeout, config.read_timeout) == (1, 20.0, 5.0)
    with pytest.raises(ConfigurationError, match="timeout"):
        LLMClient("mock", timeout="5")  # type: ignore[arg-type]
