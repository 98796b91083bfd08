"""Collecting an ended provider batch: results into the store, cost into the ledger, the cache.

Requests the batch ran keep their results (answers and per-request errors);
those it did not run because it expired are sent again (up to
``resubmit_expired`` times) or reported as ``BatchExpiredError``; those of a
cancelled batch are reported as ``BatchCancelledError``.

The results files are streamed to a temporary file and read line by line, so
a batch of any size is collected in bounded memory: answers are recorded in
chunks as they are read, only usage totals are kept. The part's reservations
are settled at the discounted cost before the part is marked collected (in
one transaction with the rest of its results), so a crash anywhere before
that collects again, which records nothing twice.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from ..cost.ledger._base import UsageRecord
from . import _plan
from ._results import error_result, result_for_line
from ._store import PartRow
from ._wire import RemoteStatus

if TYPE_CHECKING:
    from ._core import JobCore

__all__ = ["collect", "settle"]

_CHUNK = 1000
"""Results recorded per transaction while a results file is read."""


async def collect(job: JobCore, part: PartRow, status: RemoteStatus) -> None:
    requests = job._load_requests()
    members = set(job.store.items_of_part(job.id, part.key))
    provider = job._client.providers[part.provider]
    api = job._api(part.provider)
    seen: set[int] = set()
    expired: list[int] = []
    cancelled: list[int] = []
    outcomes: dict[int, str] = {}
    usage: dict[int, tuple[int, int]] = {}
    records: dict[_plan.Group, list[UsageRecord]] = {}
    chunk: list[tuple[int, dict[str, Any]]] = []
    now = job._manager.clock.time()
    with tempfile.TemporaryFile(dir=_spool_dir(job)) as spool:
        lines = await api.results(status, spool) if not status.errors else ()
        for line in lines:
            i = _index(line.custom_id)
            if i is None or i not in members or i in seen:
                continue
            seen.add(i)
            outcomes[i] = line.kind
            if line.kind == "expired":
                expired.append(i)
                continue
            if line.kind == "cancelled":
                cancelled.append(i)
                continue
            req = requests[i]
            stored, response = result_for_line(
                provider, req, line, status.id, job._manager.pricing, job._discount(req)
            )
            chunk.append((i, stored))
            if response is not None:
                u = response.usage
                usage[i] = (u.input_tokens, u.output_tokens)
                group = (req.model, req.user, req.metadata.get("project"))
                records.setdefault(group, []).append(
                    UsageRecord(
                        req.model,
                        u.input_tokens,
                        u.output_tokens,
                        response.cost,
                        now,
                        req.user,
                        group[2],
                        u.cached_input_tokens,
                        u.cache_creation_input_tokens,
                        u.reasoning_tokens,
                        response.id or None,
                        part.provider,
                        metadata={"batch": status.id},
                    )
                )
                if job._cache is not None:
                    await job._cache.store(req, response)
            if len(chunk) >= _CHUNK:
                job.store.finish_items(job.id, chunk)
                chunk = []
    results: dict[int, dict[str, Any]] = dict(chunk)
    for i in sorted(members - seen):
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
    await settle(job, part, status.id, records)
    job.store.close_part(job.id, part.key, status.id, sorted(results.items()), retry)
    job._live.pop(part.key, None)
    job._spans.finish(part, status, requests, usage, outcomes)


async def settle(
    job: JobCore,
    part: PartRow,
    batch_id: str,
    by_group: dict[_plan.Group, list[UsageRecord]],
) -> None:
    """Settle each reservation of ``part`` with what its requests cost (one record per group)."""
    manager = job._manager
    now = manager.clock.time()
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


async def release(job: JobCore, parts: Iterable[PartRow]) -> None:
    """Give back what ``parts`` reserved; a later collect of theirs charges what it finds."""
    with anyio.CancelScope(shield=True):
        for part in parts:
            for data in part.reservations:
                _, res = _plan.reservation_from_json(data)
                await job._manager.release(res)
            job.store.set_part_reservations(job.id, part.key, [])


def _spool_dir(job: JobCore) -> str | None:
    """Results files go beside a file store (they can be large), else to the temp dir."""
    path = job.store.path
    return None if path == ":memory:" else str(Path(path).parent)


def _index(custom_id: str) -> int | None:
    if custom_id.startswith("r") and custom_id[1:].isdigit():
        return int(custom_id[1:])
    return None
