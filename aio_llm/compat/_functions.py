"""The ``app.ai`` client's module-level helpers, on the process defaults.

Re-exported by ``aio_llm.facade``.

``track_usage``, ``get_metrics``, ``get_budget_status`` and
``get_optimization_recommendations`` act on ``get_cost_manager()``;
``trace_operation``, ``finish_operation`` and ``get_dashboard_data`` on
``get_observability()``.
"""

from __future__ import annotations

from typing import Any

from ..cost.ledger._base import UsageRecord
from ..cost.metrics import CostMetrics
from ..cost.recommend import Recommendation
from ..middleware.tracing._observability import Operation
from ._defaults import get_cost_manager as _get_cost_manager
from ._defaults import get_observability as _get_observability

__all__ = [
    "finish_operation",
    "get_budget_status",
    "get_dashboard_data",
    "get_metrics",
    "get_optimization_recommendations",
    "trace_operation",
    "track_usage",
]


# -- the ``app.ai`` cost functions, on get_cost_manager() ------------------------


def track_usage(
    model: str,
    input_tokens: int,
    output_tokens: int,
    user_id: str | None = None,
    project: str | None = None,
    **details: Any,
) -> UsageRecord:
    """``get_cost_manager().track_usage(...)``."""
    return _get_cost_manager().track_usage(
        model, input_tokens, output_tokens, user_id=user_id, project=project, **details
    )


def get_metrics() -> CostMetrics:
    """``get_cost_manager().get_metrics()``: spend so far (``.total_cost``, ...)."""
    return _get_cost_manager().get_metrics()


def get_budget_status(name: str, scope_value: str | None = None) -> dict[str, Any]:
    """``get_cost_manager().get_budget_status(name)`` (``percentage``, ``remaining``, ...)."""
    return _get_cost_manager().get_budget_status(name, scope_value)


def get_optimization_recommendations() -> list[Recommendation]:
    """``get_cost_manager().get_optimization_recommendations()``."""
    return _get_cost_manager().get_optimization_recommendations()


# -- the ``app.ai`` observability functions, on get_observability() ------------------------


def trace_operation(name: str, **attributes: Any) -> Operation:
    """``get_observability().trace_operation(name, ...)``."""
    return _get_observability().trace_operation(name, **attributes)


def finish_operation(
    operation: Operation,
    status: str = "success",
    error: BaseException | str | None = None,
    **attributes: Any,
) -> None:
    """``get_observability().finish_operation(operation, ...)``."""
    _get_observability().finish_operation(operation, status, error, **attributes)


def get_dashboard_data() -> dict[str, Any]:
    """``get_observability().get_dashboard_data()``."""
    return _get_observability().get_dashboard_data()
