"""Planning a submission: which requests go into which provider batch, and what to reserve.

Requests are grouped by provider (and by model where the provider wants one
model per batch, as OpenAI does), then cut into parts that respect the
provider's request-count and byte limits. Each part reserves its
worst-case cost at the batch price, per (model, user, project), for the
whole completion window.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..cost.ledger._base import Claim, Reservation
from ..cost.manager import CostManager
from ..middleware.budget import BudgetMiddleware
from ..types import ChatRequest
from ._wire import Limits

__all__ = ["Part", "reservation_from_json", "reservation_to_json", "split", "worst_cases"]

Group = tuple[str, str | None, str | None]
"""(model, user, project): the requests one reservation covers."""


@dataclass(slots=True)
class Part:
    """Requests bound for one provider batch: indices and their encoded entries."""

    provider: str
    indices: list[int] = field(default_factory=list)
    entries: list[bytes] = field(default_factory=list)
    size: int = 0


def split(
    items: Iterable[tuple[int, str, str, bytes]],
    limits: Callable[[str], tuple[Limits, bool]],
    *,
    max_requests: int | None = None,
) -> list[Part]:
    """Cut ``(index, provider, model, entry)`` into parts within each provider's limits.

    ``limits(provider)`` gives the provider's ``Limits`` and whether it takes
    one model per batch; ``max_requests`` lowers the count limit.
    """
    open_parts: dict[tuple[str, str], Part] = {}
    done: list[Part] = []
    for index, provider, model, entry in items:
        lim, per_model = limits(provider)
        cap = lim.max_requests if max_requests is None else min(max_requests, lim.max_requests)
        if len(entry) + 2 > lim.max_bytes:
            from ..errors import InvalidRequestError

            raise InvalidRequestError(
                f"request {index} is larger than one {provider} batch may be "
                f"({lim.max_bytes} bytes)"
            )
        key = (provider, model if per_model else "")
        part = open_parts.get(key)
        if part is not None and (
            len(part.indices) >= cap or part.size + len(entry) + 1 > lim.max_bytes - 64
        ):
            done.append(part)
            part = None
        if part is None:
            part = open_parts[key] = Part(provider)
        part.indices.append(index)
        part.entries.append(entry)
        part.size += len(entry) + 1
    done.extend(open_parts.values())
    return done


def worst_cases(
    manager: CostManager,
    requests: dict[int, ChatRequest],
    indices: Iterable[int],
    discount: Callable[[ChatRequest], float],
) -> dict[Group, float]:
    """The most each (model, user, project) group of ``indices`` can cost at batch prices."""
    estimator = BudgetMiddleware(manager, track_prompts=False)
    out: dict[Group, float] = {}
    for i in indices:
        req = requests[i]
        group = (req.model, req.user, req.metadata.get("project"))
        out[group] = out.get(group, 0.0) + estimator.worst_case(req) * (1.0 - discount(req))
    return out


def reservation_to_json(group: Group, res: Reservation) -> dict[str, Any]:
    return {
        "group": list(group),
        "id": res.id,
        "claims": [[c.key, c.limit, c.expires_at] for c in res.claims],
        "amount": res.amount,
        "expires_at": res.expires_at,
    }


def reservation_from_json(data: dict[str, Any]) -> tuple[Group, Reservation]:
    model, user, project = data["group"]
    claims = tuple(Claim(k, lim, exp) for k, lim, exp in data["claims"])
    return (model, user, project), Reservation(
        data["id"], claims, int(data["amount"]), float(data["expires_at"])
    )
