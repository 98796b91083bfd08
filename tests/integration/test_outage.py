"""Outage and rate-limit scenarios over loopback, with the default middleware chain.

An outage: the server answers 503 to everything while 200 callers keep
calling; the retry budget and the circuit breaker keep upstream attempts
near one per caller, every call ends with a typed error before its deadline,
and traffic resumes once the breaker's timeout has passed. The phases end on
events and the breaker's time is held by the test, so the outcome does not
depend on how fast the machine runs.

A fan-out: 2,000 requests against a server allowing 600 per minute finish
without a storm of 429s. Server and client share a virtual clock that jumps
ahead whenever every call in flight waits on it, so the four minutes of
traffic take a few seconds and the figures do not depend on the machine's
speed.

``python -m tests.integration.test_outage`` prints the figures quoted in
``docs/resilience.md``.
"""

from __future__ import annotations

import heapq
import itertools
import math
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass

import anyio
import pytest

from aio_llm import AsyncLLMClient, CircuitOpenError, ClientConfig, ServerError
from aio_llm.middleware.ratelimit._state import MIN_MEASURED_REQUESTS, TargetLimits
from aio_llm.testing import FakeLLMServer, Fault

API_KEY = "sk-test"
MODEL = "gpt-4o-mini"


# -- outage -------------------------------------------------------------------------


class HeldClock:
    """The client's clock for the outage: sleeps are real, time moves only on ``advance``.

    The breaker's open time is measured on it, so the breaker stays open until
    the test advances the clock past ``circuit_timeout``, however fast or slow
    the machine runs the callers.
    """

    __slots__ = ("_now",)

    def __init__(self) -> None:
        self._now = 1000.0

    def now(self) -> float:
        return self._now

    def time(self) -> float:
        return 1767225600.0 + self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


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
    """How the calls started during the outage ended, by exception type."""
    held_outcomes: dict[str, int]
    """How the calls started after the recovery, before the breaker's timeout, ended."""
    upstream_while_held: int
    """Requests the server received after the recovery, before the breaker's timeout."""
    upstream_after_timeout: int
    """Requests the server received once the breaker's timeout had passed."""
    slowest_call: float
    """The longest call, in seconds (figures for the docs; not asserted)."""
    time_to_first_success: float
    """Seconds from the breaker's timeout to the first successful call (not asserted)."""
    time_to_all_callers: float
    """Seconds from the breaker's timeout until every caller had a success (not asserted)."""

    @property
    def ratio(self) -> float:
        return self.upstream_attempts / self.first_tries


async def run_outage(
    transport: str,
    *,
    callers: int = 200,
    circuit_timeout: float = 0.5,
    deadline: float = 30.0,
    pause: float = 0.02,
) -> OutageFigures:
    """Callers calling in a loop (``pause`` s apart) through an outage, its end and beyond.

    The phases end on events, not on time: the outage lasts until every caller
    has finished two calls and the breaker has rejected one; the recovery is
    held until every caller has finished a call after it (the breaker still
    open); then the clock moves past the breaker's timeout and the run ends
    when every caller has had a success.
    """
    config = ClientConfig(
        transport=transport,
        retry_base_delay=0.01,
        retry_max_delay=0.05,
        circuit_timeout=circuit_timeout,
    )
    clock = HeldClock()
    outcomes: dict[str, Counter[str]] = {"outage": Counter(), "held": Counter()}
    ended: dict[str, Counter[int]] = {"outage": Counter(), "held": Counter()}
    need = {"outage": 2, "held": 1}
    phase_done = {"outage": anyio.Event(), "held": anyio.Event()}
    all_served = anyio.Event()
    phase = "outage"
    first_tries = 0
    slowest = 0.0
    timeout_passed_at = math.inf
    succeeded: dict[int, float] = {}
    async with FakeLLMServer() as srv:
        srv.set_fault(Fault.status(503))
        client = AsyncLLMClient(
            "openai",
            api_key=API_KEY,
            base_url=srv.openai_url,
            model=MODEL,
            config=config,
            clock=clock,
        )
        async with client:

            async def caller(i: int) -> None:
                nonlocal first_tries, slowest
                messages = [{"role": "user", "content": f"caller {i}"}]
                while i not in succeeded:
                    started_in = phase
                    first_tries += started_in == "outage"
                    start = time.monotonic()
                    try:
                        await client.chat(messages, timeout=deadline)
                    except (CircuitOpenError, ServerError) as exc:
                        if started_in in ended:
                            outcomes[started_in][type(exc).__name__] += 1
                    else:
                        succeeded[i] = time.monotonic()
                        if len(succeeded) == callers:
                            all_served.set()
                    slowest = max(slowest, time.monotonic() - start)
                    if started_in in ended:
                        ended[started_in][i] += 1
                        done = ended[started_in]
                        if len(done) == callers and min(done.values()) >= need[started_in]:
                            if started_in == "held" or outcomes["outage"]["CircuitOpenError"]:
                                phase_done[started_in].set()
                    await anyio.sleep(pause)

            async with anyio.create_task_group() as tg:
                for i in range(callers):
                    tg.start_soon(caller, i)
                await phase_done["outage"].wait()
                upstream = srv.request_count
                retries = client.metrics()["retry.attempts"]
                srv.set_fault(None)
                phase = "held"
                await phase_done["held"].wait()
                held_upstream = srv.request_count - upstream
                phase = "open"
                clock.advance(circuit_timeout)
                timeout_passed_at = time.monotonic()
                await all_served.wait()
    return OutageFigures(
        transport=transport,
        callers=callers,
        first_tries=first_tries,
        upstream_attempts=upstream,
        retries=retries,
        outcomes=dict(outcomes["outage"]),
        held_outcomes=dict(outcomes["held"]),
        upstream_while_held=held_upstream,
        upstream_after_timeout=srv.request_count - upstream - held_upstream,
        slowest_call=slowest,
        time_to_first_success=min(succeeded.values()) - timeout_passed_at,
        time_to_all_callers=max(succeeded.values()) - timeout_passed_at,
    )


