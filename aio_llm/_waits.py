"""Waits a server asks for (``Retry-After``, ``retry-after-ms``, rate-limit resets), sanitised.

Every place that reads a server-given wait goes through ``server_wait``:
the error's ``retry_after`` (``errors.parse_retry_after``), Retry's
backoff, RateLimit's hold after a 429 and its announced windows. A server
can send anything (``inf``, ``nan``, ``-5``, ``1e400``, a date in the next
century); what comes out is ``None`` (no usable wait) or finite, non-negative
seconds, at most ``MAX_SERVER_WAIT``. Each user then applies its own cap:
Retry refuses a wait over ``retry_after_cap``, RateLimit holds a model for
at most ``RateLimitConfig.max_hold``.
"""

from __future__ import annotations

import math

__all__ = ["MAX_SERVER_WAIT", "capped_wait", "server_wait"]

MAX_SERVER_WAIT = 86400.0
"""A day: a longer wait (``inf`` included) is read as a day, which every cap then cuts."""


def server_wait(value: object) -> float | None:
    """``value`` as seconds to wait: finite, ``>= 0``, ``<= MAX_SERVER_WAIT``; else ``None``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    seconds = float(value)
    if math.isnan(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_SERVER_WAIT)


def capped_wait(value: object, cap: float) -> float | None:
    """``server_wait(value)``, cut to ``cap`` seconds."""
    seconds = server_wait(value)
    return None if seconds is None else min(seconds, cap)
