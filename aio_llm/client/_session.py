"""``Session``: what an open client runs requests with.

``AsyncLLMClient.__aenter__`` builds one: the folded chains (``handler``
for chat, ``embed_handler`` for embeddings), the client's task group, the
default deadline and the request counters. The
client's ``chat``, the stream (``_stream``) and the fan-out (``_fanout``)
all call through it, so none of them reads the client's private state.

A deadline is an anyio ``CancelScope`` around the whole chain (every retry,
backoff and wait included). When it passes, the scope cancels the call and
``APITimeoutError`` is raised in its place; any other cancellation (the
caller's own scope, ``asyncio.wait_for``) stays a cancellation. Shielded
scopes inside the call (the budget's and the stream's clean-up) finish
before the cancellation reaches them, as anyio guarantees. Middleware reads
what is left with ``anyio.current_effective_deadline()``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import anyio.abc

from .._conversation import output_format
from ..errors import APITimeoutError
from ..pipeline import EmbedNext, Next
from ..transports.base import call_deadline
from ..types import ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse
from ._structured import send_structured

__all__ = ["Session", "deadline_message"]

R = TypeVar("R", ChatRequest, EmbeddingRequest)
T = TypeVar("T")


class Session:
    """An open client's chain, task group, default deadline and counters."""

    __slots__ = (
        "default_timeout",
        "embed_handler",
        "errors",
        "handler",
        "in_flight",
        "now",
        "requests",
        "task_group",
        "validation_retries",
    )

    def __init__(
        self,
        handler: Next,
        embed_handler: EmbedNext,
        task_group: anyio.abc.TaskGroup,
        *,
        default_timeout: float | None,
        now: Callable[[], float],
        validation_retries: int = 0,
    ) -> None:
        self.handler = handler
        self.embed_handler = embed_handler
        self.task_group = task_group
        self.default_timeout = default_timeout
        """Seconds a call may take when neither it nor its request says (``None``: no limit)."""
        self.now = now
        """The event loop's clock, which cancel-scope deadlines are on."""
        self.validation_retries = validation_retries
        """Re-asks of an answer that does not fit its ``response_format`` (the client's default)."""
        self.requests = 0
        self.errors = 0
        self.in_flight = 0

    def timeout_for(self, request: ChatRequest | EmbeddingRequest) -> float | None:
        """The request's own ``timeout``, else the client's default."""
        return request.timeout if request.timeout is not None else self.default_timeout

    def deadline_scope(self, timeout: float | None) -> anyio.CancelScope | None:
        """A cancel scope ending ``timeout`` seconds from now (``None``: no deadline)."""
        if timeout is None:
            return None
        return anyio.CancelScope(deadline=self.now() + timeout)

    async def call(self, request: ChatRequest, limit: float | None) -> ChatResponse:
        """``request`` through the chain within ``limit`` seconds (``None``: no limit), counted."""
        return await self._through(self._send, request, limit)

    async def embed(self, request: EmbeddingRequest, limit: float | None) -> EmbeddingResponse:
        """``request`` through the embedding chain within ``limit`` seconds, counted."""
        return await self._through(self.embed_handler, request, limit)

    async def _through(
        self, handler: Callable[[R], Awaitable[T]], request: R, limit: float | None
    ) -> T:
        self.requests += 1
        self.in_flight += 1
        token = None
        try:
            if limit is None:
                return await handler(request)
            deadline = self.now() + limit
            token = call_deadline.set(deadline)  # for the transport (see call_deadline)
            with anyio.CancelScope(deadline=deadline):
                return await handler(request)
            raise APITimeoutError(deadline_message(request), provider=request.provider)
        except Exception:
            self.errors += 1
            raise
        finally:
            self.in_flight -= 1
            if token is not None:
                call_deadline.reset(token)

    def _send(self, request: ChatRequest) -> Awaitable[ChatResponse]:
        if request.response_format is None:
            return self.handler(request)
        output_format(request.response_format)  # a malformed format is refused before sending
        if request.stream:
            return self.handler(request)  # a stream is validated when it ends (ChatStream)
        return send_structured(self.handler, request, self.validation_retries)

    def __repr__(self) -> str:
        limit = "none" if self.default_timeout is None else f"{self.default_timeout:g}s"
        return (
            f"<Session requests={self.requests} errors={self.errors} "
            f"in_flight={self.in_flight} default_timeout={limit}>"
        )


def deadline_message(request: ChatRequest | EmbeddingRequest) -> str:
    return f"the request to {request.model!r} did not finish before its deadline"
