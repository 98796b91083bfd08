"""``Relay``: an async iterable read in the client's event loop, handed over item by item.

The blocking client's streams and ``as_completed`` are async iterables
inside an ``async with`` (a stream's deadline is a cancel scope, which must
be entered and left by one task). A relay reads the whole thing in one task
of the loop thread and passes each item through an unbuffered memory stream
to the calling thread, which waits for it like any blocking call: Ctrl-C
cancels the wait and the task.

``SyncChatStream`` is the ``with client.stream(...) as s:`` object built on it.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterable, Awaitable, Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Generic, TypeVar

import anyio
from anyio.from_thread import BlockingPortal
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ..errors import ClientStateError
from ..types import ChatChunk, ChatResponse
from ._stream import ChatStream

__all__ = ["Relay", "SyncChatStream"]

T = TypeVar("T")
_OPENED = object()  # the first item: the source was entered


class Relay(Generic[T]):
    """Reads ``open_source()`` (an async context manager giving an async iterable) in the loop."""

    __slots__ = ("_done", "_future", "_open", "_portal", "_receive", "_send", "_state")

    def __init__(
        self,
        portal: BlockingPortal,
        open_source: Callable[[], AbstractAsyncContextManager[AsyncIterable[T]]],
    ) -> None:
        self._portal = portal
        self._open = open_source
        self._send: MemoryObjectSendStream[object] | None = None
        self._receive: MemoryObjectReceiveStream[object] | None = None
        self._future: Future[None] | None = None
        self._done = threading.Event()
        self._state = "new"  # new -> open -> ended

    async def _produce(self) -> None:
        send = self._send
        assert send is not None
        try:
            async with send, self._open() as source:
                await send.send(_OPENED)
                async for item in source:
                    await send.send(item)
        except anyio.BrokenResourceError:
            pass  # the reader closed the relay: stop reading
        finally:
            self._done.set()

    def _wait(self, fn: Callable[[], Awaitable[object]]) -> object:
        """``fn()`` run in the loop, waited for here; an interrupt cancels it there too."""
        future = self._portal.start_task_soon(fn)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def _receive_one(self) -> object:
        receive = self._receive
        assert receive is not None
        try:
            return self._wait(receive.receive)
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            self._state = "ended"
            self._done.wait()
            self._close_receiver()
            future = self._future
            assert future is not None
            if not future.cancelled():
                future.result()  # the source's error, if it failed
            raise StopIteration from None

    def _close_receiver(self) -> None:
        receive, self._receive = self._receive, None
        if receive is not None:
            try:
                self._portal.call(receive.close)  # in the loop: it may wake the producer
            except RuntimeError:  # the loop has stopped: nothing is waiting any more
                receive.close()

    def open(self) -> None:
        """Start reading and wait until the source is entered (its errors are raised here)."""
        if self._state != "new":
            raise ClientStateError("this stream was already opened")
        self._state = "open"
        self._send, self._receive = anyio.create_memory_object_stream[object](0)
        self._future = self._portal.start_task_soon(self._produce)
        try:
            first = self._receive_one()
        except StopIteration:
            raise ClientStateError("the stream ended before it opened") from None
        except BaseException:
            self.close()
            raise
        assert first is _OPENED

    def next(self) -> T:
        """The next item; ``StopIteration`` at the end, the source's error if it failed."""
        if self._state == "new":
            self.open()
        if self._state == "ended":
            raise StopIteration
        try:
            return self._receive_one()  # type: ignore[return-value]
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop reading (if still reading) and wait until the source is closed."""
        if self._state == "new":
            self._state = "ended"
            return
        self._state = "ended"
        future = self._future
        if future is not None and not self._done.is_set():
            future.cancel()  # cancels the task in the loop: it leaves the source's block
            self._done.wait()
        self._close_receiver()

    def abandon(self) -> None:
        """Cancel without waiting (from a finalizer: nothing may block there)."""
        future = self._future
        if future is not None and not self._done.is_set():
            future.cancel()


class SyncChatStream:
    """The blocking ``client.stream(...)``: ``with`` it, iterate chunks, then read ``response``.

    Iterating without ``with`` also works (the stream closes when it is read to its end).
    """

    __slots__ = ("_chat_stream", "_relay")

    def __init__(self, portal: BlockingPortal, stream: ChatStream) -> None:
        self._chat_stream = stream
        self._relay: Relay[ChatChunk] = Relay(portal, lambda: stream)

    def __enter__(self) -> SyncChatStream:
        self._relay.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._relay.close()

    def __iter__(self) -> Iterator[ChatChunk]:
        return self

    def __next__(self) -> ChatChunk:
        return self._relay.next()

    def text(self) -> str:
        """Read to the end and return the whole text."""
        return "".join(chunk.delta for chunk in self)

    def close(self) -> None:
        """Stop reading and close the connection (what leaving ``with`` does)."""
        self._relay.close()

    @property
    def response(self) -> ChatResponse | None:
        """The rebuilt final response once the stream ended (``None`` before)."""
        return self._chat_stream.response

    @property
    def completed(self) -> bool:
        """True when the provider's end of stream was read."""
        return self._chat_stream.completed

    def __del__(self) -> None:
        relay = getattr(self, "_relay", None)
        if relay is not None:
            relay.abandon()
