from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from aio_llm.embeddings import ClientEmbedder
from aio_llm.middleware.semantic_cache import ErrorBound, SemanticCache
from aio_llm.streaming import ChunkAccumulator
from aio_llm.testing.clock import FakeClock
from aio_llm.types import ChatChunk, ChatRequest, ChatResponse, ChunkStream, EmbeddingResponse

pytestmark = pytest.mark.anyio


def _request(*texts: str, **kw: Any) -> ChatRequest:
    roles = ["user", "assistant"]
    messages = [{"role": roles[i % 2], "content": t} for i, t in enumerate(texts)]
    return ChatRequest(model="m", messages=messages, **kw)


class _Source:
    def __init__(self, text: str) -> None:
        self.chunks = [ChatChunk(delta=text, finish_reason="stop")]
        self.acc = ChunkAccumulator()

    async def next_chunks(self) -> list[ChatChunk] | None:
        if not self.chunks:
            return None
        chunk = self.chunks.pop()
        self.acc.add(chunk)
        return [chunk]

    def build_response(self) -> ChatResponse:
        return self.acc.build(provider="fake")

    async def aclose(self) -> None:
        self.chunks.clear()


class Upstream:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, request: ChatRequest) -> ChatResponse:
        self.calls += 1
        text = f"answer {self.calls}"
        if request.stream:
            response = ChatResponse(model=request.model)
            response.stream = ChunkStream(_Source(text))
            return response
        return ChatResponse(model=request.model, content=text, finish_reason="stop", cost=0.5)


def _fixed(**kw: Any) -> SemanticCache:
    """A cache with a fixed threshold: hits from the first repeat (no learning needed)."""
    return SemanticCache(threshold=0.90, **kw)


async def test_paraphrase_hits_and_different_question_misses() -> None:
    upstream = Upstream()
    cache = _fixed()
    first = await cache(_request("How do I reverse a list in Python?"), upstream)
    hit = await cache(_request("how do I reverse a list in python??"), upstream)
    assert hit.cached and hit.content == first.content == "answer 1" and hit.cost == 0.0
    miss = await cache(_request("How do I reverse a string in Python?"), upstream)
    assert not miss.cached and upstream.calls == 2
    assert cache.metrics() == {
        "semantic_cache.hits": 1,
        "semantic_cache.misses": 2,
        "semantic_cache.entries": 2,
        "semantic_cache.rejected": 0,
        "semantic_cache.explored": 0,
    }


@pytest.mark.parametrize(
    "changed",
    [
        {"model": "other"},
        {"temperature": 0.9},
        {"max_tokens": 5},
        {"response_format": {"type": "json_object"}},
        {"user": "someone-else"},
    ],
)
async def test_a_hit_needs_identical_non_message_params(changed: dict[str, Any]) -> None:
    upstream = Upstream()
    cache = _fixed()
    await cache(_request("What is the capital of France?"), upstream)
    params = {"model": "m", **changed}
    req = ChatRequest(
        messages=[{"role": "user", "content": "What is the capital of France?"}], **params
    )
    assert not (await cache(req, upstream)).cached


async def test_multi_turn_never_hits_on_a_different_history() -> None:
    upstream = Upstream()
    cache = _fixed()
    await cache(_request("Tell me about Paris.", "Paris is...", "How big is it?"), upstream)
    other = await cache(_request("Tell me about Rome.", "Rome is...", "How big is it?"), upstream)
    assert not other.cached
    same = await cache(_request("Tell me about Paris.", "Paris is...", "How big is it??"), upstream)
    assert same.cached and same.content == "answer 1"


async def test_tenants_are_partitioned() -> None:
    upstream = Upstream()
    cache = _fixed(tenant=lambda r: r.metadata.get("t"))
    await cache(_request("Why is the sky blue?", metadata={"t": "a"}), upstream)
    assert not (await cache(_request("Why is the sky blue?", metadata={"t": "b"}), upstream)).cached
    assert (await cache(_request("Why is the sky blue?", metadata={"t": "a"}), upstream)).cached


