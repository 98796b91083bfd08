"""Rate limiting: requests and tokens per minute per (provider, model), adaptive.

``RateLimit`` delays a request until its (provider, model) has room for it:
one request against the rpm limit and, when a token limit is known, its
estimated tokens (``aio_llm.tokens.estimate_request_tokens`` plus
``max_tokens``) against the tpm limit; the booking is corrected from
``response.usage`` once the answer (or the stream) is complete. The limits
are the configured ``rpm``/``tpm``, lowered to what the provider announces
in its ``x-ratelimit-*`` (or ``anthropic-ratelimit-*``) headers, which also
say how much is left until a reset. A 429 holds the target for its
``Retry-After`` (requests already waiting for a slot move behind the hold)
and cuts the rate by ``decrease``; every success adds back
``increase`` (AIMD, as adaptive client-side throttling does). With no limit
configured and nothing learned yet, requests pass at almost no cost.

A wait that would end after the request's deadline (the client's
``anyio.fail_after`` scope) is not started: ``RateLimitExceededError`` with
``retry_after`` is raised at once. A cancelled waiter gives its slot back.

With ``backend`` a Redis URL, the rpm/tpm schedule lives in Redis (one GCRA
Lua script, see ``_redis_limits``) so N processes together keep one limit;
holds and announced windows stay per process. When Redis is unreachable the
limiter admits (``fail_open=True``, the default) or refuses every request,
with one logged warning per outage.

Why not ``aiolimiter.AsyncLimiter`` for the bucket: it reads the asyncio
loop's clock, so its logic cannot run on an injected ``FakeClock``; its rate
cannot follow AIMD and learned limits cleanly; it cannot say how long a wait
will be (needed to honour deadlines before waiting) nor be shared through
Redis. The same leaky-bucket arithmetic is written here as a GCRA schedule
(``GCRABucket``): one float per limit, and waiters book their slot in
arrival order without a queue of futures.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import anyio

from ... import log as _log
from ...clock import SYSTEM_CLOCK, Clock
from ...errors import RateLimitError, RateLimitExceededError
from ...pipeline import EmbedNext, Next
from ...tokens import estimate_request_tokens, estimate_tokens
from ...types import ChatRequest, ChatResponse, ChunkStream, EmbeddingRequest, EmbeddingResponse
from .._redis_limits import RedisGCRA
from ..events import EVENT_RATE_LIMITED, record_event
from ._state import GCRABucket, TargetLimits

__all__ = ["GCRABucket", "RateLimit", "RateLimitConfig", "RateLimitStatistics", "TargetLimits"]

T = TypeVar("T")
R = TypeVar("R", ChatRequest, EmbeddingRequest)


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    """Limits per (provider, model) and how the limiter adapts."""

    rpm: float | None = None
    """Requests per ``period``; None: only what the provider announces."""
    tpm: float | None = None
    """Tokens per ``period``; None: only what the provider announces."""
    period: float = 60.0
    """Seconds the limits refer to (a minute; shorter only in tests)."""
    burst: float = 0.1
    """Share of a period's limit that may go at once after a quiet spell."""
    decrease: float = 0.7
    """A 429 multiplies the allowed rate by this."""
    increase: float = 0.05
    """Each success adds this share of the limit back, up to the full limit."""
    min_factor: float = 0.05
    """The rate never drops below this share of the limit."""
    cooldown: float = 1.0
    """Seconds after a cut during which further 429s do not cut again."""
    learn_from_headers: bool = True
    """Read ``x-ratelimit-*`` headers from every response."""
    backend: str = "memory"
    """``memory`` or a Redis URL shared by every process."""
    fail_open: bool = True
    """With Redis unreachable: admit (True) or raise ``RateLimitExceededError``."""
    max_hold: float = 60.0
    """The longest a server-given wait (a 429's ``Retry-After``, an announced reset) holds
    a target: one absurd value must not take a model offline."""

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive or None")
        if not self.period > 0:
            raise ValueError("period must be positive")
        if not 0 < self.burst <= 1:
            raise ValueError("burst must be in (0, 1]")
        if not 0 < self.decrease < 1:
            raise ValueError("decrease must be in (0, 1)")
        if not 0 < self.increase <= 1:
            raise ValueError("increase must be in (0, 1]")
        if not 0 < self.min_factor <= 1:
            raise ValueError("min_factor must be in (0, 1]")
        if self.cooldown < 0:
            raise ValueError("cooldown must not be negative")
        if not 0 <= self.max_hold < math.inf:
            raise ValueError("max_hold must be a finite number of seconds >= 0")
        if self.backend != "memory" and not self.backend.startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise ValueError("backend must be 'memory' or a Redis URL")


@dataclass(frozen=True, slots=True)
class RateLimitStatistics:
    """A snapshot of one (provider, model)'s limiter; limits are per minute."""

    target: str
    rpm: float | None
    tpm: float | None
    factor: float
    admitted: int
    delayed: int
    rejected: int
    throttled: int
    wait_seconds: float


