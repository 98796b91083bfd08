"""Embeddings: the ``Embedder`` protocol, embedders, micro-batching and the vector index."""

from __future__ import annotations

from ._embedders import (
    BatcherStatistics,
    ClientEmbedder,
    Embedder,
    EmbeddingBatcher,
    LocalEmbedder,
    VectorIndex,
)

__all__ = [
    "BatcherStatistics",
    "ClientEmbedder",
    "Embedder",
    "EmbeddingBatcher",
    "LocalEmbedder",
    "VectorIndex",
]
