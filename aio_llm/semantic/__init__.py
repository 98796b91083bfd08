"""The semantic cache's parts: error bound, verifier, judges, stores, embedders, evaluation.

``aio_llm.middleware.SemanticCache`` puts them together; see docs/caching.md.
"""

from __future__ import annotations

from .bound import BoundStatistics, Decision, EntryRecord, ErrorBound, FixedThreshold, Policy
from .evaluate import PairReport, PrecomputedEmbedder, replay_pairs
from .judge import Judge, LLMJudge, SameAnswer
from .minilm import MiniLMEmbedder
from .store import Candidate, MemoryStore, RedisStore, SemanticStore
from .verify import LexicalVerifier, Verdict, Verifier

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
    "MiniLMEmbedder",
    "PairReport",
    "Policy",
    "PrecomputedEmbedder",
    "RedisStore",
    "SameAnswer",
    "SemanticStore",
    "Verdict",
    "Verifier",
    "replay_pairs",
]
