"""The blocking twin: ``LLMClient`` for code that is not async.

One anyio blocking portal (an event loop in a worker thread) per client runs
the real ``AsyncLLMClient``; every method is ``portal.call`` of the async one,
so the logic never drifts. Because the loop lives in its own thread, the sync
API also works when called from inside a running event loop (Jupyter, an
async framework's sync callback). Streams and ``as_completed`` are read by a
``Relay`` (see ``_relay``): one task in the loop, items handed over one by one.
"""

from __future__ import annotations

import atexit
import functools
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, Concatenate, Literal, ParamSpec, TypeVar, overload

import anyio
from anyio.from_thread import BlockingPortal

from ..errors import ClientStateError
from ..tokens import TokenCount
from ..types import ChatResponse, EmbeddingResponse, MessageInput
from ._client import USE_CLIENT_DEFAULT, AsyncLLMClient, RequestLike
from ._progress import Progress
from ._relay import Relay, SyncChatStream
from ._timeout import TimeoutArg

if TYPE_CHECKING:
    from ..cost import CostManager

__all__ = ["LLMClient"]

T = TypeVar("T")
P = ParamSpec("P")
S = TypeVar("S")


def _same_arguments_as(
    _: Callable[Concatenate[Any, P], None],
) -> Callable[[Callable[Concatenate[S, ...], None]], Callable[Concatenate[S, P], None]]:
    """Give the decorated ``__init__`` the signature of another (for type checkers only)."""

    def apply(init: Callable[Concatenate[S, ...], None]) -> Callable[Concatenate[S, P], None]:
        return init

    return apply


class _LoopThread:
    """An event loop in a daemon thread, reached through a blocking portal.

    Not ``anyio.from_thread.start_blocking_portal``: that is a generator, and a
    generator left open is closed when it is garbage-collected, which waits
    for the loop thread. During interpreter finalization no other thread can
    run any more, so a client never closed (one made in an ``atexit``
    handler: it registers its ``close`` too late to be called) hung the
    process at exit. Here nothing runs on collection: ``close()`` stops the
    loop, and a loop never stopped ends with the process.
    """

    __slots__ = ("_thread", "portal")

    def __init__(self) -> None:
        ready: Future[BlockingPortal] = Future()

        async def serve() -> None:
            async with BlockingPortal() as portal:
                ready.set_result(portal)
                await portal.sleep_until_stopped()

        def run() -> None:
            try:
                anyio.run(serve, backend="asyncio")
            except BaseException as exc:
                if not ready.done():
                    ready.set_exception(exc)

        self._thread = threading.Thread(target=run, name="aio_llm-sync-loop", daemon=True)
        self._thread.start()
        self.portal = ready.result()

    def close(self) -> None:
        """Stop the loop (cancelling what still runs in it) and wait for its thread."""
        try:
            self.portal.call(self.portal.stop, True)
        except RuntimeError:  # already stopped
            pass
        self._thread.join()


def _at_exit() -> bool:
    """Whether the interpreter is shutting down (atexit handlers run after the main thread
    is marked stopped): a client made now is never closed by ``atexit``, and must not
    outlive the call that made it."""
    return not threading.main_thread().is_alive()


