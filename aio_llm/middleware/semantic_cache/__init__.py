"""The semantic cache: answer a question asked again in other words, within an error bound.

``SemanticCache`` (the middleware) puts the parts together: an embedder
(``aio_llm.embeddings``), a ``Verifier`` (``LexicalVerifier``), a ``Policy``
(``ErrorBound``: per-entry, error-bounded decisions learned from observed
outcomes; or ``FixedThreshold``), a ``Judge`` that turns a fresh answer into
an observed outcome (``SameAnswer``, ``LLMJudge``) and a store
(``MemoryStore``, or ``RedisStore`` shared by many processes).
``replay_pairs`` measures a configuration on labelled pairs. See
docs/caching.md.
"""

from __future__ import annotations

from ._bound import BoundStatistics, Decision, EntryRecord, ErrorBound, FixedThreshold, Policy
from ._cache import SemanticCache, SemanticCacheStatistics
from ._evaluate import PairReport, PrecomputedEmbedder, replay_pairs
from ._judge import Judge, LLMJudge, SameAnswer
from ._redis_store import RedisStore
from ._store import Candidate, MemoryStore, SemanticStore
from ._verify import LexicalVerifier, Verdict, Verifier

__all__ = [
    "BoundStatistics",
    "Candidate",
    "Decision",
    "EntryRecord",
    "ErrorBound",
    "FixedThreshold",
    "Judge",
    "LLMJudge",
    "LexicalVerifier",
    "MemoryStore",
    "PairReport",
    "Policy",
    "PrecomputedEmbedder",
    "RedisStore",
    "SameAnswer",
    "SemanticCache",
    "SemanticCacheStatistics",
    "SemanticStore",
    "Verdict",
    "Verifier",
    "replay_pairs",
]
