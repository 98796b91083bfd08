"""Issue 15, point 9: the blocking client mirrors the async one, and misuse gets typed errors.

``with c.stream(...) as s`` and ``c.as_completed`` on ``LLMClient``; its
constructor typed like ``AsyncLLMClient``'s; ``gather`` typed by overloads
(checked with ``mypy --strict``, the README's example included); a
streaming request never silently answered whole; a stream read outside its
block, and a closed or unopened client, raise ``ClientStateError`` saying
what to do. Over loopback HTTP (a FakeLLMServer in a child process for the
blocking client, whose own loop runs in a thread).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from aio_llm import (
    AsyncLLMClient,
    ClientConfig,
    ClientStateError,
    InternalServerError,
    InvalidRequestError,
    LLMClient,
    StreamError,
)
from aio_llm.testing import FakeLLMServer, Fault

HELLO = [{"role": "user", "content": "Hello"}]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    handle = FakeLLMServer.spawn(stream_chunks=5)
    try:
        yield handle.url
    finally:
        handle.close()


def sync_client(url: str, **kw: object) -> LLMClient:
    return LLMClient("openai", api_key="sk-parity", base_url=url + "/v1", model="gpt-4o-mini", **kw)  # type: ignore[arg-type]


def test_sync_stream_is_a_context_manager(served: str) -> None:
    with sync_client(served) as c:
        with c.stream(HELLO) as s:
            deltas = [chunk.delta for chunk in s]
        assert "".join(deltas) == "Echo: Hello" and len(deltas) > 1
        assert s.completed and s.response is not None
        assert s.response.content == "Echo: Hello" and s.response.usage.output_tokens > 0
        with c.stream(HELLO) as s:
            assert s.text() == "Echo: Hello"
        # the old habit, iterating without `with`, still reads the whole stream
        assert "".join(ch.delta for ch in c.stream(HELLO)) == "Echo: Hello"


def test_sync_stream_left_early_closes_its_connection(served: str) -> None:
    with sync_client(served) as c:
        with c.stream(HELLO) as s:
            first = next(iter(s))
            assert first is not None
        assert not s.completed  # closed before its end
        assert c.chat(HELLO).content == "Echo: Hello"  # the client carries on


@pytest.fixture
def threaded() -> Iterator[tuple[FakeLLMServer, BlockingPortal]]:
    """A FakeLLMServer on an event loop in another thread, scriptable from this one."""
    with start_blocking_portal("asyncio") as portal:
        srv = portal.call(_new_server)
        try:
            yield srv, portal
        finally:
            portal.call(srv.aclose)


async def _new_server() -> FakeLLMServer:
    srv = FakeLLMServer(stream_chunks=5)
    await srv.start()
    return srv


def test_sync_stream_errors_surface_at_enter_and_mid_stream(
    threaded: tuple[FakeLLMServer, BlockingPortal],
) -> None:
    srv, portal = threaded
    with sync_client(srv.url, config=ClientConfig(max_retries=0)) as c:
        portal.call(srv.enqueue, Fault.status(500))
        with pytest.raises(InternalServerError), c.stream(HELLO):
            pass
        portal.call(srv.enqueue, Fault.truncate(after_chunks=2))
        with pytest.raises(StreamError), c.stream(HELLO) as s:
            for _ in s:
                pass
        assert s.response is not None and not s.completed
        with c.stream(HELLO) as s:  # and the client carries on
            assert s.text() == "Echo: Hello"


def test_sync_as_completed(served: str) -> None:
    with sync_client(served) as c:
        requests = [{"messages": [{"role": "user", "content": f"q{i}"}]} for i in range(6)]
        seen = dict(c.as_completed(requests, concurrency=3))
        assert sorted(seen) == list(range(6))
        assert all(seen[i].content == f"Echo: q{i}" for i in range(6))  # type: ignore[union-attr]
        for _ in c.as_completed(requests, concurrency=2):
            break  # leaving early cancels the rest; the client carries on
        assert c.chat(HELLO).content == "Echo: Hello"


def test_the_sync_client_is_typed_like_the_async_one(served: str) -> None:
    with sync_client(served, max_retries=0, timeout=30.0) as c:
        assert c.cost_manager.get_metrics().total_cost == 0.0
        answers = c.gather([{"messages": HELLO}] * 3)
        assert [a.content for a in answers] == ["Echo: Hello"] * 3
    assert c.closed
    with pytest.raises(ClientStateError, match="create a new LLMClient"):
        c.chat(HELLO)
    with pytest.raises(ClientStateError):
        c.stream(HELLO)
    with pytest.raises(TypeError):
        LLMClient("mock", no_such_argument=1)  # type: ignore[call-arg]


@pytest.mark.anyio
async def test_chat_never_silently_drops_stream(server: FakeLLMServer) -> None:
    async with AsyncLLMClient(
        "openai", api_key="k", base_url=server.openai_url, model="m", middleware=[]
    ) as c:
        with pytest.raises(InvalidRequestError, match=r"client.stream\(\.\.\.\)"):
            await c.chat(HELLO, stream=True)
        with pytest.raises(InvalidRequestError, match="cannot stream"):
            await c.chat(request={"model": "m", "messages": HELLO, "stream": True})
        with pytest.raises(InvalidRequestError, match="request 1 asks to stream"):
            await c.gather([{"messages": HELLO}, {"messages": HELLO, "stream": True}])
    assert server.request_count == 0


def test_sync_chat_never_silently_drops_stream() -> None:
    with LLMClient("mock", model="m") as c:
        with pytest.raises(InvalidRequestError, match="cannot stream"):
            c.chat(HELLO, stream=True)


@pytest.mark.anyio
async def test_a_stream_read_outside_its_block_says_how(server: FakeLLMServer) -> None:
    async with AsyncLLMClient(
        "openai", api_key="k", base_url=server.openai_url, model="m", middleware=[]
    ) as c:
        with pytest.raises(ClientStateError, match=r"async with client.stream\(\.\.\.\) as s"):
            async for _ in c.stream(HELLO):
                pass
        s = c.stream(HELLO)
        async with s:
            await s.text()
        with pytest.raises(ClientStateError, match="entered once"):
            async with s:
                pass
    assert server.request_count == 1


@pytest.mark.anyio
async def test_unopened_and_closed_clients_say_what_to_do() -> None:
    c = AsyncLLMClient("mock", model="m")
    for use in (
        lambda: c.chat(HELLO),
        lambda: c.embed("x"),
        lambda: c.gather([{"messages": HELLO}]),
    ):
        with pytest.raises(ClientStateError, match="async with AsyncLLMClient"):
            await use()
    with pytest.raises(ClientStateError, match="not open"):
        c.stream(HELLO)
    async with c:
        pass
    with pytest.raises(ClientStateError, match="closed: create a new AsyncLLMClient"):
        await c.chat(HELLO)
    with pytest.raises(ClientStateError):
        async for _ in c.as_completed([{"messages": HELLO}]):
            pass


# -- types: what mypy --strict says about code written against both clients ----------------

PROGRAM = """
from aio_llm import AsyncLLMClient, ChatResponse, LLMClient, Timeout

