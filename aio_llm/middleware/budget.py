"""Budget middleware: reserve the worst case before sending, settle the real cost after.

Before a request leaves, its worst-case cost is reserved in every budget
that applies; a hard limit that would be crossed raises
``BudgetExceededError`` before any byte is sent. The worst case is a bound,
not an estimate: the prompt at ``aio_llm.tokens.max_request_tokens`` (no
tokenizer counts more) at the dearest input price, plus ``max_tokens`` (or
the model's output limit, times ``n``) at the output price. A request whose
output has no known limit is sent with ``max_tokens`` = 4096 so that it has
one; a model with no price at all is refused by a hard budget. Concurrent
requests therefore cannot overshoot a limit together. After the response,
the reservation is settled at the real cost from the price table (or the
provider's own figure) and the usage is recorded in the ``CostManager``;
on failure it is released. Every response that passes gets ``cost`` set.

A middleware below this one that sends another model than it was given
(``Fallback``) calls ``cover_request(request)`` first: the reservation is
moved to the new model's worst case, or the attempt is refused.

Streams settle when they end (``stream.on_close``) from the final usage;
a stream closed early without usage is charged an estimate from the text
received. With no budget configured the middleware only prices and records
responses, without touching the ledger.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

import anyio

from ..cost.ledger._base import Reservation, UsageRecord
from ..cost.manager import CostManager
from ..cost.metrics import UsageRow
from ..cost.pricing import ModelPrice
from ..pipeline import EmbedNext, Next
from ..tokens import estimate_request_tokens, estimate_tokens, max_request_tokens
from ..types import (
    ChatRequest,
    ChatResponse,
    ChunkStream,
    EmbeddingRequest,
    EmbeddingResponse,
    Usage,
)

__all__ = ["BudgetMiddleware", "BudgetStatistics", "cover_request"]

_DEFAULT_OUTPUT = 4096
"""``max_tokens`` given to a request whose model has no known output limit (under a budget)."""


class _Cover:
    """The reservation of one budgeted call, and the request it was made for."""

    __slots__ = ("mw", "request", "reservation")

    def __init__(
        self, mw: BudgetMiddleware, request: ChatRequest, reservation: Reservation | None
    ) -> None:
        self.mw = mw
        self.request = request
        self.reservation = reservation

    async def retarget(self, request: ChatRequest) -> None:
        if request.model == self.request.model:
            return  # same model, same prices: the reservation covers it
        mw = self.mw
        old, self.reservation = self.reservation, None
        await mw._release(old)  # the attempt it was made for failed: nothing was spent on it
        self.reservation = await mw._reserve(
            request.model, mw._bound(request), request.user, request.metadata.get("project")
        )
        self.request = request


_COVER: ContextVar[_Cover | None] = ContextVar("aio_llm_budget_cover", default=None)


async def cover_request(request: ChatRequest) -> None:
    """Make the budget reservation of the call in progress cover ``request`` before it is sent.

    For a middleware below ``BudgetMiddleware`` that sends a request for
    another model than it received (``Fallback`` does): the reservation made
    for the first model is given back and one for ``request``'s worst case is
    made, or ``BudgetExceededError`` is raised and ``request`` must not be
    sent. Outside a budgeted call it does nothing.
    """
    cover = _COVER.get()
    if cover is not None:
        await cover.retarget(request)


@dataclass(frozen=True, slots=True)
class BudgetStatistics:
    requests: int
    refused: int
    settled: int
    released: int
    streams_estimated: int


class BudgetMiddleware:
    """Prices every response, records usage and enforces the manager's budgets.

    ``track_prompts`` hashes each prompt so that the optimisation report can
    find repeated prompts and repeated context (a few µs per request).
    """

    __slots__ = (
        "_estimated",
        "_manager",
        "_refused",
        "_released",
        "_requests",
        "_settled",
        "track_prompts",
    )

    def __init__(self, cost_manager: CostManager | None = None, *, track_prompts: bool = True):
        self._manager = cost_manager if cost_manager is not None else CostManager()
        self.track_prompts = track_prompts
        self._requests = self._refused = self._settled = self._released = self._estimated = 0

    @property
    def cost_manager(self) -> CostManager:
        return self._manager

    def worst_case(self, request: ChatRequest, input_tokens: int | None = None) -> float:
        """The most ``request`` can cost in USD (0.0 when its model has no price).

        ``input_tokens`` defaults to ``aio_llm.tokens.max_request_tokens``, a
        bound no tokenizer exceeds.
        """
        return self._bound(request, input_tokens) or 0.0

    def _bound(self, request: ChatRequest, input_tokens: int | None = None) -> float | None:
        """The worst case in USD; ``None`` when the model has no price or no output limit."""
        price = self._manager.pricing.get(request.model)
        if price is None:
            return None
        output = _max_output(request, price)
        if output is None:
            return None
        if input_tokens is None:
            input_tokens = max_request_tokens(request)
        return price.worst_case(input_tokens, output)

    def _with_output_limit(self, request: ChatRequest) -> ChatRequest:
        """``request``, with a ``max_tokens`` if nothing else bounds its output."""
        price = self._manager.pricing.get(request.model)
        if price is None or _max_output(request, price) is not None:
            return request
        return request.model_copy(update={"max_tokens": _DEFAULT_OUTPUT})

    async def __call__(self, request: ChatRequest, next: Next) -> ChatResponse:
        manager = self._manager
        self._requests += 1
        if not manager.has_budgets:
            return await self._send(request, next, None)
        request = self._with_output_limit(request)
        reservation = await self._reserve(
            request.model, self._bound(request), request.user, request.metadata.get("project")
        )
        cover = _Cover(self, request, reservation)
        token = _COVER.set(cover)
        try:
            return await self._send(request, next, cover)
        finally:
            _COVER.reset(token)

    async def _send(self, request: ChatRequest, next: Next, cover: _Cover | None) -> ChatResponse:
        manager = self._manager
        try:
            response = await next(request)
        except BaseException:
            await self._release(cover.reservation if cover is not None else None)
            raise
        if cover is not None:
            request = cover.request  # what was sent last (a fallback's model)
        reservation = cover.reservation if cover is not None else None
        stream = response.stream
        if stream is not None:
            await stream.on_close(_StreamSettler(self, request, response, reservation))
            return response
        row = self._row(request, response, response.usage, estimated=False)
        self._settled += 1
        if manager.shared_ledger:  # I/O: finish it even if the caller is cancelled now
            with anyio.CancelScope(shield=True):
                await manager.settle(reservation, UsageRecord(*row))
        elif reservation is None:
            manager.record_nowait(row)
        else:
            await manager.settle(reservation, UsageRecord(*row))  # never suspends
        return response

    async def embed(self, request: EmbeddingRequest, next: EmbedNext) -> EmbeddingResponse:
        """Embedding requests reserve, settle and count against the same budgets."""
        manager = self._manager
        self._requests += 1
        project = request.metadata.get("project")
        reservation = None
        if manager.has_budgets:
            price = manager.pricing.get(request.model)
            # a bound, as for chats: no tokenizer makes more tokens than a text has bytes
            tokens = sum(len(text.encode("utf-8")) + 8 for text in request.texts)
            worst = price.worst_case(tokens, 0) if price is not None else None
            reservation = await self._reserve(request.model, worst, request.user, project)
        try:
            response = await next(request)
        except BaseException:
            await self._release(reservation)
            raise
        usage = response.usage
        response.cost = cost = manager.pricing.cost(request.model, usage)
        record = UsageRecord(
            request.model,
            usage.input_tokens,
            0,
            cost,
            manager.clock.time(),
            user_id=request.user,
            project=project,
            provider=response.provider or None,
        )
        self._settled += 1
        with anyio.CancelScope(shield=True):
            await manager.settle(reservation, record)
        return response

    async def _reserve(
        self, model: str, amount: float | None, user: str | None, project: str | None
    ) -> Reservation | None:
        try:
            return await self._manager.reserve(model, amount, user_id=user, project=project)
        except BaseException:
            self._refused += 1
            raise

    async def _release(self, reservation: Reservation | None) -> None:
        """The call failed: nothing was spent (finished even if the caller is cancelled)."""
        if reservation is not None:
            self._released += 1
            with anyio.CancelScope(shield=True):
                await self._manager.release(reservation)

    def _record(
        self, request: ChatRequest, response: ChatResponse, usage: Usage, *, estimated: bool
    ) -> UsageRecord:
        return UsageRecord(*self._row(request, response, usage, estimated=estimated))

    def _row(
        self, request: ChatRequest, response: ChatResponse, usage: Usage, *, estimated: bool
    ) -> UsageRow:
        """Price ``response`` (``response.cost``) and describe its usage as a ``UsageRow``."""
        pricing = self._manager.pricing
        model = request.model
        if usage.provider_cost is not None:
            cost: float | None = usage.provider_cost
        else:
            # the answering model's price (a dated snapshot resolves to its entry), else the asked
            price = pricing.get(response.model) if response.model else None
            if price is not None:
                cost = price.cost(usage)
            else:  # the mock provider's answers cost nothing real: no warning for them
                cost = pricing.cost(model, usage, warn=response.provider != "mock")
        response.cost = cost
        prompt_hash = prefix_hash = None
        prefix_tokens = 0
        if self.track_prompts:
            parts = tuple([(m.role, m.text) for m in request.messages])
            stop, tools, fmt = request.stop, request.tools, request.response_format
            prompt_hash = hash(
                (
                    model,
                    parts,
                    request.temperature,
                    request.top_p,
                    request.seed,
                    request.max_tokens,
                    None if stop is None else repr(stop),
                    repr(tools) if tools else None,
                    repr(fmt) if fmt else None,
                )
            )
            if len(parts) > 1:
                prefix_hash = hash(parts[:-1])
                prefix_tokens = sum(len(t) for _, t in parts[:-1]) // 4
        return (
            model,
            usage.input_tokens,
            usage.output_tokens,
            cost,
            self._manager.clock.time(),
            request.user,
            request.metadata.get("project"),
            usage.cached_input_tokens,
            usage.cache_creation_input_tokens,
            usage.reasoning_tokens,
            response.id or None,
            response.provider or None,
            estimated,
            prompt_hash,
            prefix_hash,
            prefix_tokens,
        )

    def statistics(self) -> BudgetStatistics:
        return BudgetStatistics(
            self._requests, self._refused, self._settled, self._released, self._estimated
        )

    def metrics(self) -> dict[str, object]:
        """The manager's ``cost.*`` / ``budget.*`` metrics."""
        return self._manager.metrics()

    def __repr__(self) -> str:
        return (
            f"<BudgetMiddleware requests={self._requests} refused={self._refused} "
            f"budgets={sorted(self._manager.budgets())}>"
        )


