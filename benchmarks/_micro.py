"""In-process figures with no HTTP at all (run inside a pinned child by ``_worker.py``).

* CPU per request of each default middleware alone and of groups of them
  (resilience = Retry + CircuitBreaker + RateLimit; tracing with no SDK and
  with the OpenTelemetry SDK and in-memory exporters), as the difference
  between the chain around a canned provider and the canned provider alone;
* the whole ``client.chat`` path over the default chain with a provider that
  answers from memory (the library's own cost per request);
* semantic lookup over 100,000 entries: ``VectorIndex.search`` alone and a
  ``SemanticCache`` miss (embed the prompt, search, store).
"""

from __future__ import annotations

import json
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from _clients import MODEL, REPLY, messages

from aio_llm import AsyncLLMClient, ChatRequest, ChatResponse, ClientConfig
from aio_llm.pipeline import build_chain
from aio_llm.providers import OpenAIProvider


class CannedProvider(OpenAIProvider):
    """An OpenAI provider whose ``send`` answers from memory (a decoded real body)."""

    response: ChatResponse

    def __init__(self) -> None:
        super().__init__("x", "http://127.0.0.1:9/v1")
        body = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": REPLY},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 16, "total_tokens": 28},
        }
        req = ChatRequest(model=MODEL, messages=messages(0))  # type: ignore[arg-type]
        self.response = self.decode_chat(req, 200, {}, json.dumps(body).encode())

    async def send(self, request: ChatRequest, transport: Any) -> ChatResponse:
        return self.response


def _cpu() -> float:
    return time.process_time()  # user + system of every thread, ns resolution


async def _per_call(
    handler: Callable[[ChatRequest], Awaitable[ChatResponse]],
    requests: list[ChatRequest],
    n: int,
    reps: int = 3,
) -> float:
    """Median over ``reps`` of CPU µs per ``await handler(request)``, one at a time."""
    k = len(requests)
    for i in range(min(n, 2000)):
        await handler(requests[i % k])
    results = []
    for _ in range(reps):
        t0 = _cpu()
        for i in range(n):
            await handler(requests[i % k])
        results.append((_cpu() - t0) / n * 1e6)
    return statistics.median(results)


async def _middleware_costs(n: int) -> dict[str, float]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from aio_llm.middleware import Tracing

    provider = CannedProvider()
    out: dict[str, float] = {}
    async with AsyncLLMClient(provider, config=ClientConfig(transport="aiohttp")) as client:
        requests = [client.build_request(messages(i), model=MODEL) for i in range(1024)]

        async def bare(request: ChatRequest) -> ChatResponse:
            return await provider.send(request, None)

        chain = {type(mw).__name__: mw for mw in client.middleware}
        base = await _per_call(bare, requests, n)
        out["canned provider alone"] = base

        def delta(names: list[str]) -> Callable[[ChatRequest], Awaitable[ChatResponse]]:
            return build_chain([chain[x] for x in names], bare)

        for name in chain:
            out[name] = await _per_call(delta([name]), requests, n) - base
        resilience = ["Retry", "CircuitBreakerMiddleware", "RateLimit"]
        out["resilience (Retry + CircuitBreaker + RateLimit)"] = (
            await _per_call(delta(resilience), requests, n) - base
        )
        out["default chain (no HTTP)"] = await _per_call(delta(list(chain)), requests, n) - base

        async def whole(request: ChatRequest) -> ChatResponse:
            return await client.chat(request=request)

        out["client.chat(request=...) over the default chain, no HTTP"] = (
            await _per_call(whole, requests, n) - base
        )
        k = [0]

        async def whole_from_messages(request: ChatRequest) -> ChatResponse:
            k[0] += 1
            return await client.chat(messages(k[0] & 1023), model=MODEL)

        out["client.chat(messages) over the default chain, no HTTP"] = (
            await _per_call(whole_from_messages, requests, n) - base
        )

        exporter = InMemorySpanExporter()
        tp = TracerProvider()
        tp.add_span_processor(SimpleSpanProcessor(exporter))
        mp = MeterProvider(metric_readers=[InMemoryMetricReader()])
        traced = Tracing(
            provider=provider.label,
            providers={provider.label: provider},
            tracer_provider=tp,
            meter_provider=mp,
        )
        handler = build_chain([traced], bare)
        out["Tracing with SDK + in-memory exporter"] = (
            await _per_call(handler, requests, max(n // 5, 2000)) - base
        )
        spans = len(exporter.get_finished_spans())
        if spans == 0:
            raise RuntimeError("the SDK tracer recorded no span")
        tp.shutdown()
        mp.shutdown()
    return out


async def _semantic(entries: int, lookups: int) -> dict[str, float]:
    import numpy as np

    from aio_llm.embeddings._index import VectorIndex
    from aio_llm.embeddings._local import LocalEmbedder
    from aio_llm.middleware import SemanticCache

    out: dict[str, float] = {"entries": entries}
    rng = np.random.default_rng(0)
    queries: dict[int, Any] = {}
    for dim in (LocalEmbedder().dim, 384):  # the local embedder; MiniLM
        vectors = rng.standard_normal((entries, dim)).astype(np.float32)
        index = VectorIndex(dim, max_entries=entries)
        for row in vectors:
            index.add("p", row, None)
        queries[dim] = rng.standard_normal((lookups, dim)).astype(np.float32)
        walls = []
        cpu0 = _cpu()
        for q in queries[dim]:
            t = time.perf_counter()
            index.search("p", q, threshold=0.90)
            walls.append(time.perf_counter() - t)
        suffix = "" if dim == LocalEmbedder().dim else f" ({dim}-d)"
        out[f"VectorIndex.search{suffix} ms (median wall)"] = statistics.median(walls) * 1e3
        out[f"VectorIndex.search{suffix} ms (CPU mean)"] = (_cpu() - cpu0) / lookups * 1e3
        del index

    dim = LocalEmbedder().dim
    out["dim"] = dim
    vectors = rng.standard_normal((entries, dim)).astype(np.float32)
    provider = CannedProvider()
    cache = SemanticCache(threshold=0.90, max_entries=entries, provider=provider.label)
    req0 = ChatRequest(model=MODEL, messages=messages(0))  # type: ignore[arg-type]
    partition = cache._key.partition(req0)
    for row in vectors:
        await cache.store.add(partition, row, "a stored question", provider.response, 3600.0)

    async def send(request: ChatRequest) -> ChatResponse:
        return provider.response

    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
    r = random.Random(1)
    reqs = [
        ChatRequest(
            model=MODEL,
            messages=[{"role": "user", "content": " ".join(r.sample(words, 6)) + f" {i}"}],  # type: ignore[list-item]
        )
        for i in range(lookups)
    ]
    walls = []
    for req in reqs:
        t = time.perf_counter()
        await cache(req, send)
        walls.append(time.perf_counter() - t)
    out["SemanticCache miss (embed + search + verify + store) ms (median wall)"] = (
        statistics.median(walls) * 1e3
    )
    return out


async def run_micro(spec: dict[str, Any]) -> dict[str, Any]:
    parts = spec.get("parts", ["middleware", "semantic"])
    result: dict[str, Any] = {}
    if "middleware" in parts:
        result["middleware_us"] = await _middleware_costs(spec.get("n", 20000))
    if "semantic" in parts:
        entries, lookups = spec.get("entries", 100_000), spec.get("lookups", 200)
        result["semantic"] = await _semantic(entries, lookups)
    return result
