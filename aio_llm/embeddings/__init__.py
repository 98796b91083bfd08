"""Embeddings: the ``Embedder`` protocol, embedders, micro-batching and the vector index.

``LocalEmbedder`` and ``VectorIndex`` need numpy (the ``semantic`` extra),
``MiniLMEmbedder`` the ``minilm`` extra; each name loads on first use, so
``client.embed`` works without them.
"""

import typing

from .._exports import lazy_exports as _lazy_exports

if typing.TYPE_CHECKING:
    from ._embedders import BatcherStatistics as BatcherStatistics
    from ._embedders import ClientEmbedder as ClientEmbedder
    from ._embedders import Embedder as Embedder
    from ._embedders import EmbeddingBatcher as EmbeddingBatcher
    from ._index import VectorIndex as VectorIndex
    from ._local import LocalEmbedder as LocalEmbedder
    from ._minilm import MiniLMEmbedder as MiniLMEmbedder

__all__, __getattr__, __dir__ = _lazy_exports(__name__)
