"""A clock for tests: time moves only when told to, and sleeping moves it."""

from __future__ import annotations

import anyio

__all__ = ["FakeClock"]


class FakeClock:
    """Deterministic ``Clock``: ``sleep`` advances time at once and records the delay.

    ``now()`` (monotonic) and ``time()`` (wall) move together, starting at
    ``start`` and ``wall_start`` (2026-01-01T00:00:00Z by default).
    """

    __slots__ = ("_now", "_wall_offset", "sleeps")

    def __init__(self, start: float = 1000.0, *, wall_start: float = 1767225600.0) -> None:
        self._now = start
        self._wall_offset = wall_start - start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self._now

    def time(self) -> float:
        return self._now + self._wall_offset

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (must not be negative)."""
        if seconds < 0:
            raise ValueError("time cannot go backwards")
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if seconds > 0:
            self._now += seconds
        await anyio.lowlevel.checkpoint()

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now:.3f}, sleeps={len(self.sleeps)})"
