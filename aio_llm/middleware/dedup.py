"""Singleflight: concurrent identical requests share one upstream call.

``Deduplicator`` is the generic mechanism (``await d.deduplicate(key,
executor)``); ``Dedup`` is the middleware. Its keys are the cache's
(``aio_llm.middleware._keys``): with the client's keyer, a request is hashed
once for both.

The shared call runs in a task of its own, and every caller, the first
included, waits for it. So a caller that is cancelled (its deadline passed,
its task was cancelled) just stops waiting; the others still get the answer
from that one upstream call, and only when every waiter is gone is the call
itself cancelled. The call's deadline is the latest of its waiters'
(``anyio.current_effective_deadline()`` when each started waiting), so Retry
and RateLimit inside it still refuse a wait that no caller would see the end
of.

The task. On asyncio it is a plain task the deduplicator keeps and, when it
closes, cancels and waits for: anyio's ``start_soon`` wraps each task in a
handle with a cancel scope and an event of its own, about four times the
CPU of a plain task, and this is one task per distinct request. Elsewhere it
runs in the task group the client binds (``bind``) or one opened by
``async with``.

Only requests meant to give one answer are merged: a request that samples
(``n`` above 1, or a ``temperature`` other than 0 with no ``seed``, where
no temperature means the provider's default, which samples unless the
provider is deterministic like the mock) asks for an answer of its own, so
it goes upstream alone unless the caller opts in: ``request.dedup=True``
for one call, ``merge_samples=True`` (``ClientConfig.dedup_sampling``) for
all. ``request.dedup=False`` or ``request.cache=False`` never merges.

Who pays. The shared answer itself goes to the first caller that takes it
(the one that started the call, or a follower if that one left); every
other caller gets a copy marked ``cached=True`` (served without a call of
its own) with ``cost=0.0``. So exactly one response carries the call's
cost, and the costs of all responses add up to what the ledger charged.

Errors reach every waiter. Streams: a streaming request never leads a
shared call (its caller wants tokens as they arrive, and other callers must
not depend on how fast it reads); it joins a non-streaming call in flight
for the same key and gets that answer replayed as a stream, else it goes
upstream on its own.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable, Collection, Coroutine, Hashable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar, overload

import anyio
import anyio.abc
import anyio.lowlevel

from .._task_host import TaskGroupHost
from ..errors import APITimeoutError
from ..pipeline import Next
from ..streaming import replay_as_stream
from ..transports.base import call_deadline
from ..types import ChatRequest, ChatResponse
from ._keys import RequestKeyer, TenantFn
from .events import EVENT_DEDUP_HIT, record_event

__all__ = ["Dedup", "DedupStatistics", "Deduplicator", "samples"]

T = TypeVar("T")


class _Flight:
    __slots__ = (
        "deadline",
        "done",
        "error",
        "key",
        "ok",
        "scope",
        "taken",
        "tb",
        "value",
        "waiters",
    )

    def __init__(self, key: Hashable, deadline: float) -> None:
        self.key = key
        self.taken = False  # the value itself went to a caller; the others get copies
        self.done = asyncio.Event()
        self.ok = False
        self.value: Any = None
        self.error: BaseException | None = None
        self.tb: TracebackType | None = None
        self.scope: anyio.CancelScope | None = None
        self.deadline = deadline
        self.waiters = 0

    def wait_until(self, deadline: float) -> None:
        """A waiter with ``deadline`` joined: the call may run until then."""
        if deadline > self.deadline:
            self.deadline = deadline
            if self.scope is not None:
                self.scope.deadline = deadline


@dataclass(frozen=True)
class DedupStatistics:
    """Counters of a ``Deduplicator``."""

    calls: int
    """Shared calls started (one per distinct key in flight)."""
    hits: int
    """Callers that joined a call already in flight instead of starting one."""
    inflight: int
    """Calls in flight now."""


class Deduplicator(TaskGroupHost):
    """Runs one call per key at a time; concurrent callers of a key share its outcome.

    ``share(value)`` (optional) gives each caller but one its own copy of
    the value; the first to take it (the leader, unless it left) gets the
    original.
    """

    __slots__ = ("_flights", "_share", "_tasks", "calls", "hits")
    _cancel_on_exit = True

    def __init__(
        self,
        *,
        task_group: anyio.abc.TaskGroup | None = None,
        share: Callable[[Any], Any] | None = None,
    ) -> None:
        TaskGroupHost.__init__(self)
        self._task_group = task_group
        self._flights: dict[Hashable, _Flight] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._share = share
        self.calls = 0
        self.hits = 0

    def has_flight(self, key: Hashable) -> bool:
        """Whether a call for ``key`` is in flight now."""
        return key in self._flights

    @overload
    async def deduplicate(self, key: Hashable, executor: Callable[[], Awaitable[T]]) -> T: ...

    @overload
    async def deduplicate(self, key: Hashable, executor: Callable[[], T]) -> T: ...

    async def deduplicate(self, key: Hashable, executor: Callable[[], Any]) -> Any:
        """Run ``executor()`` once for all concurrent callers of ``key``; return its result.

        ``executor`` may be a coroutine function or a plain one.
        """
        deadline = anyio.current_effective_deadline()
        flight = self._flights.get(key)
        if flight is None:
            flight = self._flights[key] = _Flight(key, deadline)
            self.calls += 1
            self._spawn(self._run(flight, executor))
        else:
            self.hits += 1
            record_event(EVENT_DEDUP_HIT)
        await self._wait(flight, deadline)
        return self._take(flight)

    async def join(self, key: Hashable) -> tuple[bool, Any]:
        """Wait for the call in flight for ``key``: ``(True, value)``, or ``(False, None)``.

        ``(False, None)`` when nothing is in flight; the call's error is raised.
        """
        flight = self._flights.get(key)
        if flight is None:
            return False, None
        self.hits += 1
        record_event(EVENT_DEDUP_HIT)
        await self._wait(flight, anyio.current_effective_deadline())
        return True, self._take(flight)

    def _take(self, flight: _Flight) -> Any:
        """The value for one caller: the first to take it gets it, the others ``share(value)``."""
        share = self._share
        if share is None or not flight.taken:
            flight.taken = True
            return flight.value
        return share(flight.value)

    async def _wait(self, flight: _Flight, deadline: float) -> None:
        flight.wait_until(deadline)
        flight.waiters += 1
        try:
            await flight.done.wait()
        except BaseException:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.done.is_set():
                # nobody wants the answer any more: cancel the call; the next caller starts anew
                if self._flights.get(flight.key) is flight:
                    del self._flights[flight.key]
                if flight.scope is not None:
                    flight.scope.cancel()
            raise
        flight.waiters -= 1
        error = flight.error
        if error is not None:
            raise error.with_traceback(flight.tb)  # one traceback, not one per waiter
        if not flight.ok:
            # the call was cut off without an answer: its deadline (the latest of its
            # waiters') passed, or the client closed. This waiter's own deadline is due
            # too; its cancellation comes at the checkpoint, else it gets a timeout.
            await anyio.lowlevel.checkpoint()
            raise APITimeoutError("the shared call was cut off before it answered")

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # another anyio backend: the bound or owned task group
            tg = self._task_group
            if tg is None:
                coro.close()
                raise RuntimeError(
                    "bind the Deduplicator to a task group or use `async with`"
                ) from None
            tg.start_soon(lambda: coro)
            return
        task = loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, flight: _Flight, executor: Callable[..., Any], *args: Any) -> None:
        # this task's deadline is the flight's (it may move): not the leader's, which it inherited
        call_deadline.set(None)
        with anyio.CancelScope(deadline=flight.deadline) as scope:
            flight.scope = scope
            if flight.waiters == 0:  # the leader left before the call started
                scope.cancel()
            try:
                result = executor(*args)
                if inspect.isawaitable(result):
                    result = await result
            except Exception as exc:
                flight.error, flight.tb = exc, exc.__traceback__
            else:
                flight.value = result
                flight.ok = True
            finally:
                if self._flights.get(flight.key) is flight:
                    del self._flights[flight.key]
                flight.done.set()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            with anyio.CancelScope(shield=True):
                await asyncio.wait(tasks)
        return await TaskGroupHost.__aexit__(self, exc_type, exc, tb)

    def statistics(self) -> DedupStatistics:
        return DedupStatistics(calls=self.calls, hits=self.hits, inflight=len(self._flights))

    def metrics(self) -> dict[str, object]:
        return {"dedup.hits": self.hits, "dedup.in_flight": len(self._flights)}

    def __repr__(self) -> str:
        return f"Deduplicator(inflight={len(self._flights)}, calls={self.calls}, hits={self.hits})"


class Dedup:
    """Middleware: concurrent identical chat requests share one upstream call.

    Pass the client's ``keyer`` so the cache and dedup hash each request
    once; else ``provider`` and ``tenant`` build one (see
    ``aio_llm.middleware.RequestKeyer``). The shared call runs in its own
    task (see the module docstring), so it makes exactly one upstream call
    even when the caller that started it is cancelled. Requests that sample
    are merged only with ``merge_samples=True``.
    """

    __slots__ = ("_deterministic", "_flights", "_key", "merge_samples")

    def __init__(
        self,
        *,
        keyer: RequestKeyer | None = None,
        provider: str | None = None,
        tenant: str | TenantFn | None = None,
        merge_samples: bool = False,
        deterministic_providers: Collection[str] = (),
    ) -> None:
        self._key = keyer if keyer is not None else RequestKeyer(provider=provider, tenant=tenant)
        self._flights = Deduplicator(share=_follower_copy)
        self.merge_samples = merge_samples
        """Merge requests that sample too (every caller then gets the same sample)."""
        self._deterministic = frozenset(deterministic_providers)
        """Providers whose default temperature does not sample (the mock)."""

    def bind(self, task_group: anyio.abc.TaskGroup) -> None:
        """Where shared calls run on backends other than asyncio."""
        self._flights.bind(task_group)

    async def __aenter__(self) -> Dedup:
        await self._flights.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        return await self._flights.__aexit__(exc_type, exc, tb)

    async def __call__(self, request: ChatRequest, next: Next) -> ChatResponse:
        merge = request.dedup
        if merge is None:
            merge = self.merge_samples or not samples(
                request,
                default_samples=(request.provider or self._key.provider) not in self._deterministic,
            )
        if not merge or not request.cache:
            return await next(request)
        key = self._key(request)
        if request.stream:
            return await self._stream(key, request, next)
        return await self._flights.deduplicate(key, functools.partial(next, request))

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


def samples(request: ChatRequest, *, default_samples: bool = True) -> bool:
    """Whether ``request`` asks for a sample: two sends may rightly answer differently.

    ``default_samples`` says whether the provider samples when no
    temperature is given (every real model does; the mock does not).
    """
    n = request.n if request.n is not None else request.extra.get("n")
    if isinstance(n, int) and n > 1:
        return True
    if request.seed is not None:
        return False
    if request.temperature is None:
        return default_samples
    return request.temperature != 0


def _follower_copy(response: ChatResponse) -> ChatResponse:
    """A follower's own copy of the shared answer: served by another call, it cost nothing.

    So the costs of all responses add up to what the budget ledger charged.
    """
    cost = 0.0 if response.cost is not None else None
    return response.model_copy(update={"cached": True, "cost": cost})
