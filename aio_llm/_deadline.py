"""Per-call deadlines: one timer for all of a client's calls instead of a cancel scope each.

A deadline covers everything a call does (every retry, backoff and wait)
and, when it passes, cancels the calling task exactly as ``asyncio.timeout``
does: ``task.cancel()``, then ``task.uncancel()`` on the way out, and the
``CancelledError`` becomes ``APITimeoutError`` only when no other
cancellation is pending. An anyio ``CancelScope`` per call costs ~5 µs of
CPU (its backend lookup, task-state bookkeeping and a timer handle of its
own); here a call costs one small object and a ``deque.append``:

* deadlines of one length (``timeout`` seconds) arrive in time order, so
  each length has a FIFO queue; finished calls leave from the front, and a
  queue held up by one slow call is compacted once it is mostly finished
  calls, so memory stays proportional to the calls in flight;
* one ``loop.call_at`` timer is armed for the earliest head of the queues.

The deadline respects anyio's shielded scopes entered inside the call (the
budget's and the stream's clean-up): a deadline that passes while the task
is shielded is delivered once the shield has lifted (checked every 5 ms).

``for_running_loop()`` returns this on asyncio (3.11+, where
tasks count cancellations) and an anyio ``CancelScope`` per call elsewhere.
"""

from __future__ import annotations

import math
from collections import deque
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

import anyio

if TYPE_CHECKING:  # asyncio itself is imported once a client opens (~10 ms of import time)
    import asyncio

__all__ = ["Deadlines", "LoopDeadlines", "ScopeDeadlines", "call_deadline", "current_deadline"]

_LIVE, _DONE, _FIRED = 0, 1, 2
_RECHECK = 0.005
"""Seconds between checks while a passed deadline waits for a shield to lift."""
_COMPACT_MIN = 1024
_MAX_EMPTY_QUEUES = 8

_task_states: Any = None
"""anyio's per-task scope stack (a private detail, read to honour its shields; optional)."""
_current_task: Any = None
"""``asyncio.current_task``, once loaded."""


def _load_asyncio() -> None:
    # imported when the first loop deadlines are made: the backend module costs
    # ~10 ms of import time, and ``import aio_llm`` should not pay it
    global _task_states, _current_task
    if _current_task is None:
        import asyncio

        _current_task = asyncio.current_task
    if _task_states is None:
        try:
            from anyio._backends._asyncio import _task_states as states
        except ImportError:  # pragma: no cover - another anyio layout
            return
        _task_states = states


_current: ContextVar[_Deadline | None] = ContextVar("aio_llm_deadline", default=None)
"""The innermost deadline started in this context; each links to the one it nested in.

Readers count only unfinished deadlines of the task asking: a task spawned
inside a call inherits the context but not the call's deadline (a shared
dedup call must not obey its first caller's deadline), and a deadline whose
``finish`` ran elsewhere or out of order is skipped rather than obeyed.
"""


def _own_deadline() -> float:
    d = _current.get()
    if d is None:
        return math.inf
    task = _current_task()  # loaded by the LoopDeadlines that made ``d``
    when = math.inf
    while d is not None:
        if d.task is task and d.state != _DONE and d.when < when:
            when = d.when
        d = d.parent
    return when


def current_deadline() -> float:
    """When the current call's deadline passes, on ``anyio.current_time()``'s clock.

    The tightest of the call's own deadline (and those of calls it is nested
    in) and any enclosing anyio cancel scope's; ``math.inf`` when there is
    none. Middleware read it to refuse a wait that would outlast the call.
    """
    return min(_own_deadline(), anyio.current_effective_deadline())


def call_deadline() -> float:
    """The current call's own deadline (loop time; ``math.inf`` if none), without anyio's.

    The transport uses it to skip per-read timers that could never fire
    before the deadline.
    """
    return _own_deadline()


def _scope_of(task: asyncio.Task[Any]) -> Any:
    states = _task_states
    if states is None:  # pragma: no cover
        return None
    state = states.get(task)
    return state.cancel_scope if state is not None else None


class Deadlines(Protocol):
    def start(self, timeout: float) -> Any:
        """Start a deadline ``timeout`` seconds from now for the current task."""

    def finish(self, deadline: Any, exc: BaseException | None) -> bool:
        """End ``deadline``; True when ``exc`` is its expiry (raise ``APITimeoutError``)."""

    def close(self) -> None: ...


def for_running_loop() -> Deadlines:
    """The cheapest correct deadlines for the running event loop."""
    import asyncio

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # another anyio backend
        return ScopeDeadlines()
    if not hasattr(asyncio.Task, "uncancel"):  # Python 3.10: no cancellation counts
        return ScopeDeadlines()
    return LoopDeadlines(loop)


