"""Budget ledgers: where spent and reserved money is counted.

A ledger keeps two integers per budget key (one key per budget, period and
scope value): ``spent`` and ``reserved``, in nano-dollars so that sums are
exact. Three operations change them, each atomic over every key of a
request:

- ``reserve``: add the request's worst-case cost to ``reserved`` of every
  key, or refuse if any key would pass its limit (nothing is changed then);
- ``settle``: move a reservation from ``reserved`` to ``spent`` at its real
  cost (once: settling twice, or after a release, changes nothing);
- ``release``: drop a reservation (the request failed, nothing was spent).

A reservation that is neither settled nor released before ``expires_at``
(its process died) stops counting as reserved; a late settle still charges
its spend. Backends: ``MemoryLedger`` (one process), ``SQLiteLedger``
(embedded, durable, several processes on one host) and ``RedisLedger``
(many processes and hosts). ``ledger_from_url`` picks one.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ...errors import BudgetExceededError

__all__ = [
    "Balances",
    "Claim",
    "Ledger",
    "LedgerUnavailableError",
    "MemoryLedger",
    "Refusal",
    "Reservation",
    "UsageRecord",
    "from_nanos",
    "ledger_from_url",
    "to_nanos",
]

NANOS = 1_000_000_000
Balances = dict[str, tuple[int, int]]
"""``{key: (spent, reserved)}`` in nano-dollars."""


def to_nanos(usd: float, *, ceil: bool = False) -> int:
    """USD as integer nano-dollars (rounded, or rounded up for reservations)."""
    value = usd * NANOS
    return math.ceil(value) if ceil else round(value)


def from_nanos(nanos: int) -> float:
    return nanos / NANOS


class LedgerUnavailableError(BudgetExceededError):
    """The budget ledger (Redis, SQLite) cannot be reached; with fail-closed nothing is sent."""


@dataclass(frozen=True, slots=True)
class Claim:
    """One budget key a request counts against; ``limit`` ``None`` never refuses."""

    key: str
    limit: int | None
    expires_at: float | None = None
    """When the key's period ends; backends may drop the key some time after."""


