"""Outage and rate-limit scenarios over loopback, with the default middleware chain.

An outage: the server answers 503 to everything while 200 callers keep
calling; the retry budget and the circuit breaker keep upstream attempts
near the callers' first tries, every call ends with a typed error before its
deadline, and traffic resumes within one breaker timeout of the recovery.

A fan-out: 2,000 requests against a server allowing 600 per minute finish
without a storm of 429s. The minute is scaled: server and client share a
clock that runs 60 times faster than real time, so the scenario takes about
four seconds. (Faster clocks magnify the event loop's own hiccups: a 50 ms
pause becomes 6 s of traffic released at once.)

``python -m tests.integration.test_outage`` prints the figures quoted in
``docs/resilience.md``.
"""

from __future__ import annotations

import itertools
import math
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass

import anyio
import pytest

from aio_llm import AsyncLLMClient, CircuitOpenError, ClientConfig, ServerError
from aio_llm.middleware.ratelimit._state import MIN_MEASURED_REQUESTS, TargetLimits
from aio_llm.testing import FakeLLMServer, Fault

API_KEY = "sk-test"
MODEL = "gpt-4o-mini"


# -- outage -------------------------------------------------------------------------


@dataclass
class OutageFigures:
    transport: str
    callers: int
    first_tries: int
    """Calls the callers started during the outage (each call's first try)."""
    upstream_attempts: int
    """Requests the server received during the outage (first tries and retries)."""
    retries: int
    outcomes: dict[str, int]
    """How the calls that ended during the outage ended, by exception type."""
    slowest_call: float
    """The longest call, in seconds, over the whole run (deadline: ``deadline``)."""
    deadline: float
    circuit_timeout: float
    time_to_first_success: float
    """Seconds from the server's recovery to the first successful call."""
    time_to_all_callers: float
    """Seconds from the recovery until every caller has had a success."""

    @property
    def ratio(self) -> float:
        return self.upstream_attempts / self.first_tries


async def run_outage(
    transport: str,
    *,
    callers: int = 200,
    outage: float = 0.4,
    circuit_timeout: float = 0.5,
    deadline: float = 2.0,
    pause: float = 0.02,
) -> OutageFigures:
    """200 callers calling in a loop (``pause`` s apart) through an outage and its end."""
    config = ClientConfig(
        transport=transport,
        retry_base_delay=0.01,
        retry_max_delay=0.05,
        circuit_timeout=circuit_timeout,
    )
    outcomes: Counter[str] = Counter()
    first_tries = 0
    slowest = 0.0
    recovered_at = math.inf
    first_success = math.inf
    succeeded: dict[int, float] = {}
    async with FakeLLMServer() as srv:
        srv.set_fault(Fault.status(503))
        client = AsyncLLMClient(
            "openai", api_key=API_KEY, base_url=srv.openai_url, model=MODEL, config=config
        )
        async with client:

            async def caller(i: int) -> None:
                nonlocal first_tries, slowest, first_success
                messages = [{"role": "user", "content": f"caller {i}"}]
                while i not in succeeded:
                    start = time.monotonic()
                    if start < recovered_at:
                        first_tries += 1
                    try:
                        await client.chat(messages, timeout=deadline)
                    except (CircuitOpenError, ServerError) as exc:
                        end = time.monotonic()
                        if end < recovered_at:
                            outcomes[type(exc).__name__] += 1
                    else:
                        end = time.monotonic()
                        first_success = min(first_success, end)
                        succeeded[i] = end
                    slowest = max(slowest, end - start)
                    await anyio.sleep(pause)

            async with anyio.create_task_group() as tg:
                for i in range(callers):
                    tg.start_soon(caller, i)
                await anyio.sleep(outage)
                upstream = srv.request_count
                retries = client.metrics()["retry.attempts"]
                srv.set_fault(None)
                recovered_at = time.monotonic()
    return OutageFigures(
        transport=transport,
        callers=callers,
        first_tries=first_tries,
        upstream_attempts=upstream,
        retries=retries,
        outcomes=dict(outcomes),
        slowest_call=slowest,
        deadline=deadline,
        circuit_timeout=circuit_timeout,
        time_to_first_success=first_success - recovered_at,
        time_to_all_callers=max(succeeded.values()) - recovered_at,
    )


# httpx gets 50 callers: with 200 requests over 200 kept-alive connections its pool
# spends tens of ms of CPU per request (3.7 s of CPU for 58 answers, measured), so the
# post-recovery wave would time out on the client's CPU, not on anything aio_llm does.
@pytest.mark.anyio
@pytest.mark.parametrize(("transport", "callers"), [("aiohttp", 200), ("httpx", 50)])
async def test_outage_is_contained_by_budget_and_breaker_then_recovers(
    transport: str, callers: int
) -> None:
    with anyio.fail_after(15):
        f = await run_outage(transport, callers=callers)
    # every caller made its first try upstream, then the breaker held the rest back
    assert f.first_tries > f.callers
    assert f.upstream_attempts <= 1.2 * f.callers
    assert f.upstream_attempts <= 1.2 * f.first_tries
    # only the two typed errors, each within its deadline
    assert set(f.outcomes) <= {"CircuitOpenError", "ServerError"}
    assert f.outcomes["ServerError"] >= f.callers - 10  # the first wave saw the 503s
    assert f.outcomes["CircuitOpenError"] > 0
    assert f.slowest_call < f.deadline
    # traffic resumes within one breaker timeout of the recovery
    assert f.time_to_first_success <= f.circuit_timeout + 0.15, f
    assert f.time_to_all_callers <= f.circuit_timeout + 0.5, f


