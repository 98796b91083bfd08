"""Semantic cache: answer a question asked again in other words, within an error bound.

Only the last message is compared, and only when it is a user message with
text content. Its embedding is searched among earlier questions whose
everything-else is identical: tenant, provider, model, sampling parameters,
tools, response format, extra, and the whole conversation before it (all
hashed into the partition key, ``RequestKeyer.partition``). A conversation
that ends in a tool result, or a message with images, is not cached here.

The nearest earlier question (the candidate) goes through three gates:

1. **similarity** at least the bound's ``floor`` (else a plain miss);
2. the **verifier** (``LexicalVerifier`` by default): numbers, negation,
   names, polar words and word order must agree, else a plain miss;
3. the **decision** of the policy: ``ErrorBound(max_error)`` by default,
   which serves only above a threshold it learned from observed outcomes
   (see ``._bound``). Candidates it does not serve go to the
   model, and the ``judge`` compares the fresh answer with the cached one:
   that verdict is the observation it learns from. A random ``explore``
   share of would-be hits is also sent to the model and judged, so the
   served region stays measured. A cold cache therefore serves nothing
   until it has seen enough outcomes.

``threshold=`` replaces the bound with a fixed similarity threshold (no
learning, no error bound; the verifier still applies). Hits carry
``cached=True`` and ``cost=0.0``; streams replay. Entries expire after
``ttl``. ``store=`` shares the entries (``RedisStore``). If the embedder
fails, the request goes upstream uncached. Off unless configured.
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..._extras import require_numpy
from ..._output import fits
from ...clock import SYSTEM_CLOCK, Clock
from ...embeddings import ClientEmbedder, Embedder
from ...errors import ConfigurationError
from ...pipeline import Next
from ...streaming import replay_as_stream
from ...types import ChatRequest, ChatResponse, ChunkStream
from .._keys import RequestKeyer, TenantFn
from ._bound import Decision, ErrorBound, FixedThreshold, Policy
from ._judge import Judge, SameAnswer
from ._store import Candidate, MemoryStore, SemanticStore
from ._verify import LexicalVerifier, Verifier

if TYPE_CHECKING:
    from ...config import ClientConfig
    from ...embeddings._embedders import EmbeddingClient

__all__ = ["SemanticCache", "SemanticCacheStatistics"]

logger = logging.getLogger("aio_llm.cache")

_DEFAULT: Any = object()


@dataclass(frozen=True)
class SemanticCacheStatistics:
    """Counters of a ``SemanticCache``."""

    hits: int
    misses: int
    skipped: int
    """Requests not eligible (``cache=False``, last message not user text)."""
    errors: int
    """Embedder, store or judge failures (the request went upstream uncached)."""
    entries: int
    rejected: int
    """Candidates the verifier rejected."""
    explored: int
    """Would-be hits sent to the model to keep measuring (``explore``)."""
    observed: int
    """Outcomes judged and recorded."""
    threshold: float | None
    """The similarity the policy serves from now (None: nothing is served yet)."""


class SemanticCache:
    """Middleware: serve a cached answer to the same question asked in other words."""

    __slots__ = (
        "_key",
        "embedder",
        "errors",
        "explored",
        "hits",
        "judge",
        "misses",
        "observed",
        "policy",
        "rejected",
        "skipped",
        "store",
        "ttl",
        "verifier",
    )

    def __init__(
        self,
        embedder: Embedder | None = None,
        *,
        max_error: float = 0.02,
        confidence: float = 0.95,
        explore: float = 0.05,
        threshold: float | None = None,
        policy: Policy | None = None,
        verifier: Verifier | None = _DEFAULT,
        judge: Judge | None = None,
        store: SemanticStore | None = None,
        ttl: float = 3600.0,
        max_entries: int = 10_000,
        keyer: RequestKeyer | None = None,
        provider: str | None = None,
        tenant: str | TenantFn | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        require_numpy("the semantic cache")
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        if policy is not None and threshold is not None:
            raise ValueError("pass either a policy or a threshold, not both")
        if policy is None:
            if threshold is not None:
                policy = FixedThreshold(threshold)
            else:
                policy = ErrorBound(max_error, confidence=confidence, explore=explore, rng=rng)
        clock = clock or SYSTEM_CLOCK
        if embedder is None:
            from ...embeddings import LocalEmbedder

            embedder = LocalEmbedder()
        self.embedder = embedder
        self.policy = policy
        self.verifier = LexicalVerifier() if verifier is _DEFAULT else verifier
        self.judge = judge if judge is not None else SameAnswer()
        self.store = store if store is not None else MemoryStore(max_entries, clock=clock)
        self.ttl = ttl
        self._key = keyer if keyer is not None else RequestKeyer(provider=provider, tenant=tenant)
        self.hits = self.misses = self.skipped = self.errors = 0
        self.rejected = self.explored = self.observed = 0

    @classmethod
    def from_config(
        cls,
        config: ClientConfig,
        *,
        keyer: RequestKeyer | None = None,
        clock: Clock | None = None,
        client: EmbeddingClient | None = None,
    ) -> SemanticCache:
        """The semantic cache that ``config`` describes (``semantic_cache_*`` settings)."""
        if config.semantic_cache_max_error is not None and config.semantic_cache_threshold:
            raise ConfigurationError(
                "set semantic_cache_max_error or semantic_cache_threshold, not both"
            )
        kind = config.semantic_cache_embedder
        embedder: Embedder
        if kind == "local":
            from ...embeddings import LocalEmbedder

            embedder = LocalEmbedder()
        elif kind == "minilm":
            from ...embeddings import MiniLMEmbedder

            embedder = MiniLMEmbedder()
        elif kind.startswith("provider:") and kind[len("provider:") :]:
            if client is None:
                raise ConfigurationError("a provider embedder needs the client")
            embedder = ClientEmbedder(client, kind[len("provider:") :])
        else:
            raise ConfigurationError(
                f"semantic_cache_embedder must be local, minilm or provider:<model>, not {kind!r}"
            )
        store: SemanticStore | None = None
        if config.semantic_cache_backend != "memory":
            from ._redis_store import RedisStore

            url = config.backend_url(config.semantic_cache_backend)
            store = RedisStore(url, max_entries=config.cache_max_entries, clock=clock)
        return cls(
            embedder,
            max_error=config.semantic_cache_max_error or 0.02,
            threshold=config.semantic_cache_threshold,
            store=store,
            ttl=config.cache_ttl,
            max_entries=config.cache_max_entries,
            keyer=keyer,
            clock=clock,
        )

    async def __aenter__(self) -> SemanticCache:
        """Load the embedder's model, if it has one to load (the client enters its middleware
        when it opens, so the first request does not wait for it)."""
        load = getattr(self.embedder, "load", None)
        if callable(load):
            await load()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        closer = getattr(self.store, "aclose", None)
        if closer is not None:
            await closer()

    @property
    def threshold(self) -> float | None:
        """The similarity from which hits are served now (None: none yet)."""
        return self.policy.threshold

    async def __call__(self, request: ChatRequest, next: Next) -> ChatResponse:
        text = _question(request)
        if text is None:
            self.skipped += 1
            return await next(request)
        partition = self._key.partition(request)
        try:
            vector = await self._embed(text)
            await self.store.refresh(self.policy)
            candidate = await self.store.nearest(partition, vector, floor=self.policy.floor)
        except Exception:
            logger.debug("semantic cache lookup failed", exc_info=True)
            self.errors += 1
            return await next(request)
        decision = Decision.MISS
        if candidate is not None and candidate.response is not None:
            verdict = self.verifier.verify(text, candidate.question) if self.verifier else True
            if not verdict:
                self.rejected += 1
            else:
                decision = self.policy.decide(candidate.score, candidate.record)
        if decision is Decision.SERVE:
            assert candidate is not None and candidate.response is not None
            self.hits += 1
            entry = candidate.response
            return replay_as_stream(entry) if request.stream else entry.model_copy()
        self.misses += 1
        if decision is Decision.EXPLORE:
            self.explored += 1
        judged = candidate if decision in (Decision.EXPLORE, Decision.OBSERVE) else None
        response = await next(request)
        ttl = request.cache_ttl or self.ttl
        done = functools.partial(self._settle, request, text, partition, vector, ttl, judged)
        stream = response.stream
        if stream is not None:
            await stream.on_close(functools.partial(self._settle_stream, done))
        elif not response.cached:
            await done(response)
        return response

    async def _embed(self, text: str) -> Sequence[float]:
        np = require_numpy("the semantic cache")
        vectors = await self.embedder.embed([text])
        row: Sequence[float] = np.asarray(vectors, dtype=np.float32).reshape(1, -1)[0]
        return row

    async def _settle(
        self,
        request: ChatRequest,
        text: str,
        partition: str,
        vector: Sequence[float],
        ttl: float,
        judged: Candidate | None,
        response: ChatResponse,
    ) -> None:
        """Judge the fresh answer against the candidate, then store it unless it was the same."""
        same = False
        try:
            if judged is not None and judged.response is not None:
                same = await self.judge.same(text, response, judged.response)
                await self.store.outcome(judged, same, self.policy)
                self.observed += 1
            if not same and fits(request, response):  # never keep an answer that does not fit
                entry = response.model_copy(update={"cached": True, "cost": 0.0})
                await self.store.add(partition, vector, text, entry, ttl)
        except Exception:
            logger.debug("semantic cache could not record an answer", exc_info=True)
            self.errors += 1

    @staticmethod
    async def _settle_stream(done: functools.partial[Any], stream: ChunkStream) -> None:
        if stream.completed and stream.error is None and stream.response is not None:
            await done(stream.response)

    def statistics(self) -> SemanticCacheStatistics:
        return SemanticCacheStatistics(
            hits=self.hits,
            misses=self.misses,
            skipped=self.skipped,
            errors=self.errors,
            entries=len(self.store),
            rejected=self.rejected,
            explored=self.explored,
            observed=self.observed,
            threshold=self.policy.threshold,
        )

    def metrics(self) -> dict[str, object]:
        return {
            "semantic_cache.hits": self.hits,
            "semantic_cache.misses": self.misses,
            "semantic_cache.entries": len(self.store),
            "semantic_cache.rejected": self.rejected,
            "semantic_cache.explored": self.explored,
        }

    def __repr__(self) -> str:
        return (
            f"SemanticCache({self.embedder!r}, {self.policy!r}, entries={len(self.store)}, "
            f"hits={self.hits}, misses={self.misses})"
        )


def _question(request: ChatRequest) -> str | None:
    """The text of the last message if it is a cacheable user question, else None."""
    if not request.cache:
        return None
    last = request.messages[-1]
    if last.role != "user":
        return None
    content = last.content
    if isinstance(content, list) and any(_not_text(p) for p in content):
        return None
    text = last.text
    return text if text.strip() else None


def _not_text(part: dict[str, Any] | Sequence[Any]) -> bool:
    return not isinstance(part, dict) or part.get("type") != "text"
