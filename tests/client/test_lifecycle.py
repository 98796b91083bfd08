"""Issue 15, point 5: a client opened in one task is closed in another (``open()``/``aclose()``).

The FastAPI lifespan pattern, and open-at-startup / close-at-shutdown: every
test opens the client in one task and closes it in another, over loopback
HTTP on both transports, and checks that nothing the client held outlives
``aclose()`` (connections, background tasks).
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from aio_llm import AsyncLLMClient, ClientConfig, ClientStateError, ConfigurationError
from aio_llm.testing import FakeLLMServer

HELLO = [{"role": "user", "content": "Hello"}]
KEY = "sk-lifecycle-0123456789"


def make(srv: FakeLLMServer, transport: str, **kw: Any) -> AsyncLLMClient:
    return AsyncLLMClient(
        "openai",
        api_key=KEY,
        base_url=srv.openai_url,
        model="gpt-4o-mini",
        config=ClientConfig(transport=transport),
        **kw,
    )


async def _in_task(fn: Any, *args: Any) -> Any:
    """Run ``fn(*args)`` in a task of its own and return its result."""
    out: list[Any] = []
    failed: list[Exception] = []

    async def run() -> None:
        try:
            out.append(await fn(*args))
        except Exception as exc:  # raised below as itself, not in a group
            failed.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
    if failed:
        raise failed[0]
    return out[0]


@pytest.mark.anyio
async def test_open_in_one_task_close_in_another(server: FakeLLMServer, transport: str) -> None:
    client = make(server, transport)
    assert await _in_task(client.open) is client
    r = await _in_task(client.chat, HELLO)  # a third task uses it
    assert r.content == "Echo: Hello"
    assert server.open_connections >= 1
    await _in_task(client.aclose)
    assert client.closed
    await server.wait_until(lambda s: s.open_connections == 0)
    with pytest.raises(ClientStateError, match="closed"):
        await client.chat(HELLO)


@pytest.mark.anyio
async def test_a_lifespan_style_app(server: FakeLLMServer, transport: str) -> None:
    """The shape of a FastAPI lifespan: startup and shutdown each in a task of the server."""
    state: dict[str, AsyncLLMClient] = {}

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        state["llm"] = await make(server, transport).open()
        yield
        await state["llm"].aclose()

    started, stop = anyio.Event(), anyio.Event()
    answers: list[str] = []

    async def serve() -> None:  # the framework enters the lifespan in its own task
        async with lifespan():
            started.set()
            await stop.wait()

    async def handle_request(text: str) -> None:  # each request in another task
        r = await state["llm"].chat([{"role": "user", "content": text}])
        answers.append(r.content)

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve)
        await started.wait()
        async with anyio.create_task_group() as requests:
            for i in range(5):
                requests.start_soon(handle_request, f"q{i}")
        stop.set()
    assert sorted(answers) == [f"Echo: q{i}" for i in range(5)]
    assert state["llm"].closed
    await server.wait_until(lambda s: s.open_connections == 0)


@pytest.mark.anyio
async def test_background_work_lives_in_the_client_not_the_opener(
    server: FakeLLMServer, transport: str
) -> None:
    """as_completed runs its workers in the client's task group: the opener has long gone."""
    client = await _in_task(make(server, transport).open)
    try:
        got = [i async for i, _ in client.as_completed([{"messages": HELLO}] * 4, concurrency=2)]
        assert sorted(got) == [0, 1, 2, 3]
    finally:
        await client.aclose()


@pytest.mark.anyio
async def test_aclose_from_a_cancelled_task_still_closes(
    server: FakeLLMServer, transport: str
) -> None:
    client = await make(server, transport).open()
    await client.chat(HELLO)
    with anyio.CancelScope() as scope:
        scope.cancel()  # the caller is already cancelled: closing still completes
        await client.aclose()
    assert client.closed
    await server.wait_until(lambda s: s.open_connections == 0)


@pytest.mark.anyio
async def test_async_with_still_works_and_misuse_is_typed(
    server: FakeLLMServer, transport: str
) -> None:
    client = make(server, transport)
    with pytest.raises(ClientStateError, match=r"await client.open\(\)"):
        await client.chat(HELLO)
    async with client as c:
        assert c is client and not c.closed
        with pytest.raises(ClientStateError, match="already open"):
            await c.open()
        assert (await c.chat(HELLO)).content == "Echo: Hello"
    with pytest.raises(ClientStateError, match="create a new"):
        await client.open()
    await client.aclose()  # idempotent
    assert isinstance(ClientStateError("x"), RuntimeError)  # code catching RuntimeError


class _Refuses:
    """A middleware whose setup fails (its ``__aenter__`` raises)."""

    def __init__(self) -> None:
        self.exited = False

    async def __aenter__(self) -> _Refuses:
        raise ConfigurationError("this middleware cannot start")

    async def __aexit__(self, *exc: object) -> None:
        self.exited = True

    async def __call__(self, request: Any, next: Any) -> Any:
        return await next(request)


@pytest.mark.anyio
async def test_a_failed_open_raises_in_the_opener_and_leaves_nothing(
    server: FakeLLMServer,
) -> None:
    client = make(server, "aiohttp", middleware=[_Refuses()])
    with pytest.raises(ConfigurationError, match="cannot start"):
        await _in_task(client.open)
    assert client.closed
    with pytest.raises(ClientStateError):
        await client.chat(HELLO)
    await client.aclose()


@pytest.mark.anyio
async def test_an_opener_cancelled_mid_open_leaves_nothing(server: FakeLLMServer) -> None:
    client = make(server, "aiohttp")
    with anyio.CancelScope() as scope:
        scope.cancel()
        await client.open()
    assert client.closed
    await client.aclose()


def test_a_client_never_closed_is_closed_with_its_loop() -> None:
    """asyncio.run cancels the client's task at the end: the transport closes, no warning."""
    import asyncio

    async def main() -> AsyncLLMClient:
        async with FakeLLMServer() as srv:
            client = await make(srv, "aiohttp").open()
            await client.chat(HELLO)
            return client  # never closed

    client = asyncio.run(main())
    gc.collect()  # an unclosed aiohttp session would warn here (warnings are errors)
    assert client.closed
