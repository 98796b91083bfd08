"""Where the semantic cache keeps its entries: the store protocol and ``MemoryStore``.

An entry is the question asked, its vector, the answer, and its outcome
record (``EntryRecord``); entries live in partitions (tenant, provider,
model, parameters, response format, history: ``RequestKeyer.partition``)
and only the query's partition is searched, so no entry ever answers
another tenant, model or parameter set.

``MemoryStore`` is one process's ``VectorIndex``; ``RedisStore``
(``._redis_store``) shares entries and outcomes between processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..._extras import require_numpy
from ...clock import SYSTEM_CLOCK, Clock
from ...types import ChatResponse
from ._bound import EntryRecord, Policy

if TYPE_CHECKING:
    from ...embeddings._index import VectorIndex

__all__ = ["Candidate", "MemoryStore", "SemanticStore"]


@dataclass(slots=True)
class Candidate:
    """The nearest stored question of a lookup, with its similarity."""

    entry: Any
    """The store's handle of the entry."""
    score: float
    question: str
    record: EntryRecord
    response: ChatResponse | None
    """The stored answer (``None``: it expired or was evicted since the lookup)."""


class SemanticStore(Protocol):
    """The storage behind ``SemanticCache``."""

    async def nearest(
        self, partition: str, vector: Sequence[float], *, floor: float
    ) -> Candidate | None: ...

    async def add(
        self,
        partition: str,
        vector: Sequence[float],
        question: str,
        response: ChatResponse,
        ttl: float,
    ) -> None: ...

    async def outcome(self, candidate: Candidate, correct: bool, bound: Policy) -> None: ...

    async def refresh(self, bound: Policy) -> None: ...

    def __len__(self) -> int: ...


def _index(index: VectorIndex | None, dim: int, max_entries: int) -> VectorIndex:
    """``index``, or a new one for vectors of ``dim`` dimensions (the first vector's)."""
    if index is None:
        from ...embeddings._index import VectorIndex

        index = VectorIndex(dim, max_entries=max_entries)
    return index


class _Entry:
    __slots__ = ("question", "record", "response")

    def __init__(self, question: str, response: ChatResponse) -> None:
        self.question = question
        self.response = response
        self.record = EntryRecord()


class MemoryStore:
    """Entries in this process: a bounded ``VectorIndex`` (least recently used out first)."""

    __slots__ = ("_clock", "_index", "max_entries")

    def __init__(self, max_entries: int = 10_000, *, clock: Clock | None = None) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        require_numpy("the semantic cache")
        self.max_entries = max_entries
        self._clock = clock or SYSTEM_CLOCK
        self._index: VectorIndex | None = None

    async def nearest(
        self, partition: str, vector: Sequence[float], *, floor: float
    ) -> Candidate | None:
        index = self._index = _index(self._index, len(vector), self.max_entries)
        found = index.search(partition, vector, threshold=floor, now=self._clock.now())
        if found is None:
            return None
        score, entry = found
        return Candidate(entry, score, entry.question, entry.record, entry.response)

    async def add(
        self,
        partition: str,
        vector: Sequence[float],
        question: str,
        response: ChatResponse,
        ttl: float,
    ) -> None:
        index = self._index = _index(self._index, len(vector), self.max_entries)
        index.add(partition, vector, _Entry(question, response), expires_at=self._clock.now() + ttl)

    async def outcome(self, candidate: Candidate, correct: bool, bound: Policy) -> None:
        bound.observe(candidate.score, correct, candidate.record)

    async def refresh(self, bound: Policy) -> None:
        return None

    def __len__(self) -> int:
        return 0 if self._index is None else len(self._index)

    def __repr__(self) -> str:
        return f"MemoryStore(entries={len(self)}/{self.max_entries})"
