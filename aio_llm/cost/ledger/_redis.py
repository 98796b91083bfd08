"""The Redis ledger: one budget shared by every process and host that points at the same Redis.

Reserve, settle, release and charge are Lua scripts, so each is atomic on
the server whatever the number of clients. Every key carries the hash tag
of ``key_prefix`` (``{aio_llm:budget}`` by default), so the scripts also
run on a Redis Cluster. ``redis.asyncio`` is imported only when a
``RedisLedger`` is created. An unreachable Redis raises
``LedgerUnavailableError``; the budget middleware then fails closed or
open as ``ClientConfig.budget_fail_open`` says.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ..._extras import require_redis
from ._base import Balances, Claim, LedgerUnavailableError, Refusal, Reservation, UsageRecord

__all__ = ["RedisLedger"]

# KEYS[1] expiry zset (rid -> expires_at), KEYS[2] reservation hash, KEYS[3..] budget hashes.
# A reservation is stored as "amount|-amount|live|key\nkey...".
_EXPIRE = """
local function expire(now)
  local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
  for _, id in ipairs(ids) do
    local v = redis.call('HGET', KEYS[2], id)
    if v then
      local amount, neg, rest = string.match(v, '^(%d+)|(%-?%d+)|1|(.*)$')
      if amount then
        for key in string.gmatch(rest, '[^\\n]+') do
          redis.call('HINCRBY', key, 'r', neg)
        end
        redis.call('HSET', KEYS[2], id, amount .. '|' .. neg .. '|0|' .. rest)
      end
    end
  end
  if #ids > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now) end
