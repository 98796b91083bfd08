"""The fan-out behind ``AsyncLLMClient.gather`` and ``as_completed``.

A fixed set of ``concurrency`` worker tasks pulls request indices from one
iterator, so thousands of requests cost ``concurrency`` tasks, not thousands.
Requests arrive validated, each with its timeout (``AsyncLLMClient._prepare``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import anyio

from ..types import ChatRequest, ChatResponse
from ._progress import Progress, progress_reporter
from ._session import Session

__all__ = ["as_completed", "gather"]

Prepared = Sequence[tuple[ChatRequest, float | None]]


class _GatherState:
    __slots__ = ("done", "error", "spent")

    def __init__(self) -> None:
        self.done = 0
        self.spent = 0.0
        self.error: Exception | None = None


async def gather(
    session: Session,
    requests: Prepared,
    concurrency: int,
    return_exceptions: bool,
    progress: Progress,
) -> list[ChatResponse | BaseException]:
    """See ``AsyncLLMClient.gather``."""
    total = len(requests)
    results: list[ChatResponse | BaseException | None] = [None] * total
    report = progress_reporter(progress, total)
    state = _GatherState()
    indices = iter(range(total))

    async def worker() -> None:
        for i in indices:
            request, timeout = requests[i]
            try:
                results[i] = await session.call(request, timeout)
            except Exception as exc:
                if not return_exceptions:
                    if state.error is None:
                        state.error = exc
                    tg.cancel_scope.cancel()
                    return
                results[i] = exc
            state.done += 1
            if report is not None:
                cost = getattr(results[i], "cost", None)
                if cost:
                    state.spent += cost
                report(state.done, total, spent=state.spent)

    async with anyio.create_task_group() as tg:
        for _ in range(min(concurrency, total)):
            tg.start_soon(worker)
    if report is not None:
        report(state.done, total, final=True, spent=state.spent)
    if state.error is not None:
        raise state.error
    return results  # type: ignore[return-value]


async def as_completed(
    session: Session, requests: Prepared, concurrency: int
) -> AsyncIterator[tuple[int, ChatResponse | BaseException]]:
    """See ``AsyncLLMClient.as_completed``."""
    total = len(requests)
    if total == 0:
        return
    send, receive = anyio.create_memory_object_stream[tuple[int, ChatResponse | BaseException]](
        max_buffer_size=total
    )
    scopes: list[anyio.CancelScope] = []
    indices = iter(range(total))

    async def worker() -> None:
        scope = anyio.CancelScope()
        scopes.append(scope)
        with scope:
            for i in indices:
                request, timeout = requests[i]
                try:
                    out: ChatResponse | BaseException = await session.call(request, timeout)
                except Exception as exc:
                    out = exc
                try:
                    send.send_nowait((i, out))
                except anyio.ClosedResourceError:
                    # the caller left the loop while this call was finishing: a
                    # worker that raised here would fail the client's task group
                    return

    for _ in range(min(concurrency, total)):
        session.task_group.start_soon(worker)
    try:
        for _ in range(total):
            yield await receive.receive()
    finally:
        for scope in scopes:
            scope.cancel()
        send.close()
        receive.close()
