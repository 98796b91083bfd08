"""The in-process ledger keeps memory proportional to the reservations open, not to the
reservations ever made (found by the soak: one dead expiry entry per request for an hour)."""

from __future__ import annotations

import tracemalloc

from aio_llm.cost.ledger import MemoryLedger, Reservation
from aio_llm.cost.ledger._base import Claim


def _cycle(ledger: MemoryLedger, n: int, start: int) -> None:
    claims = (Claim("daily|global|*", 10**12),)
    for i in range(start, start + n):
        res = Reservation(f"r{i}", claims, 100, expires_at=3600.0)
        assert ledger.reserve_nowait(res, 0.0) is None
        if i % 2:
            ledger.settle_nowait(res, 50, 0.0)
        else:
            ledger.release_nowait(res, 0.0)


def test_settled_and_released_reservations_leave_nothing_behind() -> None:
    ledger = MemoryLedger()
    _cycle(ledger, 20_000, 0)  # warm up: the key, the interning of sizes
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        _cycle(ledger, 100_000, 20_000)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert ledger.open_reservations == 0
    # a hundred thousand reservations made and closed within their hour: memory stays put
    assert grown < 64 * 1024, f"{grown} bytes kept for 100,000 closed reservations"
    assert ledger.balances_nowait(["daily|global|*"], 0.0)["daily|global|*"] == (
        50 * 60_000,
        0,
    )
