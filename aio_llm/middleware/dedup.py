"""Singleflight: concurrent identical requests share one upstream call.

``Deduplicator`` is the generic mechanism (``await d.deduplicate(key,
executor)``); ``Dedup`` is the middleware. Its keys mean what the cache's
mean (``aio_llm.middleware._keys``) but stay in the process, so it uses
``local_key``: a tuple for plain-text requests, no JSON and no digest.

Who runs the shared call. Bound to a task group (the client calls
``bind(task_group)`` when it opens; ``async with Deduplicator()`` opens one of
its own), the call runs in a task of that group and every caller, the first
included, waits for it. So a caller that is cancelled (its deadline passed,
its task was cancelled) just stops waiting; the others still get the
answer, and only when every waiter is gone is the call itself cancelled.
Unbound, the first caller runs the call in its own task; if it is
cancelled the next waiter takes over and calls again.

Errors reach every waiter. Streams: a streaming request never leads a
shared call (its caller wants tokens as they arrive, and other callers must
not depend on how fast it reads); it joins a non-streaming call in flight
for the same key and gets that answer replayed as a stream, else it goes
upstream on its own. ``request.cache=False`` opts a request out (use it to
draw independent samples of the same prompt).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar, cast

import anyio
import anyio.abc

from .._task_host import TaskGroupHost
from ..pipeline import Next
from ..streaming import replay_as_stream
from ..types import ChatRequest, ChatResponse
from ._keys import RequestKeyer, TenantFn
from .tracing._tracing import EVENT_DEDUP_HIT, record_event

__all__ = ["Dedup", "DedupStatistics", "Deduplicator"]

T = TypeVar("T")

_PENDING, _VALUE, _ERROR, _ABANDONED = 0, 1, 2, 3


class _Flight:
    __slots__ = ("error", "event", "scope", "state", "tb", "value", "waiters")

    def __init__(self) -> None:
        self.event: anyio.Event | None = None  # made when someone waits
        self.state = _PENDING
        self.value: Any = None
        self.error: BaseException | None = None
        self.tb: TracebackType | None = None
        self.scope: anyio.CancelScope | None = None
        self.waiters = 0

    def finish(self) -> None:
        if self.state == _PENDING:
            self.state = _ABANDONED
        if self.event is not None:
            self.event.set()


@dataclass(frozen=True)
class DedupStatistics:
    """Counters of a ``Deduplicator``."""

    calls: int
    """Shared calls started (leaders)."""
    hits: int
    """Callers that joined a call already in flight instead of starting one."""
    takeovers: int
    """Calls started again because the one a caller waited on was cancelled."""
    inflight: int
    """Calls in flight now."""


class Deduplicator(TaskGroupHost):
    """Runs one call per key at a time; concurrent callers of a key share its outcome.

    ``share(value)`` (optional) gives each follower its own copy of the
    value; the leader gets the original.
    """

    __slots__ = ("_flights", "_share", "calls", "hits", "takeovers")
    _cancel_on_exit = True

    def __init__(
        self,
        *,
        task_group: anyio.abc.TaskGroup | None = None,
        share: Callable[[Any], Any] | None = None,
    ) -> None:
        self._flights: dict[Hashable, _Flight] = {}
        TaskGroupHost.__init__(self)
        self._task_group = task_group
        self._share = share
        self.calls = 0
        self.hits = 0
        self.takeovers = 0

    def has_flight(self, key: Hashable) -> bool:
        """Whether a call for ``key`` is in flight now."""
        return key in self._flights

    async def deduplicate(self, key: Hashable, executor: Callable[[], Awaitable[T] | T]) -> T:
        """Run ``executor()`` once for all concurrent callers of ``key``; return its result."""
        retry = False
        while True:
            flight = self._flights.get(key)
            if flight is None:
                tg = self._task_group
                if tg is not None and tg.cancel_scope.cancel_called:
                    tg = self._task_group = None  # the owner is shutting down
                flight = self._flights[key] = _Flight()
                self._count_start(retry)
                if tg is None:
                    return cast(T, await self._run_inline(key, flight, executor))
                tg.start_soon(self._run, key, flight, executor)
                leader = True
            else:
                if not retry:
                    self.hits += 1
                    record_event(EVENT_DEDUP_HIT)
                leader = False
            state, value = await self._wait(flight)
            if state == _VALUE:
                share = self._share
                return cast(T, value if leader or share is None else share(value))
            retry = True  # the call was cancelled under us: start (or join) another

    async def join(self, key: Hashable) -> tuple[bool, Any]:
        """Wait for the call in flight for ``key``: ``(True, value)``, or ``(False, None)``.

        ``(False, None)`` when nothing is in flight or the call was cancelled;
        the call's error is raised.
        """
        flight = self._flights.get(key)
        if flight is None:
            return False, None
        self.hits += 1
        record_event(EVENT_DEDUP_HIT)
        state, value = await self._wait(flight)
        if state != _VALUE:
            return False, None
        return True, value if self._share is None else self._share(value)

    def _count_start(self, retry: bool) -> None:
        self.calls += 1
        if retry:
            self.takeovers += 1

    async def _wait(self, flight: _Flight) -> tuple[int, Any]:
        if flight.state == _PENDING:
            await self._wait_pending(flight)
        if flight.state == _ERROR:
            error = flight.error
            assert error is not None
            raise error.with_traceback(flight.tb)  # one traceback, not one per waiter
        return flight.state, flight.value

    async def _wait_pending(self, flight: _Flight) -> None:
        event = flight.event
        if event is None:
            event = flight.event = anyio.Event()
        flight.waiters += 1
        try:
            await event.wait()
        except BaseException:
            flight.waiters -= 1
            if flight.waiters == 0 and flight.state == _PENDING and flight.scope is not None:
                flight.scope.cancel()  # nobody wants the answer any more
            raise
        flight.waiters -= 1

    async def _run(self, key: Hashable, flight: _Flight, executor: Callable[[], Any]) -> None:
        with anyio.CancelScope() as scope:
            flight.scope = scope
            if flight.waiters == 0:
                scope.cancel()
            try:
                result = executor()
                if inspect.isawaitable(result):
                    result = await result
            except Exception as exc:
                flight.error, flight.tb = exc, exc.__traceback__
                flight.state = _ERROR
            else:
                flight.value = result
                flight.state = _VALUE
            finally:
                if self._flights.get(key) is flight:
                    del self._flights[key]
                flight.finish()

    async def _run_inline(
        self, key: Hashable, flight: _Flight, executor: Callable[..., Any], *args: Any
    ) -> Any:
        """Lead ``flight`` (registered under ``key``): run ``executor(*args)`` in this task."""
        try:
            result = executor(*args)
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            flight.error, flight.tb = exc, exc.__traceback__
            flight.state = _ERROR
            raise
        else:
            flight.value = result
            flight.state = _VALUE
            return result
        finally:  # a cancelled leader leaves the flight abandoned: a waiter takes over
            flights = self._flights
            current = flights.pop(key, None)
            if current is not flight and current is not None:
                flights[key] = current  # a takeover's flight: not ours to end
            flight.finish()

    async def lead_or_join(self, key: Hashable, next: Next, request: ChatRequest) -> ChatResponse:
        """``deduplicate(key, partial(next, request))``, leading inline without the partial."""
        flight = _Flight()
        # one hash of the key to look and to claim; a call in flight keeps its place
        if self._task_group is not None or self._flights.setdefault(key, flight) is not flight:
            return await self.deduplicate(key, functools.partial(next, request))
        self.calls += 1
        return cast(ChatResponse, await self._run_inline(key, flight, next, request))

    def statistics(self) -> DedupStatistics:
        return DedupStatistics(
            calls=self.calls, hits=self.hits, takeovers=self.takeovers, inflight=len(self._flights)
        )

    def metrics(self) -> dict[str, object]:
        return {"dedup.hits": self.hits, "dedup.inflight": len(self._flights)}

    def __repr__(self) -> str:
        mode = "bound" if self._task_group is not None else "inline"
        return (
            f"Deduplicator({mode}, inflight={len(self._flights)}, calls={self.calls}, "
            f"hits={self.hits})"
        )


class Dedup:
    """Middleware: concurrent identical chat requests share one upstream call.

    Pass the client's ``keyer`` so the cache and dedup hash each request
    once; else ``provider`` and ``tenant`` build one (see
    ``aio_llm.middleware.RequestKeyer``). The client calls ``bind(task_group)``
    when it opens; used alone, ``async with Dedup():`` does the same.

    ``shared_task=True`` (default) runs each shared call in that task group:
    exactly one upstream call even if the first caller is cancelled, for
    about 25 µs of CPU per distinct request (a task). ``shared_task=False``
    runs the call in the first caller's task (about 5 µs, and the call stays
    under that caller's deadline and context); if that caller is cancelled
    a waiter takes over with a second call.
    """

    __slots__ = ("_flights", "_key", "shared_task")

    def __init__(
        self,
        *,
        keyer: RequestKeyer | None = None,
        provider: str | None = None,
        tenant: str | TenantFn | None = None,
        shared_task: bool = True,
    ) -> None:
        self._key = keyer if keyer is not None else RequestKeyer(provider=provider, tenant=tenant)
        self._flights = Deduplicator(share=_follower_copy)
        self.shared_task = shared_task

    def bind(self, task_group: anyio.abc.TaskGroup) -> None:
        """Run shared calls in ``task_group`` (ignored with ``shared_task=False``)."""
        if self.shared_task:
            self._flights.bind(task_group)

    async def __aenter__(self) -> Dedup:
        if self.shared_task:
            await self._flights.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        return await self._flights.__aexit__(exc_type, exc, tb)

    def __call__(self, request: ChatRequest, next: Next) -> Awaitable[ChatResponse]:
        # a plain function returning the coroutine to await: one frame less per request
        if not request.cache:
            return next(request)
        key = self._key.local(request)
        if request.stream:
            return self._stream(key, request, next)
        return self._flights.lead_or_join(key, next, request)

    async def _stream(self, key: Hashable, request: ChatRequest, next: Next) -> ChatResponse:
        flights = self._flights
        if flights.has_flight(key):
            ok, value = await flights.join(key)
            if ok:
                return replay_as_stream(value)
        return await next(request)

    @property
    def deduplicator(self) -> Deduplicator:
        return self._flights

    def statistics(self) -> DedupStatistics:
        return self._flights.statistics()

    def metrics(self) -> dict[str, object]:
        return self._flights.metrics()

    def __repr__(self) -> str:
        s = self._flights.statistics()
        return f"Dedup(inflight={s.inflight}, calls={s.calls}, hits={s.hits})"


def _follower_copy(response: ChatResponse) -> ChatResponse:
    """A follower's own copy of the shared answer: it cost nothing (the leader paid).

    So the costs of all responses add up to what the budget ledger charged.
    """
    copy = response.model_copy()
    if copy.cost is not None:
        copy.__dict__["cost"] = 0.0  # a float we set: past pydantic's __setattr__
    return copy
