"""``JobCore``: what a batch job knows and holds, shared by submitting and collecting.

``BatchJob`` (``_job``) adds the public face; ``_submit`` and ``_collect``
work on a ``JobCore``, so they need not import the job back.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from ..cost.manager import CostManager
from ..errors import InvalidRequestError
from ..middleware.budget import BudgetMiddleware
from ..middleware.cache._cache import Cache
from ..types import ChatRequest
from ._api import BatchAPI, batch_api
from ._store import BatchStore, PartRow
from ._trace import PartSpans
from ._wire import RemoteCounts

if TYPE_CHECKING:
    from ._host import BatchClient

__all__ = ["JobCore", "cost_manager"]


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
            api = self._apis[label] = batch_api(provider, transport, self._client.clock, self._rng)
        return api

    def _discount(self, request: ChatRequest) -> float:
        provider = self._client.providers[self._label(request)]
        return self._manager.pricing.batch_discount(provider.name, request.model)


def cost_manager(client: BatchClient) -> CostManager:
    """The cost manager of the client's budget middleware, else the client's own."""
    budget = next((m for m in client.middleware if isinstance(m, BudgetMiddleware)), None)
    return budget.cost_manager if budget is not None else client.cost_manager