class LLMClient:
    """A blocking LLM client; same arguments as ``AsyncLLMClient``.

    Use it as a context manager or call ``close()``; clients still open at
    interpreter exit are closed then.
    """

    @_same_arguments_as(AsyncLLMClient.__init__)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._loop: _LoopThread | None = _LoopThread()
        self._portal = self._loop.portal
        try:
            self._client: AsyncLLMClient = self._portal.call(_make_client, args, kwargs)
            # entered and exited in one task of the portal: the client's task
            # group must not span tasks
            self._client_cm = self._portal.wrap_async_context_manager(self._client)
            self._client_cm.__enter__()
        except BaseException:
            self._loop.close()
            self._loop = None
            raise
        self._lock = threading.Lock()
        atexit.register(self.close)

    @property
    def async_client(self) -> AsyncLLMClient:
        """The ``AsyncLLMClient`` running in the portal's loop."""
        return self._client

    @property
    def cost_manager(self) -> CostManager:
        """The client's cost manager: its spend, budgets and usage records."""
        return self._client.cost_manager

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the client and stop its event-loop thread (idempotent)."""
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is None:
            return
        atexit.unregister(self.close)
        try:
            self._client_cm.__exit__(None, None, None)
        finally:
            loop.close()

    @property
    def closed(self) -> bool:
        return self._loop is None

    def _check(self) -> BlockingPortal:
        if self._loop is None:
            raise ClientStateError("the client is closed: create a new LLMClient")
        return self._portal

    def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn()`` in the client's loop and wait; an interrupt cancels it there too.

        ``portal.call`` leaves the task running when the waiting thread is
        interrupted (Ctrl-C): the HTTP request would go on until its deadline.
        """
        future = self._check().start_task_soon(fn)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # KeyboardInterrupt, SystemExit...: cancels the task's scope
            raise

    def chat(
        self,
        messages: Sequence[MessageInput] | None = None,
        *,
        model: str | None = None,
        request: RequestLike | None = None,
        timeout: TimeoutArg = USE_CLIENT_DEFAULT,
        **params: Any,
    ) -> ChatResponse:
        """One chat completion (see ``AsyncLLMClient.chat``)."""

        async def run() -> ChatResponse:
            return await self._client.chat(
                messages, model=model, request=request, timeout=timeout, **params
            )

        return self._call(run)

    def stream(
        self,
        messages: Sequence[MessageInput] | None = None,
        *,
        model: str | None = None,
        request: RequestLike | None = None,
        timeout: TimeoutArg = USE_CLIENT_DEFAULT,
        **params: Any,
    ) -> SyncChatStream:
        """A streamed chat: ``with client.stream(...) as s: for chunk in s: ...``.

        ``s.response`` is the whole answer once the stream ended; leaving the
        block early closes the connection. The request is checked here, and
        sent when the block is entered (or the stream first iterated).
        """
        portal = self._check()
        make = functools.partial(
            self._client.stream, messages, model=model, request=request, timeout=timeout, **params
        )
        return SyncChatStream(portal, portal.call(make))

    def as_completed(
        self, requests: Iterable[RequestLike], *, concurrency: int = 16
    ) -> Iterator[tuple[int, ChatResponse | BaseException]]:
        """Yield ``(index, response or exception)`` as each request finishes.

        Leaving the loop early cancels the requests still running.
        """
        portal = self._check()
        items = list(requests)
        client = self._client

        relay: Relay[tuple[int, ChatResponse | BaseException]] = Relay(
            portal, lambda: aclosing(client.as_completed(items, concurrency=concurrency))
        )
        try:
            while True:
                try:
                    item = relay.next()
                except StopIteration:
                    return
                yield item
        finally:
            relay.close()

    def count_tokens(
        self, messages: Sequence[MessageInput] | None = None, **kwargs: Any
    ) -> TokenCount:
        """``AsyncLLMClient.count_tokens``, blocking."""

        async def run() -> TokenCount:
            return await self._client.count_tokens(messages, **kwargs)

        return self._call(run)

    def embed(self, texts: str | Sequence[str], **kwargs: Any) -> EmbeddingResponse:
        """Embed ``texts`` (see ``AsyncLLMClient.embed``)."""

        async def run() -> EmbeddingResponse:
            return await self._client.embed(texts, **kwargs)

        return self._call(run)

    @overload
    def gather(
        self,
        requests: Iterable[RequestLike],
        *,
        concurrency: int = ...,
        return_exceptions: Literal[False] = ...,
        progress: Progress = ...,
    ) -> list[ChatResponse]: ...

    @overload
    def gather(
        self,
        requests: Iterable[RequestLike],
        *,
        concurrency: int = ...,
        return_exceptions: bool,
        progress: Progress = ...,
    ) -> list[ChatResponse | BaseException]: ...

    def gather(
        self,
        requests: Iterable[RequestLike],
        *,
        concurrency: int = 16,
        return_exceptions: bool = False,
        progress: Progress = False,
    ) -> list[ChatResponse] | list[ChatResponse | BaseException]:
        """Run ``requests`` concurrently; results in input order (see ``AsyncLLMClient.gather``)."""
        items = list(requests)

        async def run() -> list[ChatResponse] | list[ChatResponse | BaseException]:
            return await self._client.gather(
                items,
                concurrency=concurrency,
                return_exceptions=return_exceptions,
                progress=progress,
            )

        return self._call(run)

    def metrics(self) -> dict[str, Any]:
        return self._check().call(_metrics, self._client)

    def __repr__(self) -> str:
        state = "closed" if self._loop is None else "open"
        return f"<LLMClient {state} {self._client!r}>"


async def _make_client(args: tuple[Any, ...], kwargs: dict[str, Any]) -> AsyncLLMClient:
    return AsyncLLMClient(*args, **kwargs)


async def _metrics(client: AsyncLLMClient) -> dict[str, Any]:
    return client.metrics()
