"""Running ``FakeLLMServer`` outside a test: ``run_fake_server`` (``aio-llm fake-server``).

It serves until interrupted; ``child_main`` is what a ``FakeLLMServer.spawn``
child process runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Callable
from typing import Any

from ._server import FakeLLMServer
from ._spawn import READY

__all__ = ["child_main", "run_fake_server"]


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


def child_main() -> None:
    """The entry point of a spawned child: serve, and print ``READY`` and the URL."""
    host, port, raw = sys.argv[1], int(sys.argv[2]), sys.argv[3]

    def ready(url: str) -> None:
        sys.stdout.write(f"{READY}{url}\n")
        sys.stdout.flush()

    run_fake_server(host, port, on_ready=ready, **json.loads(raw))
