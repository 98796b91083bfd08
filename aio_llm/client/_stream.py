"""``ChatStream``: the ``async with client.stream(...)`` object."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextvars import Token
from types import TracebackType

import anyio

from ..errors import APITimeoutError, ClientStateError, OutputValidationError
from ..streaming import replay_as_stream
from ..transports.base import call_deadline
from ..types import ChatChunk, ChatRequest, ChatResponse, ChunkStream
from ._session import Session, deadline_message
from ._structured import parse_output

__all__ = ["ChatStream"]


class ChatStream:
    """The ``async with`` side of ``client.stream``: iterate chunks, then read ``.response``.

    The deadline is a cancel scope entered in ``__aenter__`` and left in
    ``__aexit__``, so it covers the whole block, reading included.

    With a ``response_format``, the answer is validated when the stream ends:
    ``response.parsed`` holds the value, and an answer that does not fit
    raises ``OutputValidationError`` from the loop's last step (a stream is
    never re-asked: its chunks were already delivered).
    """

    __slots__ = (
        "_checked",
        "_error",
        "_request",
        "_response",
        "_scope",
        "_session",
        "_stream",
        "_timeout",
        "_token",
    )

    def __init__(self, session: Session, request: ChatRequest, timeout: float | None) -> None:
        self._session = session
        self._request = request
        self._timeout = timeout
        self._scope: anyio.CancelScope | None = None
        self._token: Token[float | None] | None = None
        self._stream: ChunkStream | None = None
        self._response: ChatResponse | None = None
        self._checked = request.response_format is None
        self._error: OutputValidationError | None = None

    async def __aenter__(self) -> ChatStream:
        if self._stream is not None or self._scope is not None:
            raise ClientStateError("a stream can be entered once; call client.stream() again")
        scope = self._scope = self._session.deadline_scope(self._timeout)
        if scope is not None:
            scope.__enter__()
            self._token = call_deadline.set(scope.deadline)  # for the transport
        try:
            response = await self._session.call(self._request, None)
        except BaseException as exc:
            self._leave_scope(exc)
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
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._stream is not None:
                await self._stream.aclose()
        finally:
            self._leave_scope(exc)

    def _leave_scope(self, exc: BaseException | None) -> None:
        """Exit the deadline's scope; ``APITimeoutError`` if it is what ended the block."""
        scope, self._scope = self._scope, None
        if scope is None:
            return
        if self._token is not None:
            call_deadline.reset(self._token)
            self._token = None
        tb = exc.__traceback__ if exc is not None else None
        if scope.__exit__(type(exc) if exc is not None else None, exc, tb):
            raise APITimeoutError(deadline_message(self._request)) from None

    def __aiter__(self) -> AsyncIterator[ChatChunk]:
        stream = self._stream
        if stream is None:
            raise _not_entered()
        if self._request.response_format is not None:
            return self  # validated at the end: through __anext__
        return stream  # iterate the ChunkStream itself: one call per chunk instead of two

    async def __anext__(self) -> ChatChunk:
        stream = self._stream
        if stream is None:
            raise _not_entered()
        try:
            return await stream.__anext__()
        except StopAsyncIteration:
            error = self._validate()
            if error is not None:
                raise error from None
            raise

    def _validate(self) -> OutputValidationError | None:
        """Parse the final response once, after the stream completed."""
        stream = self._stream
        if self._checked or stream is None or not stream.closed:
            return None
        self._checked = True
        response = stream.response
        if stream.completed and response is not None:
            self._error = parse_output(self._request, response)
        return self._error

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
        if not self._checked:
            self._validate()
        return stream.response

    @property
    def completed(self) -> bool:
        return self._stream is not None and self._stream.completed


def _not_entered() -> ClientStateError:
    return ClientStateError(
        "a stream is read inside its block: "
        "`async with client.stream(...) as s: async for chunk in s: ...`"
    )
