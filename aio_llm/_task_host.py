"""A mixin for objects that run background work in a task group.

The client binds its own task group (``bind``); used alone, ``async with``
opens one owned by the object. Subclasses define the ``_task_group`` and
``_owned`` slots and set ``_cancel_on_exit``.
"""

from __future__ import annotations

from types import TracebackType
from typing import TypeVar

import anyio
import anyio.abc

__all__ = ["TaskGroupHost"]

_H = TypeVar("_H", bound="TaskGroupHost")


class TaskGroupHost:
    """``bind(task_group)`` or ``async with``: where background tasks run."""

    __slots__ = ("_owned", "_task_group")

    _cancel_on_exit: bool = False
    """Cancel the owned group's tasks on exit (True) or wait for them (False)."""

    def __init__(self) -> None:
        self._task_group: anyio.abc.TaskGroup | None = None
        self._owned: anyio.abc.TaskGroup | None = None

    def bind(self, task_group: anyio.abc.TaskGroup) -> None:
        """Run background tasks in ``task_group`` (the client's) from now on."""
        self._task_group = task_group

    async def __aenter__(self: _H) -> _H:
        if self._task_group is None:
            self._owned = anyio.create_task_group()
            self._task_group = await self._owned.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        owned, self._owned = self._owned, None
        if owned is None:
            return None
        self._task_group = None
        if self._cancel_on_exit:
            owned.cancel_scope.cancel()
        return await owned.__aexit__(exc_type, exc, tb)
