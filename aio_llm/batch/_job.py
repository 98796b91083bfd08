"""``BatchJob``: requests sent through provider Batch APIs, durable across processes.

``submit`` validates the requests, records the job in a ``BatchStore``,
answers what the client's cache already has, reserves the worst case of the
rest at the batch price (``BudgetExceededError`` before anything is sent),
and creates the provider batches. ``BatchJob.wait`` polls them with capped
exponential backoff and jitter (on the client's clock and the job's rng),
downloads results as each batch ends, records every result in the store,
settles the reservations at the discounted cost, fills the cache, and sends
again what an expired batch did not run (``resubmit_expired`` times).
``resume(client, job_id)`` rebuilds a job in another process from the store.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import _json
from ..client._progress import Progress, progress_reporter
from ..errors import APIStatusError, InvalidRequestError
from ..types import ChatRequest, ChatResponse
from . import _collect, _submit
from ._api import batch_api, is_not_found
from ._core import JobCore, LeaseLost
from ._results import error_result, rebuild
from ._store import BatchStore, PartRow

if TYPE_CHECKING:
    from ._host import BatchClient, RequestLike

__all__ = ["BatchJob", "BatchProgress", "BatchStatistics", "new_job_id", "resume", "submit"]

_CANCELLED = error_result("cancelled", "the job was cancelled", batch_id=None)

_NOT_FOUND_GRACE = 300.0
"""Seconds after creation during which a 404 on a batch means "not visible yet"."""


@dataclass(frozen=True, slots=True)
class BatchProgress:
    """Where a job stands; running counts come from the provider."""

    total: int
    succeeded: int
    """Answered, cache hits included."""
    failed: int
    cached: int
    pending: int
    """Not sent yet (or to be sent again)."""
    running: int
    """In provider batches and not finished yet."""
    batches: int
    """Provider batches still running."""

    @property
    def done(self) -> int:
        return self.succeeded + self.failed


@dataclass(frozen=True, slots=True)
class BatchStatistics:
    """The money side of a finished (or running) job, in USD."""

    succeeded: int
    failed: int
    cached: int
    cost: float
    """What was charged (at the batch discount)."""
    saved_by_batch: float
    """The live price of the answered requests minus what was charged."""
    saved_by_cache: float
    """What the cache hits would have cost at the batch price."""


class BatchJob(JobCore):
    """A set of requests in provider batches; ``id`` finds it again after a restart.

    Get one from ``client.batch_submit(...)`` or ``client.batch_resume(id)``.
    ``await job.wait()`` polls until every request has a result;
    ``await job.results()`` returns them in input order. Cancelling a
    ``wait()`` leaves the provider batches running (the job outlives the
    call); ``await job.cancel()`` cancels them.
    """

    def __repr__(self) -> str:
        p = self.progress()
        return (
            f"<BatchJob {self.id} total={p.total} succeeded={p.succeeded} failed={p.failed} "
            f"running={p.running} pending={p.pending}>"
        )

    # -- introspection ----------------------------------------------------------

    def progress(self) -> BatchProgress:
        """Counts from the store plus the provider's counts of running batches."""
        counts = self.store.counts(self.id)
        stats = self.statistics()
        live_ok = sum(c.succeeded for c in self._live.values())
        live_bad = sum(c.failed for c in self._live.values())
        submitted = counts.get("submitted", 0)
        return BatchProgress(
            total=sum(counts.values()),
            succeeded=stats.succeeded + live_ok,
            failed=stats.failed + live_bad,
            cached=stats.cached,
            pending=counts.get("pending", 0),
            running=max(submitted - live_ok - live_bad, 0),
            batches=sum(1 for p in self.store.parts(self.id) if p.state != "collected"),
        )

    @property
    def done(self) -> bool:
        """Every request has its result and every provider batch is collected (and paid)."""
        counts = self.store.counts(self.id)
        if counts.get("pending") or counts.get("submitted"):
            return False
        return not self._active_parts()

    def statistics(self) -> BatchStatistics:
        ok, bad, cached, cost, saved_batch, saved_cache = self.store.totals(self.id)
        return BatchStatistics(ok, bad, cached, cost, saved_batch, saved_cache)

    def remote_ids(self) -> list[str]:
        """The provider's ids of this job's batches."""
        return [p.remote_id for p in self.store.parts(self.id) if p.remote_id]

    # -- waiting and results ----------------------------------------------------------

    async def refresh(self) -> BatchProgress:
        """Poll every running provider batch once; collect those that ended.

        When another process drives the job (see ``JobCore._driving``) this
        only reads where the job stands.
        """
        self._require_open()
        with self._driving() as driving:
            if driving:
                try:
                    await self._drive()
                except LeaseLost:
                    pass
        return self.progress()

    async def _drive(self) -> None:
        for part in self.store.parts(self.id):
            if part.state == "submitting":
                await _submit.recover(self, part)
        cancelling = self._cancelling
        for part in self.store.parts(self.id):
            if part.state in ("active", "cancelling"):
                self._renew()
                if cancelling and part.state == "active":
                    await self._cancel_part(part)
                await self._poll(part)
        if self._cancelling:
            self.store.cancel_pending(self.id, _CANCELLED)
        elif not self._active_parts():
            await _submit.submit_pending(self)
        if self.done:
            self.store.set_job_state(self.id, "done")

    async def wait(self, *, progress: Progress = False) -> None:
        """Poll until every request has a result (``progress``: as in ``gather``)."""
        report = progress_reporter(progress, self.progress().total)
        delay = float(self._options.get("poll_interval", 10.0))
        cap = float(self._options.get("max_poll_interval", 60.0))
        last: BatchProgress | None = None
        while True:
            now = await self.refresh()
            if report is not None:
                report(now.done, now.total)
            if self.done:
                break
            if now != last:
                delay = float(self._options.get("poll_interval", 10.0))
            last = now
            await self._client.clock.sleep(delay * (1.0 - 0.2 * self._rng.random()))
            delay = min(delay * 1.5, cap)
        if report is not None:
            report(self.progress().done, self.progress().total, final=True)

    async def results(
        self, *, return_exceptions: bool = True
    ) -> list[ChatResponse | BaseException]:
        """Every request's response or exception, in input order (waits first)."""
        if not self.done:
            await self.wait()
        out: list[ChatResponse | BaseException] = []
        requests = self._load_requests()
        for i, stored in enumerate(self.store.results(self.id)):
            assert stored is not None
            provider = self._client.providers.get(self._label(requests[i]))
            value = rebuild(provider, stored)
            if isinstance(value, BaseException) and not return_exceptions:
                raise value
            out.append(value)
        return out

    async def cancel(self, *, wait: bool = True) -> None:
        """Cancel the provider batches and every request not sent yet.

        Results of requests that finished before the cancel are kept; the
        others become ``BatchCancelledError``. With ``wait`` the call returns
        once the provider batches have ended and their results are recorded.
        When another process drives the job, that process cancels them.
        """
        self._require_open()
        if not self.done:
            self.store.set_job_state(self.id, "cancelling")
            self.store.cancel_pending(self.id, _CANCELLED)
        await self.refresh()
        if wait:
            await self.wait()

    async def release_reservations(self) -> None:
        """Give back the budget still reserved for provider batches not collected yet.

        For a job that will not be waited on: a later collect of those
        batches charges what they cost without a reservation.
        """
        from ._collect import release

        await release(self, self._active_parts())

    # -- internals ------------------------------------------------------------------

    async def serve_cached(self) -> None:
        """Answer pending requests from the client's cache."""
        cache = self._cache
        if cache is None:
            return
        requests = self._load_requests()
        hits: list[tuple[int, dict[str, Any]]] = []
        for i in self.store.items_in_state(self.id, "pending"):
            hit = await cache.lookup(requests[i])
            if hit is not None:
                req = requests[i]
                from ._results import price

                _, full = price(self._manager.pricing, req, hit, 0.0)
                saved = None if full is None else full * (1.0 - self._discount(req))
                hit.cost = 0.0
                hits.append(
                    (i, {"ok": hit.model_dump(mode="json"), "cached": True, "saved": saved})
                )
        if hits:
            self.store.finish_items(self.id, hits)

    async def _cancel_part(self, part: PartRow) -> None:
        assert part.remote_id is not None
        try:
            await self._api(part.provider).cancel(part.remote_id)
        except APIStatusError:
            pass  # it ended meanwhile: collected by the poll
        self.store.update_part(self.id, part.key, remote_id=part.remote_id, state="cancelling")

    async def _poll(self, part: PartRow) -> None:
        assert part.remote_id is not None
        try:
            status = await self._api(part.provider).retrieve(part.remote_id)
        except APIStatusError as exc:
            young = self._client.clock.time() - part.created < _NOT_FOUND_GRACE
            if is_not_found(exc) and young:
                return  # just created: not visible yet
            raise
        self._live[part.key] = status.counts
        if status.ended:
            await _collect.collect(self, part, status)


