"""Embeddings: the ``Embedder`` protocol, embedders, micro-batching and the vector index."""

import typing

from .._exports import lazy_exports as _lazy_exports

if typing.TYPE_CHECKING:
    from ._embedders import BatcherStatistics as BatcherStatistics
    from ._embedders import ClientEmbedder as ClientEmbedder
    from ._embedders import Embedder as Embedder
    from ._embedders import EmbeddingBatcher as EmbeddingBatcher
    from ._embedders import LocalEmbedder as LocalEmbedder
    from ._embedders import VectorIndex as VectorIndex

__all__, __getattr__, __dir__ = _lazy_exports(__name__)
