"""The sliding 60-second window behind ``rate_limit_rpm`` and the ``x-ratelimit-*`` headers."""

from __future__ import annotations

from collections import deque

__all__ = ["RequestWindow"]

TOKEN_LIMIT = 1_000_000
"""The (nominal) tokens-per-minute limit the headers advertise."""


class RequestWindow:
    """Requests admitted in the last 60 s; ``admit`` refuses beyond ``rpm``.

    Plain sync logic taking ``now`` (monotonic seconds), so tests can drive
    it with a fake clock. Tokens are estimated from request size.
    """

    __slots__ = ("_tokens", "_window", "rpm")

    def __init__(self, rpm: int | None) -> None:
        self.rpm = rpm
        self._window: deque[tuple[float, int]] = deque()
        self._tokens = 0

    def __len__(self) -> int:
        return len(self._window)

    def _slide(self, now: float) -> None:
        window = self._window
        horizon = now - 60.0
        while window and window[0][0] <= horizon:
            self._tokens -= window.popleft()[1]

    def admit(self, now: float, tokens: int) -> float | None:
        """Admit a request (``None``), or refuse it: the seconds until a slot frees."""
        self._slide(now)
        if self.rpm is not None and len(self._window) >= self.rpm:
            return max(0.001, self._window[0][0] + 60.0 - now)
        self._window.append((now, tokens))
        self._tokens += tokens
        return None

    def headers(self, now: float) -> list[tuple[str, str]]:
        """``x-ratelimit-*`` headers describing the window at ``now``."""
        self._slide(now)
        window = self._window
        limit = self.rpm or 10_000
        reset = f"{round(window[0][0] + 60.0 - now, 3):g}s" if window else "0s"
        return [
            ("x-ratelimit-limit-requests", str(limit)),
            ("x-ratelimit-remaining-requests", str(max(0, limit - len(window)))),
            ("x-ratelimit-reset-requests", reset),
            ("x-ratelimit-limit-tokens", str(TOKEN_LIMIT)),
            ("x-ratelimit-remaining-tokens", str(max(0, TOKEN_LIMIT - self._tokens))),
            ("x-ratelimit-reset-tokens", reset),
        ]

    def clear(self) -> None:
        self._window.clear()
        self._tokens = 0
