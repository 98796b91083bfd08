"""``client.batch(...)``: submit, wait, return results; cancelling the call cancels the batches."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import anyio

from ..client._progress import Progress
from ..types import ChatResponse
from ._job import BatchJob, submit
from ._store import BatchStore

if TYPE_CHECKING:
    from ._host import BatchClient, RequestLike

__all__ = ["gather_batch"]


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
    job: BatchJob | None = None
    try:
        job = await submit(client, requests, store=store, **opts)
        await job.wait(progress=progress)
        return await job.results(return_exceptions=return_exceptions)
    except BaseException:
        if job is not None and not job.done:
            # the caller gave up: stop paying for what it will not read
            with anyio.CancelScope(shield=True), anyio.move_on_after(30):
                await job.cancel(wait=False)
        raise
    finally:
        if own:
            store.close()
