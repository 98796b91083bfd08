"""The middleware chain.

A middleware is any async callable ``(request, next) -> response``; ``next``
hands the request to the rest of the chain. The chain is folded once per
client (first entry outermost) and never rebuilt per request.

Streams travel the same chain. For a request with ``stream=True`` the
innermost handler returns as soon as the provider's first chunk has arrived,
with a ``ChatResponse`` whose ``.stream`` is the live ``ChunkStream``.
So errors up to the first chunk surface from ``next`` (Retry may retry
them), while a middleware that must see the end of the stream (breaker,
budget, cache, tracing) registers ``response.stream.on_close(callback)``.
Callbacks run in registration order, innermost middleware first, once the
stream ended, failed or was closed early.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, cast

from .types import ChatRequest, ChatResponse

__all__ = ["Middleware", "Next", "build_chain"]

Next = Callable[[ChatRequest], Awaitable[ChatResponse]]


class Middleware(Protocol):
    """The shape every middleware has; plain async functions qualify too."""

    async def __call__(self, request: ChatRequest, next: Next) -> ChatResponse: ...


MiddlewareLike = Middleware | Callable[[ChatRequest, Next], Awaitable[ChatResponse]]


def build_chain(middleware: Sequence[MiddlewareLike], handler: Next) -> Next:
    """Fold ``middleware`` around ``handler``; the first entry is outermost."""
    for mw in reversed(middleware):
        if not callable(mw):
            raise TypeError(f"middleware must be callable, got {type(mw).__name__}")
        handler = _link(cast(Any, mw), handler)
    return handler


def _link(mw: Callable[[ChatRequest, Next], Awaitable[ChatResponse]], next: Next) -> Next:
    # a closure calls ~40 ns faster than functools.partial(mw, next=...) per layer
    def link(request: ChatRequest) -> Awaitable[ChatResponse]:
        return mw(request, next)

    return link
