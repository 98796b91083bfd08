"""Semantic cache: answer a question asked again in other words.

Only the last message is compared, and only when it is a user message with
text content: it is embedded and searched among earlier questions whose
everything-else is identical: tenant, provider, model, sampling parameters,
tools, response format, extra, and the whole conversation before it (all
hashed into the partition key, ``RequestKeyer.partition``). So a
multi-turn conversation never hits on an answer given after a different
history, and a hit needs both that and a cosine similarity at or above the
threshold. A conversation that ends in a tool result, or a message with
images, is not cached here.

The default embedder is ``LocalEmbedder`` (offline, no model download) with
its recommended threshold (0.90, chosen for precision: see
``docs/caching.md``); ``ClientEmbedder`` uses the provider's embeddings
instead (pass a threshold that suits the model). Off unless the client's
``semantic_cache_threshold`` is set. Hits carry ``cached=True`` and
``cost=0.0``; streams replay; entries expire after ``ttl`` and the index
holds at most ``max_entries`` (least recently used out first). If the
embedder fails, the request goes upstream uncached.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .._output import fits
from ..clock import SYSTEM_CLOCK, Clock
from ..embeddings._embedders import Embedder, LocalEmbedder
from ..embeddings._index import VectorIndex
from ..pipeline import Next
from ..streaming import replay_as_stream
from ..types import ChatRequest, ChatResponse, ChunkStream
from ._keys import RequestKeyer, TenantFn

__all__ = ["SemanticCache", "SemanticCacheStatistics"]


@dataclass(frozen=True)
class SemanticCacheStatistics:
    """Counters of a ``SemanticCache``."""

    hits: int
    misses: int
    skipped: int
    """Requests not eligible (``cache=False``, last message not user text)."""
    errors: int
    """Embedder failures (the request went upstream uncached)."""
    entries: int


class SemanticCache:
    """Middleware: serve a cached answer to a similar enough question (see the module doc)."""

    __slots__ = (
        "_clock",
        "_embedder",
        "_index",
        "_key",
        "errors",
        "hits",
        "max_entries",
        "misses",
        "skipped",
        "threshold",
        "ttl",
    )

    def __init__(
        self,
        embedder: Embedder | None = None,
        *,
        threshold: float | None = None,
        ttl: float = 3600.0,
        max_entries: int = 10_000,
        keyer: RequestKeyer | None = None,
        provider: str | None = None,
        tenant: str | TenantFn | None = None,
        clock: Clock | None = None,
    ) -> None:
        if embedder is None:
            embedder = LocalEmbedder()
        if threshold is None:
            threshold = getattr(embedder, "recommended_threshold", None)
            if threshold is None:
                raise ValueError("pass a threshold: this embedder recommends none")
        if not 0.0 < threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._embedder = embedder
        self.threshold = float(threshold)
        self.ttl = ttl
        self.max_entries = max_entries
        self._key = keyer if keyer is not None else RequestKeyer(provider=provider, tenant=tenant)
        self._clock = clock or SYSTEM_CLOCK
        self._index: VectorIndex | None = None
        self.hits = self.misses = self.skipped = self.errors = 0

    async def __call__(self, request: ChatRequest, next: Next) -> ChatResponse:
        text = _question(request)
        if text is None:
            self.skipped += 1
            return await next(request)
        partition = self._key.partition(request)
        try:
            vector = await self._embed(text)
        except Exception:
            self.errors += 1
            return await next(request)
        index = self._index
        if index is None:
            index = self._index = VectorIndex(len(vector), max_entries=self.max_entries)
        found = index.search(partition, vector, threshold=self.threshold, now=self._clock.now())
        if found is not None:
            self.hits += 1
            entry: ChatResponse = found[1]
            return replay_as_stream(entry) if request.stream else entry.model_copy()
        self.misses += 1
        response = await next(request)
        ttl = request.cache_ttl or self.ttl
        stream = response.stream
        if stream is not None:
            await stream.on_close(
                functools.partial(self._store_stream, request, partition, vector, ttl)
            )
        elif not response.cached and fits(request, response):  # never keep a bad answer
            self._store(partition, vector, response, ttl)
        return response

    async def _embed(self, text: str) -> npt.NDArray[np.float32]:
        vectors = await self._embedder.embed([text])
        row: npt.NDArray[np.float32] = np.asarray(vectors, dtype=np.float32).reshape(1, -1)[0]
        return row

    def _store(self, partition: str, vector: Any, response: ChatResponse, ttl: float) -> None:
        index = self._index
        assert index is not None
        entry = response.model_copy(update={"cached": True, "cost": 0.0})
        index.add(partition, vector, entry, expires_at=self._clock.now() + ttl)

    async def _store_stream(
        self, request: ChatRequest, partition: str, vector: Any, ttl: float, stream: ChunkStream
    ) -> None:
        response = stream.response
        if stream.completed and stream.error is None and response is not None:
            if fits(request, response):
                self._store(partition, vector, response, ttl)

    def statistics(self) -> SemanticCacheStatistics:
        entries = len(self._index) if self._index is not None else 0
        return SemanticCacheStatistics(self.hits, self.misses, self.skipped, self.errors, entries)

    def metrics(self) -> dict[str, object]:
        return {
            "semantic_cache.hits": self.hits,
            "semantic_cache.misses": self.misses,
            "semantic_cache.entries": len(self._index) if self._index is not None else 0,
        }

    def __repr__(self) -> str:
        entries = len(self._index) if self._index is not None else 0
        return (
            f"SemanticCache({self._embedder!r}, threshold={self.threshold}, entries={entries}, "
            f"hits={self.hits}, misses={self.misses})"
        )


def _question(request: ChatRequest) -> str | None:
    """The text of the last message if it is a cacheable user question, else None."""
    if not request.cache:
        return None
    last = request.messages[-1]
    if last.role != "user":
        return None
    content = last.content
    if isinstance(content, list) and any(_not_text(p) for p in content):
        return None
    text = last.text
    return text if text.strip() else None


def _not_text(part: dict[str, Any] | Sequence[Any]) -> bool:
    return not isinstance(part, dict) or part.get("type") != "text"
