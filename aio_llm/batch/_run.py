"""``client.batch(...)``: submit, wait, return results; cancelling the call cancels the batches.

A caller that gives up (cancelled, or an error) stops paying for what it
will not read: the provider batches are cancelled at once. What they ran
before the cancel took effect is still billed by the provider, so the job is
collected in the client's background (its cost recorded, its reservations
settled); whatever is still reserved when the client closes is given back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import anyio

from ..client._progress import Progress
from ..types import ChatResponse
from ._job import BatchJob, new_job_id, resume, submit
from ._store import BatchStore

if TYPE_CHECKING:
    from ._host import BatchClient, RequestLike

__all__ = ["gather_batch"]

logger = logging.getLogger("aio_llm.batch")

_CANCEL_WITHIN = 30.0
"""Seconds a giving-up caller spends asking the provider to cancel its batches."""


async def gather_batch(
    client: BatchClient,
    requests: Iterable[RequestLike],
    return_exceptions: bool,
    progress: Progress,
    options: Mapping[str, Any],
) -> list[ChatResponse | BaseException]:
    """See ``AsyncLLMClient.batch``."""
    opts = dict(options)
    store = opts.pop("store", None)
    own = store is None
    if store is None:
        store = BatchStore(":memory:")
    elif not isinstance(store, BatchStore):
        store = client._batch_store(store)
    job_id = opts.pop("job_id", None) or new_job_id()
    job: BatchJob | None = None
    handed_off = False
    try:
        job = await submit(client, requests, store=store, job_id=job_id, **opts)
        await job.wait(progress=progress)
        return await job.results(return_exceptions=return_exceptions)
    except BaseException:
        with anyio.CancelScope(shield=True):
            if job is None and store.job(job_id) is not None:
                job = resume(client, job_id, store=store)  # cancelled during the submission
            if job is not None and job._active_parts():  # provider batches were sent
                handed_off = await _give_up(client, job, store if own else None)
        raise
    finally:
        if own and not handed_off:
            store.close()


async def _give_up(client: BatchClient, job: BatchJob, own_store: BatchStore | None) -> bool:
    """Cancel ``job``'s batches; collect them in the background. True if handed off."""
    try:
        with anyio.move_on_after(_CANCEL_WITHIN):
            await job.cancel(wait=False)
    except Exception as exc:  # the caller's own error is the one to raise
        logger.warning("could not cancel batch job %s: %s", job.id, type(exc).__name__)
    if job.done:
        return False
    session = client._session
    stack = client._exit_stack
    if session is None or stack is None:  # the client is closing: give the budget back now
        await job.release_reservations()
        return False
    finished = anyio.Event()
    scope = anyio.CancelScope()

    async def finish() -> None:
        try:
            with scope:
                await job.wait()
        except Exception as exc:
            logger.warning("cancelled batch job %s not collected: %s", job.id, type(exc).__name__)
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await job.release_reservations()
                finally:
                    if own_store is not None:
                        own_store.close()
                    finished.set()

    async def stop() -> None:
        scope.cancel()
        await finished.wait()

    session.task_group.start_soon(finish)
    stack.push_async_callback(stop)  # runs before the ledger closes
    return True
