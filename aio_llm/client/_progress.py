"""Progress reporting for ``gather``: a bar on stderr, or the caller's callable."""

from __future__ import annotations

import sys
from collections.abc import Callable

__all__ = ["Progress", "progress_reporter"]

Progress = bool | Callable[[int, int], object]


class _ProgressBar:
    """A dependency-free progress bar on stderr."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._last = -1

    def __call__(self, done: int, total: int, final: bool = False) -> None:
        width = 30
        pct = int(100 * done / total) if total else 100
        if pct == self._last and not final:
            return
        self._last = pct
        filled = int(width * done / total) if total else width
        bar = "#" * filled + "-" * (width - filled)
        sys.stderr.write(f"\r[{bar}] {done}/{total} ({pct}%)")
        if final:
            sys.stderr.write("\n")
        sys.stderr.flush()


def progress_reporter(progress: Progress, total: int) -> Callable[..., object] | None:
    if progress is False or progress is None:
        return None
    if progress is True:
        return _ProgressBar(total)
    if callable(progress):
        user = progress

        def call(done: int, total: int, final: bool = False) -> None:
            if not final:
                user(done, total)

        return call
    raise TypeError("progress must be a bool or a callable (done, total)")
