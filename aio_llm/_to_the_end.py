"""Running a bookkeeping call to its end whatever cancellation arrives meanwhile.

An anyio shield keeps cancel scopes out, but not asyncio's own
``task.cancel()`` (``asyncio.wait_for``, ``asyncio.timeout``, a caller's
``task.cancel()``): that still interrupts the awaited call. A ledger write
already on its way (a SQLite transaction in a worker thread, a Redis script
sent to the server) then commits with nobody left to settle or release it,
and the money stays reserved for the reservation's TTL. ``to_the_end`` runs
the call in a task of its own, waits for it through any cancellation, and
re-raises the cancellation afterwards, so the caller knows whether the call
happened and can undo it.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import anyio

__all__ = ["to_the_end"]

T = TypeVar("T")


async def to_the_end(call: Awaitable[T]) -> T:
    """``await call``, finished even if the caller is cancelled; then the cancellation is raised.

    When a cancellation arrived, the call's outcome is dropped (an error of
    the call is retrieved, not raised): the caller must treat the call as
    possibly done, e.g. release a reservation it may have made.
    """
    import asyncio  # loaded once a ledger is in use, not by ``import aio_llm``

    task = asyncio.ensure_future(call)
    cancelled: asyncio.CancelledError | None = None
    with anyio.CancelScope(shield=True):  # scope cancellations wait outside the shield
        while not task.done():
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError as exc:
                if task.cancelled():  # the call itself was cancelled (its loop is closing)
                    raise
                cancelled = exc  # the caller's task.cancel(): keep waiting for the call
            except Exception:
                break  # the call failed: task.result() raises its error
    if cancelled is not None:
        if not task.cancelled():
            task.exception()  # retrieved: the caller sees its cancellation
        raise cancelled
    return task.result()