class _Deadline:
    __slots__ = ("cancelling", "outer", "parent", "queue", "state", "task", "when")

    state: int
    parent: _Deadline | None

    def __init__(self, when: float, task: Any, queue: _Queue) -> None:
        self.when = when
        self.task = task
        self.queue = queue
        self.cancelling = task.cancelling()
        self.outer = _scope_of(task)
        self.state = _LIVE
        self.parent = _unfinished(_current.get())
        _current.set(self)


def _unfinished(d: _Deadline | None) -> _Deadline | None:
    """``d`` or its nearest unfinished ancestor (deadlines may finish out of order)."""
    while d is not None and d.state == _DONE:
        d = d.parent
    return d


class _Queue(deque[_Deadline]):
    __slots__ = ("limit",)

    def __init__(self) -> None:
        super().__init__()
        self.limit = _COMPACT_MIN


class LoopDeadlines:
    """Deadlines on one asyncio loop behind a single timer (see the module docstring)."""

    __slots__ = ("_armed_at", "_cancelled_error", "_handle", "_loop", "_queues")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        import asyncio

        _load_asyncio()
        self._cancelled_error = asyncio.CancelledError
        self._loop = loop
        self._queues: dict[float, _Queue] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._armed_at = math.inf

    def start(self, timeout: float) -> _Deadline:
        loop = self._loop
        task = _current_task(loop)
        if task is None:
            raise RuntimeError("a deadline needs a running task")
        queue = self._queues.get(timeout)
        if queue is None:
            queue = self._queues[timeout] = _Queue()
        deadline = _Deadline(loop.time() + timeout, task, queue)
        queue.append(deadline)
        if deadline.when < self._armed_at:
            self._arm(deadline.when)
        return deadline

    def finish(self, deadline: _Deadline, exc: BaseException | None) -> bool:
        fired = deadline.state == _FIRED
        deadline.state = _DONE
        if _current.get() is deadline:  # else finished out of order or elsewhere: readers skip it
            _current.set(_unfinished(deadline.parent))
        queue = deadline.queue
        if queue and queue[0] is deadline:
            while queue and queue[0].state == _DONE:
                queue.popleft()
            if not queue and len(self._queues) > _MAX_EMPTY_QUEUES:
                self._drop_empty()
        elif len(queue) > queue.limit:
            live = [d for d in queue if d.state != _DONE]
            queue.clear()
            queue.extend(live)
            queue.limit = max(_COMPACT_MIN, 2 * len(live))
        if not fired:
            return False
        # as asyncio.timeout: ours unless another cancellation is pending too
        task: Any = deadline.task  # Task.uncancel: Python 3.11+ (see for_running_loop)
        return task.uncancel() <= deadline.cancelling and isinstance(exc, self._cancelled_error)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._armed_at = math.inf

    def _drop_empty(self) -> None:
        for key in [k for k, q in self._queues.items() if not q]:
            del self._queues[key]

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._loop.call_at(when, self._fire)
        self._armed_at = when

    def _fire(self) -> None:
        self._handle = None
        self._armed_at = math.inf
        now = self._loop.time()
        earliest = math.inf
        for key, queue in list(self._queues.items()):
            while queue:
                head = queue[0]
                if head.state == _DONE:
                    queue.popleft()
                elif head.when <= now:
                    queue.popleft()
                    self._expire(head)
                else:
                    earliest = min(earliest, head.when)
                    break
            if not queue:  # expired calls never empty their queue in finish()
                del self._queues[key]
        if earliest < math.inf:
            self._arm(earliest)

    def _expire(self, deadline: _Deadline) -> None:
        if deadline.state != _LIVE:
            return
        if _shielded(deadline):
            self._loop.call_later(_RECHECK, self._expire, deadline)
            return
        deadline.state = _FIRED
        deadline.task.cancel()

    def __repr__(self) -> str:
        pending = sum(len(q) for q in self._queues.values())
        return f"<LoopDeadlines queued={pending} next={self._armed_at}>"


def _shielded(deadline: _Deadline) -> bool:
    """True when the task sits in a shielded anyio scope entered inside the call."""
    scope = _scope_of(deadline.task)
    while scope is not None and scope is not deadline.outer:
        if scope.shield:
            return True
        scope = getattr(scope, "_parent_scope", None)
    return False


class ScopeDeadlines:
    """An anyio ``CancelScope`` per call: any backend, any Python."""

    __slots__ = ()

    def start(self, timeout: float) -> anyio.CancelScope:
        scope = anyio.CancelScope(deadline=anyio.current_time() + timeout)
        scope.__enter__()
        return scope

    def finish(self, deadline: anyio.CancelScope, exc: BaseException | None) -> bool:
        if exc is None:
            deadline.__exit__(None, None, None)
            return False
        return bool(deadline.__exit__(type(exc), exc, exc.__traceback__))

    def close(self) -> None:
        return None
