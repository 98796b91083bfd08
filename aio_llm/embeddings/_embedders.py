"""Embeddings: the ``Embedder`` protocol, its two implementations, and micro-batching.

* ``LocalEmbedder`` works offline with no model download (hashed lexical
  features, see ``aio_llm.embeddings._local``); it is the semantic cache's
  default.
* ``ClientEmbedder(client, model)`` asks the provider's embeddings endpoint
  through ``client.embed``.
* ``EmbeddingBatcher`` gathers ``embed`` calls that arrive within a few
  milliseconds of each other into one upstream request per model and hands
  each caller its own vectors back.
* ``VectorIndex`` (``aio_llm.embeddings._index``) stores and searches vectors.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

import anyio
import anyio.abc

from .._extras import require_numpy
from .._task_host import TaskGroupHost
from ..clock import SYSTEM_CLOCK, Clock
from ..errors import (
    APIConnectionError,
    APIResponseError,
    AuthenticationError,
    InvalidRequestError,
    LLMError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
)
from ..types import EmbeddingResponse, Usage

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "BatcherStatistics",
    "ClientEmbedder",
    "Embedder",
    "EmbeddingBatcher",
]

SendFn = Callable[[list[str], str], Awaitable[EmbeddingResponse]]


class Embedder(Protocol):
    """Turns texts into vectors: one row per text, in order."""

    async def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


class EmbeddingClient(Protocol):
    """What ``ClientEmbedder`` needs of a client: ``AsyncLLMClient`` is one."""

    async def embed(self, texts: Sequence[str], *, model: str | None = None) -> EmbeddingResponse:
        """Vectors for ``texts`` from the provider's embeddings endpoint."""
        ...


class ClientEmbedder:
    """An ``Embedder`` that calls the provider's embeddings endpoint via ``client.embed``."""

    __slots__ = ("client", "model")

    def __init__(self, client: EmbeddingClient, model: str) -> None:
        if not model:
            raise ValueError("model must name an embedding model")
        self.client = client
        self.model = model

    async def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        numpy = require_numpy("ClientEmbedder")
        response = await self.client.embed(list(texts), model=self.model)
        vectors: npt.NDArray[np.float32] = numpy.asarray(response.vectors, dtype=numpy.float32)
        return vectors

    def __repr__(self) -> str:
        return f"ClientEmbedder(model={self.model!r})"


class _Batch:
    __slots__ = ("callers", "error", "event", "live", "response", "scope", "sleep", "texts", "tb")

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.event = anyio.Event()
        self.live = 0
        self.callers = 0
        self.response: EmbeddingResponse | None = None
        self.error: BaseException | None = None
        self.tb: TracebackType | None = None
        self.scope: anyio.CancelScope | None = None
        self.sleep: anyio.CancelScope | None = None


@dataclass(frozen=True)
class BatcherStatistics:
    """Counters of an ``EmbeddingBatcher``."""

    batches: int
    """Upstream requests sent."""
    texts: int
    """Texts sent upstream."""
    calls: int
    """``embed`` calls served."""
    resent: int = 0
    """Callers of a failed merged batch that sent their own texts again alone."""