async def test_ineligible_requests_pass_through() -> None:
    upstream = Upstream()
    cache = _fixed()
    for _ in range(2):
        await cache(_request("Same question?", cache=False), upstream)
        await cache(_request("Same question?", "the assistant spoke last"), upstream)
        image = [
            {"type": "image_url", "image_url": {"url": "data:,"}},
            {"type": "text", "text": "?"},
        ]
        await cache(ChatRequest(model="m", messages=[{"role": "user", "content": image}]), upstream)
    assert upstream.calls == 6 and cache.statistics().skipped == 6


async def test_ttl_and_size_bound() -> None:
    clock = FakeClock()
    upstream = Upstream()
    cache = _fixed(ttl=10, max_entries=2, clock=clock)
    await cache(_request("What is the capital of France?"), upstream)
    clock.advance(5)
    assert (await cache(_request("What's the capital of France?"), upstream)).cached
    clock.advance(5)
    assert not (await cache(_request("What is the capital of France?"), upstream)).cached
    await cache(_request("How do vaccines work?"), upstream)
    await cache(_request("What is Kubernetes?"), upstream)
    assert cache.statistics().entries == 2
    assert not (await cache(_request("What is the capital of France?"), upstream)).cached


async def test_streams_replay_and_completed_streams_are_stored() -> None:
    upstream = Upstream()
    cache = _fixed()
    response = await cache(_request("Explain recursion to a beginner.", stream=True), upstream)
    assert response.stream is not None
    assert "".join([c.delta async for c in response.stream]) == "answer 1"
    hit = await cache(_request("Explain recursion to a beginner, please.", stream=True), upstream)
    assert hit.cached and hit.stream is not None
    assert "".join([c.delta async for c in hit.stream]) == "answer 1"
    assert upstream.calls == 1


class _FailingEmbedder:
    async def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        raise ConnectionError("embeddings endpoint down")


async def test_embedder_failure_goes_upstream_uncached() -> None:
    upstream = Upstream()
    cache = SemanticCache(_FailingEmbedder())
    assert (await cache(_request("hi?"), upstream)).content == "answer 1"
    assert cache.statistics().errors == 1


class _FakeClient:
    """Stands in for ``AsyncLLMClient.embed``: maps each text to a fixed vector."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], str | None]] = []

    async def embed(self, texts: list[str], *, model: str | None = None) -> EmbeddingResponse:
        self.calls.append((texts, model))
        vectors = [[1.0, 0.0, 0.0] if "cat" in t else [0.0, 1.0, 0.0] for t in texts]
        return EmbeddingResponse(vectors=vectors, model=model or "")


async def test_client_embedder_drives_the_cache() -> None:
    client = _FakeClient()
    embedder = ClientEmbedder(client, "text-embedding-3-small")  # type: ignore[arg-type]
    upstream = Upstream()
    cache = SemanticCache(embedder, threshold=0.95)
    await cache(_request("a cat question"), upstream)
    assert (await cache(_request("another cat question"), upstream)).cached
    assert not (await cache(_request("a dog question"), upstream)).cached
    assert client.calls[0] == (["a cat question"], "text-embedding-3-small")
    with pytest.raises(ValueError):
        SemanticCache(threshold=1.5)
    with pytest.raises(ValueError):
        SemanticCache(max_error=0.0)


# -- the error bound in the middleware -----------------------------------------------


class Oracle:
    """The model: each town number has one answer; counts the calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, request: ChatRequest) -> ChatResponse:
        self.calls += 1
        town = "".join(c for c in request.messages[-1].text if c.isdigit())
        return ChatResponse(model=request.model, content=f"about {town}00 people")


def _bound(**kw: Any) -> ErrorBound:
    # max_error 0.1 at 90% confidence: the first threshold is tested on 100 observations
    return ErrorBound(0.1, confidence=0.9, **kw)


