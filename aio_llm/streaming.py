"""Streamed answers: ``ChunkStream`` and the accumulator that rebuilds a response.

A ``ChunkStream`` is what a streaming ``ChatResponse`` carries while it is
read. It yields ``ChatChunk`` objects, rebuilds the final ``ChatResponse``
as it goes (``stream.response`` once it ended) and tells the middleware how
it ended through ``on_close`` callbacks (see ``aio_llm.pipeline``).
"""

from __future__ import annotations

import inspect
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import anyio

from .types import (
    ChatChunk,
    ChatResponse,
    FinishReason,
    ThinkingBlock,
    Usage,
    fast_construct,
    make_response,
    make_tool_call,
)

_log = logging.getLogger("aio_llm.streaming")

__all__ = ["ChunkAccumulator", "ChunkSource", "ChunkStream", "CloseCallback"]

CloseCallback = Callable[["ChunkStream"], Awaitable[None] | None]


class ChunkSource(Protocol):
    """Where a stream's chunks come from (a provider's decoder over HTTP, a replay)."""

    async def next_chunks(self) -> list[ChatChunk] | None:
        """The next chunks, or ``None`` at the regular end; raises on failure."""
        ...

    def build_response(self) -> ChatResponse:
        """The response rebuilt from everything read so far."""
        ...

    async def aclose(self) -> None:
        """Release the connection; reading stops."""
        ...


class ChunkStream:
    """An async iterator of ``ChatChunk`` with the final response at its end.

    ``completed`` is true once the provider's end of stream was read; ``error``
    holds the exception that ended it, if any. A stream closed before its end
    (the caller stopped reading) has neither; ``cancelled`` says it was
    closed by cancellation (its caller's deadline passed, or its task was
    cancelled). The end is reported once, to every ``on_close`` callback,
    when the stream is read past its last chunk or closed.
    """

    __slots__ = (
        "_buffer",
        "_callbacks",
        "_closed",
        "_ended",
        "_source",
        "cancelled",
        "chunks_received",
        "completed",
        "error",
        "response",
    )

    def __init__(self, source: ChunkSource) -> None:
        self._source = source
        self._buffer: deque[ChatChunk] = deque()
        self._callbacks: list[CloseCallback] = []
        self._closed = False
        self._ended = False  # the source said "no more"; reported at the next read
        self.cancelled = False
        self.completed = False
        self.error: BaseException | None = None
        self.response: ChatResponse | None = None
        self.chunks_received = 0

    def on_close(self, callback: CloseCallback) -> None:
        """Run ``callback(stream)`` once the stream ended, failed or was closed."""
        if self._closed:
            raise RuntimeError("the stream is already closed")
        self._callbacks.append(callback)

    @property
    def closed(self) -> bool:
        return self._closed

    async def prefetch(self) -> None:
        """Read until the first chunk (or the end) so early errors surface now.

        A stream that ends before any chunk stays open (``on_close`` still
        works) and reports its end at the first read or at ``aclose()``.
        """
        while not self._buffer and not self._closed and not self._ended:
            try:
                chunks = await self._source.next_chunks()
            except BaseException as exc:
                await self._finish(exc)
                raise
            if chunks is None:
                self._ended = True
                return
            self._buffer.extend(chunks)

    def __aiter__(self) -> AsyncIterator[ChatChunk]:
        return self

    async def __anext__(self) -> ChatChunk:
        while not self._buffer:
            if self._closed:
                raise StopAsyncIteration
            if self._ended:
                await self._finish(None)
                raise StopAsyncIteration
            try:
                chunks = await self._source.next_chunks()
            except BaseException as exc:
                await self._finish(exc)
                raise
            if chunks is None:
                await self._finish(None)
                raise StopAsyncIteration
            self._buffer.extend(chunks)
        self.chunks_received += 1
        return self._buffer.popleft()

    async def aclose(self) -> None:
        """Stop reading and release the connection (idempotent)."""
        if not self._closed:
            await self._finish(None, early=not (self._ended and not self._buffer))

    async def _finish(self, exc: BaseException | None, *, early: bool = False) -> None:
        if self._closed:
            return
        self._closed = True
        if exc is None and not early:
            self.completed = True
        elif exc is not None:
            if isinstance(exc, anyio.get_cancelled_exc_class()):
                self.cancelled = True
            else:
                self.error = exc
        failure: Exception | None = None
        with anyio.CancelScope(shield=True):
            try:
                await self._source.aclose()
            finally:
                try:
                    self.response = self._source.build_response()
                except Exception as build_exc:  # a broken stream may not rebuild
                    if self.error is None and self.completed:
                        self.error = build_exc
                        self.completed = False
                for callback in self._callbacks:  # each runs, whatever the others do
                    try:
                        result = callback(self)
                        if inspect.isawaitable(result):
                            await result
                    except Exception as cb_exc:
                        _log.exception("an on_close callback of a stream failed")
                        failure = failure or cb_exc
        if failure is not None and exc is None:
            raise failure

    def __repr__(self) -> str:
        state = "completed" if self.completed else "failed" if self.error else "open"
        if self._closed and not self.completed and self.error is None:
            state = "cancelled" if self.cancelled else "closed early"
        return f"<ChunkStream {state} chunks={self.chunks_received}>"


