"""Cost management: the price table, ``CostManager``, budgets and their ledgers."""

from .budgets import BudgetAlert, BudgetConfig, BudgetPeriod, BudgetScope, period_bounds
from .ledger._base import (
    Ledger,
    LedgerUnavailableError,
    MemoryLedger,
    Reservation,
    UsageRecord,
    ledger_from_url,
)
from .ledger._sqlite import SQLiteLedger
from .manager import CostManager, get_cost_manager
from .metrics import CostMetrics
from .pricing import ModelPrice, PricingTable, default_pricing
from .recommend import Recommendation

__all__ = [
    "BudgetAlert",
    "BudgetConfig",
    "BudgetPeriod",
    "BudgetScope",
    "CostManager",
    "CostMetrics",
    "Ledger",
    "LedgerUnavailableError",
    "MemoryLedger",
    "ModelPrice",
    "PricingTable",
    "Recommendation",
    "Reservation",
    "SQLiteLedger",
    "UsageRecord",
    "default_pricing",
    "get_cost_manager",
    "ledger_from_url",
    "period_bounds",
]


def __getattr__(name: str) -> object:
    if name == "RedisLedger":  # imported lazily: it needs the optional redis package
        from .ledger._redis import RedisLedger

        return RedisLedger
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
