"""``FakeLLMServer.spawn``: a fake server in a child process.

The child runs ``run_fake_server`` (``aio_llm.testing.server._run``), so
that a benchmark measures the client alone::

    with FakeLLMServer.spawn(latency=0.01) as srv:
        run_benchmark(base_url=srv.openai_url)
        print(srv.stats())  # the child's ServerStatistics as a dict
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.request
from typing import Any

__all__ = ["READY", "SpawnedServer", "spawn_fake_server"]

READY = "AIO_LLM_FAKE_SERVER_READY "
"""The line a spawned child prints once it listens, before its URL."""


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
    """``FakeLLMServer.spawn``: start a fake server in a child process; wait until it listens.

    ``options`` must be JSON-serialisable (``reply`` as a string, not a
    callable). Blocks for the child's start-up (~0.2 s): call it outside the
    event loop, or through ``anyio.to_thread.run_sync``.
    """
    json_options = json.dumps(options)
    code = "from aio_llm.testing.server._run import child_main; child_main()"
    cmd = [sys.executable, "-c", code, host, str(port), json_options]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line: list[str] = []
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(startup_timeout)
    if not line or not line[0].startswith(READY):
        server = SpawnedServer(proc, "http://0.0.0.0:0")
        server.close()
        raise RuntimeError(f"fake server did not start (exit code {proc.returncode})")
    return SpawnedServer(proc, line[0][len(READY) :].strip())