class ChunkAccumulator:
    """Rebuilds a ``ChatResponse`` from chunks (text, reasoning, tool calls, usage).

    What a chunk does not carry, a stream decoder sets here directly:
    ``thinking`` (reasoning blocks with their signatures, for the next turn)
    and ``signatures`` (tool-call index -> the provider's signature).
    """

    __slots__ = (
        "_reasoning",
        "_text",
        "_tools",
        "finish_reason",
        "id",
        "model",
        "signatures",
        "thinking",
        "usage",
    )

    def __init__(self) -> None:
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._tools: dict[int, list[str]] = {}
        self.finish_reason: FinishReason | None = None
        self.usage: Usage | None = None
        self.id = ""
        self.model = ""
        self.thinking: list[ThinkingBlock] = []
        self.signatures: dict[int, str] = {}

    def add(self, chunk: ChatChunk) -> None:
        if chunk.delta:
            self._text.append(chunk.delta)
        if chunk.reasoning:
            self._reasoning.append(chunk.reasoning)
        for tc in chunk.tool_calls:
            slot = self._tools.get(tc.index)
            if slot is None:
                slot = self._tools[tc.index] = [tc.id or "", tc.name or "", tc.arguments]
            else:
                if tc.id and not slot[0]:
                    slot[0] = tc.id
                if tc.name and not slot[1]:
                    slot[1] = tc.name
                slot[2] += tc.arguments
        if chunk.finish_reason is not None:
            self.finish_reason = chunk.finish_reason
        if chunk.usage is not None:
            self.usage = chunk.usage

    @property
    def text(self) -> str:
        return "".join(self._text)

    def build(self, *, provider: str, raw: Any = None) -> ChatResponse:
        text = "".join(self._text)
        signatures = self.signatures
        tool_calls = [
            make_tool_call(s[0], s[1], s[2], signatures.get(i))
            for i, s in sorted(self._tools.items())
        ]
        usage = self.usage
        if usage is None:
            usage = Usage()
        finish = self.finish_reason
        if tool_calls and finish is not None:
            finish = "tool_calls"  # whatever the provider said (OpenAI's forced choice: "stop")
        return make_response(
            id=self.id,
            model=self.model,
            provider=provider,
            content=text,
            finish_reason=finish,
            usage=usage,
            tool_calls=tool_calls,
            thinking=list(self.thinking),
            reasoning="".join(self._reasoning) or None,
            raw=raw,
        )


class ReplaySource:
    """Replays a finished ``ChatResponse`` as a stream (cache hits, dedup followers)."""

    __slots__ = ("_done", "_response")

    def __init__(self, response: ChatResponse) -> None:
        self._response = response
        self._done = False

    async def next_chunks(self) -> list[ChatChunk] | None:
        if self._done:
            return None
        self._done = True
        r = self._response
        from .types import ToolCallDelta

        deltas = [
            fast_construct(ToolCallDelta, index=i, id=tc.id, name=tc.name, arguments=tc.arguments)
            for i, tc in enumerate(r.tool_calls)
        ]
        return [
            fast_construct(
                ChatChunk,
                delta=r.content,
                tool_calls=deltas,
                finish_reason=r.finish_reason,
                usage=r.usage,
                reasoning=r.reasoning or "",
            )
        ]

    def build_response(self) -> ChatResponse:
        return self._response

    async def aclose(self) -> None:
        self._done = True


def replay_as_stream(response: ChatResponse) -> ChatResponse:
    """A copy of ``response`` whose ``.stream`` replays it as one chunk."""
    copy = response.model_copy()
    copy._stream = ChunkStream(ReplaySource(response))
    return copy
