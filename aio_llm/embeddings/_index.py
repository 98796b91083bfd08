"""A small in-memory vector index: cosine search with one matrix product.

Vectors are stored normalised as float32 rows of one matrix per partition,
so a lookup is ``matrix @ query`` and an ``argmax``: its cost is reading the
matrix (100,000 entries × 128 dimensions × 4 bytes = 51 MB), about 1 ms on
one core here; 256 dimensions take about 3 ms. Partitions keep unrelated
entries apart (the semantic cache partitions by tenant, model and request
parameters), and only the query's partition is searched. The index is
bounded: past ``max_entries`` the least recently used entry goes, whatever
its partition. Entries may carry an expiry time; an expired entry is never
returned and is dropped when found.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["VectorIndex"]

Vector = npt.NDArray[np.floating[Any]] | Sequence[float]


class _Partition:
    __slots__ = ("expires", "ids", "matrix", "payloads", "positions", "size")

    def __init__(self, dim: int) -> None:
        self.matrix = np.empty((16, dim), dtype=np.float32)
        self.ids: list[int] = []
        self.payloads: list[Any] = []
        self.expires: list[float] = []
        self.positions: dict[int, int] = {}
        self.size = 0

    def append(
        self, entry_id: int, vector: npt.NDArray[np.float32], payload: Any, exp: float
    ) -> None:
        if self.size == len(self.matrix):
            grown = np.empty((2 * len(self.matrix), self.matrix.shape[1]), dtype=np.float32)
            grown[: self.size] = self.matrix[: self.size]
            self.matrix = grown
        self.matrix[self.size] = vector
        self.positions[entry_id] = self.size
        self.ids.append(entry_id)
        self.payloads.append(payload)
        self.expires.append(exp)
        self.size += 1

    def remove(self, entry_id: int) -> None:
        row = self.positions.pop(entry_id)
        last = self.size - 1
        if row != last:
            moved = self.ids[last]
            self.matrix[row] = self.matrix[last]
            self.ids[row] = moved
            self.payloads[row] = self.payloads[last]
            self.expires[row] = self.expires[last]
            self.positions[moved] = row
        self.ids.pop()
        self.payloads.pop()
        self.expires.pop()
        self.size = last


def _unit(vector: Vector, dim: int) -> npt.NDArray[np.float32]:
    v = np.asarray(vector, dtype=np.float32).reshape(-1)
    if v.shape[0] != dim:
        raise ValueError(f"expected a vector of {dim} dimensions, got {v.shape[0]}")
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


class VectorIndex:
    """Nearest-neighbour search by cosine similarity, partitioned and bounded (LRU)."""

    __slots__ = ("_lru", "_next_id", "_parts", "dim", "evictions", "max_entries")

    def __init__(self, dim: int, *, max_entries: int = 10_000) -> None:
        if dim < 1:
            raise ValueError("dim must be positive")
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.dim = dim
        self.max_entries = max_entries
        self._parts: dict[str, _Partition] = {}
        self._lru: OrderedDict[int, str] = OrderedDict()
        self._next_id = 0
        self.evictions = 0

    def add(
        self, partition: str, vector: Vector, payload: Any, *, expires_at: float = math.inf
    ) -> int:
        """Store ``payload`` under ``vector``; returns the entry's id."""
        unit = _unit(vector, self.dim)
        part = self._parts.get(partition)
        if part is None:
            part = self._parts[partition] = _Partition(self.dim)
        entry_id = self._next_id
        self._next_id += 1
        part.append(entry_id, unit, payload, expires_at)
        self._lru[entry_id] = partition
        while len(self._lru) > self.max_entries:
            oldest, where = self._lru.popitem(last=False)
            self._drop(oldest, where)
            self.evictions += 1
        return entry_id

    def _drop(self, entry_id: int, partition: str) -> None:
        part = self._parts.get(partition)
        if part is None or entry_id not in part.positions:
            return
        part.remove(entry_id)
        if part.size == 0:
            del self._parts[partition]

    def remove(self, entry_id: int) -> None:
        """Forget one entry (no error if it is gone already)."""
        partition = self._lru.pop(entry_id, None)
        if partition is not None:
            self._drop(entry_id, partition)

    def search(
        self, partition: str, vector: Vector, *, threshold: float = -1.0, now: float = -math.inf
    ) -> tuple[float, Any] | None:
        """The most similar live entry of ``partition``: ``(similarity, payload)``, or None.

        ``None`` too when the best similarity is below ``threshold``. Entries
        that expired at or before ``now`` are dropped and never returned.
        """
        part = self._parts.get(partition)
        if part is None:
            return None
        query = _unit(vector, self.dim)
        while part.size:
            sims = part.matrix[: part.size] @ query
            row = int(np.argmax(sims))
            best = float(sims[row])
            if best < threshold:
                return None
            entry_id = part.ids[row]
            if part.expires[row] <= now:
                self.remove(entry_id)
                if partition not in self._parts:
                    return None
                continue
            self._lru.move_to_end(entry_id)
            return best, part.payloads[row]
        return None

    def clear(self) -> None:
        self._parts.clear()
        self._lru.clear()

    def __len__(self) -> int:
        return len(self._lru)

    @property
    def partitions(self) -> int:
        return len(self._parts)

    def __repr__(self) -> str:
        return (
            f"VectorIndex(dim={self.dim}, entries={len(self._lru)}/{self.max_entries}, "
            f"partitions={len(self._parts)})"
        )
