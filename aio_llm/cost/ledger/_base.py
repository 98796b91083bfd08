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
its spend. Backends, one module each: ``MemoryLedger`` (one process),
``SQLiteLedger`` (embedded, durable, several processes on one host) and
``RedisLedger`` (many processes and hosts); ``ledger_from_url`` picks one.
"""

from __future__ import annotations

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
    "Refusal",
    "Reservation",
    "UsageRecord",
    "from_nanos",
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
