"""The rate limiter's state: GCRA schedules, learned limits and AIMD, all driven by ``now``.

Everything here is plain and synchronous so the middleware in ``ratelimit``
stays a thin shell and the logic is tested with a fake clock.

A ``GCRABucket`` is the token bucket written as a schedule (the generic cell
rate algorithm): one float, the theoretical arrival time, instead of a
level that must be refilled. ``reserve`` books a slot and says how long to
wait for it, so concurrent waiters are served in arrival order without a
queue. In any window of ``w`` seconds it admits at most
``w / interval + max(burst, largest cost)`` units.

``TargetLimits`` holds the limits of one (provider, model): the configured
rpm/tpm, what the provider's ``x-ratelimit-*`` headers taught (the lower
limit wins), the "remaining until reset" windows those headers announce,
``Retry-After`` holds, and an AIMD factor on the rate: multiplied by
``decrease`` on a 429 (once per cooldown, so a volley of 429s counts once),
raised by ``increase`` on each success. With no limit known, a 429 starts a
limit at the rate actually sent (if at least ``MIN_MEASURED_REQUESTS`` went
out in the last period); it is dropped once the factor is back at 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from ..._waits import capped_wait
from ._headers import REQUEST_HEADERS, TOKEN_HEADERS, header_number, parse_reset

__all__ = ["MIN_MEASURED_REQUESTS", "GCRABucket", "TargetLimits", "parse_reset"]

MIN_MEASURED_REQUESTS = 10
"""With no limit known, a 429 starts one at the rate sent only if at least this many
requests went out in the last period: one 429 after a single request must not
throttle the target to one request a minute."""


class GCRABucket:
    """``1 / interval`` units per second with ``tolerance`` seconds of burst."""

    __slots__ = ("interval", "tat", "tolerance")

    def __init__(self, interval: float, tolerance: float) -> None:
        self.interval = interval
        self.tolerance = tolerance
        self.tat = -math.inf

    def wait_time(self, now: float, cost: float) -> float:
        """Seconds until ``cost`` units fit (0: now); nothing is booked."""
        tat = self.tat if self.tat > now else now
        return max(0.0, min(tat + cost * self.interval - self.tolerance, tat) - now)

    def reserve(self, now: float, cost: float) -> float:
        """Book ``cost`` units and return how long the caller must wait for them."""
        tat = self.tat if self.tat > now else now
        self.tat = tat + cost * self.interval
        return max(0.0, min(self.tat - self.tolerance, tat) - now)

    def refund(self, now: float, cost: float) -> None:
        """Give back ``cost`` booked units (a waiter was cancelled, usage was lower)."""
        self.tat = max(self.tat - cost * self.interval, now)

    def charge(self, now: float, cost: float) -> None:
        """Book ``cost`` more units after the fact (usage was higher than estimated)."""
        self.tat = max(self.tat, now) + cost * self.interval

    def __repr__(self) -> str:
        return f"<GCRABucket interval={self.interval:.6g}s tat={self.tat:.3f}>"


class _Dimension:
    """Requests or tokens: configured and learned limits, bucket, announced window."""

    __slots__ = ("bucket", "configured", "learned", "local", "measured", "remaining", "reset_at")

    def __init__(self, configured: float | None, local: bool) -> None:
        self.configured = configured
        self.local = local
        """False when the bucket is kept elsewhere (Redis): only its interval is used."""
        self.learned: float | None = None
        self.measured = False
        self.bucket: GCRABucket | None = None
        self.remaining: float | None = None
        self.reset_at = -math.inf

    @property
    def base(self) -> float | None:
        c, learned = self.configured, self.learned
        if c is None:
            return learned
        return c if learned is None else min(c, learned)

    def rebuild(self, period: float, factor: float, tolerance: float) -> None:
        base = self.base
        if base is None:
            self.bucket = None
            return
        interval = period / (base * factor)
        if self.bucket is None:
            self.bucket = GCRABucket(interval, tolerance)
        else:
            self.bucket.interval = interval

    @property
    def interval(self) -> float:
        """Seconds per unit at the enforced rate; 0 when unlimited."""
        return 0.0 if self.bucket is None else self.bucket.interval

    def wait_time(self, now: float, cost: float) -> float:
        bucket = self.bucket
        wait = bucket.wait_time(now, cost) if bucket is not None and self.local else 0.0
        if self.remaining is not None:
            if now >= self.reset_at:
                self.remaining = None
            elif self.remaining < cost:
                wait = max(wait, self.reset_at - now)
        return wait

    def reserve(self, now: float, cost: float, at: float, held: bool = False) -> None:
        bucket = self.bucket
        if bucket is not None and self.local:
            floor = at
            if held:  # leave the bucket empty at ``at``: no burst when a 429's hold ends
                floor = max(at, at + bucket.tolerance - cost * bucket.interval)
            if bucket.tat < floor:
                bucket.tat = floor
            bucket.reserve(now, cost)
        if self.remaining is not None:
            self.remaining -= cost

    def learn(
        self,
        headers: Mapping[str, str],
        names: tuple[str, str, str],
        now: float,
        wall: float,
        max_hold: float,
    ) -> bool:
        remaining = header_number(headers, names[1])
        if remaining is None:
            return False
        reset = headers.get(names[2])
        # an announced window is a server-given wait: never longer than max_hold
        seconds = capped_wait(parse_reset(reset, wall), max_hold) if reset is not None else None
        if seconds is not None:
            self.remaining = remaining
            self.reset_at = now + seconds
        return True


class TargetLimits:
    """Every limit of one (provider, model); see the module docstring."""

    __slots__ = (
        "_count",
        "_count_prev",
        "_count_start",
        "_last_decrease",
        "cooldown",
        "decrease",
        "factor",
        "hold_until",
        "increase",
        "max_hold",
        "min_factor",
        "period",
        "requests",
        "tokens",
        "tolerance",
    )

    def __init__(
        self,
        rpm: float | None,
        tpm: float | None,
        *,
        period: float = 60.0,
        burst: float = 0.1,
        decrease: float = 0.7,
        increase: float = 0.05,
        min_factor: float = 0.05,
        cooldown: float = 1.0,
        local: bool = True,
        max_hold: float = 60.0,
    ) -> None:
        self.period = period
        self.max_hold = max_hold
        """The longest a server-given wait (``Retry-After``, an announced reset) holds."""
        self.tolerance = burst * period
        self.decrease = decrease
        self.increase = increase
        self.min_factor = min_factor
        self.cooldown = cooldown
        self.factor = 1.0
        self.hold_until = -math.inf
        self._last_decrease = -math.inf
        self._count = self._count_prev = 0
        self._count_start = -math.inf
        self.requests = _Dimension(rpm, local)
        self.tokens = _Dimension(tpm, local)
        self._rebuild()

    def _rebuild(self) -> None:
        self.requests.rebuild(self.period, self.factor, self.tolerance)
        self.tokens.rebuild(self.period, self.factor, self.tolerance)

    @property
    def active(self) -> bool:
        """Whether anything may delay a request (False: admit at once, no bookkeeping)."""
        r, t = self.requests, self.tokens
        return (
            r.bucket is not None
            or t.bucket is not None
            or r.remaining is not None
            or t.remaining is not None
            or self.hold_until != -math.inf
        )

    @property
    def counts_tokens(self) -> bool:
        return self.tokens.bucket is not None or self.tokens.remaining is not None

    def effective(self) -> tuple[float | None, float | None]:
        """The (requests, tokens) per period enforced now, AIMD included."""
        r, t = self.requests.base, self.tokens.base
        f = self.factor
        return (None if r is None else r * f, None if t is None else t * f)

    # -- admission --------------------------------------------------------
    def wait_time(self, now: float, tokens: float) -> float:
        """Seconds until a request costing ``tokens`` may go (0: now); nothing is booked."""
        wait = max(self.requests.wait_time(now, 1.0), self.tokens.wait_time(now, tokens))
        if self.hold_until > now:
            wait = max(wait, self.hold_until - now)
        elif self.hold_until != -math.inf:
            self.hold_until = -math.inf
        return wait

    def reserve(self, now: float, tokens: float) -> float:
        """Book a request costing ``tokens``; returns how long to wait before sending.

        The booking starts no earlier than the request goes: requests held
        back by a 429 or an exhausted window leave in the schedule's order,
        not all at once when the hold ends.
        """
        held = self.hold_until > now  # by a 429: then leave paced, not in a burst
        wait = self.wait_time(now, tokens)
        at = now + wait
        self.requests.reserve(now, 1.0, at, held)
        self.tokens.reserve(now, tokens, at, held)
        self.count(now)
        return wait

    def rebook(self, now: float, tokens: float) -> float:
        """Re-check a booked request once its wait is over: 0 if it may go, else the new wait.

        A 429 may have set a hold while the request waited for its slot; it
        then books a slot after the hold, in schedule order, instead of going
        out into the hold (its old slot, before the hold ends, is not given
        back: a refund would come off the end of the schedule, i.e. off the
        slot another held request just booked).
        """
        if self.hold_until <= now:
            return 0.0
        wait = self.wait_time(now, tokens)
        at = now + wait
        self.requests.reserve(now, 1.0, at, True)
        self.tokens.reserve(now, tokens, at, True)
        return wait

    def cancel(self, now: float, tokens: float) -> None:
        """Undo ``reserve`` for a request that was never sent."""
        r, t = self.requests, self.tokens
        if r.bucket is not None and r.local:
            r.bucket.refund(now, 1.0)
        if t.bucket is not None and t.local:
            t.bucket.refund(now, tokens)

    def count(self, now: float) -> None:
        """Count a request sent (the measured rate behind a limit learned from a 429)."""
        if now - self._count_start >= self.period:
            elapsed = now - self._count_start
            self._count_prev = self._count if elapsed < 2 * self.period else 0
            self._count = 0
            self._count_start = now
        self._count += 1

    def sent_rate(self, now: float) -> float:
        """Requests sent over the last period (sliding-window estimate)."""
        elapsed = min(max(now - self._count_start, 0.0), self.period)
        return self._count + self._count_prev * (1.0 - elapsed / self.period)

    # -- feedback ---------------------------------------------------------
    def on_usage(self, now: float, estimated: float, actual: float) -> None:
        """Correct a request's token booking once its usage is known."""
        bucket = self.tokens.bucket
        if bucket is None or not self.tokens.local or actual <= 0 or actual == estimated:
            return
        if actual > estimated:
            bucket.charge(now, actual - estimated)
        else:
            bucket.refund(now, estimated - actual)

    def on_headers(self, headers: Mapping[str, str], now: float, wall: float) -> None:
        """Learn limits and announced windows from ``x-ratelimit-*`` style headers."""
        changed = False
        for dim, families in ((self.requests, REQUEST_HEADERS), (self.tokens, TOKEN_HEADERS)):
            for names in families:
                # a membership test first: most families are absent from any one response
                if names[1] in headers and dim.learn(headers, names, now, wall, self.max_hold):
                    limit = header_number(headers, names[0]) if names[0] else None
                    # under one per minute is no limit a provider announces: ignored
                    if limit is not None and limit >= 1:
                        per_period = limit * self.period / 60.0
                        if dim.learned != per_period or dim.measured:
                            dim.learned, dim.measured, changed = per_period, False, True
                    break
        if changed:
            self._rebuild()

    def on_rate_limited(self, now: float, retry_after: float | None) -> None:
        """A 429: hold for ``retry_after`` and cut the rate (once per cooldown)."""
        hold = capped_wait(retry_after, self.max_hold)
        if hold:
            self.hold_until = max(self.hold_until, now + hold)
        if now - self._last_decrease < self.cooldown:
            return
        r = self.requests
        if r.base is None and self.tokens.base is None:
            sent = self.sent_rate(now)
            if sent < MIN_MEASURED_REQUESTS:
                return  # too few sent to be the cause (a shared key, an overload): hold only
            r.learned = sent
            r.measured = True
        self._last_decrease = now
        self.factor = max(self.min_factor, self.factor * self.decrease)
        self._rebuild()

    def on_success(self) -> None:
        """Additive increase after a success; a measured limit goes once fully recovered."""
        if self.factor >= 1.0:
            return
        self.factor = min(1.0, self.factor + self.increase)
        if self.factor >= 1.0 and self.requests.measured:
            self.requests.learned, self.requests.measured = None, False
        self._rebuild()

    def __repr__(self) -> str:
        rpm, tpm = self.effective()
        return f"<TargetLimits requests={rpm} tokens={tpm} factor={self.factor:.2f}>"
