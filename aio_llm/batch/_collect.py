"""Collecting an ended provider batch: results into the store, cost into the ledger, the cache.

Requests the batch ran keep their results (answers and per-request errors);
those it did not run because it expired are sent again (up to
``resubmit_expired`` times) or reported as ``BatchExpiredError``; those of a
cancelled batch are reported as ``BatchCancelledError``. The part's
reservations are settled at the discounted cost before the part is marked
collected, so a crash in between settles again, which changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from ..cost.ledger._base import UsageRecord
from ..types import ChatRequest, ChatResponse
from . import _plan
from ._results import error_result, result_for_line
from ._store import PartRow
from ._wire import RemoteStatus

if TYPE_CHECKING:
    from ._core import JobCore

__all__ = ["collect", "settle"]


async def collect(job: JobCore, part: PartRow, status: RemoteStatus) -> None:
    requests = job._load_requests()
    members = set(job.store.items_of_part(job.id, part.key))
    provider = job._client.providers[part.provider]
    results: dict[int, dict[str, Any]] = {}
    responses: dict[int, ChatResponse] = {}
    expired: list[int] = []
    cancelled: list[int] = []
    outcomes: dict[int, str] = {}
    lines = await job._api(part.provider).results(status) if not status.errors else ()
    for line in lines:
        i = _index(line.custom_id)
        if i is None or i not in members:
            continue
        outcomes[i] = line.kind
        if line.kind == "expired":
            expired.append(i)
        elif line.kind == "cancelled":
            cancelled.append(i)
        else:
            req = requests[i]
            stored, response = result_for_line(
                provider, req, line, status.id, job._manager.pricing, job._discount(req)
            )
            results[i] = stored
            if response is not None:
                responses[i] = response
    for i in sorted(members - results.keys() - set(expired) - set(cancelled)):
        if status.outcome == "expired":
            expired.append(i)
        elif status.outcome == "cancelled":
            cancelled.append(i)
        else:
            why = "; ".join(status.errors) or f"no result for this request ({status.status})"
            results[i] = error_result("failed", why, batch_id=status.id)
            outcomes[i] = "errored"
    retry: list[int] = []
    again = int(job._options.get("resubmit_expired", 1))
    if expired and not job._cancelling and part.attempt <= again:
        retry = sorted(expired)
    else:
        for i in expired:
            results[i] = error_result(
                "expired",
                "the provider batch expired before the request ran",
                batch_id=status.id,
            )
    for i in cancelled:
        results[i] = error_result(
            "cancelled",
            "the provider batch was cancelled before the request ran",
            batch_id=status.id,
        )
    await settle(job, part, status.id, requests, responses)
    if job._cache is not None:
        for i, response in responses.items():
            await job._cache.store(requests[i], response)
    job.store.finish_items(job.id, sorted(results.items()))
    job.store.release_items(job.id, retry)
    job.store.update_part(job.id, part.key, remote_id=status.id, state="collected")
    job._live.pop(part.key, None)
    job._spans.finish(part, status, requests, responses, outcomes)


async def settle(
    job: JobCore,
    part: PartRow,
    batch_id: str,
    requests: dict[int, ChatRequest],
    responses: dict[int, ChatResponse],
) -> None:
    manager = job._manager
    by_group: dict[_plan.Group, list[UsageRecord]] = {}
    now = manager.clock.time()
    for i, resp in responses.items():
        req = requests[i]
        group = (req.model, req.user, req.metadata.get("project"))
        u = resp.usage
        by_group.setdefault(group, []).append(
            UsageRecord(
                req.model,
                u.input_tokens,
                u.output_tokens,
                resp.cost,
                now,
                req.user,
                group[2],
                u.cached_input_tokens,
                u.cache_creation_input_tokens,
                u.reasoning_tokens,
                resp.id or None,
                part.provider,
                metadata={"batch": batch_id},
            )
        )
    reservations = dict(_plan.reservation_from_json(d) for d in part.reservations)
    with anyio.CancelScope(shield=True):
        for group in set(reservations) | set(by_group):
            records = by_group.get(group, [])
            summary = UsageRecord(
                group[0],
                sum(r.input_tokens for r in records),
                sum(r.output_tokens for r in records),
                sum(r.cost or 0.0 for r in records),
                now,
                group[1],
                group[2],
                response_id=batch_id,
                provider=part.provider,
                metadata={"batch": batch_id, "requests": len(records)},
            )
            await manager.settle_many(reservations.get(group), records, summary)


def _index(custom_id: str) -> int | None:
    if custom_id.startswith("r") and custom_id[1:].isdigit():
        return int(custom_id[1:])
    return None
