"""The blocking API under threads, a running event loop, ``atexit`` and Ctrl-C.

* many threads share one ``LLMClient``;
* a coroutine may call it (blocking its own loop) since the client's loop
  is in another thread;
* ``invoke_chat`` inside an ``atexit`` handler answers and the process exits
  (a subprocess, with aio_llm imported before or inside the handler);
* Ctrl-C (SIGINT) during a blocking call raises ``KeyboardInterrupt`` in the
  caller *and* cancels the HTTP request: the server sees the connection go
  at once, not at the deadline.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import anyio
import pytest

from aio_llm import LLMClient

from .conftest import KEY, bare_config, make_provider
from .rawserver import Conn, RawServer, Seen, answer, serve_in_thread

ROOT = Path(__file__).resolve().parents[2]


async def _echo(req: Seen, conn: Conn) -> None:
    await answer(req, conn, f"echo {req.prompt}")


def _client(url: str, transport: str, **config: object) -> LLMClient:
    provider = make_provider("openai", url)
    return LLMClient(provider, config=bare_config(transport, **config))


def test_many_threads_share_one_client(transport: str) -> None:
    with serve_in_thread(_echo) as srv, _client(srv.url, transport) as client:
        results: dict[int, str] = {}

        def worker(n: int) -> None:
            for i in range(5):
                prompt = f"t{n}-{i}"
                if i % 2:
                    text = "".join(
                        c.delta for c in client.stream([{"role": "user", "content": prompt}])
                    )
                else:
                    text = client.chat([{"role": "user", "content": prompt}]).content
                results[n * 10 + i] = text

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert len(results) == 40
    assert all(text == f"echo t{k // 10}-{k % 10}" for k, text in results.items())


@pytest.mark.anyio
async def test_a_coroutine_may_call_the_blocking_client() -> None:
    with serve_in_thread(_echo) as srv, _client(srv.url, "aiohttp") as client:
        # blocks this loop for the call: the client's own loop runs in its thread
        assert client.chat([{"role": "user", "content": "in a loop"}]).content == "echo in a loop"


def _child_env(url: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OPENAI_API_KEY=KEY)
    env.update(LLM_PROVIDER="openai", OPENAI_BASE_URL=url + "/v1", LLM_MODEL="gpt-4o-mini")
    env.pop("LLM_FORCE_MOCK", None)
    return env


ATEXIT_CHILDREN = {
    "imported-inside-the-handler": """
import atexit
def at_exit():
    from aio_llm import invoke_chat
    print("ANSWER", invoke_chat(messages=[{"role": "user", "content": "bye"}]).content, flush=True)
atexit.register(at_exit)
""",
    "imported-before": """
import atexit, threading
from aio_llm import invoke_chat
def at_exit():
    print("ANSWER", invoke_chat(messages=[{"role": "user", "content": "bye"}]).content, flush=True)
atexit.register(at_exit)
invoke_chat(messages=[{"role": "user", "content": "warm"}])  # the default client exists
""",
    "facade": """
import atexit
def at_exit():
    from aio_llm.facade import invoke_chat
    print("ANSWER", invoke_chat(messages=[{"role": "user", "content": "bye"}]).content, flush=True)
atexit.register(at_exit)
""",
    "client-never-closed": """
import atexit
def at_exit():
    from aio_llm import LLMClient
    client = LLMClient()  # never closed: its loop thread must not keep the process
    print("ANSWER", client.chat([{"role": "user", "content": "bye"}]).content, flush=True)
atexit.register(at_exit)
""",
}


@pytest.mark.anyio
@pytest.mark.parametrize("variant", sorted(ATEXIT_CHILDREN))
async def test_invoke_chat_in_an_atexit_handler_exits(variant: str) -> None:
    async with RawServer(_echo) as srv:
        with anyio.fail_after(60):
            done = await anyio.run_process(
                [sys.executable, "-c", ATEXIT_CHILDREN[variant]],
                env=_child_env(srv.url),
                check=False,
            )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert b"ANSWER echo bye" in done.stdout, done.stderr.decode()[-2000:]


SIGINT_CHILD = """
import sys
from aio_llm import LLMClient
client = LLMClient()  # LLM_TIMEOUT=60: the deadline is far away
print("READY", flush=True)
try:
    if sys.argv[1] == "stream":
        for _ in client.stream([{"role": "user", "content": "stall"}]):
            pass
    else:
        client.chat([{"role": "user", "content": "stall"}])
except KeyboardInterrupt:
    print("INTERRUPTED", flush=True)
sys.stdin.read()  # stay alive until the parent has seen the request go
client.close()
print("CLOSED", flush=True)
"""


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["chat", "stream"])
async def test_ctrl_c_cancels_the_request(mode: str) -> None:
    arrived = anyio.Event()

    async def stall(req: Seen, conn: Conn) -> None:
        arrived.set()
        if mode == "stream":
            await conn.head(
                200, {"Content-Type": "text/event-stream", "Transfer-Encoding": "chunked"}
            )
        await conn.until_closed()

    async with RawServer(stall) as srv:
        proc = subprocess.Popen(
            [sys.executable, "-c", SIGINT_CHILD, mode],
            env=dict(_child_env(srv.url), LLM_TIMEOUT="60"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            with anyio.fail_after(30):
                while not arrived.is_set():  # the child is an external process: poll it
                    if proc.poll() is not None:
                        pytest.fail(proc.communicate()[1].decode()[-2000:])
                    await anyio.sleep(0.02)
            await anyio.sleep(0.2)  # the child is blocked waiting for the answer
            proc.send_signal(signal.SIGINT)
            # the request goes long before its 60 s deadline, while the child still lives
            # (half the deadline: a loaded machine must not fail this on time)
            await srv.wait_idle(timeout=30.0)
            assert proc.poll() is None
            stdout, stderr = await anyio.to_thread.run_sync(proc.communicate, b"", 30)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
    assert b"INTERRUPTED" in stdout and b"CLOSED" in stdout, stderr.decode()[-2000:]
    assert proc.returncode == 0