async def test_a_cold_cache_serves_nothing_until_outcomes_bound_the_error() -> None:
    oracle = Oracle()
    bound = _bound(explore=0.0)
    cache = SemanticCache(policy=bound)
    served_at = None
    for town in range(120):
        await cache(_request(f"How many people live in town {town}?"), oracle)
        again = await cache(_request(f"how many people live in town {town}"), oracle)
        if again.cached:
            served_at = served_at if served_at is not None else town
            assert again.content == f"about {town}00 people"
    assert served_at == bound.start == 100  # every earlier repeat was observed, not served
    stats = cache.statistics()
    assert stats.observed == 100 and stats.hits == 20 and stats.threshold is not None
    assert bound.statistics().wrong == 0


class _Verdicts:
    """A judge that answers from a script and records what it was asked."""

    def __init__(self, verdict: bool) -> None:
        self.verdict = verdict
        self.asked: list[str] = []

    async def same(self, question: str, fresh: ChatResponse, cached: ChatResponse) -> bool:
        self.asked.append(question)
        return self.verdict


async def test_exploration_asks_the_model_for_a_sampled_share_of_would_be_hits() -> None:
    oracle = Oracle()
    bound = _bound(explore=0.5, rng=random.Random(7))
    bound.observe_many([0.999] * bound.start, [True] * bound.start)
    judge = _Verdicts(True)
    cache = SemanticCache(policy=bound, judge=judge)
    await cache(_request("How many people live in town 3?"), oracle)
    for _ in range(40):
        await cache(_request("how many people live in town 3"), oracle)
    stats = cache.statistics()
    assert stats.hits + stats.explored == 40
    assert 10 <= stats.explored <= 30  # about half, from the seeded rng
    assert oracle.calls == 1 + stats.explored and len(judge.asked) == stats.explored
    assert stats.entries == 1  # the same answer is not stored twice


async def test_an_entry_seen_wrong_is_never_served_at_that_similarity_again() -> None:
    oracle = Oracle()
    bound = _bound(explore=1.0, rng=random.Random(1))
    bound.observe_many([0.999] * bound.start, [True] * bound.start)
    cache = SemanticCache(policy=bound, judge=_Verdicts(False))
    await cache(_request("How many people live in town 3?"), oracle)
    explored = await cache(_request("how many people live in town 3"), oracle)
    assert not explored.cached and cache.statistics().explored == 1
    bound.explore = 0.0
    # the judged entry answered wrongly at this similarity: the global threshold allows it,
    # the entry does not; the fresh answer (judged different) was stored as its own entry
    again = await cache(_request("How many people live in town 3, roughly?"), oracle)
    assert not again.cached


async def test_explored_streams_are_judged_when_they_end() -> None:
    upstream = Upstream()
    bound = _bound(explore=1.0, rng=random.Random(1))
    bound.observe_many([0.999] * bound.start, [True] * bound.start)
    judge = _Verdicts(True)
    cache = SemanticCache(policy=bound, judge=judge)
    first = await cache(_request("Explain recursion to a beginner.", stream=True), upstream)
    assert first.stream is not None
    assert "".join([c.delta async for c in first.stream]) == "answer 1"
    second = await cache(_request("explain recursion to a beginner", stream=True), upstream)
    assert second.stream is not None and not judge.asked
    assert "".join([c.delta async for c in second.stream]) == "answer 2"
    assert judge.asked == ["explain recursion to a beginner"]


async def test_the_verifier_rejects_near_questions_that_ask_something_else() -> None:
    upstream = Upstream()
    cache = SemanticCache(threshold=0.5)
    await cache(_request("Flights from Paris to Rome on Monday"), upstream)
    for other in (
        "Flights from Rome to Paris on Monday",
        "Flights from Paris to Rome on Tuesday",
        "Flights from Paris to Rome not on Monday",
    ):
        assert not (await cache(_request(other), upstream)).cached
    assert cache.statistics().rejected == 3
    assert (await cache(_request("flights from paris to rome on monday?"), upstream)).cached