class EmbeddingBatcher(TaskGroupHost):
    """Coalesces concurrent ``embed(texts, model)`` calls into batched upstream requests.

    The first call for a model opens a batch; calls for the same model in the
    next ``window`` seconds join it, until it holds ``max_batch`` texts; then
    ``send(texts, model)`` goes out once and the vectors are split back. A
    call with more than ``max_batch`` texts spans several batches. When a
    merged batch fails for a reason one caller's texts may have caused (a
    4xx such as one text too long, a wrong number of vectors, a 5xx), each
    caller sends its own texts again alone, so only the callers whose own
    request fails get an error; an error every caller would meet alike
    (401, 403, 404, 429) reaches them all without a resend. Every error is an
    ``LLMError``. Batches run in a task group (``bind``
    the client's, or ``async with EmbeddingBatcher(...)``), so cancelling one
    caller never cancels the request for the others; a batch whose callers
    are all gone is not sent (or is cancelled). ``usage`` is shared out in
    proportion to each caller's characters.
    """

    __slots__ = (
        "_clock",
        "_pending",
        "_send",
        "batches",
        "calls",
        "max_batch",
        "resent",
        "texts",
        "window",
    )

    def __init__(
        self,
        send: SendFn,
        *,
        max_batch: int = 256,
        window: float = 0.005,
        clock: Clock | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if window < 0:
            raise ValueError("window must not be negative")
        self._send = send
        self.max_batch = max_batch
        self.window = window
        self._clock = clock or SYSTEM_CLOCK
        self._pending: dict[str, _Batch] = {}
        TaskGroupHost.__init__(self)
        self.batches = self.texts = self.calls = self.resent = 0

    async def embed(self, texts: Sequence[str], model: str) -> EmbeddingResponse:
        """Vectors for ``texts`` with ``model``, sent together with concurrent calls."""
        if not texts:
            raise InvalidRequestError("texts must not be empty")
        parts: list[tuple[_Batch, int, int]] = []
        for start in range(0, len(texts), self.max_batch):
            parts.append(self._enqueue(list(texts[start : start + self.max_batch]), model))
        self.calls += 1
        waiting = list(parts)
        try:
            while waiting:
                await waiting[0][0].event.wait()
                waiting[0][0].live -= 1
                waiting.pop(0)
        except BaseException:
            for batch, _, _ in waiting:
                batch.live -= 1
                if batch.live == 0 and batch.scope is not None:
                    batch.scope.cancel()
            raise
        pieces: list[tuple[EmbeddingResponse, list[str], int, int]] = []
        for batch, offset, count in parts:
            if batch.error is not None:
                if batch.callers < 2 or not _may_succeed_alone(batch.error):
                    raise batch.error.with_traceback(batch.tb)
                # the merged request failed: this caller's own texts may well pass
                own = batch.texts[offset : offset + count]
                pieces.append((await self._send_checked(own, model), own, 0, count))
                self.resent += 1
            elif batch.response is None:  # the task group was cancelled before the batch ran
                raise APIConnectionError(
                    "the embedding batcher was closed before the batch was sent"
                )
            else:
                pieces.append((batch.response, batch.texts, offset, count))
        return _collect(pieces, model)

    async def _send_checked(self, texts: list[str], model: str) -> EmbeddingResponse:
        response = await self._send(texts, model)
        if len(response.vectors) != len(texts):
            raise APIResponseError(
                f"the provider returned {len(response.vectors)} vectors for {len(texts)} texts",
                provider=response.provider or None,
            )
        return response

    def _enqueue(self, piece: list[str], model: str) -> tuple[_Batch, int, int]:
        batch = self._pending.get(model)
        if batch is not None and len(batch.texts) + len(piece) > self.max_batch:
            self._close(model, batch)
            batch = None
        if batch is None:
            tg = self._task_group
            if tg is None:
                raise RuntimeError("EmbeddingBatcher needs a task group: bind() or async with")
            batch = self._pending[model] = _Batch()
            tg.start_soon(self._run, model, batch)
        offset = len(batch.texts)
        batch.texts.extend(piece)
        batch.live += 1
        batch.callers += 1
        if len(batch.texts) >= self.max_batch:
            self._close(model, batch)
        return batch, offset, len(piece)

    def _close(self, model: str, batch: _Batch) -> None:
        """Take ``batch`` out of the queue and send it without waiting for the window."""
        if self._pending.get(model) is batch:
            del self._pending[model]
        batch.sleep = batch.sleep or anyio.CancelScope()
        batch.sleep.cancel()

    async def _run(self, model: str, batch: _Batch) -> None:
        try:
            if batch.sleep is None:
                batch.sleep = anyio.CancelScope()
            with batch.sleep:
                await self._clock.sleep(self.window)
            if self._pending.get(model) is batch:
                del self._pending[model]
            if batch.live == 0:
                return
            with anyio.CancelScope() as scope:
                batch.scope = scope
                self.batches += 1
                self.texts += len(batch.texts)
                try:
                    batch.response = await self._send_checked(list(batch.texts), model)
                except Exception as exc:
                    batch.error, batch.tb = exc, exc.__traceback__
        finally:
            if self._pending.get(model) is batch:
                del self._pending[model]
            batch.event.set()

    def statistics(self) -> BatcherStatistics:
        return BatcherStatistics(
            batches=self.batches, texts=self.texts, calls=self.calls, resent=self.resent
        )

    def metrics(self) -> dict[str, object]:
        return {
            "embeddings.batches": self.batches,
            "embeddings.texts": self.texts,
            "embeddings.resent": self.resent,
        }

    def __repr__(self) -> str:
        return (
            f"EmbeddingBatcher(max_batch={self.max_batch}, window={self.window}, "
            f"pending={len(self._pending)}, batches={self.batches})"
        )


def _collect(
    pieces: list[tuple[EmbeddingResponse, list[str], int, int]], model: str
) -> EmbeddingResponse:
    """One caller's vectors from its slices of (response, texts sent, offset, count)."""
    vectors: list[list[float]] = []
    tokens = 0
    answered_model, provider = model, ""
    for response, texts, offset, count in pieces:
        vectors.extend(response.vectors[offset : offset + count])
        tokens += _share(response.usage.input_tokens, texts, offset, count)
        answered_model, provider = response.model, response.provider
    usage = Usage.model_construct(input_tokens=tokens, total_tokens=tokens)
    return EmbeddingResponse.model_construct(
        vectors=vectors, model=answered_model, usage=usage, provider=provider
    )


def _may_succeed_alone(error: BaseException) -> bool:
    """Whether a caller of a failed merged batch could get its answer with a request alone."""
    if not isinstance(error, LLMError):
        return False
    return not isinstance(
        error, AuthenticationError | PermissionDeniedError | NotFoundError | RateLimitError
    )


def _share(total: int, texts: list[str], offset: int, count: int) -> int:
    """This slice's part of ``total`` tokens, by characters; slices add up to ``total``."""
    if total <= 0:
        return 0
    lengths = [len(t) + 1 for t in texts]
    whole = sum(lengths)
    before = sum(lengths[:offset])
    upto = before + sum(lengths[offset : offset + count])
    return math.floor(total * upto / whole) - math.floor(total * before / whole)
