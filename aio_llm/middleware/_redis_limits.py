"""Redis backends for state many processes share: rate limits and OPEN circuits.

``RedisGCRA`` keeps one GCRA schedule (a "theoretical arrival time") per
(provider, model) for requests and one for tokens, and checks and updates
both in ONE Lua script, atomically, against Redis' own clock: N processes
together respect one rpm/tpm. The script either admits the request or
returns how long to wait; it never reserves for a refused request, so the
caller sleeps locally and asks again. The script is sent by SHA
(``EVALSHA``) and again in full (``EVAL``) when Redis answers NOSCRIPT.

``RedisCircuitState`` stores an OPEN circuit as a key whose TTL is the time
left until probes are allowed.

Redis is optional: ``redis.asyncio`` is imported only when one of these
classes is built. When Redis cannot be reached the callers degrade (the
breaker to local state, the limiter to ``fail_open``) and one warning is
logged per outage; Redis is tried again after ``retry_interval`` seconds.
"""

from __future__ import annotations

import hashlib
import logging
import math
from typing import Any
from urllib.parse import urlsplit

from .._extras import require_redis
from ..clock import SYSTEM_CLOCK, Clock

__all__ = ["RedisCircuitState", "RedisGCRA"]

logger = logging.getLogger("aio_llm.middleware")

GCRA_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local adjust = ARGV[1] == 'adjust'
local tau = tonumber(ARGV[2])
local wait = 0
local tats = {}
for i = 1, 2 do
  local interval = tonumber(ARGV[1 + 2 * i])
  local cost = tonumber(ARGV[2 + 2 * i])
  if interval > 0 and cost ~= 0 then
    local tat = tonumber(redis.call('GET', KEYS[i])) or now
    if tat < now then tat = now end
    local new = tat + interval * cost
    if adjust then
      if new < now then new = now end
    else
      local allow_at = math.min(new - tau, tat)
      if allow_at - now > wait then wait = allow_at - now end
    end
    tats[i] = new
  end
end
if wait > 0 then return math.ceil(wait * 1000000) end
for i = 1, 2 do
  if tats[i] then
    local ttl = math.ceil((tats[i] - now + tau) * 1000) + 1
    redis.call('SET', KEYS[i], string.format('%.6f', tats[i]), 'PX', ttl)
  end
end
return 0
"""
"""KEYS: requests TAT, tokens TAT. ARGV: mode, tolerance (s), then interval (s per
unit, 0 = no limit) and cost for requests and for tokens. Returns 0 when admitted
(or adjusted), else the wait in microseconds."""

GCRA_SHA = hashlib.sha1(GCRA_SCRIPT.encode()).hexdigest()


def _safe_url(url: str) -> str:
    """``url`` without credentials, fit for a log line."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class _RedisLink:
    """A lazily opened client plus the outage bookkeeping both backends share."""

    __slots__ = ("_client", "_clock", "_down_until", "_warned", "retry_interval", "timeout", "url")

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        retry_interval: float,
        clock: Clock,
        feature: str = "a Redis backend",
    ) -> None:
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("a Redis URL starts with redis://, rediss:// or unix://")
        if not timeout > 0 or retry_interval < 0:
            raise ValueError("timeout must be positive and retry_interval not negative")
        require_redis(feature)
        self.url = url
        self.timeout = timeout
        self.retry_interval = retry_interval
        self._clock = clock
        self._client: Any = None
        self._down_until = float("-inf")
        self._warned = False

    def available(self) -> bool:
        """False while a recent failure says Redis is down (no I/O)."""
        return self._clock.now() >= self._down_until

    def client(self) -> Any:
        if self._client is None:
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            from .._redis import redis_client

            self._client = redis_client(self.url, timeout=self.timeout, retry=Retry(NoBackoff(), 1))
        return self._client

    def failed(self, exc: BaseException, what: str) -> None:
        self._down_until = self._clock.now() + self.retry_interval
        if not self._warned:
            self._warned = True
            logger.warning(
                "Redis at %s is unreachable (%s: %s); %s",
                _safe_url(self.url),
                type(exc).__name__,
                exc,
                what,
            )

    def ok(self) -> None:
        if self._warned:
            self._warned = False
            logger.info("Redis at %s is reachable again", _safe_url(self.url))

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


def _errors() -> tuple[type[BaseException], ...]:
    from redis.exceptions import RedisError

    return (RedisError, OSError)


