"""Embeddings: the ``Embedder`` protocol, embedders, micro-batching and the vector index.

``ClientEmbedder`` and ``EmbeddingBatcher`` need nothing beyond the core
dependencies; ``LocalEmbedder`` and ``VectorIndex`` need numpy (the
``semantic`` extra) and ``MiniLMEmbedder`` the ``minilm`` extra: they load on
first use, so ``client.embed`` works without numpy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_getattr
from ._embedders import BatcherStatistics, ClientEmbedder, Embedder, EmbeddingBatcher

if TYPE_CHECKING:
    from ._index import VectorIndex
    from ._local import LocalEmbedder
    from ._minilm import MiniLMEmbedder

__all__ = [
    "BatcherStatistics",
    "ClientEmbedder",
    "Embedder",
    "EmbeddingBatcher",
    "LocalEmbedder",
    "MiniLMEmbedder",
    "VectorIndex",
]

__getattr__ = lazy_getattr(
    __name__,
    {"LocalEmbedder": "_local", "MiniLMEmbedder": "_minilm", "VectorIndex": "_index"},
    globals(),
)
