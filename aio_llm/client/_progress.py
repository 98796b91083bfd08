"""Progress reporting for ``gather`` and batch jobs: a bar on stderr, or the caller's callable.

The interface is one callable, ``report(done, total, final=False, spent=None)``;
the bar shows the count, the rate, the time left at that rate and, when
given, the money spent so far.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["Progress", "ProgressBar", "progress_reporter"]

Progress = bool | Callable[[int, int], object]


class ProgressBar:
    """A dependency-free progress bar: ``[####----] 120/2000 (6%) 45.2/s ETA 0:41 $0.0123``.

    Redrawn at most every ``interval`` seconds (and on every percent step
    and at the end), so a fast job does not spend its time printing.
    """

    def __init__(
        self,
        total: int,
        *,
        stream: TextIO | None = None,
        now: Callable[[], float] = time.monotonic,
        interval: float = 0.2,
    ) -> None:
        self.total = total
        self._stream = stream
        self._now = now
        self._start = now()
        self._first_done: int | None = None
        self._interval = interval
        self._last_pct = -1
        self._last_draw = -float("inf")

    def __call__(
        self, done: int, total: int, final: bool = False, spent: float | None = None
    ) -> None:
        now = self._now()
        if self._first_done is None:
            self._first_done = done  # work done before this run (a resumed job) has no rate
        pct = int(100 * done / total) if total else 100
        if not final and pct == self._last_pct and now - self._last_draw < self._interval:
            return
        self._last_pct, self._last_draw = pct, now
        stream = self._stream or sys.stderr
        stream.write("\r" + self.line(done, total, now, spent))
        if final:
            stream.write("\n")
        stream.flush()

    def line(self, done: int, total: int, now: float, spent: float | None = None) -> str:
        """The text of the bar at ``now``."""
        width = 24
        filled = int(width * done / total) if total else width
        pct = int(100 * done / total) if total else 100
        text = f"[{'#' * filled}{'-' * (width - filled)}] {done}/{total} ({pct}%)"
        elapsed = now - self._start
        progressed = done - (self._first_done or 0)
        if elapsed > 0 and progressed > 0:
            rate = progressed / elapsed
            left = (total - done) / rate
            text += f" {rate:.1f}/s ETA {_clock(left)}"
        if spent is not None:
            text += f" ${spent:.4f}"
        return text


def _clock(seconds: float) -> str:
    s = int(seconds + 0.5)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def progress_reporter(progress: Progress, total: int) -> Callable[..., object] | None:
    """``report(done, total, final=False, spent=None)`` for ``progress``, or ``None`` (off)."""
    if progress is False or progress is None:
        return None
    if progress is True:
        return ProgressBar(total)
    if callable(progress):
        user = progress

        def call(done: int, total: int, final: bool = False, spent: float | None = None) -> None:
            if not final:
                user(done, total)

        return call
    raise TypeError("progress must be a bool or a callable (done, total)")
