"""A small in-memory vector index: cosine search with one matrix product.

Vectors are stored normalised as float32 rows of one matrix per partition,
so a lookup is ``matrix @ query`` and an ``argmax``: its cost is reading the
matrix (100,000 entries × 128 dimensions × 4 bytes = 51 MB), about 1.5 ms on
one core here. Wider vectors (a 384-dimensional model: 154 MB) would cost
three times that, so for them each vector is also kept projected onto 96
fixed random orthonormal directions: a partition of more than 4,096
entries is scanned in those first, and the 64 best rows are then scored
exactly. The projection keeps similarities to within about ±0.15, so a
near duplicate (similarity 0.8 and up, what a cache serves) stays in the
shortlist; the pair returned is always exactly scored. Partitions keep unrelated
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
from typing import TYPE_CHECKING, Any

from .._extras import missing

try:
    import numpy as np
except ImportError as exc:
    raise missing("numpy", "semantic", "the vector index") from exc
if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["VectorIndex"]

if TYPE_CHECKING:
    Vector = npt.NDArray[np.floating[Any]] | Sequence[float]


class _Partition:
    __slots__ = ("coarse", "expires", "ids", "matrix", "payloads", "positions", "size")

    def __init__(self, dim: int, coarse_dim: int) -> None:
        self.matrix = np.empty((16, dim), dtype=np.float32)
        self.coarse = np.empty((16, coarse_dim), dtype=np.float32) if coarse_dim else None
        self.ids: list[int] = []
        self.payloads: list[Any] = []
        self.expires: list[float] = []
        self.positions: dict[int, int] = {}
        self.size = 0

    def append(
        self,
        entry_id: int,
        vector: npt.NDArray[np.float32],
        coarse: npt.NDArray[np.float32] | None,
        payload: Any,
        exp: float,
    ) -> None:
        if self.size == len(self.matrix):
            self.matrix = _grown(self.matrix, self.size)
            if self.coarse is not None:
                self.coarse = _grown(self.coarse, self.size)
        self.matrix[self.size] = vector
        if self.coarse is not None:
            self.coarse[self.size] = coarse
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
            if self.coarse is not None:
                self.coarse[row] = self.coarse[last]
            self.ids[row] = moved
            self.payloads[row] = self.payloads[last]
            self.expires[row] = self.expires[last]
            self.positions[moved] = row
        self.ids.pop()
        self.payloads.pop()
        self.expires.pop()
        self.size = last


_COARSE_DIM = 96
_EXACT_UP_TO = 4096
_SHORTLIST = 64


def _projection(dim: int, coarse_dim: int) -> npt.NDArray[np.float32]:
    """A fixed random orthonormal projection (seeded: every process projects alike)."""
    gaussian = np.random.default_rng(0x5EED).standard_normal((dim, coarse_dim))
    q, _ = np.linalg.qr(gaussian)
    projection: npt.NDArray[np.float32] = np.ascontiguousarray(q, dtype=np.float32)
    return projection


def _grown(matrix: npt.NDArray[np.float32], size: int) -> npt.NDArray[np.float32]:
    grown = np.empty((2 * len(matrix), matrix.shape[1]), dtype=np.float32)
    grown[:size] = matrix[:size]
    return grown


def _unit(vector: Vector, dim: int) -> npt.NDArray[np.float32]:
    v = np.asarray(vector, dtype=np.float32).reshape(-1)
    if v.shape[0] != dim:
        raise ValueError(f"expected a vector of {dim} dimensions, got {v.shape[0]}")
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


class VectorIndex:
    """Nearest-neighbour search by cosine similarity, partitioned and bounded (LRU)."""

    __slots__ = (
        "_lru",
        "_next_id",
        "_parts",
        "_projection",
        "coarse_dim",
        "dim",
        "evictions",
        "max_entries",
    )

    def __init__(
        self, dim: int, *, max_entries: int = 10_000, coarse_dim: int | None = None
    ) -> None:
        if dim < 1:
            raise ValueError("dim must be positive")
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        if coarse_dim is None:
            coarse_dim = _COARSE_DIM if dim > 2 * _COARSE_DIM else 0
        if not 0 <= coarse_dim < dim:
            raise ValueError("coarse_dim must be in [0, dim)")
        self.dim = dim
        self.coarse_dim = coarse_dim
        """Dimensions of the first, approximate pass over large partitions (0: exact only)."""
        self._projection = _projection(dim, coarse_dim) if coarse_dim else None
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
            part = self._parts[partition] = _Partition(self.dim, self.coarse_dim)
        entry_id = self._next_id
        self._next_id += 1
        coarse = None if self._projection is None else unit @ self._projection
        part.append(entry_id, unit, coarse, payload, expires_at)
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
            row, best = self._best(part, query)
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

    def _best(self, part: _Partition, query: npt.NDArray[np.float32]) -> tuple[int, float]:
        """The row most similar to ``query`` and its similarity.

        A large partition is first scanned in ``coarse_dim`` projected
        dimensions (a fraction of the memory to read); the ``_SHORTLIST``
        best rows are then scored exactly.
        """
        size = part.size
        if part.coarse is None or self._projection is None or size <= _EXACT_UP_TO:
            sims = part.matrix[:size] @ query
            row = int(np.argmax(sims))
            return row, float(sims[row])
        rough = part.coarse[:size] @ (query @ self._projection)
        shortlist = np.argpartition(rough, size - _SHORTLIST)[size - _SHORTLIST :]
        exact = part.matrix[shortlist] @ query
        pick = int(np.argmax(exact))
        return int(shortlist[pick]), float(exact[pick])

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._lru

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
