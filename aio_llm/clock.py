"""Time as a dependency: every policy that waits or measures takes a ``Clock``.

Tests pass ``aio_llm.testing.FakeClock`` so breaker, retry, limiter and budget
logic runs without real sleeps.
"""

from __future__ import annotations

import time
from typing import Protocol

import anyio

__all__ = ["Clock", "SystemClock", "SYSTEM_CLOCK"]


class Clock(Protocol):
    """Monotonic time, wall time and sleeping."""

    def now(self) -> float:
        """Monotonic seconds, for intervals and deadlines."""
        ...

    def time(self) -> float:
        """Wall-clock seconds since the epoch (UTC), for calendar periods."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...


class SystemClock:
    """The real clock: ``time.monotonic``, ``time.time`` and ``anyio.sleep``."""

    __slots__ = ()

    # the built-ins themselves, not methods wrapping them: no Python frame per call
    # (bound at import, so patching time.monotonic later has no effect: use FakeClock)
    now = staticmethod(time.monotonic)
    time = staticmethod(time.time)

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()
