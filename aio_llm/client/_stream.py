"""``ChatStream``: the ``async with client.stream(...)`` object."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ..errors import APITimeoutError
from ..pipeline import Next
from ..streaming import ChunkStream, replay_as_stream
from ..types import ChatChunk, ChatRequest, ChatResponse

if TYPE_CHECKING:
    from ._client import AsyncLLMClient

__all__ = ["ChatStream", "deadline_message"]


class ChatStream:
    """The ``async with`` side of ``client.stream``: iterate chunks, then read ``.response``."""

    __slots__ = (
        "_client",
        "_deadline",
        "_handler",
        "_request",
        "_response",
        "_stream",
        "_timeout",
    )

    def __init__(
        self, client: AsyncLLMClient, handler: Next, request: ChatRequest, timeout: float | None
    ) -> None:
        self._client = client
        self._handler = handler
        self._request = request
        self._timeout = timeout
        self._deadline: Any = None
        self._stream: ChunkStream | None = None
        self._response: ChatResponse | None = None

    async def __aenter__(self) -> ChatStream:
        deadlines = self._client._deadlines
        if self._timeout is not None:
            self._deadline = deadlines.start(self._timeout)
        try:
            response = await self._client._call(self._handler, self._request, None)
        except BaseException as exc:
            deadline, self._deadline = self._deadline, None
            if deadline is not None and deadlines.finish(deadline, exc):
                raise APITimeoutError(deadline_message(self._request)) from None
            raise
        stream = response.stream
        if stream is None:  # a middleware answered without a stream: replay it
            response = replay_as_stream(response)
            stream = response.stream
            assert stream is not None
        self._stream = stream
        self._response = response
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        deadline, self._deadline = self._deadline, None
        try:
            if self._stream is not None:
                await self._stream.aclose()
        finally:
            expired = deadline is not None and self._client._deadlines.finish(deadline, exc)
        if expired:
            raise APITimeoutError(deadline_message(self._request)) from None

    def __aiter__(self) -> AsyncIterator[ChatChunk]:
        # iterate the ChunkStream itself: one call per chunk instead of two
        stream = self._stream
        if stream is None:
            raise RuntimeError("use the stream as `async with client.stream(...) as s:`")
        return stream

    async def __anext__(self) -> ChatChunk:
        stream = self._stream
        if stream is None:
            raise RuntimeError("use the stream as `async with client.stream(...) as s:`")
        return await stream.__anext__()

    async def text(self) -> str:
        """Read to the end and return the whole text."""
        parts = [chunk.delta async for chunk in self]
        return "".join(parts)

    @property
    def response(self) -> ChatResponse | None:
        """The rebuilt final response once the stream ended (``None`` before)."""
        stream = self._stream
        if stream is None or not stream.closed:
            return None
        return stream.response

    @property
    def completed(self) -> bool:
        return self._stream is not None and self._stream.completed


def deadline_message(request: ChatRequest) -> str:
    return f"the request to {request.model!r} did not finish before its deadline"