end
local function balances()
  local out = {}
  for i = 3, #KEYS do
    out[#out + 1] = redis.call('HGET', KEYS[i], 's') or '0'
    out[#out + 1] = redis.call('HGET', KEYS[i], 'r') or '0'
  end
  return out
end
"""

# ARGV: now, rid, amount, -amount, expires_at, then one limit per key ('' = none),
# then one PEXPIRE (ms, '' = none) per key.
_RESERVE = (
    _EXPIRE
    + """
expire(ARGV[1])
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then return {-1} end
local n = #KEYS - 2
local amount = tonumber(ARGV[3])
for i = 1, n do
  local limit = ARGV[5 + i]
  if limit ~= '' then
    local key = KEYS[i + 2]
    local s = tonumber(redis.call('HGET', key, 's') or '0')
    local r = tonumber(redis.call('HGET', key, 'r') or '0')
    local lim = tonumber(limit)
    if s + r + amount > lim or (lim > 0 and s >= lim) then
      return {i, redis.call('HGET', key, 's') or '0', redis.call('HGET', key, 'r') or '0'}
    end
  end
end
for i = 1, n do
  local key = KEYS[i + 2]
  redis.call('HINCRBY', key, 'r', ARGV[3])
  local at = ARGV[5 + n + i]
  if at ~= '' then redis.call('PEXPIRE', key, at) end
end
local keys = {}
for i = 3, #KEYS do keys[#keys + 1] = KEYS[i] end
local entry = ARGV[3] .. '|' .. ARGV[4] .. '|1|' .. table.concat(keys, '\\n')
redis.call('HSET', KEYS[2], ARGV[2], entry)
redis.call('ZADD', KEYS[1], ARGV[5], ARGV[2])
return {0}
"""
)

# ARGV: now, rid, actual (spent to add; '0' for release), settle ('1') or release ('0')
_FINISH = (
    _EXPIRE
    + """
expire(ARGV[1])
local v = redis.call('HGET', KEYS[2], ARGV[2])
if v then
  local neg, live = string.match(v, '^%d+|(%-?%d+)|(%d)|')
  for i = 3, #KEYS do
    if ARGV[4] == '1' then redis.call('HINCRBY', KEYS[i], 's', ARGV[3]) end
    if live == '1' then redis.call('HINCRBY', KEYS[i], 'r', neg) end
  end
  redis.call('HDEL', KEYS[2], ARGV[2])
  redis.call('ZREM', KEYS[1], ARGV[2])
end
return balances()
"""
)

# ARGV: now, amount, then one PEXPIRE (ms, '' = none) per key
_CHARGE = (
    _EXPIRE
    + """
expire(ARGV[1])
for i = 3, #KEYS do
  redis.call('HINCRBY', KEYS[i], 's', ARGV[2])
  local at = ARGV[i]
  if at ~= '' then redis.call('PEXPIRE', KEYS[i], at) end
end
return balances()
"""
)

_BALANCES = (
    _EXPIRE
    + """
expire(ARGV[1])
return balances()
"""
)

_GRACE = 86400.0
"""Budget keys live one day past the end of their period."""


class RedisLedger:
    """Budget ledger in Redis (``budget_backend="redis://host:6379/0"``)."""

    __slots__ = ("_client", "_connect_timeout", "_prefix", "_scripts", "_url")

    def __init__(
        self, url: str, *, key_prefix: str = "aio_llm:budget", connect_timeout: float = 2.0
    ) -> None:
        require_redis("budget_backend='redis://...' (RedisLedger)")
        if not key_prefix:
            raise ValueError("key_prefix must not be empty")
        if connect_timeout <= 0:
            raise ValueError("connect_timeout must be positive")
        self._url = url
        self._prefix = key_prefix if key_prefix.startswith("{") else "{" + key_prefix + "}"
        self._connect_timeout = connect_timeout
        self._client: Any = None
        self._scripts: dict[str, Any] = {}

    def _redis(self) -> Any:
        if self._client is None:
            from ..._redis import redis_client

            client = redis_client(self._url, timeout=self._connect_timeout, decode_responses=True)
            self._scripts = {
                name: client.register_script(body)
                for name, body in (
                    ("reserve", _RESERVE),
                    ("finish", _FINISH),
                    ("charge", _CHARGE),
                    ("balances", _BALANCES),
                )
            }
            self._client = client
        return self._client

    def _keys(self, keys: Iterable[str]) -> list[str]:
        p = self._prefix
        return [p + ":exp", p + ":res", *(p + ":k:" + k for k in keys)]

    async def _call(self, script: str, keys: list[str], args: list[str]) -> Any:
        import redis.exceptions as rexc

        self._redis()
        try:
            return await self._scripts[script](keys=keys, args=args)
        except (rexc.ConnectionError, rexc.TimeoutError, OSError) as exc:
            raise LedgerUnavailableError(
                f"the Redis budget ledger is unreachable ({type(exc).__name__})"
            ) from exc

    @staticmethod
    def _pexpire(claims: Sequence[Claim], now: float) -> list[str]:
        # relative TTLs: the caller's clock decides when a period ends, not the server's
        return [
            ""
            if c.expires_at is None
            else str(max(int((c.expires_at + _GRACE - now) * 1000), 1000))
            for c in claims
        ]

    @staticmethod
    def _parse(claims: Sequence[Claim], flat: list[Any]) -> Balances:
        return {c.key: (int(flat[2 * i]), int(flat[2 * i + 1])) for i, c in enumerate(claims)}

    async def reserve(self, reservation: Reservation, now: float) -> Refusal | None:
        claims = reservation.claims
        args = [
            repr(now),
            reservation.id,
            str(reservation.amount),
            str(-reservation.amount),
            repr(reservation.expires_at),
            *("" if c.limit is None else str(c.limit) for c in claims),
            *self._pexpire(claims, now),
        ]
        out = await self._call("reserve", self._keys(c.key for c in claims), args)
        code = int(out[0])
        if code == 0:
            return None
        if code < 0:
            raise ValueError(f"reservation {reservation.id!r} already exists")
        return Refusal(claims[code - 1], int(out[1]), int(out[2]))

    async def settle(
        self, reservation: Reservation, actual: int, now: float, record: UsageRecord | None = None
    ) -> Balances:
        keys = self._keys(c.key for c in reservation.claims)
        out = await self._call(
            "finish", keys, [repr(now), reservation.id, str(max(actual, 0)), "1"]
        )
        return self._parse(reservation.claims, out)

    async def release(self, reservation: Reservation, now: float) -> Balances:
        keys = self._keys(c.key for c in reservation.claims)
        out = await self._call("finish", keys, [repr(now), reservation.id, "0", "0"])
        return self._parse(reservation.claims, out)

    async def charge(
        self, claims: Sequence[Claim], amount: int, now: float, record: UsageRecord | None = None
    ) -> Balances:
        args = [repr(now), str(max(amount, 0)), *self._pexpire(claims, now)]
        out = await self._call("charge", self._keys(c.key for c in claims), args)
        return self._parse(claims, out)

    async def balances(self, keys: Iterable[str], now: float) -> Balances:
        keys = list(keys)
        claims = [Claim(k, None) for k in keys]
        out = await self._call("balances", self._keys(keys), [repr(now)])
        return self._parse(claims, out)

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def __repr__(self) -> str:
        return f"<RedisLedger prefix={self._prefix!r} connected={self._client is not None}>"
