"""Progress reporting for ``gather`` and batch jobs: a bar on stderr, or the caller's callable.

The interface is one callable, ``report(done, total, final=False, spent=None)``.
On a terminal the bar is redrawn in place, like tqdm's::

     45%|██████████▊             | 450/1000 [00:10<00:12, 45.2 req/s, $0.0123]

Anywhere else (a log file, a pipe, CI) there are no carriage-return frames:
one plain line every ``log_interval`` seconds and a last one at the end::

    progress: 450/1000 (45%) 45.2 req/s, elapsed 0:10, ETA 0:12, $0.0123
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["Progress", "ProgressBar", "progress_reporter"]

Progress = bool | Callable[[int, int], object]

_BLOCKS = " ▏▎▍▌▋▊▉█"
_log = logging.getLogger("aio_llm.progress")


class ProgressBar:
    """A dependency-free progress display: a live bar on a terminal, periodic lines elsewhere.

    ``stream`` defaults to ``sys.stderr`` (read at each call, so a test or a
    program that swaps it is followed). ``tty`` forces one mode; by default
    it is the stream's ``isatty()``. On a terminal the bar is redrawn at most
    every ``interval`` seconds; elsewhere a line is written at most every
    ``log_interval`` seconds (``AIO_LLM_PROGRESS_INTERVAL`` overrides the
    default of 10), and always at the end. ``width`` is the terminal's
    (by default, its current size). The rate counts the work done
    since ``initial`` (by default, since the first report: a resumed job's
    earlier work has no rate).
    """

    def __init__(
        self,
        total: int,
        *,
        stream: TextIO | None = None,
        now: Callable[[], float] = time.monotonic,
        interval: float = 0.1,
        log_interval: float | None = None,
        tty: bool | None = None,
        unit: str = "req",
        initial: int | None = None,
        width: int | None = None,
    ) -> None:
        self.total = total
        self._stream = stream
        self._now = now
        self._start = now()
        self._first_done = initial
        self._interval = interval
        self._log_interval = progress_interval() if log_interval is None else log_interval
        self._tty = tty
        self._unit = unit
        self._width = width
        self._last_draw: float | None = None
        self._due = self._start + self._log_interval
        self._closed = False

    def __call__(
        self, done: int, total: int, final: bool = False, spent: float | None = None
    ) -> None:
        if self._closed:
            return
        now = self._now()
        if self._first_done is None:
            self._first_done = done  # work done before this run (a resumed job) has no rate
        stream = self._stream or sys.stderr
        tty = self._is_tty(stream)
        if not final:
            if tty:
                if self._last_draw is not None and now - self._last_draw < self._interval:
                    return
            elif now < self._due:
                return
            else:  # on a fixed schedule from the start: a line every log_interval
                while self._due <= now:
                    self._due += self._log_interval
        self._last_draw = now
        if tty:
            width = self._width or shutil.get_terminal_size((80, 24)).columns
            text = self.bar(done, total, now, spent, width=width)
            if not _can_encode(stream, text):
                text = text.translate(_ASCII)
            stream.write("\r" + text + "\x1b[K")
            if final:
                stream.write("\n")
        else:
            stream.write(self.line(done, total, now, spent) + "\n")
        stream.flush()
        if final:
            self._closed = True

    def _is_tty(self, stream: TextIO) -> bool:
        if self._tty is not None:
            return self._tty
        try:
            return stream.isatty()
        except (AttributeError, ValueError):  # no isatty, or a closed stream
            return False

    def _rate(self, done: int, now: float) -> float | None:
        elapsed = now - self._start
        progressed = done - (self._first_done or 0)
        return progressed / elapsed if elapsed > 0 and progressed > 0 else None

    def line(self, done: int, total: int, now: float, spent: float | None = None) -> str:
        """The plain text of a progress line at ``now`` (no control characters)."""
        pct = int(100 * done / total) if total else 100
        parts = [f"progress: {done}/{total} ({pct}%)"]
        rate = self._rate(done, now)
        if rate is not None:
            parts.append(f" {rate:.1f} {self._unit}/s,")
        parts.append(f" elapsed {_clock(now - self._start)}")
        if rate is not None and done < total:
            parts.append(f", ETA {_clock((total - done) / rate)}")
        if spent is not None:
            parts.append(f", ${spent:.4f}")
        return "".join(parts)

    def bar(
        self,
        done: int,
        total: int,
        now: float,
        spent: float | None = None,
        *,
        width: int = 80,
    ) -> str:
        """The text of the terminal bar at ``now``, fitted to ``width`` columns."""
        frac = min(1.0, done / total) if total else 1.0
        rate = self._rate(done, now)
        left = "?" if rate is None else _clock((total - done) / rate)
        info = f"{_clock(now - self._start)}<{left}"
        info += f", {rate:.1f} {self._unit}/s" if rate is not None else f", ? {self._unit}/s"
        if spent is not None:
            info += f", ${spent:.4f}"
        head = f"{int(100 * frac):3d}%|"
        tail = f"| {done}/{total} [{info}]"
        room = max(0, min(40, width - 1 - len(head) - len(tail)))
        return head + _blocks(frac, room) + tail


def _blocks(frac: float, width: int) -> str:
    """A bar of ``width`` cells, ``frac`` full, in eighths of a cell."""
    eighths = int(frac * width * 8)
    full, part = divmod(eighths, 8)
    text = "█" * full
    if full < width:
        text += (_BLOCKS[part] if part else " ") + " " * (width - full - 1)
    return text


_ASCII = str.maketrans({c: "#" if c == "█" else " " if c == " " else "-" for c in _BLOCKS})


def _can_encode(stream: TextIO, text: str) -> bool:
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _clock(seconds: float) -> str:
    s = int(seconds + 0.5)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def progress_interval() -> float:
    """Seconds between progress lines when not on a terminal (``AIO_LLM_PROGRESS_INTERVAL``)."""
    raw = os.environ.get("AIO_LLM_PROGRESS_INTERVAL", "")
    if not raw:
        return 10.0
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if value > 0:
        return value
    _log.warning("AIO_LLM_PROGRESS_INTERVAL=%r is not a positive number of seconds: using 10", raw)
    return 10.0


def progress_reporter(progress: Progress, total: int) -> Callable[..., object] | None:
    """``report(done, total, final=False, spent=None)`` for ``progress``, or ``None`` (off)."""
    if progress is False or progress is None:
        return None
    if progress is True:
        return ProgressBar(total, initial=0)
    if callable(progress):
        user = progress

        def call(done: int, total: int, final: bool = False, spent: float | None = None) -> None:
            if not final:
                user(done, total)

        return call
    raise TypeError("progress must be a bool or a callable (done, total)")
