"""``MemoryLedger``: a budget ledger in this process's memory (see ``aio_llm.cost.ledger``)."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence

from ._base import Balances, Claim, Refusal, Reservation, UsageRecord

__all__ = ["MemoryLedger"]


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