class _StreamSettler:
    """Settles a streamed response's reservation when its stream closes."""

    __slots__ = ("_mw", "_request", "_reservation", "_response")

    def __init__(
        self,
        mw: BudgetMiddleware,
        request: ChatRequest,
        response: ChatResponse,
        reservation: Reservation | None,
    ) -> None:
        self._mw = mw
        self._request = request
        self._response = response
        self._reservation = reservation

    async def __call__(self, stream: ChunkStream) -> None:
        mw, manager = self._mw, self._mw._manager
        final = stream.response
        usage = final.usage if final is not None else None
        has_usage = usage is not None and (
            usage.input_tokens or usage.output_tokens or usage.provider_cost is not None
        )
        if not has_usage and stream.error is not None and stream.chunks_received == 0:
            mw._released += 1
            await manager.release(self._reservation)
            return
        estimated = not has_usage
        if estimated or usage is None:
            text = final.content if final is not None else ""
            inp = estimate_request_tokens(self._request)
            out = estimate_tokens(text) + estimate_tokens(final.reasoning or "") if final else 0
            usage = Usage.model_construct(
                input_tokens=inp,
                output_tokens=out,
                total_tokens=inp + out,
                cached_input_tokens=0,
                cache_creation_input_tokens=0,
                reasoning_tokens=0,
                provider_cost=None,
            )
            mw._estimated += 1
        target = final if final is not None else self._response
        record = mw._record(self._request, target, usage, estimated=estimated)
        self._response.cost = record.cost
        mw._settled += 1
        await manager.settle(self._reservation, record)


def _max_output(request: ChatRequest, price: ModelPrice) -> int | None:
    """The most output tokens ``request`` can be charged; ``None`` when nothing bounds it."""
    extra = request.extra
    limit: int | None = request.max_tokens
    if limit is None:
        for name in ("max_completion_tokens", "max_output_tokens"):
            value = extra.get(name)
            if isinstance(value, int) and value > 0:
                limit = value
                break
    if price.max_output is not None:  # the model cannot write more, whatever was asked
        limit = price.max_output if limit is None else min(limit, price.max_output)
    elif limit is None:
        # the answer and the prompt share the window: the answer alone fits in it
        limit = price.context_window
    if limit is None:
        return None
    n = extra.get("n")
    choices = n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1
    return limit * choices
