"""The fan-out behind ``AsyncLLMClient.gather`` and ``as_completed``.

A fixed set of ``concurrency`` worker tasks pulls request indices from one
iterator, so thousands of requests cost ``concurrency`` tasks, not thousands.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING

import anyio

from ..types import ChatResponse
from ._progress import Progress, progress_reporter

if TYPE_CHECKING:
    from ._client import AsyncLLMClient, RequestLike

__all__ = ["as_completed", "gather"]


class _GatherState:
    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = 0
        self.error: Exception | None = None


async def gather(
    client: AsyncLLMClient,
    requests: Iterable[RequestLike],
    concurrency: int,
    return_exceptions: bool,
    progress: Progress,
) -> list[ChatResponse | BaseException]:
    """See ``AsyncLLMClient.gather``."""
    from ._client import USE_CLIENT_DEFAULT

    handler = client._require_open()
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    reqs = [client._coerce(r) for r in requests]
    total = len(reqs)
    results: list[ChatResponse | BaseException | None] = [None] * total
    report = progress_reporter(progress, total)
    state = _GatherState()
    indices = iter(range(total))

    async def worker() -> None:
        for i in indices:
            req = reqs[i]
            if req.stream:
                req = req.model_copy(update={"stream": False})
            try:
                results[i] = await client._call(
                    handler, req, client._timeout(req, USE_CLIENT_DEFAULT)
                )
            except Exception as exc:
                if not return_exceptions:
                    if state.error is None:
                        state.error = exc
                    tg.cancel_scope.cancel()
                    return
                results[i] = exc
            state.done += 1
            if report is not None:
                report(state.done, total)

    async with anyio.create_task_group() as tg:
        for _ in range(min(concurrency, total)):
            tg.start_soon(worker)
    if report is not None:
        report(state.done, total, final=True)
    if state.error is not None:
        raise state.error
    return results  # type: ignore[return-value]


async def as_completed(
    client: AsyncLLMClient, requests: Iterable[RequestLike], concurrency: int
) -> AsyncIterator[tuple[int, ChatResponse | BaseException]]:
    """See ``AsyncLLMClient.as_completed``."""
    from ._client import USE_CLIENT_DEFAULT

    client._require_open()
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    handler = client._require_open()
    reqs = [client._coerce(r) for r in requests]
    total = len(reqs)
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
                req = reqs[i]
                if req.stream:
                    req = req.model_copy(update={"stream": False})
                try:
                    out: ChatResponse | BaseException = await client._call(
                        handler, req, client._timeout(req, USE_CLIENT_DEFAULT)
                    )
                except Exception as exc:
                    out = exc
                try:
                    send.send_nowait((i, out))
                except anyio.ClosedResourceError:
                    # the caller left the loop while this call was finishing: a
                    # worker that raised here would fail the client's task group
                    return

    tg = client._task_group
    assert tg is not None
    for _ in range(min(concurrency, total)):
        tg.start_soon(worker)
    try:
        for _ in range(total):
            yield await receive.receive()
    finally:
        for scope in scopes:
            scope.cancel()
        send.close()
        receive.close()
