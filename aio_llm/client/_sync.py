"""The blocking twin: ``LLMClient`` for code that is not async.

One anyio blocking portal (an event loop in a worker thread) per client runs
the real ``AsyncLLMClient``; every method is ``portal.call`` of the async one,
so the logic never drifts. Because the loop lives in its own thread, the sync
API also works when called from inside a running event loop (Jupyter, an
async framework's sync callback).
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import anyio
from anyio.from_thread import BlockingPortal, start_blocking_portal
from anyio.streams.memory import MemoryObjectReceiveStream

from ..tokens import TokenCount
from ..types import ChatChunk, ChatResponse, EmbeddingResponse, MessageInput
from ._client import USE_CLIENT_DEFAULT, AsyncLLMClient, RequestLike, Timeout
from ._progress import Progress

if TYPE_CHECKING:
    from ..cost.manager import CostManager

__all__ = ["LLMClient"]


class LLMClient:
    """A blocking LLM client; same arguments as ``AsyncLLMClient``.

    Use it as a context manager or call ``close()``; clients still open at
    interpreter exit are closed then.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._portal_cm: AbstractContextManager[BlockingPortal] | None = start_blocking_portal(
            "asyncio"
        )
        self._portal = self._portal_cm.__enter__()
        try:
            self._client: AsyncLLMClient = self._portal.call(_make_client, args, kwargs)
            # entered and exited in one task of the portal: the client's task
            # group must not span tasks
            self._client_cm = self._portal.wrap_async_context_manager(self._client)
            self._client_cm.__enter__()
        except BaseException:
            self._portal_cm.__exit__(None, None, None)
            self._portal_cm = None
            raise
        self._lock = threading.Lock()
        atexit.register(self.close)

    @property
    def async_client(self) -> AsyncLLMClient:
        """The ``AsyncLLMClient`` running in the portal's loop."""
        return self._client

    @property
    def cost_manager(self) -> CostManager:
        return self._client.cost_manager

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the client and stop its event-loop thread (idempotent)."""
        with self._lock:
            cm, self._portal_cm = self._portal_cm, None
        if cm is None:
            return
        atexit.unregister(self.close)
        try:
            self._client_cm.__exit__(None, None, None)
        finally:
            cm.__exit__(None, None, None)

    def _check(self) -> BlockingPortal:
        if self._portal_cm is None:
            raise RuntimeError("the client is closed")
        return self._portal

    def chat(
        self,
        messages: Sequence[MessageInput] | None = None,
        *,
        model: str | None = None,
        request: RequestLike | None = None,
        timeout: Timeout = USE_CLIENT_DEFAULT,
        **params: Any,
    ) -> ChatResponse:
        portal = self._check()

        async def run() -> ChatResponse:
            return await self._client.chat(
                messages, model=model, request=request, timeout=timeout, **params
            )

        return portal.call(run)

    def stream(
        self,
        messages: Sequence[MessageInput] | None = None,
        *,
        model: str | None = None,
        request: RequestLike | None = None,
        timeout: Timeout = USE_CLIENT_DEFAULT,
        **params: Any,
    ) -> Iterator[ChatChunk]:
        """Iterate the chunks of a streamed answer (the connection closes when done).

        The stream is read by one task in the client's event loop (so its
        deadline scope stays in one task) and handed over chunk by chunk.
        """
        portal = self._check()
        client = self._client
        send, receive = anyio.create_memory_object_stream[ChatChunk](0)

        async def produce() -> None:
            async with send:
                async with client.stream(
                    messages, model=model, request=request, timeout=timeout, **params
                ) as s:
                    async for chunk in s:
                        await send.send(chunk)

        future = portal.start_task_soon(produce)
        try:
            while True:
                try:
                    chunk = portal.call(receive.receive)
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    break
                yield chunk
        finally:
            if not future.done():
                future.cancel()
            portal.call(_aclose_receiver, receive)
            if not future.cancelled():
                future.result()

    def count_tokens(
        self, messages: Sequence[MessageInput] | None = None, **kwargs: Any
    ) -> TokenCount:
        """``AsyncLLMClient.count_tokens``, blocking."""
        portal = self._check()

        async def run() -> TokenCount:
            return await self._client.count_tokens(messages, **kwargs)

        return portal.call(run)

    def embed(self, texts: str | Sequence[str], **kwargs: Any) -> EmbeddingResponse:
        portal = self._check()

        async def run() -> EmbeddingResponse:
            return await self._client.embed(texts, **kwargs)

        return portal.call(run)

    def gather(
        self,
        requests: Iterable[RequestLike],
        *,
        concurrency: int = 16,
        return_exceptions: bool = False,
        progress: Progress = False,
    ) -> list[ChatResponse | BaseException]:
        portal = self._check()
        items = list(requests)

        async def run() -> list[ChatResponse | BaseException]:
            return await self._client.gather(
                items,
                concurrency=concurrency,
                return_exceptions=return_exceptions,
                progress=progress,
            )

        return portal.call(run)

    def metrics(self) -> dict[str, Any]:
        return self._check().call(_metrics, self._client)

    def __repr__(self) -> str:
        state = "closed" if self._portal_cm is None else "open"
        return f"<LLMClient {state} {self._client!r}>"


async def _aclose_receiver(receive: MemoryObjectReceiveStream[ChatChunk]) -> None:
    receive.close()


async def _make_client(args: tuple[Any, ...], kwargs: dict[str, Any]) -> AsyncLLMClient:
    return AsyncLLMClient(*args, **kwargs)


async def _metrics(client: AsyncLLMClient) -> dict[str, Any]:
    return client.metrics()
