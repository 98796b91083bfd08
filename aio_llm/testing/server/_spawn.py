"""Running ``FakeLLMServer`` outside a test: blocking, or in a child process.

``run_fake_server`` serves until interrupted (``aio-llm fake-server``).
``spawn_fake_server`` (also ``FakeLLMServer.spawn``) starts one in a child
process, so that a benchmark measures the client alone::

    with FakeLLMServer.spawn(latency=0.01) as srv:
        run_benchmark(base_url=srv.openai_url)
        print(srv.stats())  # the child's ServerStatistics as a dict
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable
from typing import Any

from ._server import FakeLLMServer

__all__ = ["SpawnedServer", "run_fake_server", "spawn_fake_server"]

_READY = "AIO_LLM_FAKE_SERVER_READY "


def run_fake_server(
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    fault_rate: float = 0.0,
    on_ready: Callable[[str], None] | None = None,
    **options: Any,
) -> None:
    """Serve on ``host:port`` until Ctrl+C or SIGTERM (blocking; runs its own event loop).

    ``options`` are ``FakeLLMServer`` keyword arguments (the request log is
    capped at 1,000 entries unless ``record_limit`` says otherwise);
    ``fault_rate`` turns on random faults (``DEFAULT_RANDOM_FAULTS``).
    ``on_ready(url)`` runs once listening; by default a line is printed.
    """
    options.setdefault("record_limit", 1000)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(host, port, fault_rate, on_ready, options))


async def _serve(
    host: str,
    port: int,
    fault_rate: float,
    on_ready: Callable[[str], None] | None,
    options: dict[str, Any],
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - Windows, threads
            pass
    async with FakeLLMServer(host, port, **options) as srv:
        if fault_rate:
            srv.fault_rate(fault_rate)
        if on_ready is None:
            sys.stdout.write(
                f"FakeLLMServer listening on {srv.url} (OpenAI base URL {srv.openai_url})\n"
            )
            sys.stdout.flush()
        else:
            on_ready(srv.url)
        await stop.wait()


class SpawnedServer:
    """A ``FakeLLMServer`` running in a child process; ``close()`` (or ``with``) stops it."""

    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process = process
        self.url = url
        """``http://HOST:PORT`` (Anthropic-style base URL)."""

    @property
    def openai_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def pid(self) -> int:
        return self.process.pid

    def stats(self) -> dict[str, int]:
        """The child's ``ServerStatistics`` (``GET /_fake/stats``)."""
        with urllib.request.urlopen(f"{self.url}/_fake/stats", timeout=10) as resp:
            data: dict[str, int] = json.load(resp)
        return data

    def reset(self) -> None:
        """Zero the child's counters and forget its faults (``POST /_fake/reset``)."""
        req = urllib.request.Request(f"{self.url}/_fake/reset", data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=10):
            pass

    def close(self, timeout: float = 10.0) -> None:
        """Stop the child (SIGTERM, then SIGKILL after ``timeout``) and reap it."""
        proc = self.process
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> SpawnedServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.process.poll() is None else f"exited {self.process.returncode}"
        return f"<SpawnedServer {self.url} pid={self.pid} {state}>"


def spawn_fake_server(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    startup_timeout: float = 30.0,
    **options: Any,
) -> SpawnedServer:
    """Start ``run_fake_server`` in a child Python process and wait until it listens.

    ``options`` must be JSON-serialisable (``reply`` as a string, not a
    callable). Blocks for the child's start-up (~0.2 s): call it outside the
    event loop, or through ``anyio.to_thread.run_sync``.
    """
    json_options = json.dumps(options)
    code = "from aio_llm.testing.server._spawn import _child_main; _child_main()"
    cmd = [sys.executable, "-c", code, host, str(port), json_options]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line: list[str] = []
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(startup_timeout)
    if not line or not line[0].startswith(_READY):
        server = SpawnedServer(proc, "http://0.0.0.0:0")
        server.close()
        raise RuntimeError(f"fake server did not start (exit code {proc.returncode})")
    return SpawnedServer(proc, line[0][len(_READY) :].strip())


def _child_main() -> None:
    host, port, raw = sys.argv[1], int(sys.argv[2]), sys.argv[3]

    def ready(url: str) -> None:
        sys.stdout.write(f"{_READY}{url}\n")
        sys.stdout.flush()

    run_fake_server(host, port, on_ready=ready, **json.loads(raw))
