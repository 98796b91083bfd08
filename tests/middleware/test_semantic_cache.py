from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from aio_llm.embeddings import ClientEmbedder, LocalEmbedder
from aio_llm.middleware.semantic_cache import SemanticCache
from aio_llm.streaming import ChunkAccumulator
from aio_llm.testing.clock import FakeClock
from aio_llm.types import ChatChunk, ChatRequest, ChatResponse, ChunkStream, EmbeddingResponse

pytestmark = pytest.mark.anyio

PAIRS = Path(__file__).resolve().parents[1] / "data" / "semantic_pairs.jsonl"


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


def _pairs() -> list[dict[str, Any]]:
    return [json.loads(line) for line in PAIRS.read_text().splitlines() if line.strip()]


def test_labelled_pairs_precision_at_the_default_threshold() -> None:
    pairs = _pairs()
    positives = sum(p["same"] for p in pairs)
    assert len(pairs) >= 200 and 0.4 <= positives / len(pairs) <= 0.6
    embedder = LocalEmbedder()
    a = embedder.embed_nowait([p["a"] for p in pairs])
    b = embedder.embed_nowait([p["b"] for p in pairs])
    sims = (a * b).sum(axis=1)
    same = np.array([p["same"] for p in pairs])
    hits = sims >= SemanticCache().threshold
    true_hits = int((hits & same).sum())
    precision = true_hits / int(hits.sum())
    recall = true_hits / int(same.sum())
    assert precision >= 0.97, (precision, recall)
    assert recall >= 0.6, (precision, recall)  # regression guard; the figure is in docs/caching.md


async def test_paraphrase_hits_and_different_question_misses() -> None:
    upstream = Upstream()
    cache = SemanticCache()
    first = await cache(_request("How do I reverse a list in Python?"), upstream)
    hit = await cache(_request("how do I reverse a list in python??"), upstream)
    assert hit.cached and hit.content == first.content == "answer 1" and hit.cost == 0.0
    miss = await cache(_request("How do I reverse a string in Python?"), upstream)
    assert not miss.cached and upstream.calls == 2
    assert cache.metrics() == {
        "semantic_cache.hits": 1,
        "semantic_cache.misses": 2,
        "semantic_cache.entries": 2,
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
    cache = SemanticCache()
    await cache(_request("What is the capital of France?"), upstream)
    params = {"model": "m", **changed}
    req = ChatRequest(
        messages=[{"role": "user", "content": "What is the capital of France?"}], **params
    )
    assert not (await cache(req, upstream)).cached


async def test_multi_turn_never_hits_on_a_different_history() -> None:
    upstream = Upstream()
    cache = SemanticCache()
    await cache(_request("Tell me about Paris.", "Paris is...", "How big is it?"), upstream)
    other = await cache(_request("Tell me about Rome.", "Rome is...", "How big is it?"), upstream)
    assert not other.cached
    same = await cache(_request("Tell me about Paris.", "Paris is...", "How big is it??"), upstream)
    assert same.cached and same.content == "answer 1"


async def test_tenants_are_partitioned() -> None:
    upstream = Upstream()
    cache = SemanticCache(tenant=lambda r: r.metadata.get("t"))
    await cache(_request("Why is the sky blue?", metadata={"t": "a"}), upstream)
    assert not (await cache(_request("Why is the sky blue?", metadata={"t": "b"}), upstream)).cached
    assert (await cache(_request("Why is the sky blue?", metadata={"t": "a"}), upstream)).cached


async def test_ineligible_requests_pass_through() -> None:
    upstream = Upstream()
    cache = SemanticCache()
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
    cache = SemanticCache(ttl=10, max_entries=2, clock=clock)
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
    cache = SemanticCache()
    response = await cache(_request("Explain recursion to a beginner.", stream=True), upstream)
    assert response.stream is not None
    assert "".join([c.delta async for c in response.stream]) == "answer 1"
    hit = await cache(_request("Explain recursion to a beginner, please.", stream=True), upstream)
    assert hit.cached and hit.stream is not None
    assert "".join([c.delta async for c in hit.stream]) == "answer 1"
    assert upstream.calls == 1


class _FailingEmbedder:
    recommended_threshold = 0.9

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
        SemanticCache(embedder)  # no recommended threshold: must be given
    with pytest.raises(ValueError):
        SemanticCache(threshold=1.5)
