"""Sending a job's pending requests: plan the parts, reserve, create the provider batches.

Every part's worst case is reserved before the first create, so a refusal
sends nothing at all. A part is recorded as ``submitting`` before its create
call and ``active`` with the provider's id after it: a process that dies in
between leaves a ``submitting`` part, which ``recover`` finds again by its
metadata (OpenAI) or forgets so that its requests are sent again (Anthropic
keeps no metadata to find it by).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import anyio

from ..cost.ledger._base import Reservation
from ..errors import APIStatusError
from . import _plan
from ._store import PartRow

if TYPE_CHECKING:
    from ._core import JobCore

__all__ = ["metadata", "recover", "submit_pending"]

_WINDOW = 24 * 3600.0


async def submit_pending(job: JobCore) -> None:
    """Reserve for and create provider batches for every pending request."""
    pending = job.store.items_in_state(job.id, "pending")
    if not pending:
        return
    requests = job._load_requests()

    def entries() -> Iterable[tuple[int, str, str, bytes]]:
        for i in pending:
            req = requests[i]
            label = job._label(req)
            provider = job._client.providers[label]
            body = provider.encode_chat(req).content
            yield i, label, req.model, job._api(label).entry(f"r{i}", body)

    def limits(label: str) -> tuple[Any, bool]:
        api = job._api(label)
        return api.limits, api.one_model_per_batch

    parts = _plan.split(entries(), limits, max_requests=job._options.get("max_requests"))
    attempt = 1 + max((p.attempt for p in job.store.parts(job.id)), default=0)
    # reserve every part first: a refusal sends nothing at all
    reserved: list[list[tuple[_plan.Group, Reservation]]] = []
    try:
        for part in parts:
            groups = _plan.worst_cases(job._manager, requests, part.indices, job._discount)
            mine: list[tuple[_plan.Group, Reservation]] = []
            reserved.append(mine)
            for group, amount in groups.items():
                res = await job._manager.reserve(
                    group[0], amount, user_id=group[1], project=group[2], ttl=_WINDOW * 1.5
                )
                if res is not None:
                    mine.append((group, res))
    except BaseException:
        await _release(job, reserved)
        raise
    for n, (part, mine) in enumerate(zip(parts, reserved, strict=True)):
        key = f"p{attempt}-{n}-{os.urandom(3).hex()}"
        row = PartRow(
            key,
            part.provider,
            None,
            "submitting",
            job._client.clock.time(),
            attempt,
            [_plan.reservation_to_json(g, r) for g, r in mine],
        )
        try:
            job._renew()
            # the job was cancelled, or another driver took these requests: stop here
            go = not job._cancelling and job.store.add_part(job.id, row, part.indices)
        except BaseException:
            await _release(job, reserved[n:])
            raise
        if not go:
            await _release(job, reserved[n:])
            return
        try:
            status = await job._api(part.provider).create(part.entries, metadata(job, key))
        except APIStatusError:
            # refused: nothing was created; its requests wait for the next try
            job.store.remove_part(job.id, key)
            await _release(job, reserved[n:])
            raise
        except BaseException:
            # the create may have gone through: the part stays ``submitting`` with its
            # reservation (``recover`` finds it or forgets it); the later parts are let go
            await _release(job, reserved[n + 1 :])
            raise
        job.store.update_part(job.id, key, remote_id=status.id, state="active")
        row.remote_id = status.id
        job._spans.start(row, len(part.indices), job._client.providers[part.provider])
        job._live[key] = status.counts


async def _release(job: JobCore, parts: list[list[tuple[_plan.Group, Reservation]]]) -> None:
    with anyio.CancelScope(shield=True):
        for mine in parts:
            for _, res in mine:
                await job._manager.release(res)


def metadata(job: JobCore, key: str) -> dict[str, str]:
    return {"aio_llm_job": job.id, "aio_llm_part": key}


async def recover(job: JobCore, part: PartRow) -> None:
    """A part whose create was in flight when a process died: find it, or send again."""
    job._renew()
    found = await job._api(part.provider).find(metadata(job, part.key), since=part.created)
    if found is not None:
        job.store.update_part(job.id, part.key, remote_id=found.id, state="active")
        return
    with anyio.CancelScope(shield=True):
        for data in part.reservations:
            _, res = _plan.reservation_from_json(data)
            await job._manager.release(res)
        job.store.remove_part(job.id, part.key)