class _Target:
    __slots__ = ("admitted", "delayed", "limits", "name", "rejected", "throttled", "waited")

    def __init__(self, name: str, limits: TargetLimits) -> None:
        self.name = name
        self.limits = limits
        self.admitted = self.delayed = self.rejected = self.throttled = 0
        self.waited = 0.0


class _Settle:
    """Corrects a stream's token booking from its usage once it ends."""

    __slots__ = ("_owner", "_target", "_tokens")

    def __init__(self, owner: RateLimit, target: _Target, tokens: float) -> None:
        self._owner, self._target, self._tokens = owner, target, tokens

    async def __call__(self, stream: ChunkStream) -> None:
        if stream.completed and stream.response is not None:
            await self._owner._settle(self._target, self._tokens, stream.response)


class RateLimit:
    """Requests and tokens per minute per (provider, model); see the module docstring.

    ``default_provider`` names the provider for requests whose ``provider``
    is None. Call ``aclose()`` when a Redis backend is configured.
    """

    __slots__ = ("_clock", "_config", "_default_provider", "_redis", "_targets")

    def __init__(
        self,
        config: RateLimitConfig | None = None,
        *,
        clock: Clock | None = None,
        default_provider: str | None = None,
    ) -> None:
        self._config = config if config is not None else RateLimitConfig()
        self._clock = clock if clock is not None else SYSTEM_CLOCK
        self._default_provider = default_provider or ""
        self._targets: dict[tuple[str, str], _Target] = {}
        self._redis: RedisGCRA | None = None
        if self._config.backend != "memory":
            self._redis = RedisGCRA(self._config.backend, clock=self._clock)

    def limits(self, provider: str | None, model: str) -> TargetLimits:
        """The limit state of (``provider``, ``model``), created if needed."""
        return self._target((provider or self._default_provider, model)).limits

    def _target(self, key: tuple[str, str]) -> _Target:
        t = self._targets.get(key)
        if t is None:
            c = self._config
            limits = TargetLimits(
                c.rpm,
                c.tpm,
                period=c.period,
                burst=c.burst,
                decrease=c.decrease,
                increase=c.increase,
                min_factor=c.min_factor,
                cooldown=c.cooldown,
                local=self._redis is None,
                max_hold=c.max_hold,
            )
            t = self._targets[key] = _Target(f"{key[0]}:{key[1]}" if key[0] else key[1], limits)
        return t

    async def __call__(self, request: ChatRequest, next: Next) -> ChatResponse:
        t = self._targets.get((request.provider or self._default_provider, request.model))
        if t is None:
            t = self._target((request.provider or self._default_provider, request.model))
        response, tokens = await self._through(t, _chat_tokens, next, request)
        lim, clock = t.limits, self._clock
        headers = response.headers
        if headers is not None and self._config.learn_from_headers:
            lim.on_headers(headers, clock.now(), clock.time())
        if lim.factor < 1.0:
            lim.on_success()
        if tokens:
            stream = response.stream
            if stream is None:
                if self._redis is None:
                    lim.on_usage(clock.now(), tokens, float(response.usage.total_tokens))
                else:
                    await self._settle(t, tokens, response)
            else:
                await stream.on_close(_Settle(self, t, tokens))
        return response

    async def embed(self, request: EmbeddingRequest, next: EmbedNext) -> EmbeddingResponse:
        """Embedding requests take room in the same per-model limits (their texts' tokens)."""
        t = self._target((request.provider or self._default_provider, request.model))
        response, tokens = await self._through(t, _embed_tokens, next, request)
        lim = t.limits
        if lim.factor < 1.0:
            lim.on_success()
        if tokens and self._redis is None and response.usage.total_tokens > 0:
            lim.on_usage(self._clock.now(), tokens, float(response.usage.total_tokens))
        return response

    async def _through(
        self,
        t: _Target,
        estimate: Callable[[R], float],
        call: Callable[[R], Awaitable[T]],
        request: R,
    ) -> tuple[T, float]:
        """Wait for room for ``request`` in ``t``, then ``call`` it; (answer, tokens booked)."""
        lim = t.limits
        clock = self._clock
        tokens = 0.0
        if lim.active:
            if lim.counts_tokens:
                tokens = estimate(request)
            await self._admit(t, tokens)
        else:
            lim.count(clock.now())
            t.admitted += 1
        try:
            return await call(request), tokens
        except RateLimitError as exc:
            t.throttled += 1
            if exc.code != "insufficient_quota":  # out of credit: slowing down won't help
                lim.on_rate_limited(clock.now(), exc.retry_after)
                _log.ratelimit.info(
                    "Rate limit for %s: the provider answered 429%s; slowing down",
                    t.name,
                    "" if exc.retry_after is None else f" (retry after {exc.retry_after:g} s)",
                )
            raise

    async def _admit(self, t: _Target, tokens: float) -> None:
        """Wait for room for one request of ``tokens`` tokens, and book it."""
        lim = t.limits
        clock = self._clock
        redis = self._redis
        now = clock.now()
        wait = lim.wait_time(now, tokens)
        if wait > 0:
            self._check_deadline(t, wait)
        wait = lim.reserve(now, tokens)
        if wait > 0:
            t.delayed += 1
            record_event(EVENT_RATE_LIMITED, target=t.name, wait_s=wait)
            _log.ratelimit.info("Rate limit for %s: waiting %.2f seconds", t.name, wait)
            while wait > 0:
                t.waited += wait
                try:
                    await clock.sleep(wait)
                except BaseException:
                    lim.cancel(clock.now(), tokens)
                    raise
                now = clock.now()
                wait = lim.rebook(now, tokens)  # a 429 while we waited: go after its hold
                if wait > 0:
                    try:
                        self._check_deadline(t, wait)
                    except RateLimitExceededError:
                        lim.cancel(now, tokens)
                        raise
        if redis is not None and (lim.requests.interval or lim.tokens.interval):
            await self._admit_shared(t, redis, tokens)
        t.admitted += 1

    async def _admit_shared(self, t: _Target, redis: RedisGCRA, tokens: float) -> None:
        lim = t.limits
        delayed = False
        while True:
            wait = await redis.acquire(
                t.name,
                request_interval=lim.requests.interval,
                token_interval=lim.tokens.interval,
                tokens=tokens,
                tolerance=lim.tolerance,
            )
            if wait is None:
                if self._config.fail_open:
                    return
                t.rejected += 1
                raise RateLimitExceededError(
                    f"rate limit for {t.name}: the shared backend is unreachable"
                )
            if wait <= 0:
                return
            self._check_deadline(t, wait)
            if not delayed:
                delayed = True
                t.delayed += 1
            t.waited += wait
            record_event(EVENT_RATE_LIMITED, target=t.name, wait_s=wait, shared=True)
            _log.ratelimit.info("Rate limit for %s (shared): waiting %.2f seconds", t.name, wait)
            await self._clock.sleep(wait)

    def _check_deadline(self, t: _Target, wait: float) -> None:
        left = anyio.current_effective_deadline() - anyio.current_time()
        if wait > left:
            t.rejected += 1
            raise RateLimitExceededError(
                f"rate limit for {t.name}: room in {wait:.2f}s, after the request's deadline",
                retry_after=wait,
            )

    async def _settle(self, t: _Target, tokens: float, response: ChatResponse) -> None:
        actual = float(response.usage.total_tokens)
        if actual <= 0:
            return
        if self._redis is None:
            t.limits.on_usage(self._clock.now(), tokens, actual)
        elif t.limits.tokens.interval:
            await self._redis.adjust_tokens(
                t.name, token_interval=t.limits.tokens.interval, delta=actual - tokens
            )

    def statistics(self) -> dict[str, RateLimitStatistics]:
        """Every target's snapshot, keyed by ``provider:model``."""
        per_minute = 60.0 / self._config.period
        out = {}
        for t in self._targets.values():
            rpm, tpm = t.limits.effective()
            out[t.name] = RateLimitStatistics(
                target=t.name,
                rpm=None if rpm is None else rpm * per_minute,
                tpm=None if tpm is None else tpm * per_minute,
                factor=t.limits.factor,
                admitted=t.admitted,
                delayed=t.delayed,
                rejected=t.rejected,
                throttled=t.throttled,
                wait_seconds=t.waited,
            )
        return out

    def metrics(self) -> dict[str, object]:
        """``ratelimit.*`` counters summed over targets, and the limits per target."""
        stats = self.statistics().values()
        return {
            "ratelimit.requests.admitted": sum(s.admitted for s in stats),
            "ratelimit.requests.delayed": sum(s.delayed for s in stats),
            "ratelimit.requests.rejected": sum(s.rejected for s in stats),
            "ratelimit.throttled": sum(s.throttled for s in stats),
            "ratelimit.wait_seconds": math.fsum(s.wait_seconds for s in stats),
            "ratelimit.limits": {
                s.target: {"rpm": s.rpm, "tpm": s.tpm, "factor": s.factor} for s in stats
            },
        }

    async def __aenter__(self) -> RateLimit:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the Redis connections, if any."""
        if self._redis is not None:
            await self._redis.aclose()

    def __repr__(self) -> str:
        parts = [f"{t.name}={t.limits.effective()}" for t in self._targets.values()]
        return f"<RateLimit {self._config.backend} {', '.join(parts) or 'no targets yet'}>"


def _chat_tokens(request: ChatRequest) -> float:
    return float(estimate_request_tokens(request) + (request.max_tokens or 0))


def _embed_tokens(request: EmbeddingRequest) -> float:
    return float(sum(estimate_tokens(text) for text in request.texts))