# -- rate-limited fan-out -------------------------------------------------------------


class ScaledClock:
    """Real time running ``factor`` times faster: a minute of limits passes in 60/factor s."""

    __slots__ = ("_t0", "_w0", "factor")

    def __init__(self, factor: float) -> None:
        self.factor = factor
        self._t0 = time.monotonic()
        self._w0 = time.time()

    def now(self) -> float:
        return 1000.0 + (time.monotonic() - self._t0) * self.factor

    def time(self) -> float:
        return self._w0 + (time.monotonic() - self._t0) * self.factor

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds / self.factor)


@dataclass
class FanoutFigures:
    transport: str
    mode: str
    """``configured``: the client's ``rpm`` 10% under the server's limit;
    ``learned``: no ``rpm``, the client learns it from ``x-ratelimit-*`` headers."""
    requests: int
    server_rpm: int
    upstream: int
    rate_limited: int
    """429 answers the server gave."""
    succeeded: int
    minutes: float
    """Scaled minutes the fan-out took."""
    seconds: float
    """Real seconds it took."""

    @property
    def share_429(self) -> float:
        return self.rate_limited / self.requests


async def run_fanout(
    transport: str,
    mode: str,
    *,
    requests: int = 2000,
    server_rpm: int = 600,
    factor: float = 60.0,
    concurrency: int = 64,
) -> FanoutFigures:
    clock = ScaledClock(factor)
    learned = mode == "learned"
    config = ClientConfig(
        transport=transport,
        rpm=None if learned else 0.9 * server_rpm,
        timeout=None,  # the deadline would be in real seconds, the limits in scaled ones
    )
    reqs = [{"messages": [{"role": "user", "content": f"q{i}"}]} for i in range(requests)]
    async with FakeLLMServer(
        rate_limit_rpm=server_rpm, ratelimit_headers=learned, clock=clock, record_limit=0
    ) as srv:
        client = AsyncLLMClient(
            "openai",
            api_key=API_KEY,
            base_url=srv.openai_url,
            model=MODEL,
            config=config,
            clock=clock,
        )
        async with client:
            t0, m0 = time.monotonic(), clock.now()
            results = await client.gather(reqs, concurrency=concurrency, return_exceptions=True)
            seconds, minutes = time.monotonic() - t0, (clock.now() - m0) / 60.0
    return FanoutFigures(
        transport=transport,
        mode=mode,
        requests=requests,
        server_rpm=server_rpm,
        upstream=srv.request_count,
        rate_limited=srv.rate_limited,
        succeeded=sum(not isinstance(r, BaseException) for r in results),
        minutes=minutes,
        seconds=seconds,
    )


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["configured", "learned"])
async def test_fanout_under_a_server_rate_limit_has_no_429_storm(mode: str) -> None:
    with anyio.fail_after(20):
        f = await run_fanout("aiohttp", mode)
    assert f.succeeded == f.requests
    assert f.rate_limited <= 0.02 * f.requests, f
    assert f.upstream == f.requests + f.rate_limited
    # and the limiter did not throttle far below the server's limit: 2,000 at 600/min
    # is 2.3 minutes after the first minute's burst; at most about a minute more
    assert f.minutes <= 4.5, f


# -- the limiter behaviour the fan-out relies on (plain state, no clock) ---------------


def test_requests_waiting_for_a_slot_move_behind_a_429_hold_in_order() -> None:
    lim = TargetLimits(60, None, burst=1 / 60)  # one a second, no burst
    slots = [lim.reserve(0.0, 0.0) for _ in range(3)]
    assert slots == [0.0, 1.0, 2.0]
    lim.on_rate_limited(0.5, 10.0)  # the first one met a 429: hold until 10.5
    second = 1.0 + lim.rebook(1.0, 0.0)  # its slot came: behind the hold instead
    third = 2.0 + lim.rebook(2.0, 0.0)
    interval = 60.0 / lim.effective()[0]  # type: ignore[operator]
    assert second >= 10.5
    assert third >= second + interval - 1e-9  # one after the other, not a burst
    later = [1.0 + lim.reserve(1.0, 0.0) for _ in range(3)]  # new arrivals queue behind
    assert later[0] >= third + interval - 1e-9
    assert all(b - a >= interval - 1e-9 for a, b in itertools.pairwise(later))
    assert lim.rebook(100.0, 0.0) == 0.0  # no hold any more: a booked request just goes


def test_one_429_after_a_handful_of_requests_holds_but_does_not_throttle() -> None:
    lim = TargetLimits(None, None)
    for i in range(MIN_MEASURED_REQUESTS - 1):
        lim.count(float(i))
    lim.on_rate_limited(10.0, 0.05)
    assert lim.effective() == (None, None) and lim.factor == 1.0
    assert lim.wait_time(10.0, 0.0) == pytest.approx(0.05)  # the Retry-After hold
    assert lim.wait_time(10.1, 0.0) == 0.0


if __name__ == "__main__":  # pragma: no cover - prints the figures for the docs

    async def _main() -> None:
        for t, callers in (("aiohttp", 200), ("httpx", 50)):
            out = await run_outage(t, callers=callers)
            sys.stdout.write(f"{asdict(out)} ratio={out.ratio:.3f}\n")
        for mode in ("configured", "learned"):
            fan = await run_fanout("aiohttp", mode)
            sys.stdout.write(f"{asdict(fan)} share_429={fan.share_429:.4f}\n")

    anyio.run(_main)
