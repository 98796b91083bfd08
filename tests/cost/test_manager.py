"""CostManager: the seed API, metrics, budgets over UTC periods, soft limits, recommendations."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from aio_llm.compat import get_cost_manager
from aio_llm.config import ClientConfig
from aio_llm.cost import (
    BudgetAlert,
    BudgetConfig,
    BudgetPeriod,
    BudgetScope,
    CostManager,
    period_bounds,
)
from aio_llm.cost.ledger import MemoryLedger
from aio_llm.errors import BudgetExceededError
from aio_llm.testing.clock import FakeClock

UTC = dt.UTC


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


def clock_at(ts: float) -> FakeClock:
    return FakeClock(start=1000.0, wall_start=ts)


def test_seed_api_works_as_documented() -> None:
    manager = get_cost_manager()
    assert get_cost_manager() is manager
    manager.set_budget("daily_budget", BudgetConfig(limit=100.0, period=BudgetPeriod.DAILY))
    record = manager.track_usage(
        model="gpt-4", input_tokens=1000, output_tokens=500, user_id="user123"
    )
    assert record.cost == pytest.approx(0.06)  # 1000 * $30/M + 500 * $60/M
    metrics = manager.get_metrics()
    assert metrics.total_cost >= 0.06
    assert metrics["total_cost"] == metrics.total_cost
    recs = manager.get_optimization_recommendations()
    assert any(r.kind == "cheaper_model" and r.model == "gpt-4" for r in recs)
    status = manager.get_budget_status("daily")
    assert status["name"] == "daily_budget"
    assert status["percentage"] == pytest.approx(100 * status["spent"] / 100.0)
    manager.remove_budget("daily_budget")


def test_metrics_by_model_user_project_and_seed_metric_names() -> None:
    m = CostManager(clock=FakeClock())
    m.track_usage("gpt-4o", 1000, 100, user_id="ann", project="web")
    m.track_usage("gpt-4o-mini", 2000, 200, user_id="bob", project="web")
    m.track_usage("acme/unknown", 10, 10, user_id="bob")
    metrics = m.get_metrics()
    a, b = (1000 * 2.5 + 100 * 10) / 1e6, (2000 * 0.15 + 200 * 0.6) / 1e6
    assert metrics.total_cost == pytest.approx(a + b)
    assert metrics.total_requests == 3 and metrics.unpriced_requests == 1
    assert metrics.by_model == {
        "gpt-4o": pytest.approx(a),
        "gpt-4o-mini": pytest.approx(b),
        "acme/unknown": 0.0,
    }
    assert metrics.by_user == {"ann": pytest.approx(a), "bob": pytest.approx(b)}
    assert metrics.by_project == {"web": pytest.approx(a + b)}
    assert metrics.total_input_tokens == 3010
    flat = m.metrics()
    assert flat["cost.total"] == pytest.approx(a + b)
    assert flat["cost.requests"] == 3
    assert set(flat) >= {"cost.total", "cost.by_model", "cost.by_user", "cost.requests"}


def test_track_usage_with_cached_tokens_and_explicit_cost() -> None:
    m = CostManager(clock=FakeClock())
    r = m.track_usage("claude-sonnet-4-5", 10_000, 100, cached_input_tokens=9_000)
    assert r.cost == pytest.approx((1000 * 3 + 9000 * 0.3 + 100 * 15) / 1e6)
    r2 = m.track_usage("anything", 1, 1, cost=0.5, response_id="r-1")
    assert r2.cost == 0.5 and r2.response_id == "r-1"


@pytest.mark.parametrize(
    ("period", "now", "start", "end"),
    [
        (BudgetPeriod.DAILY, at(2026, 3, 31, 23, 59, 59), at(2026, 3, 31), at(2026, 4, 1)),
        (BudgetPeriod.WEEKLY, at(2026, 1, 1, 12), at(2025, 12, 29), at(2026, 1, 5)),
        (BudgetPeriod.MONTHLY, at(2026, 12, 15), at(2026, 12, 1), at(2027, 1, 1)),
        (BudgetPeriod.MONTHLY, at(2028, 2, 29, 8), at(2028, 2, 1), at(2028, 3, 1)),
    ],
)
def test_period_bounds_follow_utc_calendar(
    period: BudgetPeriod, now: float, start: float, end: float
) -> None:
    assert period_bounds(period, now) == (start, end)
    assert period_bounds(BudgetPeriod.TOTAL, now) == (0.0, None)


def test_daily_budget_resets_at_utc_midnight() -> None:
    clock = clock_at(at(2026, 5, 10, 23, 59, 0))
    m = CostManager(clock=clock)
    m.set_budget("daily", BudgetConfig(1.0, BudgetPeriod.DAILY))
    m.track_usage("gpt-4o", 100_000, 0)  # $0.25
    status = m.get_budget_status("daily")
    assert status["spent"] == pytest.approx(0.25)
    assert status["percentage"] == pytest.approx(25.0)
    assert status["resets_at"] == "2026-05-11T00:00:00Z"
    assert status["period_start"] == "2026-05-10T00:00:00Z"
    clock.advance(59.0)  # 23:59:59, same day
    assert m.get_budget_status("daily")["spent"] == pytest.approx(0.25)
    clock.advance(1.0)  # midnight UTC: a new period
    status = m.get_budget_status("daily")
    assert status["spent"] == 0.0 and status["resets_at"] == "2026-05-12T00:00:00Z"


def test_monthly_and_total_budgets() -> None:
    clock = clock_at(at(2026, 1, 31, 22))
    m = CostManager(clock=clock)
    m.set_budget("month", BudgetConfig(10.0, BudgetPeriod.MONTHLY))
    m.set_budget("ever", BudgetConfig(10.0, BudgetPeriod.TOTAL))
    m.track_usage("gpt-4o", 0, 100_000)  # $1
    clock.advance(3 * 3600)  # February
    m.track_usage("gpt-4o", 0, 100_000)
    assert m.get_budget_status("month")["spent"] == pytest.approx(1.0)
    ever = m.get_budget_status("ever")
    assert ever["spent"] == pytest.approx(2.0)
    assert ever["resets_at"] is None and ever["forecast"] is None


def test_status_of_unknown_budget_names_the_known_ones() -> None:
    m = CostManager()
    m.set_budget("a", BudgetConfig(1.0))
    with pytest.raises(KeyError, match="'a'"):
        m.get_budget_status("weekly")


def test_soft_limit_fires_once_per_period_with_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = clock_at(at(2026, 2, 1, 10))
    alerts: list[BudgetAlert] = []
    m = CostManager(clock=clock, on_soft_limit=alerts.append)
    m.set_budget("daily", BudgetConfig(1.0, soft_limit=0.5))
    with caplog.at_level(logging.WARNING, logger="aio_llm.cost"):
        m.track_usage("gpt-4o", 0, 40_000)  # $0.40
        assert alerts == []
        m.track_usage("gpt-4o", 0, 20_000)  # $0.60 > 50%
        m.track_usage("gpt-4o", 0, 20_000)  # $0.80, same period: no second alert
        assert len(alerts) == 1
        assert alerts[0].budget == "daily" and alerts[0].spent == pytest.approx(0.6)
        assert alerts[0].percentage == pytest.approx(60.0)
        clock.advance(86400)  # next UTC day
        m.track_usage("gpt-4o", 0, 60_000)
        assert len(alerts) == 2
    lines = [r for r in caplog.records if "soft limit" in r.getMessage()]
    assert len(lines) == 2
    assert m.get_budget_status("daily")["soft_limit_reached"] is True


def test_forecast_extrapolates_the_current_rate() -> None:
    clock = clock_at(at(2026, 4, 1, 6))  # a quarter into the day
    m = CostManager(clock=clock)
    m.set_budget("daily", BudgetConfig(5.0))
    m.track_usage("gpt-4o", 0, 100_000)  # $1 in 6 hours
    assert m.forecast("daily") == pytest.approx(4.0)
    assert m.get_budget_status("daily")["forecast_exceeds"] is False
    m.track_usage("gpt-4o", 0, 100_000)
    assert m.get_budget_status("daily")["forecast_exceeds"] is True


async def _reserve(
    m: CostManager, amount: float, *, user_id: str | None = None, project: str | None = None
) -> object:
    return await m.reserve("gpt-4o", amount, user_id=user_id, project=project)


@pytest.mark.anyio
async def test_user_scoped_budget_limits_each_user_apart() -> None:
    m = CostManager(clock=FakeClock())
    m.set_budget("per_user", BudgetConfig(1.0, scope=BudgetScope.USER))
    a = await m.reserve("gpt-4o", 0.9, user_id="ann")
    b = await m.reserve("gpt-4o", 0.9, user_id="bob")
    assert a is not None and b is not None
    with pytest.raises(BudgetExceededError) as err:
        await m.reserve("gpt-4o", 0.2, user_id="ann")
    assert err.value.budget == "per_user" and err.value.limit == pytest.approx(1.0)
    assert err.value.reserved == pytest.approx(0.9)
    assert await m.reserve("gpt-4o", 5.0, user_id=None) is None  # no user: budget n/a
    status = m.get_budget_status("per_user", scope_value="ann")
    assert status["reserved"] == pytest.approx(0.9) and status["limit"] == 1.0


@pytest.mark.anyio
async def test_project_budget_with_target_and_model_budget() -> None:
    m = CostManager(clock=FakeClock())
    m.set_budget("web", BudgetConfig(0.1, scope=BudgetScope.PROJECT, target="web"))
    m.set_budget("gpt4", BudgetConfig(0.1, scope=BudgetScope.MODEL, target="gpt-4"))
    with pytest.raises(BudgetExceededError, match="'web'"):
        await m.reserve("gpt-4o", 0.2, project="web")
    assert await m.reserve("gpt-4o", 0.2, project="mobile") is None
    with pytest.raises(BudgetExceededError, match="'gpt4'"):
        await m.reserve("gpt-4", 0.2)


def test_budget_config_validation() -> None:
    with pytest.raises(ValueError):
        BudgetConfig(-1.0)
    with pytest.raises(ValueError):
        BudgetConfig(1.0, soft_limit=1.5)
    with pytest.raises(ValueError):
        BudgetConfig(1.0, target="x")
    with pytest.raises(ValueError):
        CostManager().set_budget("a|b", BudgetConfig(1.0))
    assert BudgetConfig(1.0, period="weekly").period is BudgetPeriod.WEEKLY  # type: ignore[arg-type]


def test_from_config_reads_daily_and_monthly_budgets(monkeypatch: pytest.MonkeyPatch) -> None:
    config = ClientConfig.from_env({"LLM_DAILY_BUDGET": "2.5", "LLM_MONTHLY_BUDGET": "40"})
    m = CostManager.from_config(config, clock=FakeClock())
    assert isinstance(m.ledger, MemoryLedger)
    assert m.budgets()["daily"].limit == 2.5
    assert m.budgets()["monthly"].period is BudgetPeriod.MONTHLY
    assert m.get_budget_status("monthly")["limit"] == 40.0


def test_recommendations_from_repeated_prompts_and_repeated_context() -> None:
    m = CostManager(clock=FakeClock())
    context = 5000
    for i in range(5):
        m.track_usage(
            "gpt-4.1-nano", context + 50, 100, prompt_hash=7, prefix_hash=99, prefix_tokens=context
        )
        m.track_usage("gpt-4o", 1000 + i, 100, prompt_hash=100 + i)
    recs = m.get_optimization_recommendations()
    kinds = {r.kind: r for r in recs}
    cache = kinds["response_cache"]
    nano_cost = ((context + 50) * 0.1 + 100 * 0.4) / 1e6
    assert cache.details["repeats"] == 4
    assert cache.estimated_savings == pytest.approx(4 * nano_cost)
    prompt = kinds["prompt_caching"]
    assert prompt.model == "gpt-4.1-nano"
    assert prompt.estimated_savings == pytest.approx(4 * context * (0.1 - 0.025) / 1e6)
    cheaper = kinds["cheaper_model"]
    assert cheaper.model == "gpt-4o" and cheaper.details["alternative"] == "gpt-4o-mini"
    assert [r.estimated_savings for r in recs] == sorted(
        (r.estimated_savings for r in recs), reverse=True
    )
    assert "gpt-4o-mini" in str(cheaper)


def test_no_recommendation_without_data() -> None:
    assert CostManager().get_optimization_recommendations() == []


def test_reprs_show_live_state() -> None:
    m = CostManager(clock=FakeClock())
    m.set_budget("d", BudgetConfig(1.0))
    m.track_usage("gpt-4o", 0, 1000)
    assert "requests=1" in repr(m) and "'d'" in repr(m)
    assert "keys=1" in repr(m.ledger)


def test_recent_usage_is_kept_as_rows_the_collector_stops_tracking() -> None:
    import gc

    from aio_llm.cost.ledger import UsageRecord
    from aio_llm.cost.metrics import MetricsBook

    book = MetricsBook(3)
    plain = UsageRecord("m", 1, 2, 0.5, 1.0, user_id="u", prompt_hash=7)
    book.add(plain)
    gc.collect()
    assert not gc.is_tracked(book._recent[0])  # walked by no later collection
    assert book.records == [plain]
    tagged = UsageRecord("m", 1, 2, 0.5, 2.0, metadata={"k": 1})
    book.add(tagged)
    assert book.records[-1] is tagged  # metadata kept: the record itself
    for _ in range(3):
        book.add(plain)
    assert len(book.records) == 3 and book.requests == 5 and book.by_user == {"u": 2.0}
