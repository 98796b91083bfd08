from __future__ import annotations

import math

import anyio
import numpy as np
import pytest
from anyio import wait_all_tasks_blocked
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from aio_llm.embeddings import EmbeddingBatcher, LocalEmbedder, VectorIndex
from aio_llm.errors import RateLimitError
from aio_llm.testing.clock import FakeClock
from aio_llm.types import EmbeddingResponse, Usage

# -- LocalEmbedder -------------------------------------------------------------------


def test_local_embedder_is_deterministic_and_unit_length() -> None:
    texts = ["What is the capital of France?", "¿Qué hora es?", "", "   "]
    a = LocalEmbedder().embed_nowait(texts)
    b = LocalEmbedder().embed_nowait(texts)
    assert a.dtype == np.float32 and a.shape == (4, 128)
    assert np.array_equal(a, b)
    assert math.isclose(float(np.linalg.norm(a[0])), 1.0, rel_tol=1e-5)
    assert not a[2].any() and not a[3].any()  # no features: the zero vector
    with pytest.raises(ValueError):
        LocalEmbedder(dim=4)


def test_local_embedder_separates_near_misses_and_joins_paraphrases() -> None:
    e = LocalEmbedder()

    def sim(x: str, y: str) -> float:
        return float(e.embed_one(x) @ e.embed_one(y))

    threshold = LocalEmbedder.recommended_threshold
    assert sim("How do I exit vim?", "how do i exit VIM??") >= threshold
    assert sim("Convert 5 miles to kilometers.", "Convert 5 kilometers to miles.") < threshold
    assert sim("How do I enable dark mode?", "How do I disable dark mode?") < threshold
    assert sim("Is it safe?", "Is it not safe?") < threshold


@pytest.mark.anyio
async def test_local_embedder_async_api() -> None:
    vectors = await LocalEmbedder(dim=64).embed(["a b c"])
    assert vectors.shape == (1, 64)


# -- VectorIndex -----------------------------------------------------------------------


def _unit(rng: np.random.Generator, dim: int) -> np.ndarray:
    v = rng.standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def test_index_search_threshold_partitions_and_expiry() -> None:
    rng = np.random.default_rng(1)
    index = VectorIndex(8, max_entries=10)
    v = _unit(rng, 8)
    index.add("p1", v, "one", expires_at=100.0)
    index.add("p2", v, "two")
    found = index.search("p1", v * 3, threshold=0.99)
    assert found is not None and found[1] == "one" and math.isclose(found[0], 1.0, rel_tol=1e-5)
    assert index.search("p3", v) is None
    assert index.search("p1", -v, threshold=0.5) is None
    assert index.search("p1", v, now=100.0) is None  # expired: dropped
    assert len(index) == 1 and index.partitions == 1
    with pytest.raises(ValueError):
        index.add("p1", [1.0, 2.0], "wrong size")


class IndexMachine(RuleBasedStateMachine):
    """The index agrees with a brute-force model under adds, removes and evictions."""

    def __init__(self) -> None:
        super().__init__()
        self.rng = np.random.default_rng(7)
        self.index = VectorIndex(6, max_entries=5)
        self.model: dict[int, tuple[str, np.ndarray]] = {}
        self.order: list[int] = []

    @rule(partition=st.sampled_from(["a", "b"]))
    def add(self, partition: str) -> None:
        v = _unit(self.rng, 6)
        entry = self.index.add(partition, v, None)
        self.model[entry] = (partition, v)
        self.order.append(entry)
        if len(self.order) > 5:
            evicted = self.order.pop(0)
            del self.model[evicted]

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        entry = data.draw(st.sampled_from(sorted(self.model)))
        self.index.remove(entry)
        del self.model[entry]
        self.order.remove(entry)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def search_finds_the_stored_vector(self, data: st.DataObject) -> None:
        entry = data.draw(st.sampled_from(sorted(self.model)))
        partition, v = self.model[entry]
        found = self.index.search(partition, v)
        assert found is not None and found[0] > 0.9999
        self.order.remove(entry)  # a hit makes it the most recently used
        self.order.append(entry)

    @invariant()
    def sizes_agree(self) -> None:
        assert len(self.index) == len(self.model) <= 5
        assert self.index.partitions == len({p for p, _ in self.model.values()})


