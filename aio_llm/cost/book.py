"""``BudgetBook``: the sync bookkeeping behind a ``CostManager``'s budgets.

It knows the configured budgets, turns a request into the ledger keys it
counts against (``name|period|scope value``), remembers the balances it
last saw and decides when a soft limit is passed (once per key, and keys
change with the period). Time is always passed in as ``now``.
"""

from __future__ import annotations

from .budgets import (
    BudgetAlert,
    BudgetConfig,
    BudgetPeriod,
    BudgetScope,
    period_bounds,
    period_label,
)
from .ledger._base import Balances, Claim, to_nanos

__all__ = ["BudgetBook"]

_MAX_ALERTED = 10_000
_MAX_CACHED = 4096


class BudgetBook:
    """Budgets by name, the keys requests count against, and soft-limit detection."""

    __slots__ = (
        "_alerted",
        "_cache",
        "_cache_until",
        "_periods",
        "balances",
        "budgets",
        "scope_values",
    )

    def __init__(self) -> None:
        self.budgets: dict[str, BudgetConfig] = {}
        self.balances: Balances = {}
        """The last balances seen per key (shared ledgers: what this process last read)."""
        self.scope_values: dict[str, set[str]] = {}
        self._periods: dict[BudgetPeriod, tuple[float, float | None, str]] = {}
        self._alerted: set[str] = set()
        self._cache: dict[tuple[str, str | None, str | None], tuple[Claim, ...]] = {}
        self._cache_until = 0.0

    def set(self, name: str, config: BudgetConfig) -> None:
        if not name or "|" in name:
            raise ValueError("a budget name must be non-empty and must not contain '|'")
        if not isinstance(config, BudgetConfig):
            raise TypeError("config must be a BudgetConfig")
        self.budgets[name] = config
        self._cache.clear()

    def remove(self, name: str) -> None:
        self.budgets.pop(name, None)
        self._cache.clear()

    def period(self, period: BudgetPeriod, now: float) -> tuple[float, float | None, str]:
        """Start, end and label of the period containing ``now`` (cached until it ends)."""
        cached = self._periods.get(period)
        if cached is not None and (cached[1] is None or cached[0] <= now < cached[1]):
            return cached
        start, end = period_bounds(period, now)
        entry = (start, end, period_label(period, start))
        self._periods[period] = entry
        return entry

    def claims(
        self, model: str, user_id: str | None, project: str | None, now: float
    ) -> tuple[Claim, ...]:
        """The keys a request by ``user_id`` for ``project`` on ``model`` counts against."""
        cache_key = (model, user_id, project)
        if now < self._cache_until:
            cached = self._cache.get(cache_key)
            if cached is not None:
                return cached
        else:
            self._cache.clear()
            self._cache_until = float("inf")
        claims = []
        for name, cfg in self.budgets.items():
            scope = cfg.scope
            value = None
            if scope is BudgetScope.USER:
                value = user_id
            elif scope is BudgetScope.PROJECT:
                value = project
            elif scope is BudgetScope.MODEL:
                value = model
            if scope is not BudgetScope.GLOBAL and (
                value is None or (cfg.target is not None and value != cfg.target)
            ):
                continue
            _, end, label = self.period(cfg.period, now)
            key = f"{name}|{label}|{'*' if value is None else value}"
            claims.append(Claim(key, to_nanos(cfg.limit) if cfg.hard else None, end))
            if end is not None and end < self._cache_until:
                self._cache_until = end
        result = tuple(claims)
        if len(self._cache) >= _MAX_CACHED:
            self._cache.clear()
        self._cache[cache_key] = result
        return result

    def observe(self, balances: Balances, now: float, *, alert: bool = True) -> list[BudgetAlert]:
        """Remember ``balances``; return the soft limits they pass for the first time."""
        self.balances.update(balances)
        fired: list[BudgetAlert] = []
        if not alert:
            return fired
        for key, (spent, _) in balances.items():
            name, _, value = key.split("|", 2)
            if value != "*":
                self.scope_values.setdefault(name, set()).add(value)
            cfg = self.budgets.get(name)
            if cfg is None or cfg.soft_limit is None or key in self._alerted:
                continue
            usd = spent / 1e9
            if usd >= cfg.soft_limit * cfg.limit:
                if len(self._alerted) >= _MAX_ALERTED:
                    self._alerted.clear()
                self._alerted.add(key)
                start, _, _ = self.period(cfg.period, now)
                pct = 100.0 * usd / cfg.limit if cfg.limit else 100.0
                fired.append(
                    BudgetAlert(name, None if value == "*" else value, usd, cfg.limit, pct, start)
                )
        return fired

    def resolve(self, name: str) -> tuple[str, BudgetConfig]:
        """The budget called ``name``, or the global budget of the period ``name`` names."""
        cfg = self.budgets.get(name)
        if cfg is not None:
            return name, cfg
        try:
            period: BudgetPeriod | None = BudgetPeriod(name.lower())
        except ValueError:
            period = None
        for other, cfg in self.budgets.items():
            if cfg.period is period and cfg.scope is BudgetScope.GLOBAL:
                return other, cfg
        raise KeyError(f"no budget named {name!r} (budgets: {sorted(self.budgets)})")

    def status_keys(
        self, name: str, cfg: BudgetConfig, scope_value: str | None, now: float
    ) -> list[str]:
        """The keys whose balances make up the status of ``name`` in the current period."""
        _, _, label = self.period(cfg.period, now)
        if cfg.scope is BudgetScope.GLOBAL:
            return [f"{name}|{label}|*"]
        if scope_value is not None:
            values = [scope_value]
        else:
            values = sorted(self.scope_values.get(name, ()))
        return [f"{name}|{label}|{v}" for v in values]
