"""Reading providers' rate-limit headers: which names, and what their values mean.

OpenAI sends ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` with
resets as durations (``6m0s``, ``20ms``); Anthropic sends
``anthropic-ratelimit-{requests,tokens,input-tokens}-{limit,remaining,reset}``
with resets as RFC 3339 times; OpenRouter and others send
``x-ratelimit-{limit,remaining,reset}`` with an epoch reset. Limits are per
minute.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime

__all__ = ["REQUEST_HEADERS", "TOKEN_HEADERS", "header_number", "parse_reset"]

_NUM = r"(\d+(?:\.\d+)?)"
_DURATION = re.compile(rf"(?:{_NUM}h)?(?:{_NUM}m(?!s))?(?:{_NUM}s)?(?:{_NUM}ms)?")


def parse_reset(value: str, wall_now: float) -> float | None:
    """Seconds until a reset given as ``6m0s``/``20ms``, seconds, epoch (s or ms) or RFC 3339."""
    value = value.strip()
    match = _DURATION.fullmatch(value)
    if match is not None and match.lastindex is not None:
        h, m, sec, ms = match.groups()
        return (
            float(h or 0) * 3600.0
            + float(m or 0) * 60.0
            + float(sec or 0)
            + float(ms or 0) / 1000.0
        )
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        if number > 1e12:  # epoch milliseconds
            return max(0.0, number / 1000.0 - wall_now)
        if number > 1e9:  # epoch seconds
            return max(0.0, number - wall_now)
        return max(0.0, number)
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - wall_now)


def header_number(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


# (limit, remaining, reset) names per provider family; "" where none is sent
REQUEST_HEADERS = (
    ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"),
    (
        "anthropic-ratelimit-requests-limit",
        "anthropic-ratelimit-requests-remaining",
        "anthropic-ratelimit-requests-reset",
    ),
    ("", "x-ratelimit-remaining", "x-ratelimit-reset"),
)
TOKEN_HEADERS = (
    ("x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"),
    (
        "anthropic-ratelimit-tokens-limit",
        "anthropic-ratelimit-tokens-remaining",
        "anthropic-ratelimit-tokens-reset",
    ),
    (
        "anthropic-ratelimit-input-tokens-limit",
        "anthropic-ratelimit-input-tokens-remaining",
        "anthropic-ratelimit-input-tokens-reset",
    ),
)