TestIndexMachine = IndexMachine.TestCase
TestIndexMachine.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 60), st.integers(0, 2**32 - 1))
def test_search_matches_brute_force(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    index = VectorIndex(16, max_entries=100)
    vectors = [_unit(rng, 16) for _ in range(n)]
    for i, v in enumerate(vectors):
        index.add("p", v, i)
    query = _unit(rng, 16)
    found = index.search("p", query)
    assert found is not None
    best = max(range(n), key=lambda i: float(vectors[i] @ query))
    assert math.isclose(found[0], float(vectors[best] @ query), rel_tol=1e-4, abs_tol=1e-5)


# -- EmbeddingBatcher --------------------------------------------------------------------


class Sender:
    def __init__(self, error: Exception | None = None) -> None:
        self.batches: list[tuple[list[str], str]] = []
        self.error = error
        self.gate: anyio.Event | None = None
        self.cancelled = 0

    async def __call__(self, texts: list[str], model: str) -> EmbeddingResponse:
        self.batches.append((texts, model))
        if self.gate is not None:
            try:
                await self.gate.wait()
            except anyio.get_cancelled_exc_class():
                self.cancelled += 1
                raise
        if self.error is not None:
            raise self.error
        vectors = [[float(len(t)), float(ord(t[0]))] for t in texts]
        tokens = sum(len(t) for t in texts)
        return EmbeddingResponse(
            vectors=vectors, model=model, usage=Usage(input_tokens=tokens, total_tokens=tokens)
        )


@pytest.mark.anyio
async def test_concurrent_calls_become_one_request_per_model() -> None:
    send = Sender()
    results: dict[str, EmbeddingResponse] = {}
    async with EmbeddingBatcher(send, clock=FakeClock()) as batcher:

        async def call(name: str, texts: list[str], model: str) -> None:
            results[name] = await batcher.embed(texts, model)

        async with anyio.create_task_group() as tg:
            tg.start_soon(call, "x", ["a", "bb"], "m1")
            tg.start_soon(call, "y", ["ccc"], "m1")
            tg.start_soon(call, "z", ["dddd"], "m2")
    assert sorted(send.batches) == [(["a", "bb", "ccc"], "m1"), (["dddd"], "m2")]
    assert results["x"].vectors == [[1.0, 97.0], [2.0, 98.0]]
    assert results["y"].vectors == [[3.0, 99.0]]
    assert results["z"].vectors == [[4.0, 100.0]]
    total = sum(results[k].usage.input_tokens for k in "xy")
    assert total == 6  # usage shared out, adding up to the batch's
    assert batcher.statistics().batches == 2 and batcher.metrics()["embeddings.texts"] == 4


@pytest.mark.anyio
async def test_max_batch_splits_and_large_calls_span_batches() -> None:
    send = Sender()
    async with EmbeddingBatcher(send, max_batch=3, clock=FakeClock()) as batcher:
        out = await batcher.embed([str(i) for i in range(7)], "m")
    assert [len(b[0]) for b in send.batches] == [3, 3, 1]
    assert [v[1] for v in out.vectors] == [float(ord(str(i))) for i in range(7)]


@pytest.mark.anyio
async def test_errors_reach_every_caller_of_the_batch() -> None:
    send = Sender(error=RateLimitError("slow", status_code=429))
    errors = 0
    async with EmbeddingBatcher(send, clock=FakeClock()) as batcher:

        async def call() -> None:
            nonlocal errors
            with pytest.raises(RateLimitError):
                await batcher.embed(["t"], "m")
            errors += 1

        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(call)
    assert errors == 5 and len(send.batches) == 1


@pytest.mark.anyio
async def test_cancelling_one_caller_does_not_cancel_the_batch() -> None:
    send = Sender()
    send.gate = anyio.Event()
    got: list[list[list[float]]] = []
    scope = anyio.CancelScope()
    async with EmbeddingBatcher(send, clock=FakeClock()) as batcher:

        async def victim() -> None:
            with scope:
                await batcher.embed(["aaa"], "m")

        async def other() -> None:
            got.append((await batcher.embed(["b"], "m")).vectors)

        async with anyio.create_task_group() as tg:
            tg.start_soon(victim)
            tg.start_soon(other)
            await wait_all_tasks_blocked()
            scope.cancel()
            await wait_all_tasks_blocked()
            send.gate.set()
    assert got == [[[1.0, 98.0]]] and send.cancelled == 0


@pytest.mark.anyio
async def test_batch_is_cancelled_when_all_callers_leave() -> None:
    send = Sender()
    send.gate = anyio.Event()
    async with EmbeddingBatcher(send, clock=FakeClock()) as batcher:
        async with anyio.create_task_group() as tg:
            tg.start_soon(batcher.embed, ["a"], "m")
            await wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
        await wait_all_tasks_blocked()
    assert send.cancelled == 1


@pytest.mark.anyio
async def test_batcher_needs_a_task_group_and_valid_arguments() -> None:
    batcher = EmbeddingBatcher(Sender(), clock=FakeClock())
    with pytest.raises(RuntimeError):
        await batcher.embed(["a"], "m")
    with pytest.raises(ValueError):
        EmbeddingBatcher(Sender(), max_batch=0)
    async with anyio.create_task_group() as tg:
        batcher.bind(tg)
        with pytest.raises(ValueError):
            await batcher.embed([], "m")
        assert (await batcher.embed(["q"], "m")).vectors == [[1.0, 113.0]]
