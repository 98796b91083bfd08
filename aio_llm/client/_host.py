"""``Host``: a task of its own that holds a client's resources from ``open()`` to ``aclose()``.

A task group and a cancel scope must be left by the task that entered them.
If the client entered its task group in the task that opened it, only that
task could close it: ``open()`` at a web app's startup and ``aclose()`` at
its shutdown run in different tasks, and anyio refuses ("Attempted to exit
cancel scope in a different task"). So the client enters everything it holds
(transport, task group, middleware) in a runner task started for the
purpose, and any task can ask the runner to stop and wait until it has.

Structured concurrency still holds: the runner is the client's one task,
``open()`` returns only once it is set up (its errors are raised there),
``aclose()`` returns only once it has ended, and a loop that ends with the
client still open cancels it, which closes everything it held. It is an
asyncio task because anyio offers no task that outlives the one starting it,
and aiohttp, the default transport, is asyncio-only anyway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

import anyio

from ..errors import ClientStateError

__all__ = ["Host"]

Setup = Callable[[AsyncExitStack], Awaitable[None]]


class Host:
    """Runs ``setup(stack)`` in a task of its own and keeps ``stack`` open until ``stop()``."""

    __slots__ = ("_done", "_ready", "_scope", "_setup", "_stop", "_task", "error", "on_end")

    def __init__(self, setup: Setup, on_end: Callable[[], None] | None = None) -> None:
        self._setup = setup
        self.on_end = on_end
        """Called in the runner when it ends, whatever the reason."""
        self.error: BaseException | None = None
        """What ended the runner other than ``stop()``, if anything did."""
        self._task: asyncio.Task[None] | None = None
        self._scope = anyio.CancelScope()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._done.is_set()

    async def start(self) -> None:
        """Start the runner and wait until ``setup`` finished; its error is raised here."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise ClientStateError("aio_llm clients run on asyncio") from None
        self._ready = anyio.Event()
        self._stop = anyio.Event()
        self._done = anyio.Event()
        self._task = loop.create_task(self._run(), name="aio_llm-client")
        try:
            await self._ready.wait()
        except BaseException:  # the opener was cancelled: nothing may outlive open()
            self._scope.cancel()
            with anyio.CancelScope(shield=True):
                await self._done.wait()
            raise
        if self._done.is_set() and self.error is not None:
            error, self.error = self.error, None
            raise error

    async def stop(self) -> None:
        """Ask the runner to close everything and wait until it has (from any task).

        Raises what ended the runner before, if something did (once).
        """
        if self._task is None:
            return
        self._stop.set()
        with anyio.CancelScope(shield=True):  # closing must finish even if the caller leaves
            await self._done.wait()
        error, self.error = self.error, None
        if error is not None:
            raise error

    async def _run(self) -> None:
        try:
            with self._scope:
                async with AsyncExitStack() as stack:
                    try:
                        await self._setup(stack)
                    except Exception as exc:  # raised by start() as itself, not in a group
                        self.error = exc
                        return  # what setup entered is closed on the way out
                    self._ready.set()
                    await self._stop.wait()
        except Exception as exc:  # a background task failed (or closing did)
            self.error = exc
        finally:
            self._ready.set()
            self._done.set()
            if self.on_end is not None:
                self.on_end()

    def __repr__(self) -> str:
        state = "new" if self._task is None else "running" if self.running else "ended"
        return f"<Host {state}>"
