"""Budget definitions: ``BudgetConfig``, its period and scope, and UTC calendar periods.

A budget caps the spend of one period (a UTC day, ISO week, month, or all
time) for everything (``GLOBAL``) or separately for each user, project or
model. Periods follow UTC calendar boundaries of ``Clock.time()``, so two
processes agree on when "today" ends.
"""

from __future__ import annotations

import datetime as _dt
import enum
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BudgetAlert",
    "budget_status",
    "BudgetConfig",
    "BudgetPeriod",
    "BudgetScope",
    "period_bounds",
]

_UTC = _dt.UTC


class BudgetPeriod(enum.StrEnum):
    """How often a budget starts afresh (UTC calendar boundaries)."""

    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    TOTAL = "total"


class BudgetScope(enum.StrEnum):
    """What a budget's limit applies to: everything, or each user/project/model apart."""

    GLOBAL = "global"
    USER = "user"
    PROJECT = "project"
    MODEL = "model"


@dataclass(frozen=True, slots=True)
class BudgetConfig:
    """A spending limit in USD.

    ``limit`` is hard: a request whose worst-case cost would cross it is
    refused with ``BudgetExceededError`` before anything is sent (set
    ``hard=False`` to only warn). ``soft_limit`` is the fraction of
    ``limit`` at which the soft-limit callback fires, once per period.
    With a ``scope`` other than ``GLOBAL`` every user (project, model) gets
    its own ``limit``; ``target`` restricts the budget to one of them.
    """

    limit: float
    period: BudgetPeriod = BudgetPeriod.DAILY
    scope: BudgetScope = BudgetScope.GLOBAL
    soft_limit: float | None = 0.8
    target: str | None = None
    hard: bool = True

    def __post_init__(self) -> None:
        if not self.limit >= 0:
            raise ValueError("limit must be a non-negative number of USD")
        if self.soft_limit is not None and not 0 < self.soft_limit <= 1:
            raise ValueError("soft_limit must be a fraction in (0, 1]")
        object.__setattr__(self, "period", BudgetPeriod(self.period))
        object.__setattr__(self, "scope", BudgetScope(self.scope))
        if self.target is not None and self.scope is BudgetScope.GLOBAL:
            raise ValueError("target needs a user, project or model scope")


@dataclass(frozen=True, slots=True)
class BudgetAlert:
    """What the soft-limit callback receives."""

    budget: str
    scope_value: str | None
    spent: float
    limit: float
    percentage: float
    period_start: float


def period_bounds(period: BudgetPeriod, now: float) -> tuple[float, float | None]:
    """Start and end (epoch seconds, UTC) of the period containing ``now``.

    ``TOTAL`` starts at 0 and never ends (``None``).
    """
    if period is BudgetPeriod.TOTAL:
        return 0.0, None
    moment = _dt.datetime.fromtimestamp(now, _UTC)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period is BudgetPeriod.DAILY:
        start, end = day, day + _dt.timedelta(days=1)
    elif period is BudgetPeriod.WEEKLY:
        start = day - _dt.timedelta(days=day.weekday())
        end = start + _dt.timedelta(days=7)
    else:
        start = day.replace(day=1)
        end = (
            start.replace(year=start.year + 1, month=1)
            if start.month == 12
            else start.replace(month=start.month + 1)
        )
    return start.timestamp(), end.timestamp()


def period_label(period: BudgetPeriod, start: float) -> str:
    """A short, sortable name of a period: ``2026-01-05``, ``2026-01``, ``total``."""
    if period is BudgetPeriod.TOTAL:
        return "total"
    moment = _dt.datetime.fromtimestamp(start, _UTC)
    if period is BudgetPeriod.MONTHLY:
        return moment.strftime("%Y-%m")
    return moment.strftime("%Y-%m-%d")


def iso(ts: float | None) -> str | None:
    """``ts`` as an ISO 8601 UTC string."""
    if ts is None:
        return None
    return _dt.datetime.fromtimestamp(ts, _UTC).isoformat().replace("+00:00", "Z")


def budget_status(
    name: str,
    cfg: BudgetConfig,
    balances: dict[str, tuple[int, int]],
    bounds: tuple[float, float | None],
    now: float,
) -> dict[str, Any]:
    """The status dict of a budget from its ledger ``balances`` (nano-dollars) at ``now``.

    The forecast extrapolates the spend rate since the period started (at
    least one minute) to the end of the period.
    """
    spent = sum(s for s, _ in balances.values()) / 1e9
    reserved = sum(r for _, r in balances.values()) / 1e9
    start, end = bounds
    limit = cfg.limit * max(len(balances), 1)
    forecast = None
    if end is not None:
        forecast = spent + spent / max(now - start, 60.0) * max(end - now, 0.0)
    scoped = cfg.scope is not BudgetScope.GLOBAL
    return {
        "name": name,
        "period": cfg.period.value,
        "scope": cfg.scope.value,
        "limit": limit,
        "spent": spent,
        "reserved": reserved,
        "remaining": max(limit - spent - reserved, 0.0),
        "percentage": 100.0 * spent / limit if limit else (100.0 if spent else 0.0),
        "soft_limit": cfg.soft_limit,
        "soft_limit_reached": cfg.soft_limit is not None and spent >= cfg.soft_limit * limit,
        "exceeded": spent >= limit if limit else spent > 0,
        "period_start": iso(start),
        "resets_at": iso(end),
        "forecast": forecast,
        "forecast_exceeds": forecast is not None and forecast > limit,
        "by_scope": {k.split("|", 2)[2]: s / 1e9 for k, (s, _) in balances.items()}
        if scoped
        else {},
    }
