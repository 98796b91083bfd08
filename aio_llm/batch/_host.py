"""What batch jobs use of the client that runs them.

The client reaches batch jobs (``gather(via="batch")``, ``batch_submit``,
``batch_resume``), so the batch package does not import the client back: it
names what it needs here, and an ``AsyncLLMClient`` is one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from ..types import ChatRequest, ChatResponse

if TYPE_CHECKING:
    from contextlib import AsyncExitStack

    from ..client._session import Session
    from ..clock import Clock
    from ..config import ClientConfig
    from ..cost.manager import CostManager
    from ..pipeline import MiddlewareLike
    from ..providers.base import Provider
    from ..transports.base import HTTPTransport
    from ._store import BatchStore

__all__ = ["BatchClient", "RequestLike"]

RequestLike = ChatRequest | Mapping[str, Any]


class BatchClient(Protocol):
    """The parts of ``AsyncLLMClient`` a batch job uses."""

    clock: Clock
    config: ClientConfig
    cost_manager: CostManager
    model: str | None
    _default_provider: str
    _transport: HTTPTransport | None
    _session: Session | None
    _exit_stack: AsyncExitStack | None

    @property
    def providers(self) -> Mapping[str, Provider]: ...

    @property
    def middleware(self) -> tuple[MiddlewareLike, ...]: ...

    @property
    def chat(self) -> Callable[..., Awaitable[ChatResponse]]: ...

    def _require_open(self) -> object: ...

    def _coerce(self, item: RequestLike) -> ChatRequest: ...

    def _batch_store(self, store: Any) -> BatchStore: ...