# httpx gets 50 callers: with 200 requests over 200 kept-alive connections its pool
# spends tens of ms of CPU per request (3.7 s of CPU for 58 answers, measured).
@pytest.mark.anyio
@pytest.mark.parametrize(("transport", "callers"), [("aiohttp", 200), ("httpx", 50)])
async def test_outage_is_contained_by_budget_and_breaker_then_recovers(
    transport: str, callers: int
) -> None:
    with anyio.fail_after(120):  # a hang guard only: every phase ends on an event
        f = await run_outage(transport, callers=callers)
    # every caller kept calling, and the retry budget and the breaker kept the
    # upstream attempts near one per caller
    assert f.first_tries >= 2 * f.callers
    assert f.upstream_attempts <= 1.2 * f.callers, f
    # only the two typed errors (a deadline would have raised APITimeoutError)
    assert set(f.outcomes) == {"CircuitOpenError", "InternalServerError"}, f
    # after the recovery the open breaker sends nothing until its timeout ...
    assert f.held_outcomes == {"CircuitOpenError": f.held_outcomes["CircuitOpenError"]}, f
    assert f.held_outcomes["CircuitOpenError"] >= f.callers
    assert f.upstream_while_held == 0
    # ... then every caller is served, each by exactly one upstream request
    assert f.upstream_after_timeout == f.callers, f


# -- rate-limited fan-out -------------------------------------------------------------


class VirtualClock:
    """Time that moves only when every call in flight is waiting on it.

    ``sleep`` waits for virtual time to reach its end; ``drive`` (a task) jumps
    time to the earliest waiting sleeper's end whenever each call the client
    has in flight is asleep on this clock, so no request is on the wire while
    time moves. Server and client share it: the
    outcome does not depend on how fast the machine runs the fan-out.
    """

    def __init__(self) -> None:
        self._now = 1000.0
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    def time(self) -> float:
        return 1767225600.0 + self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        entry = (self._now + seconds, next(self._order), anyio.Event())
        heapq.heappush(self._sleepers, entry)
        try:
            await entry[2].wait()
        finally:
            if not entry[2].is_set():  # cancelled: no longer waiting
                self._sleepers.remove(entry)
                heapq.heapify(self._sleepers)

    async def drive(self, in_flight: Callable[[], int]) -> None:
        """Move time on whenever every call in flight sleeps here (cancel to stop)."""
        while True:
            for _ in range(3):  # let what can run run first: workers between two calls
                await anyio.lowlevel.checkpoint()
            if self._sleepers and len(self._sleepers) == in_flight():
                self._now = max(self._now, self._sleepers[0][0])
                while self._sleepers and self._sleepers[0][0] <= self._now:
                    heapq.heappop(self._sleepers)[2].set()
            else:  # a request is on the wire: let it finish
                await anyio.sleep(0.0002)


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
    """Virtual minutes the fan-out took."""
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
    concurrency: int = 64,
) -> FanoutFigures:
    clock = VirtualClock()
    learned = mode == "learned"
    config = ClientConfig(
        transport=transport,
        rpm=None if learned else 0.9 * server_rpm,
        timeout=None,  # a deadline would be in real seconds, the limits in virtual ones
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
        async with client, anyio.create_task_group() as tg:
            tg.start_soon(clock.drive, lambda: client.metrics()["requests.in_flight"])
            t0, m0 = time.monotonic(), clock.now()
            results = await client.gather(reqs, concurrency=concurrency, return_exceptions=True)
            seconds, minutes = time.monotonic() - t0, (clock.now() - m0) / 60.0
            tg.cancel_scope.cancel()
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
    with anyio.fail_after(120):  # a hang guard only: time is virtual
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
