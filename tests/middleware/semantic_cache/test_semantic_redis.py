"""A semantic cache shared by two processes through a real Redis.

The child process (this file run as a script) answers questions through a
``SemanticCache`` on a ``RedisStore``: its entries (vectors included) and
the outcomes it judged land in Redis. The parent, with a fresh cache and a
fresh ``ErrorBound``, then serves the child's answers, to the same tenant
only, having learned its threshold from the child's outcomes.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from aio_llm.middleware.semantic_cache import ErrorBound, RedisStore, SemanticCache
from aio_llm.types import ChatRequest, ChatResponse

ROOT = Path(__file__).resolve().parents[3]
TOWNS = 110


class Oracle:
    def __init__(self, who: str) -> None:
        self.who = who
        self.calls = 0

    async def __call__(self, request: ChatRequest) -> ChatResponse:
        self.calls += 1
        town = "".join(c for c in request.messages[-1].text if c.isdigit())
        return ChatResponse(model=request.model, content=f"town {town}")


def _request(text: str, **kw: Any) -> ChatRequest:
    return ChatRequest(
        model=kw.pop("model", "m"), messages=[{"role": "user", "content": text}], **kw
    )


def _cache(url: str, namespace: str) -> SemanticCache:
    # max_error 0.1 at 90% confidence: 100 observations (the least tested) set a threshold
    bound = ErrorBound(0.1, confidence=0.9, explore=0.0)
    return SemanticCache(policy=bound, store=RedisStore(url, namespace=namespace))


async def _child(url: str, namespace: str) -> None:
    cache = _cache(url, namespace)
    oracle = Oracle("child")
    async with cache:
        for town in range(TOWNS):
            await cache(_request(f"How many people live in town {town}?", user="alice"), oracle)
            await cache(_request(f"how many people live in town {town}", user="alice"), oracle)
    stats = cache.statistics()
    assert stats.observed == TOWNS - stats.hits and stats.hits > 0, stats


pytestmark = [pytest.mark.redis, pytest.mark.anyio]


async def test_two_processes_share_entries_and_outcomes(redis_url: str) -> None:
    namespace = uuid.uuid4().hex
    child = subprocess.run(
        [sys.executable, __file__, redis_url, namespace],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr
    cache = _cache(redis_url, namespace)
    oracle = Oracle("parent")
    async with cache:
        # the child's outcomes are shared: this fresh bound already has a threshold
        hit = await cache(_request("how many people live in town 7", user="alice"), oracle)
        assert cache.threshold is not None
        assert hit.cached and hit.content == "town 7" and oracle.calls == 0
        # never across tenants, models, parameters or response formats
        for kw in (
            {"user": "bob"},
            {"user": "alice", "model": "other"},
            {"user": "alice", "temperature": 0.5},
            {"user": "alice", "response_format": {"type": "json_object"}},
        ):
            reply = await cache(_request("How many people live in town 7?", **kw), oracle)
            assert not reply.cached, kw
        assert oracle.calls == 4
        assert isinstance(cache.store, RedisStore)
        await cache.store.clear()


async def test_redis_down_is_a_miss_not_a_failure() -> None:
    store = RedisStore("redis://127.0.0.1:1/0", timeout=0.2)
    cache = SemanticCache(threshold=0.9, store=store)
    oracle = Oracle("parent")
    async with cache:
        for _ in range(2):
            reply = await cache(_request("Is Redis there?"), oracle)
            assert not reply.cached
    assert oracle.calls == 2


if __name__ == "__main__":
    import anyio

    sys.path.insert(0, str(ROOT))
    anyio.run(_child, sys.argv[1], sys.argv[2])
