"""Absurd server-given waits: no value takes a model offline or puts a call to sleep for ever.

One ``429`` with ``Retry-After: 1000000000`` (or ``inf``, ``nan``, a
negative number, ``retry-after-ms``, an HTTP date a day away, an announced
rate-limit window of years) must not hold the model beyond
``ClientConfig.retry_after_cap``: Retry refuses a wait over the cap, and
RateLimit holds the model for at most the cap, so the next call, even
with ``timeout=None``, goes out within the cap.
"""

from __future__ import annotations

import email.utils
import math
import time

import anyio
import pytest

from aio_llm import RateLimitError
from aio_llm.errors import parse_retry_after

from .conftest import FORMAT_KINDS, client_for
from .rawserver import Conn, RawServer, Seen, json_answer

CAP = 0.2
"""``retry_after_cap`` of these clients: the longest any server-given wait may hold a model."""

ABSURD = {
    "huge": {"Retry-After": "1000000000"},
    "inf": {"Retry-After": "inf"},
    "infinity": {"Retry-After": "Infinity"},
    "overflow": {"Retry-After": "1e400"},
    "nan": {"Retry-After": "nan"},
    "negative": {"Retry-After": "-5"},
    "ms-huge": {"retry-after-ms": "1e15"},
    "ms-inf": {"retry-after-ms": "inf"},
    "ms-nan": {"retry-after-ms": "NaN", "Retry-After": "nan"},
    "date-a-day-away": {"Retry-After": "DATE+86400"},
    "date-in-the-past": {"Retry-After": "DATE-86400"},
    "garbage": {"Retry-After": "soon\x7f"},
    "window-of-years": {
        "x-ratelimit-limit-requests": "100",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "99999999s",
    },
    "tiny-limit": {
        "x-ratelimit-limit-requests": "0.000001",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "1e12",
    },
}

ANNOUNCED = {"window-of-years", "tiny-limit"}


def _headers(case: str) -> dict[str, str]:
    out = {}
    for name, value in ABSURD[case].items():
        if value.startswith("DATE"):
            value = email.utils.formatdate(time.time() + float(value[4:]), usegmt=True)
        out[name] = value
    return out


@pytest.mark.parametrize("case", sorted(ABSURD))
def test_parse_retry_after_is_finite_and_not_negative(case: str) -> None:
    value = parse_retry_after(_headers(case))
    assert value is None or (math.isfinite(value) and value >= 0)


@pytest.mark.anyio
@pytest.mark.parametrize("case", sorted(ABSURD))
async def test_one_absurd_wait_does_not_take_the_model_offline(transport: str, case: str) -> None:
    await _absurd_then_normal("openai", transport, case)


@pytest.mark.parametrize("kind", FORMAT_KINDS)
@pytest.mark.anyio
@pytest.mark.parametrize("case", ["huge", "ms-inf", "date-a-day-away"])
async def test_every_provider_sanitises_server_waits(kind: str, case: str) -> None:
    await _absurd_then_normal(kind, "aiohttp", case)


async def _absurd_then_normal(kind: str, transport: str, case: str) -> None:
    first = {"done": False}

    async def handler(req: Seen, conn: Conn) -> None:
        if not first["done"]:
            first["done"] = True
            if case in ANNOUNCED:  # a window announced on a good answer
                await conn.full(200, json_answer(req, "fine"), _headers(case))
                return
            body = b'{"error": {"message": "slow down", "type": "rate_limit_error"}}'
            await conn.full(429, body, _headers(case))
            return
        await conn.full(200, json_answer(req, "fine"))

    async with RawServer(handler) as srv:
        async with client_for(kind, srv, transport, retry_after_cap=CAP, max_retries=2) as client:
            messages = [{"role": "user", "content": "hi"}]
            began = anyio.current_time()
            try:
                response = await client.chat(messages, max_tokens=8, timeout=5.0)
            except RateLimitError as exc:  # a wait over the cap is refused, not slept
                assert exc.retry_after is None or math.isfinite(exc.retry_after)
            else:  # a sane (or dropped) wait was retried within the cap
                assert response.content == "fine"
            # the next call, even without a deadline, goes out within the cap
            with anyio.fail_after(CAP + 5.0):
                response = await client.chat(messages, max_tokens=8, timeout=None)
            assert response.content == "fine"
            assert anyio.current_time() - began < CAP * 2 + 5.0
            response = await client.chat(messages, max_tokens=8, timeout=CAP + 2.0)
            assert response.content == "fine"