def new_job_id() -> str:
    return "job_" + os.urandom(10).hex()


async def submit(
    client: BatchClient,
    requests: Iterable[RequestLike],
    *,
    store: BatchStore,
    job_id: str | None = None,
    poll_interval: float = 10.0,
    max_poll_interval: float = 60.0,
    resubmit_expired: int = 1,
    max_requests: int | None = None,
    rng: random.Random | None = None,
) -> BatchJob:
    """See ``AsyncLLMClient.batch_submit``."""
    client._require_open()
    if poll_interval <= 0 or max_poll_interval < poll_interval:
        raise ValueError("poll_interval must be positive and at most max_poll_interval")
    if max_requests is not None and max_requests < 1:
        raise ValueError("max_requests must be at least 1")
    reqs: list[ChatRequest] = []
    for item in requests:
        req = client._coerce(item)
        if req.stream:
            req = req.model_copy(update={"stream": False})
        reqs.append(req)
    if not reqs:
        raise InvalidRequestError("a batch needs at least one request")
    for req in reqs:
        label = req.provider or client._default_provider
        provider = client.providers.get(label)
        if provider is None:
            raise InvalidRequestError(f"unknown provider {label!r}")
        batch_api(provider, client._transport, client.clock, random.Random())  # type: ignore[arg-type]
        provider.encode_chat(req)  # a request that cannot be encoded fails here, before anything
    options: dict[str, Any] = {
        "poll_interval": poll_interval,
        "max_poll_interval": max_poll_interval,
        "resubmit_expired": resubmit_expired,
        "max_requests": max_requests,
    }
    job_id = job_id or new_job_id()
    store.create_job(
        job_id,
        client.clock.time(),
        options,
        (_json.dumps_text(r.model_dump(mode="json", exclude_defaults=True)) for r in reqs),
    )
    job = BatchJob(client, store, job_id, options, rng=rng)
    try:
        with job._driving():  # a new job: nobody else drives it yet
            await job.serve_cached()
            await _submit.submit_pending(job)
    except BaseException:
        if not job.remote_ids():
            store.set_job_state(job_id, "refused")
        raise
    if job.done:
        store.set_job_state(job_id, "done")
    return job


def resume(
    client: BatchClient, job_id: str, *, store: BatchStore, rng: random.Random | None = None
) -> BatchJob:
    """See ``AsyncLLMClient.batch_resume``."""
    client._require_open()
    found = store.job(job_id)
    if found is None:
        raise InvalidRequestError(f"no batch job {job_id!r} in {store.path}")
    return BatchJob(client, store, job_id, found[1], rng=rng)
