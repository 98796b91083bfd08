"""The semantic cache: answer a question asked again in other words, within an error bound.

``SemanticCache`` (the middleware) puts the parts together: an embedder
(``aio_llm.embeddings``), a ``Verifier`` (``LexicalVerifier``), a ``Policy``
(``ErrorBound``: per-entry, error-bounded decisions learned from observed
outcomes; or ``FixedThreshold``), a ``Judge`` that turns a fresh answer into
an observed outcome (``SameAnswer``, ``LLMJudge``) and a store
(``MemoryStore``, or ``RedisStore`` shared by many processes).
``replay_pairs`` measures a configuration on labelled pairs. See
docs/caching.md. Each name loads its module on first use.
"""

import typing

from ..._exports import lazy_exports as _lazy_exports

if typing.TYPE_CHECKING:
    from ._bound import BoundStatistics as BoundStatistics
    from ._bound import Decision as Decision
    from ._bound import EntryRecord as EntryRecord
    from ._bound import ErrorBound as ErrorBound
    from ._bound import FixedThreshold as FixedThreshold
    from ._bound import Policy as Policy
    from ._cache import SemanticCache as SemanticCache
    from ._cache import SemanticCacheStatistics as SemanticCacheStatistics
    from ._evaluate import PairReport as PairReport
    from ._evaluate import PrecomputedEmbedder as PrecomputedEmbedder
    from ._evaluate import replay_pairs as replay_pairs
    from ._judge import Judge as Judge
    from ._judge import LLMJudge as LLMJudge
    from ._judge import SameAnswer as SameAnswer
    from ._redis_store import RedisStore as RedisStore
    from ._store import Candidate as Candidate
    from ._store import MemoryStore as MemoryStore
    from ._store import SemanticStore as SemanticStore
    from ._verify import LexicalVerifier as LexicalVerifier
    from ._verify import Verdict as Verdict
    from ._verify import Verifier as Verifier

__all__, __getattr__, __dir__ = _lazy_exports(__name__)