@dataclass(frozen=True, slots=True)
class Reservation:
    """Money set aside for one request until it is settled or released."""

    id: str
    claims: tuple[Claim, ...]
    amount: int
    expires_at: float


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why ``reserve`` said no: the first key that would pass its limit."""

    claim: Claim
    spent: int
    reserved: int


@dataclass(slots=True)
class UsageRecord:
    """One tracked use of a model: tokens, cost (USD, ``None`` if unknown) and who."""

    model: str
    input_tokens: int
    output_tokens: int
    cost: float | None
    timestamp: float
    user_id: str | None = None
    project: str | None = None
    cached_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    reasoning_tokens: int = 0
    response_id: str | None = None
    provider: str | None = None
    estimated: bool = False
    """True when the cost was estimated (a stream closed before its usage arrived)."""
    prompt_hash: int | None = None
    prefix_hash: int | None = None
    prefix_tokens: int = 0
    metadata: dict[str, object] = field(default_factory=dict)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class Ledger(Protocol):
    """The async interface every ledger backend offers (see the module docstring)."""

    async def reserve(self, reservation: Reservation, now: float) -> Refusal | None: ...

    async def settle(
        self, reservation: Reservation, actual: int, now: float, record: UsageRecord | None
    ) -> Balances: ...

    async def release(self, reservation: Reservation, now: float) -> Balances: ...

    async def charge(
        self, claims: Sequence[Claim], amount: int, now: float, record: UsageRecord | None
    ) -> Balances: ...

    async def balances(self, keys: Iterable[str], now: float) -> Balances: ...

    async def aclose(self) -> None: ...


class MemoryLedger:
    """The in-process ledger (the default); every operation is also available sync.

    The ``*_nowait`` methods never block, so the sync ``CostManager``
    methods and a Hypothesis state machine can drive the ledger directly.
    """

    __slots__ = ("_expiry", "_keys", "_open")

    def __init__(self) -> None:
        self._keys: dict[str, list[int]] = {}
        self._open: dict[str, tuple[Reservation, bool]] = {}
        self._expiry: list[tuple[float, str]] = []

    def _expire(self, now: float) -> None:
        heap = self._expiry
        while heap and heap[0][0] <= now:
            _, rid = heapq.heappop(heap)
            entry = self._open.get(rid)
            if entry is not None and entry[1]:
                res = entry[0]
                for claim in res.claims:
                    self._keys[claim.key][1] -= res.amount
                self._open[rid] = (res, False)

    def _closed(self) -> None:
        """A reservation left ``_open``: drop the dead entries of the expiry heap in bulk.

        A settled or released reservation's entry stays in the heap until its
        expiry (an hour by default), so at thousands of requests a second the
        heap would hold millions of dead entries. Rebuilding it from the open
        reservations once it is mostly dead costs O(1) per reservation.
        """
        heap = self._expiry
        if len(heap) > 2 * len(self._open) + 64:
            live = [(res.expires_at, rid) for rid, (res, alive) in self._open.items() if alive]
            heapq.heapify(live)
            self._expiry = live

    def _slot(self, key: str) -> list[int]:
        slot = self._keys.get(key)
        if slot is None:
            slot = self._keys[key] = [0, 0]
        return slot

    def _balances(self, claims: Iterable[Claim]) -> Balances:
        return {c.key: (self._keys[c.key][0], self._keys[c.key][1]) for c in claims}

    def reserve_nowait(self, reservation: Reservation, now: float) -> Refusal | None:
        self._expire(now)
        if reservation.id in self._open:
            raise ValueError(f"reservation {reservation.id!r} is already open")
        amount = reservation.amount
        for claim in reservation.claims:
            spent, reserved = self._slot(claim.key)
            limit = claim.limit
            if limit is not None and (spent + reserved + amount > limit or spent >= limit > 0):
                return Refusal(claim, spent, reserved)
        for claim in reservation.claims:
            self._keys[claim.key][1] += amount
        self._open[reservation.id] = (reservation, True)
        heapq.heappush(self._expiry, (reservation.expires_at, reservation.id))
        return None

    def settle_nowait(
        self, reservation: Reservation, actual: int, now: float, record: UsageRecord | None = None
    ) -> Balances:
        self._expire(now)
        entry = self._open.pop(reservation.id, None)
        if entry is not None:
            self._closed()
            res, live = entry
            for claim in res.claims:
                slot = self._slot(claim.key)
                if live:
                    slot[1] -= res.amount
                slot[0] += max(actual, 0)
        return self._balances_of(reservation.claims)

    def release_nowait(self, reservation: Reservation, now: float) -> Balances:
        self._expire(now)
        entry = self._open.pop(reservation.id, None)
        if entry is not None:
            self._closed()
        if entry is not None and entry[1]:
            for claim in entry[0].claims:
                self._slot(claim.key)[1] -= entry[0].amount
        return self._balances_of(reservation.claims)

    def charge_nowait(
        self, claims: Sequence[Claim], amount: int, now: float, record: UsageRecord | None = None
    ) -> Balances:
        self._expire(now)
        for claim in claims:
            self._slot(claim.key)[0] += max(amount, 0)
        return self._balances_of(claims)

    def balances_nowait(self, keys: Iterable[str], now: float) -> Balances:
        self._expire(now)
        out: Balances = {}
        for key in keys:
            slot = self._keys.get(key)
            out[key] = (slot[0], slot[1]) if slot is not None else (0, 0)
        return out

    def _balances_of(self, claims: Iterable[Claim]) -> Balances:
        return {c.key: tuple(self._slot(c.key)) for c in claims}  # type: ignore[misc]

    async def reserve(self, reservation: Reservation, now: float) -> Refusal | None:
        return self.reserve_nowait(reservation, now)

    async def settle(
        self, reservation: Reservation, actual: int, now: float, record: UsageRecord | None = None
    ) -> Balances:
        return self.settle_nowait(reservation, actual, now, record)

    async def release(self, reservation: Reservation, now: float) -> Balances:
        return self.release_nowait(reservation, now)

    async def charge(
        self, claims: Sequence[Claim], amount: int, now: float, record: UsageRecord | None = None
    ) -> Balances:
        return self.charge_nowait(claims, amount, now, record)

    async def balances(self, keys: Iterable[str], now: float) -> Balances:
        return self.balances_nowait(keys, now)

    async def aclose(self) -> None:
        return None

    @property
    def open_reservations(self) -> int:
        return sum(1 for _, live in self._open.values() if live)

    def __repr__(self) -> str:
        return f"<MemoryLedger keys={len(self._keys)} open={self.open_reservations}>"


def ledger_from_url(
    url: str, *, key_prefix: str = "aio_llm:budget", connect_timeout: float = 2.0
) -> Ledger:
    """The ledger for ``budget_backend``: ``memory``, a ``redis://`` URL or a SQLite path.

    SQLite paths may be written ``sqlite:///path/to.db`` or as a plain path.
    """
    if url in ("", "memory"):
        return MemoryLedger()
    if url.startswith(("redis://", "rediss://", "unix://")):
        from ._redis import RedisLedger

        return RedisLedger(url, key_prefix=key_prefix, connect_timeout=connect_timeout)
    from ._sqlite import SQLiteLedger

    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
    return SQLiteLedger(path)
