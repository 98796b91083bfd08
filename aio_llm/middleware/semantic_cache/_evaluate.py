"""Measure a semantic cache on labelled question pairs: precision, recall, hit and false-hit rate.

Each pair is ``(query, cached_query, same)``. The replay asks ``cached_query``
first (a miss that stores its answer), then ``query``, through the real
``SemanticCache`` middleware; an oracle model answers, giving both questions
of a pair the same answer exactly when ``same`` is true. Each pair gets its
own tenant, so the only candidate of a query is its own pair's question,
while the cache's policy learns from every pair's outcomes, as it would in
production (the ``SameAnswer`` judge compares the oracle's answers).

``warmup`` pairs are replayed first and not counted: the outcomes the
policy learns from before measuring (e.g. a development split).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..._extras import require_numpy
from ...types import ChatRequest, ChatResponse
from ._stats import wilson

if TYPE_CHECKING:
    from ...embeddings import Embedder
    from ._cache import SemanticCache

__all__ = ["PairReport", "PrecomputedEmbedder", "replay_pairs"]


@dataclass(frozen=True)
class PairReport:
    """What a cache did on labelled pairs."""

    pairs: int
    positives: int
    hits: int
    correct_hits: int

    @property
    def wrong_hits(self) -> int:
        return self.hits - self.correct_hits

    @property
    def precision(self) -> float:
        """Correct hits / hits (1.0 when nothing was served)."""
        return self.correct_hits / self.hits if self.hits else 1.0

    @property
    def recall(self) -> float:
        """Correct hits / pairs that mean the same."""
        return self.correct_hits / self.positives if self.positives else 0.0

    @property
    def hit_rate(self) -> float:
        """Hits / lookups."""
        return self.hits / self.pairs if self.pairs else 0.0

    @property
    def false_hit_rate(self) -> float:
        """Wrong hits / lookups (the share of all answers that were wrong)."""
        return self.wrong_hits / self.pairs if self.pairs else 0.0

    def interval(self, what: str, confidence: float = 0.95) -> tuple[float, float]:
        """The Wilson interval of ``precision``, ``recall``, ``hit_rate`` or ``false_hit_rate``."""
        k, n = {
            "precision": (self.correct_hits, self.hits),
            "recall": (self.correct_hits, self.positives),
            "hit_rate": (self.hits, self.pairs),
            "false_hit_rate": (self.wrong_hits, self.pairs),
            "error": (self.wrong_hits, self.hits),
        }[what]
        return wilson(k, n, confidence)


class PrecomputedEmbedder:
    """An ``Embedder`` that looks texts up in vectors computed beforehand (in batches)."""

    __slots__ = ("_vectors", "inner")

    def __init__(self, inner: Embedder, vectors: Mapping[str, Any]) -> None:
        self.inner = inner
        self._vectors = dict(vectors)

    @classmethod
    async def build(
        cls, inner: Embedder, texts: Iterable[str], batch: int = 64
    ) -> PrecomputedEmbedder:
        unique = list(dict.fromkeys(texts))
        vectors: dict[str, Any] = {}
        for start in range(0, len(unique), batch):
            chunk = unique[start : start + batch]
            rows = await inner.embed(chunk)
            vectors.update(zip(chunk, rows, strict=True))
        return cls(inner, vectors)

    async def embed(self, texts: Sequence[str]) -> Any:
        missing = [t for t in texts if t not in self._vectors]
        if missing:
            rows = await self.inner.embed(missing)
            self._vectors.update(zip(missing, rows, strict=True))
        np = require_numpy("PrecomputedEmbedder")
        return np.stack([self._vectors[t] for t in texts])

    def __repr__(self) -> str:
        return f"PrecomputedEmbedder({self.inner!r}, texts={len(self._vectors)})"


class _Oracle:
    """The model: answers each question with its meaning's label."""

    __slots__ = ("answers",)

    def __init__(self) -> None:
        self.answers: dict[tuple[str | None, str], str] = {}

    async def __call__(self, request: ChatRequest) -> ChatResponse:
        answer = self.answers[(request.user, request.messages[-1].text)]
        return ChatResponse(model=request.model, content=answer, finish_reason="stop")


async def replay_pairs(
    cache: SemanticCache,
    pairs: Sequence[Mapping[str, Any]],
    *,
    warmup: Sequence[Mapping[str, Any]] = (),
    model: str = "model",
) -> PairReport:
    """Replay ``warmup`` then ``pairs`` through ``cache`` (see the module doc)."""
    oracle = _Oracle()
    positives = hits = correct = 0
    for phase, rows in (("w", warmup), ("m", pairs)):
        for i, pair in enumerate(rows):
            user = f"{phase}{i}"
            same = bool(pair["same"])
            cached_q, query = str(pair["cached_query"]), str(pair["query"])
            oracle.answers[(user, cached_q)] = f"{user}:a"
            oracle.answers[(user, query)] = f"{user}:a" if same else f"{user}:b"
            if query == cached_q:
                continue  # an exact repeat is the exact cache's job
            for text in (cached_q, query):
                request = ChatRequest(
                    model=model, messages=[{"role": "user", "content": text}], user=user
                )
                response = await cache(request, oracle)
            if phase == "m":
                positives += same
                if response.cached:
                    hits += 1
                    correct += response.content == oracle.answers[(user, query)]
    measured = sum(1 for p in pairs if p["query"] != p["cached_query"])
    return PairReport(pairs=measured, positives=positives, hits=hits, correct_hits=correct)
