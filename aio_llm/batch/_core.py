"""``JobCore``: what a batch job knows and holds, shared by submitting and collecting.

``BatchJob`` (``_job``) adds the public face; ``_submit`` and ``_collect``
work on a ``JobCore``, so they need not import the job back.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..cost.manager import CostManager
from ..errors import InvalidRequestError
from ..middleware.budget import BudgetMiddleware
from ..middleware.cache._cache import Cache
from ..types import ChatRequest
from ._api import BatchAPI, batch_api
from ._store import BatchStore, PartRow, lease_owner
from ._trace import PartSpans
from ._wire import RemoteCounts

if TYPE_CHECKING:
    from ._host import BatchClient

__all__ = ["LEASE", "JobCore", "LeaseLost", "cost_manager"]


LEASE = 600.0
"""Seconds a driver holds a job without renewing its lease (renewed before each step)."""


class LeaseLost(Exception):
    """Another driver took the job over (this one stalled past ``LEASE``)."""


class JobCore:
    """A job's store, client, options and per-process state (see ``BatchJob``)."""

    def __init__(
        self,
        client: BatchClient,
        store: BatchStore,
        job_id: str,
        options: dict[str, Any],
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.id = job_id
        self.store = store
        self._client = client
        self._options = options
        self._rng = rng or random.Random()
        self._requests: dict[int, ChatRequest] | None = None
        self._live: dict[str, RemoteCounts] = {}
        self._apis: dict[str, BatchAPI] = {}
        self._spans = PartSpans(client, job_id)
        self._manager = cost_manager(client)
        self._cache = next((m for m in client.middleware if isinstance(m, Cache)), None)
        self._owner = lease_owner()

    @contextmanager
    def _driving(self) -> Iterator[bool]:
        """Hold the job's lease for the block: ``True`` if this job drives it now.

        Only the holder sends, polls, collects or cancels provider batches, so
        two processes on one job never send a request twice; the other one
        waits, reading the store. A lease ends with the block, lapses after
        ``LEASE`` seconds without renewal, and passes at once when its holder
        was a process of this host that died.
        """
        now = self._client.clock.time()
        held = self.store.acquire_lease(self.id, self._owner, now, LEASE) is None
        try:
            yield held
        finally:
            if held:
                self.store.release_lease(self.id, self._owner)

    def _renew(self) -> None:
        """Extend the lease before a long step; ``LeaseLost`` if another driver has it."""
        now = self._client.clock.time()
        holder = self.store.acquire_lease(self.id, self._owner, now, LEASE)
        if holder is not None:
            raise LeaseLost(holder)

    @property
    def _cancelling(self) -> bool:
        found = self.store.job(self.id)
        return found is not None and found[0] == "cancelling"

    def _require_open(self) -> None:
        self._client._require_open()

    def _active_parts(self) -> list[PartRow]:
        return [p for p in self.store.parts(self.id) if p.state != "collected"]

    def _load_requests(self) -> dict[int, ChatRequest]:
        if self._requests is None:
            self._requests = {
                i: ChatRequest.model_validate_json(raw)
                for i, raw in enumerate(self.store.requests(self.id))
            }
        return self._requests

    def _label(self, request: ChatRequest) -> str:
        return request.provider or self._client._default_provider

    def _api(self, label: str) -> BatchAPI:
        api = self._apis.get(label)
        if api is None:
            provider = self._client.providers.get(label)
            if provider is None:
                raise InvalidRequestError(
                    f"job {self.id} needs provider {label!r}, which this client does not have"
                )
            transport = self._client._transport
            assert transport is not None
            api = self._apis[label] = batch_api(
                provider,
                transport,
                self._client.clock,
                self._rng,
                self._client.config.max_response_bytes,
            )
        return api

    def _discount(self, request: ChatRequest) -> float:
        provider = self._client.providers[self._label(request)]
        return self._manager.pricing.batch_discount(provider.name, request.model)


def cost_manager(client: BatchClient) -> CostManager:
    """The cost manager of the client's budget middleware, else the client's own."""
    budget = next((m for m in client.middleware if isinstance(m, BudgetMiddleware)), None)
    return budget.cost_manager if budget is not None else client.cost_manager
