"""``CostManager``: what was spent, by whom, against which budgets.

Each client owns one (``client.cost_manager``); the ``app.ai`` client's process-wide
``get_cost_manager()`` lives in ``aio_llm.compat``. The ``app.ai`` client's methods are
synchronous and work on in-memory state: ``track_usage``, ``get_metrics``,
``set_budget``, ``get_budget_status``, ``forecast``,
``get_optimization_recommendations``. The ledger-backed operations the
budget middleware needs are async: ``reserve``, ``settle``, ``release``,
``atrack_usage``, ``aget_budget_status``. With the default in-memory ledger
both views are the same; with SQLite or Redis the sync status shows what
this process last saw of the shared ledger.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import anyio

from .._to_the_end import to_the_end
from ..clock import SYSTEM_CLOCK, Clock
from ..config import ClientConfig
from ..errors import BudgetExceededError
from ..types import Usage
from .book import BudgetBook
from .budgets import BudgetAlert, BudgetConfig, BudgetPeriod, budget_status
from .ledger._base import (
    Balances,
    Ledger,
    LedgerUnavailableError,
    Refusal,
    Reservation,
    UsageRecord,
    from_nanos,
    to_nanos,
)
from .ledger._memory import MemoryLedger
from .ledger._url import ledger_from_url
from .metrics import CostMetrics, MetricsBook, UsageRow
from .pricing import PricingTable
from .recommend import Recommendation, recommend

__all__ = ["CostManager"]

logger = logging.getLogger("aio_llm.cost")

SoftLimitCallback = Callable[[BudgetAlert], object]


class CostManager:
    """Tracks spend and enforces budgets for one client (see the module docstring).

    ``fail_open`` decides what happens when a shared ledger cannot be
    reached: refuse the request with ``LedgerUnavailableError`` (default)
    or let it through uncounted. ``on_soft_limit(alert)`` is called once per
    budget and period when its soft limit is passed (sync callables only).
    """

    __slots__ = (
        "_book",
        "_id_prefix",
        "_ids",
        "_callbacks",
        "_clock",
        "_fail_open",
        "_ledger",
        "_memory",
        "_stats",
        "pricing",
        "reservation_ttl",
    )

    def __init__(
        self,
        *,
        pricing: PricingTable | None = None,
        ledger: Ledger | None = None,
        clock: Clock | None = None,
        fail_open: bool = False,
        on_soft_limit: SoftLimitCallback | None = None,
        max_records: int = 10_000,
        reservation_ttl: float = 3600.0,
    ) -> None:
        if max_records <= 0:
            raise ValueError("max_records must be positive")
        if reservation_ttl <= 0:
            raise ValueError("reservation_ttl must be positive")
        self.pricing = pricing if pricing is not None else PricingTable()
        self._ledger: Ledger = ledger if ledger is not None else MemoryLedger()
        self._memory = self._ledger if isinstance(self._ledger, MemoryLedger) else None
        self._clock = clock or SYSTEM_CLOCK
        self._fail_open = fail_open
        self._callbacks: list[SoftLimitCallback] = [on_soft_limit] if on_soft_limit else []
        self.reservation_ttl = reservation_ttl
        """Seconds after which an unsettled reservation (a dead process) stops counting."""
        self._book = BudgetBook()
        self._id_prefix = os.urandom(8).hex() + "-"
        self._ids = itertools.count()
        self._stats = MetricsBook(max_records)

    @classmethod
    def from_config(cls, config: ClientConfig, **kwargs: Any) -> CostManager:
        """A manager with the ledger, fail mode and daily/monthly budgets of ``config``."""
        if "ledger" not in kwargs:
            kwargs["ledger"] = ledger_from_url(config.backend_url(config.budget_backend))
        kwargs.setdefault("fail_open", config.budget_fail_open)
        manager = cls(**kwargs)
        if config.daily_budget is not None:
            manager.set_budget("daily", BudgetConfig(config.daily_budget, BudgetPeriod.DAILY))
        if config.monthly_budget is not None:
            manager.set_budget("monthly", BudgetConfig(config.monthly_budget, BudgetPeriod.MONTHLY))
        return manager

    @property
    def ledger(self) -> Ledger:
        return self._ledger

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def shared_ledger(self) -> bool:
        """True when the ledger is not the in-process one (its operations do I/O)."""
        return self._memory is None

    @property
    def has_budgets(self) -> bool:
        return bool(self._book.budgets)

    def set_budget(self, name: str, config: BudgetConfig) -> None:
        """Add or replace the budget ``name``."""
        self._book.set(name, config)

    def remove_budget(self, name: str) -> None:
        self._book.remove(name)

    def budgets(self) -> dict[str, BudgetConfig]:
        return dict(self._book.budgets)

    def on_soft_limit(self, callback: SoftLimitCallback) -> None:
        """Also call ``callback(BudgetAlert)`` when a budget passes its soft limit."""
        self._callbacks.append(callback)

    # -- ledger-backed operations (the budget middleware) -------------------------------------

    async def reserve(
        self,
        model: str,
        amount: float | None,
        *,
        user_id: str | None = None,
        project: str | None = None,
        ttl: float | None = None,
    ) -> Reservation | None:
        """Set ``amount`` USD aside in every budget that applies, or raise ``BudgetExceededError``.

        Returns ``None`` when no budget applies (nothing to settle). ``amount``
        ``None`` means the cost has no known bound (the model has no price):
        a hard budget refuses it, soft budgets let it through. ``ttl``
        (default ``reservation_ttl``) is how long the reservation counts if
        it is never settled; a provider batch reserves for its whole window.
        """
        now = self._clock.time()
        claims = self._book.claims(model, user_id, project, now)
        if not claims:
            return None
        if amount is None:
            hard = next((c for c in claims if c.limit is not None), None)
            if hard is not None:
                self._stats.refused += 1
                raise BudgetExceededError(
                    f"no price is known for model {model!r}, so the hard budget "
                    f"{hard.key.partition('|')[0]!r} cannot bound what the request may cost; "
                    "register its price (PricingTable.register) or make the budget soft",
                    budget=hard.key,
                )
            amount = 0.0
        ttl = self.reservation_ttl if ttl is None else ttl
        rid = f"{self._id_prefix}{next(self._ids)}"
        res = Reservation(rid, claims, to_nanos(amount, ceil=True), now + ttl)
        try:
            if self._memory is not None:  # never suspends: nothing can cancel it half-way
                refusal = self._memory.reserve_nowait(res, now)
            else:
                refusal = await self._reserve_shared(res, now)
        except LedgerUnavailableError:
            self._stats.ledger_errors += 1
            if self._fail_open:
                logger.warning("budget ledger unreachable: admitting the request (fail open)")
                return None
            raise
        if refusal is not None:
            self._stats.refused += 1
            raise _refused(refusal, amount)
        self._stats.reserved += 1
        return res

    async def _reserve_shared(self, res: Reservation, now: float) -> Refusal | None:
        """Reserve on a shared ledger; a cancelled caller leaves nothing reserved.

        The ledger call runs to its end even when the caller is cancelled
        (``to_the_end``); it may then have reserved, so the reservation is
        released (a no-op if it was not made) before the cancellation goes on.
        """
        try:
            return await to_the_end(self._ledger.reserve(res, now))
        except BaseException as exc:
            if isinstance(exc, anyio.get_cancelled_exc_class()):
                with contextlib.suppress(Exception):
                    await to_the_end(self._ledger.release(res, now))
            raise

    async def settle(self, reservation: Reservation | None, record: UsageRecord) -> None:
        """Charge ``record`` (its real cost) and close ``reservation``; committed on return."""
        now = self._clock.time()
        actual = record_cost_nanos(record)
        self._stats.add(record)
        try:
            if reservation is not None:
                settle = self._ledger.settle(reservation, actual, now, record)
                balances = await settle if self._memory is not None else await to_the_end(settle)
                self._observe(balances, now)
            elif self._memory is None:
                claims = self._book.claims(record.model, record.user_id, record.project, now)
                charge = self._ledger.charge(claims, actual, now, record)
                self._observe(await to_the_end(charge), now)
            elif self._book.budgets:
                claims = self._book.claims(record.model, record.user_id, record.project, now)
                self._observe(self._memory.charge_nowait(claims, actual, now, record), now)
        except LedgerUnavailableError as exc:
            self._stats.ledger_errors += 1
            logger.warning("could not record $%s in the budget ledger: %s", record.cost, exc)

    async def settle_many(
        self, reservation: Reservation | None, records: Sequence[UsageRecord], summary: UsageRecord
    ) -> None:
        """Settle one reservation that covered many requests (a provider batch).

        Each of ``records`` is counted in the metrics; the ledger is charged
        their total once, with ``summary`` (the batch as one usage row) as
        its record. Committed on return.
        """
        now = self._clock.time()
        for record in records:
            self._stats.add(record)
        actual = sum(record_cost_nanos(r) for r in records)
        try:
            if reservation is not None:
                self._observe(await self._ledger.settle(reservation, actual, now, summary), now)
            elif self._book.budgets or self._memory is None:
                claims = self._book.claims(summary.model, summary.user_id, summary.project, now)
                self._observe(await self._ledger.charge(claims, actual, now, summary), now)
        except LedgerUnavailableError as exc:
            self._stats.ledger_errors += 1
            logger.warning("could not record $%s in the budget ledger: %s", summary.cost, exc)

    def record_nowait(self, row: UsageRow) -> None:
        """``settle(None, UsageRecord(*row))`` on the in-process ledger, without an await."""
        memory = self._memory
        if memory is None:
            raise RuntimeError("record_nowait needs the in-process ledger; await settle()")
        self._stats.add_row(row)
        if self._book.budgets:
            record = UsageRecord(*row)
            now = self._clock.time()
            claims = self._book.claims(record.model, record.user_id, record.project, now)
            self._observe(memory.charge_nowait(claims, record_cost_nanos(record), now, record), now)

    async def release(self, reservation: Reservation | None) -> None:
        """Drop ``reservation``: the request failed before it cost anything."""
        if reservation is None:
            return
        self._stats.released += 1
        now = self._clock.time()
        try:
            release = self._ledger.release(reservation, now)
            balances = await release if self._memory is not None else await to_the_end(release)
            self._book.observe(balances, now, alert=False)
        except LedgerUnavailableError as exc:
            self._stats.ledger_errors += 1
            logger.warning("could not release a budget reservation: %s", exc)

    def _observe(self, balances: Balances, now: float) -> None:
        for alert in self._book.observe(balances, now):
            who = "" if alert.scope_value is None else f" for {alert.scope_value!r}"
            logger.warning(
                "budget %r%s passed its soft limit: $%.4f of $%.2f (%.1f%%)",
                alert.budget,
                who,
                alert.spent,
                alert.limit,
                alert.percentage,
            )
            for callback in self._callbacks:
                try:
                    result = callback(alert)
                    if inspect.iscoroutine(result):
                        result.close()
                        logger.warning("soft-limit callbacks must be synchronous; ignored")
                except Exception:
                    logger.exception("soft-limit callback failed")

    # -- tracking (``app.ai`` API) ----------------------------------------------------------

    def _make_record(self, model: str, inp: int, out: int, **kw: Any) -> UsageRecord:
        cost = kw.pop("cost", None)
        provider_cost = kw.pop("provider_cost", None)
        if cost is None:
            usage = Usage.model_construct(
                input_tokens=inp,
                output_tokens=out,
                total_tokens=inp + out,
                cached_input_tokens=kw.get("cached_input_tokens", 0),
                cache_creation_input_tokens=kw.get("cache_creation_input_tokens", 0),
                reasoning_tokens=kw.get("reasoning_tokens", 0),
                provider_cost=provider_cost,
            )
            cost = self.pricing.cost(model, usage)
        metadata = kw.pop("metadata", None) or {}
        return UsageRecord(model, inp, out, cost, self._clock.time(), metadata=metadata, **kw)

    def track_usage(
        self,
        model: str,
        input_tokens: int,
        output_tokens: int,
        user_id: str | None = None,
        project: str | None = None,
        **details: Any,
    ) -> UsageRecord:
        """Record one use of ``model`` and return it (``record.cost`` in USD, ``None`` if unknown).

        ``details`` may carry ``cached_input_tokens``, ``cache_creation_input_tokens``,
        ``reasoning_tokens``, ``cost`` (USD, skips the price table), ``provider_cost``,
        ``response_id``, ``provider``, ``metadata``. The spend counts against the
        budgets at once with the in-memory ledger; use ``atrack_usage`` for SQLite/Redis.
        """
        record = self._make_record(
            model, input_tokens, output_tokens, user_id=user_id, project=project, **details
        )
        self._stats.add(record)
        if self._memory is not None and self._book.budgets:
            now = record.timestamp
            claims = self._book.claims(model, user_id, project, now)
            amount = 0 if record.cost is None else to_nanos(record.cost)
            self._observe(self._memory.charge_nowait(claims, amount, now, record), now)
        return record

    async def atrack_usage(
        self,
        model: str,
        input_tokens: int,
        output_tokens: int,
        user_id: str | None = None,
        project: str | None = None,
        **details: Any,
    ) -> UsageRecord:
        """``track_usage`` that also charges a SQLite or Redis ledger."""
        record = self._make_record(
            model, input_tokens, output_tokens, user_id=user_id, project=project, **details
        )
        await self.settle(None, record)
        return record

    def get_metrics(self) -> CostMetrics:
        """Totals so far: cost, requests and tokens, by model, user and project."""
        return self._stats.snapshot()

    def metrics(self) -> dict[str, object]:
        """``app.ai``'s metric names (``cost.total``, ``cost.by_model``, ...), budget counters."""
        return self._stats.metric_dict()

    def get_optimization_recommendations(self) -> list[Recommendation]:
        """Concrete ways to spend less, drawn from the recorded usage (largest saving first)."""
        return recommend(self._stats.records, self.pricing)

    # -- status -------------------------------------------------------------------------------

    def get_budget_status(self, name: str, scope_value: str | None = None) -> dict[str, Any]:
        """Spent, reserved, limit, percentage, remaining, resets_at and forecast of a budget.

        ``name`` may also be a period (``"daily"``) naming the global budget of that period.
        """
        name, cfg = self._book.resolve(name)
        now = self._clock.time()
        keys = self._book.status_keys(name, cfg, scope_value, now)
        if self._memory is not None:
            balances = self._memory.balances_nowait(keys, now)
        else:
            balances = {k: self._book.balances.get(k, (0, 0)) for k in keys}
        return budget_status(name, cfg, balances, self._book.period(cfg.period, now)[:2], now)

    async def aget_budget_status(self, name: str, scope_value: str | None = None) -> dict[str, Any]:
        """``get_budget_status`` read from the (shared) ledger."""
        name, cfg = self._book.resolve(name)
        now = self._clock.time()
        keys = self._book.status_keys(name, cfg, scope_value, now)
        balances = await self._ledger.balances(keys, now)
        self._book.observe(balances, now, alert=False)
        return budget_status(name, cfg, balances, self._book.period(cfg.period, now)[:2], now)

    def forecast(self, name: str, scope_value: str | None = None) -> float | None:
        """The spend the budget's period ends at if the current rate holds (None for TOTAL)."""
        forecast: float | None = self.get_budget_status(name, scope_value)["forecast"]
        return forecast

    def statistics(self) -> CostMetrics:
        return self._stats.snapshot()

    async def aclose(self) -> None:
        """Close the ledger's connections."""
        await self._ledger.aclose()

    def __repr__(self) -> str:
        s = self._stats
        return (
            f"<CostManager total=${s.total_cost:.4f} requests={s.requests} "
            f"budgets={sorted(self._book.budgets)} ledger={type(self._ledger).__name__}>"
        )


def _refused(refusal: Refusal, amount: float) -> BudgetExceededError:
    name, _, value = refusal.claim.key.split("|", 2)
    limit = from_nanos(refusal.claim.limit or 0)
    spent, reserved = from_nanos(refusal.spent), from_nanos(refusal.reserved)
    who = "" if value == "*" else f" for {value!r}"
    return BudgetExceededError(
        f"budget {name!r}{who} would be exceeded: spent ${spent:.6f} + reserved "
        f"${reserved:.6f} + up to ${amount:.6f} for this request > limit ${limit:.2f}",
        budget=name,
        limit=limit,
        spent=spent,
        reserved=reserved,
        requested=amount,
    )


def record_cost_nanos(record: UsageRecord) -> int:
    return 0 if record.cost is None else to_nanos(record.cost)