MESSAGES = [{"role": "user", "content": "hi"}]
JOBS = [{"model": "m", "messages": MESSAGES}]


async def run(client: AsyncLLMClient) -> str:
    answers = await client.gather(JOBS, concurrency=4)
    first: ChatResponse = answers[0]
    mixed = await client.gather(JOBS, return_exceptions=True)
    reveal_type(mixed)
    async with client.stream(MESSAGES) as s:
        async for chunk in s:
            print(chunk.delta)
    async for i, result in client.as_completed(JOBS):
        print(i, result)
    return first.content


def run_sync(client: LLMClient) -> float:
    answers = client.gather(JOBS)
    with client.stream(MESSAGES) as s:
        for chunk in s:
            print(chunk.delta)
    if s.response is not None:
        print(s.response.content)
    for i, result in client.as_completed(JOBS):
        print(i, result)
    return len(answers[0].content) + client.cost_manager.get_metrics().total_cost


LLMClient("openai", max_retries=2, timeout=Timeout(30.0, connect=2.0), default_headers={"a": "b"})
LLMClient(model=3)
"""


def _mypy(source: str, tmp_path: Path) -> list[str]:
    from mypy import api

    path = tmp_path / "program.py"
    path.write_text(source)
    # the project's cache (what scripts/lint fills): a cold run takes half a minute
    out, _, _ = api.run(["--strict", "--cache-dir", str(ROOT / ".mypy_cache"), str(path)])
    return [line for line in out.splitlines() if line.startswith(str(path))]


def test_both_clients_type_check_strictly(tmp_path: Path) -> None:
    lines = _mypy(textwrap.dedent(PROGRAM), tmp_path)
    notes = [line for line in lines if "note:" in line]
    errors = [line for line in lines if "error:" in line]
    assert any("list[aio_llm.types.ChatResponse | BaseException]" in n for n in notes), lines
    # the one error: the typed LLMClient constructor refuses model=3
    assert len(errors) == 1 and 'Argument "model" to "LLMClient"' in errors[0], lines


def test_the_readme_example_type_checks_strictly(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```python\n(.*?)```", readme, re.S)
    assert block is not None
    source = block.group(1) + "\n\nasync def _first(client: object) -> None: ...\n"
    lines = _mypy(source, tmp_path)
    assert not [line for line in lines if "error:" in line], lines
