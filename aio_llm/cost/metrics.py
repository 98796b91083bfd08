"""Spend totals: ``CostMetrics`` (a frozen snapshot) and the book that keeps them."""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

from .ledger._base import UsageRecord

__all__ = ["CostMetrics", "MetricsBook"]


@dataclass(frozen=True, slots=True)
class CostMetrics:
    """Totals since the manager was created; costs in USD.

    ``unpriced_requests`` counts requests whose model had no price (their
    tokens are counted, their cost is not). Item access works with the same
    names (``metrics["total_cost"]``) for dashboards that expect a dict.
    """

    total_cost: float = 0.0
    total_requests: int = 0
    total_input_tokens: int = 0
    total_output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    unpriced_requests: int = 0
    estimated_requests: int = 0
    by_model: dict[str, float] = field(default_factory=dict)
    by_user: dict[str, float] = field(default_factory=dict)
    by_project: dict[str, float] = field(default_factory=dict)
    requests_by_model: dict[str, int] = field(default_factory=dict)

    @property
    def average_cost(self) -> float:
        priced = self.total_requests - self.unpriced_requests
        return self.total_cost / priced if priced else 0.0

    @property
    def total_tokens(self) -> int:
        return self.total_input_tokens + self.total_output_tokens

    def __getitem__(self, name: str) -> Any:
        if name in ("average_cost", "total_tokens"):
            return getattr(self, name)
        if name == "requests":
            return self.total_requests
        return asdict(self)[name]

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["average_cost"] = self.average_cost
        out["total_tokens"] = self.total_tokens
        return out


UsageRow = tuple[
    str,
    int,
    int,
    "float | None",
    float,
    "str | None",
    "str | None",
    int,
    int,
    int,
    "str | None",
    "str | None",
    bool,
    "int | None",
    "int | None",
    int,
]
"""A ``UsageRecord``'s fields in order, ``metadata`` left out.

The book keeps recent usage as these plain tuples of numbers and strings:
the garbage collector stops tracking such a tuple at its first collection,
so 10,000 recent records add nothing to later collections (records would be
promoted to the oldest generation and walked by every full collection).
"""


def usage_row(r: UsageRecord) -> UsageRow:
    return (
        r.model,
        r.input_tokens,
        r.output_tokens,
        r.cost,
        r.timestamp,
        r.user_id,
        r.project,
        r.cached_input_tokens,
        r.cache_creation_input_tokens,
        r.reasoning_tokens,
        r.response_id,
        r.provider,
        r.estimated,
        r.prompt_hash,
        r.prefix_hash,
        r.prefix_tokens,
    )


class MetricsBook:
    """Running totals plus the most recent usage (for recommendations)."""

    __slots__ = (
        "_recent",
        "by_model",
        "by_project",
        "by_user",
        "cached_input_tokens",
        "estimated",
        "input_tokens",
        "ledger_errors",
        "output_tokens",
        "reasoning_tokens",
        "refused",
        "released",
        "requests",
        "requests_by_model",
        "reserved",
        "total_cost",
        "unpriced",
    )

    def __init__(self, max_records: int) -> None:
        self._recent: deque[UsageRow | UsageRecord] = deque(maxlen=max_records)
        self.total_cost = 0.0
        self.requests = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cached_input_tokens = 0
        self.reasoning_tokens = 0
        self.unpriced = 0
        self.estimated = 0
        self.reserved = 0
        self.refused = 0
        self.released = 0
        self.ledger_errors = 0
        self.by_model: dict[str, float] = {}
        self.by_user: dict[str, float] = {}
        self.by_project: dict[str, float] = {}
        self.requests_by_model: dict[str, int] = {}

    @property
    def records(self) -> list[UsageRecord]:
        """The most recent usage, oldest first."""
        return [r if isinstance(r, UsageRecord) else UsageRecord(*r) for r in self._recent]

    def add(self, record: UsageRecord) -> None:
        self.add_row(usage_row(record), record if record.metadata else None)

    def add_row(self, row: UsageRow, record: UsageRecord | None = None) -> None:
        """Count ``row``; ``record`` is kept instead when it carries metadata."""
        self._recent.append(row if record is None else record)
        # every field named (no slice, no starred target: nothing allocated per request)
        model, inp, out, cost, _, user, project, cached, _, reasoning, _, _, estimated, _, _, _ = (
            row
        )
        self.requests += 1
        self.input_tokens += inp
        self.output_tokens += out
        self.cached_input_tokens += cached
        self.reasoning_tokens += reasoning
        self.requests_by_model[model] = self.requests_by_model.get(model, 0) + 1
        if estimated:
            self.estimated += 1
        if cost is None:
            self.unpriced += 1
            cost = 0.0
        self.total_cost += cost
        self.by_model[model] = self.by_model.get(model, 0.0) + cost
        if user is not None:
            self.by_user[user] = self.by_user.get(user, 0.0) + cost
        if project is not None:
            self.by_project[project] = self.by_project.get(project, 0.0) + cost

    def snapshot(self) -> CostMetrics:
        return CostMetrics(
            total_cost=self.total_cost,
            total_requests=self.requests,
            total_input_tokens=self.input_tokens,
            total_output_tokens=self.output_tokens,
            cached_input_tokens=self.cached_input_tokens,
            reasoning_tokens=self.reasoning_tokens,
            unpriced_requests=self.unpriced,
            estimated_requests=self.estimated,
            by_model=dict(self.by_model),
            by_user=dict(self.by_user),
            by_project=dict(self.by_project),
            requests_by_model=dict(self.requests_by_model),
        )

    def metric_dict(self) -> dict[str, object]:
        return {
            "cost.total": self.total_cost,
            "cost.by_model": dict(self.by_model),
            "cost.by_user": dict(self.by_user),
            "cost.by_project": dict(self.by_project),
            "cost.requests": self.requests,
            "cost.unpriced_requests": self.unpriced,
            "budget.reserved": self.reserved,
            "budget.refused": self.refused,
            "budget.released": self.released,
            "budget.ledger_errors": self.ledger_errors,
        }
