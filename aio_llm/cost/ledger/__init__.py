"""Ledgers: where budgets keep spend and reservations (memory, SQLite, Redis)."""

from __future__ import annotations

from ._base import (
    Balances,
    Claim,
    Ledger,
    LedgerUnavailableError,
    MemoryLedger,
    Refusal,
    Reservation,
    UsageRecord,
    from_nanos,
    ledger_from_url,
    to_nanos,
)
from ._sqlite import (
    SQLiteLedger,
)

__all__ = [
    "Balances",
    "Claim",
    "Ledger",
    "LedgerUnavailableError",
    "MemoryLedger",
    "Refusal",
    "Reservation",
    "SQLiteLedger",
    "UsageRecord",
    "from_nanos",
    "ledger_from_url",
    "to_nanos",
]