class RedisGCRA:
    """A GCRA rate limit shared through Redis (see the module docstring)."""

    __slots__ = ("_errors", "_link", "_noscript", "prefix")

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "aio_llm:",
        timeout: float = 0.5,
        retry_interval: float = 5.0,
        clock: Clock | None = None,
    ) -> None:
        self._link = _RedisLink(
            url,
            timeout=timeout,
            retry_interval=retry_interval,
            clock=clock or SYSTEM_CLOCK,
            feature="ratelimit_backend='redis://...' (a shared rate limit)",
        )
        self._errors = _errors()
        from redis.exceptions import NoScriptError

        self._noscript = NoScriptError
        self.prefix = prefix

    def _keys(self, target: str) -> tuple[str, str]:
        base = f"{self.prefix}ratelimit:{{{target}}}"
        return base + ":requests", base + ":tokens"

    async def _run(self, target: str, *args: object) -> float | None:
        if not self._link.available():
            return None
        client = self._link.client()
        keys = self._keys(target)
        try:
            try:
                result = await client.evalsha(GCRA_SHA, 2, *keys, *args)
            except self._noscript:
                result = await client.eval(GCRA_SCRIPT, 2, *keys, *args)
        except self._errors as exc:
            self._link.failed(exc, "the rate limit is no longer shared")
            return None
        self._link.ok()
        return int(result) / 1_000_000

    async def acquire(
        self,
        target: str,
        *,
        request_interval: float,
        token_interval: float,
        tokens: float,
        tolerance: float,
    ) -> float | None:
        """Admit one request costing ``tokens``: 0.0 if admitted, else the wait in seconds.

        Intervals are seconds per request / per token (0: no limit); ``None``
        means Redis is unavailable and nothing was decided.
        """
        return await self._run(
            target,
            "acquire",
            repr(tolerance),
            repr(request_interval),
            "1",
            repr(token_interval),
            repr(tokens),
        )

    async def adjust_tokens(self, target: str, *, token_interval: float, delta: float) -> None:
        """Charge (``delta`` > 0) or refund (< 0) tokens once the real usage is known."""
        if token_interval > 0 and delta:
            await self._run(target, "adjust", "0", "0", "0", repr(token_interval), repr(delta))

    async def aclose(self) -> None:
        await self._link.aclose()

    def __repr__(self) -> str:
        state = "up" if self._link.available() else "down"
        return f"<RedisGCRA {_safe_url(self._link.url)} {state}>"


class RedisCircuitState:
    """OPEN circuits shared through Redis: one key per target, expiring when probes may start."""

    __slots__ = ("_errors", "_link", "prefix", "refresh_interval")

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "aio_llm:",
        refresh_interval: float = 1.0,
        timeout: float = 0.5,
        retry_interval: float = 5.0,
        clock: Clock | None = None,
    ) -> None:
        if refresh_interval < 0:
            raise ValueError("refresh_interval must not be negative")
        self._link = _RedisLink(
            url,
            timeout=timeout,
            retry_interval=retry_interval,
            clock=clock or SYSTEM_CLOCK,
            feature="circuit_backend='redis://...' (a shared circuit state)",
        )
        self._errors = _errors()
        self.prefix = prefix
        self.refresh_interval = refresh_interval
        """A process reads a target's shared state at most this often (seconds)."""

    def _key(self, target: str) -> str:
        return f"{self.prefix}circuit:{target}"

    async def open_remaining(self, target: str) -> float | None:
        """Seconds another process asked this target to stay OPEN, or None."""
        if not self._link.available():
            return None
        try:
            ms = await self._link.client().pttl(self._key(target))
        except self._errors as exc:
            self._link.failed(exc, "circuit breakers fall back to local state")
            return None
        self._link.ok()
        return int(ms) / 1000.0 if ms is not None and int(ms) > 0 else None

    async def publish_open(self, target: str, seconds: float) -> None:
        """Tell every process that ``target`` is OPEN for ``seconds``."""
        if seconds <= 0 or not self._link.available():
            return
        try:
            await self._link.client().set(self._key(target), b"open", px=math.ceil(seconds * 1000))
        except self._errors as exc:
            self._link.failed(exc, "circuit breakers fall back to local state")
            return
        self._link.ok()

    async def aclose(self) -> None:
        await self._link.aclose()

    def __repr__(self) -> str:
        state = "up" if self._link.available() else "down"
        return f"<RedisCircuitState {_safe_url(self._link.url)} {state}>"
