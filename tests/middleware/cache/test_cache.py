from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aio_llm.compat import get_cache
from aio_llm.config import ClientConfig
from aio_llm.errors import ServerError
from aio_llm.middleware import Cache, MemoryCache, RedisCache
from aio_llm.middleware._keys import RequestKeyer, api_key_fingerprint, request_key
from aio_llm.streaming import ChunkAccumulator
from aio_llm.testing.clock import FakeClock
from aio_llm.types import ChatChunk, ChatRequest, ChatResponse, ChunkStream, Message, Usage
from tests.conftest import RedisServer

pytestmark = pytest.mark.anyio


def _request(text: str = "Hello", **kw: Any) -> ChatRequest:
    return ChatRequest(model="m", messages=[{"role": "user", "content": text}], **kw)


class ListSource:
    """Chunks from a list; optionally fails at the end instead of finishing."""

    def __init__(self, chunks: list[ChatChunk], fail: Exception | None = None) -> None:
        self.chunks = list(chunks)
        self.fail = fail
        self.acc = ChunkAccumulator()

    async def next_chunks(self) -> list[ChatChunk] | None:
        if not self.chunks:
            if self.fail is not None:
                raise self.fail
            return None
        chunk = self.chunks.pop(0)
        self.acc.add(chunk)
        return [chunk]

    def build_response(self) -> ChatResponse:
        return self.acc.build(provider="fake")

    async def aclose(self) -> None:
        self.chunks.clear()


class Upstream:
    """A fake ``next`` that counts calls; streams when the request asks for it."""

    def __init__(self, fail: Exception | None = None, stream_fail: Exception | None = None) -> None:
        self.calls = 0
        self.fail = fail
        self.stream_fail = stream_fail

    async def __call__(self, request: ChatRequest) -> ChatResponse:
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        text = f"answer {self.calls}"
        if request.stream:
            chunks = [ChatChunk(delta=text[:3]), ChatChunk(delta=text[3:], finish_reason="stop")]
            response = ChatResponse(model=request.model)
            response.stream = ChunkStream(ListSource(chunks, self.stream_fail))
            return response
        return ChatResponse(
            model=request.model,
            content=text,
            finish_reason="stop",
            cost=0.01,
            usage=Usage(input_tokens=3),
        )


# -- keys --------------------------------------------------------------------------

_text = st.text(min_size=1, max_size=20)
_json_scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=5)
_extra = st.dictionaries(st.text(min_size=1, max_size=5), _json_scalars, max_size=4)


@st.composite
def _base(draw: st.DrawFn) -> dict[str, Any]:
    roles = st.sampled_from(["user", "assistant", "system"])
    messages = draw(st.lists(st.tuples(roles, _text), min_size=1, max_size=3))
    return {
        "model": draw(st.sampled_from(["gpt-4o", "claude", "m"])),
        "messages": messages,
        "temperature": draw(st.none() | st.sampled_from([0.0, 0.5, 1.0])),
        "extra": draw(_extra),
        "seed": draw(st.none() | st.integers(0, 3)),
    }


def _build(base: dict[str, Any], variant: int, **more: Any) -> ChatRequest:
    """The same request spelled in different ways."""
    if variant == 0:
        msgs: list[Any] = [{"role": r, "content": c} for r, c in base["messages"]]
    elif variant == 1:
        msgs = [Message(role=r, content=c) for r, c in base["messages"]]
    else:
        msgs = [
            {"content": c, "tool_call_id": None, "role": r, "name": None, "tool_calls": None}
            for r, c in base["messages"]
        ]
    fields: dict[str, Any] = {"model": base["model"], "messages": msgs, "seed": base["seed"]}
    extra = dict(reversed(list(base["extra"].items()))) if variant else dict(base["extra"])
    if extra or variant == 2:
        fields["extra"] = extra
    if base["temperature"] is not None or variant == 2:
        fields["temperature"] = base["temperature"]
    if variant == 2:
        fields.update(top_p=None, stop=None, tools=None, user=None, provider=None)
    fields.update(more)
    return ChatRequest(**fields)


@settings(max_examples=150, deadline=None)
@given(
    _base(),
    st.integers(0, 2),
    st.integers(0, 2),
    st.none() | st.floats(1, 100),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.booleans(),
    st.booleans(),
)
def test_equal_requests_built_differently_share_a_key(
    base: dict[str, Any],
    v1: int,
    v2: int,
    timeout: float | None,
    metadata: dict[str, int],
    cache: bool,
    stream: bool,
) -> None:
    a = _build(base, v1)
    b = _build(
        base, v2, timeout=timeout, metadata=metadata, cache=cache, cache_ttl=5.0, stream=stream
    )
    assert request_key(a, tenant="t") == request_key(b, tenant="t")


_CHANGES: list[tuple[str, Any]] = [
    ("model", "other-model"),
    ("temperature", 1.7),
    ("top_p", 0.33),
    ("max_tokens", 77),
    ("stop", ["###"]),
    ("tools", [{"type": "function", "function": {"name": "f"}}]),
    ("tool_choice", "required"),
    ("response_format", {"type": "json_object"}),
    ("seed", 99),
    ("user", "someone-else"),
    ("extra", {"zz-unique": 1}),
    ("provider", "anthropic"),
]


@settings(max_examples=100, deadline=None)
@given(_base(), st.sampled_from(_CHANGES), st.integers(0, 2))
def test_any_answer_changing_field_changes_the_key(
    base: dict[str, Any], change: tuple[str, Any], variant: int
) -> None:
    a = _build(base, variant)
    name, value = change
    b = _build(base, variant, **{name: value})
    assert request_key(a, provider="openai") != request_key(b, provider="openai")


@settings(max_examples=60, deadline=None)
@given(_base(), _text)
def test_messages_and_tenant_change_the_key(base: dict[str, Any], text: str) -> None:
    a = _build(base, 0)
    longer = dict(base, messages=[*base["messages"], ("user", text)])
    assert request_key(a) != request_key(_build(longer, 0))
    assert request_key(a, tenant="x") != request_key(a, tenant="y")
    assert request_key(a, provider="openai") != request_key(a, provider="anthropic")


def test_key_normalisations_and_fingerprint() -> None:
    plain = _request("hi", stop="x")
    parts = ChatRequest(
        model="m",
        messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        stop=["x"],
    )
    assert request_key(plain) == request_key(parts)
    secret = "sk-test-0123456789"
    tag = api_key_fingerprint(secret)
    assert secret not in tag and len(tag) == 32 and tag == api_key_fingerprint(secret)
    assert api_key_fingerprint(None) == "-"
    key = request_key(plain, tenant=tag)
    assert secret not in key and "hi" not in key


def test_keyer_computes_once_per_request() -> None:
    calls = 0

    def tenant(request: ChatRequest) -> str:
        nonlocal calls
        calls += 1
        return "t"

    keyer = RequestKeyer(tenant=tenant)
    r = _request()
    assert keyer(r) == keyer(r) == request_key(r, tenant="t")
    assert calls == 1
    with pytest.raises(ValueError):
        RequestKeyer(tenant=42)  # type: ignore[arg-type]


# -- memory cache middleware -------------------------------------------------------


async def test_second_identical_request_is_a_hit() -> None:
    upstream = Upstream()
    cache = Cache()
    first = await cache(_request(), upstream)
    second = await cache(_request(temperature=None, timeout=3), upstream)
    assert upstream.calls == 1
    assert not first.cached and second.cached
    assert second.content == first.content == "answer 1"
    assert second.cost == 0.0 and second.usage.input_tokens == 3
    assert cache.metrics() == {"cache.hits": 1, "cache.misses": 1, "cache.stores": 1}


async def test_hits_are_copies() -> None:
    cache = Cache()
    upstream = Upstream()
    await cache(_request(), upstream)
    hit = await cache(_request(), upstream)
    hit.content = "mutated by the caller"
    assert (await cache(_request(), upstream)).content == "answer 1"


async def test_cache_false_and_cache_ttl() -> None:
    clock = FakeClock()
    cache = Cache(MemoryCache(clock=clock), ttl=100)
    upstream = Upstream()
    await cache(_request(cache=False), upstream)
    await cache(_request(cache=False), upstream)
    assert upstream.calls == 2 and cache.statistics().stores == 0
    await cache(_request(cache_ttl=10), upstream)
    clock.advance(9)
    assert (await cache(_request(), upstream)).cached
    clock.advance(2)
    assert not (await cache(_request(), upstream)).cached  # expired: stored again with ttl=100
    clock.advance(99)
    assert (await cache(_request(), upstream)).cached
    clock.advance(1)
    assert not (await cache(_request(), upstream)).cached


async def test_memory_cache_is_lru_bounded() -> None:
    store = MemoryCache(max_entries=2)
    store.set_nowait("a", 1)
    store.set_nowait("b", 2)
    assert store.get_nowait("a") == 1  # a is now the most recent
    store.set_nowait("c", 3)
    assert store.get_nowait("b") is None and store.get_nowait("a") == 1 and len(store) == 2
    assert store.evictions == 1
    with pytest.raises(ValueError):
        MemoryCache(max_entries=0)


async def test_tenants_never_share_entries() -> None:
    upstream = Upstream()
    cache = Cache(tenant=lambda r: r.metadata["key_hash"])
    await cache(_request(metadata={"key_hash": "A"}), upstream)
    assert not (await cache(_request(metadata={"key_hash": "B"}), upstream)).cached
    assert not (await cache(_request(metadata={"key_hash": "A"}, user="u2"), upstream)).cached
    assert (await cache(_request(metadata={"key_hash": "A"}), upstream)).cached
    assert upstream.calls == 3


async def test_errors_are_not_stored() -> None:
    upstream = Upstream(fail=ServerError("boom", status_code=500))
    cache = Cache()
    for _ in range(2):
        with pytest.raises(ServerError):
            await cache(_request(), upstream)
    assert upstream.calls == 2 and cache.statistics().stores == 0


async def test_cached_response_replays_as_a_stream() -> None:
    cache = Cache()
    upstream = Upstream()
    await cache(_request(), upstream)
    hit = await cache(_request(stream=True), upstream)
    assert hit.cached and hit.stream is not None
    assert "".join([c.delta async for c in hit.stream]) == "answer 1"
    assert upstream.calls == 1


async def test_completed_stream_is_stored_and_served_to_plain_requests() -> None:
    cache = Cache()
    upstream = Upstream()
    response = await cache(_request(stream=True), upstream)
    assert response.stream is not None
    assert "".join([c.delta async for c in response.stream]) == "answer 1"
    hit = await cache(_request(), upstream)
    assert hit.cached and hit.content == "answer 1" and hit.finish_reason == "stop"
    assert upstream.calls == 1


async def test_broken_or_abandoned_streams_are_not_stored() -> None:
    cache = Cache()
    upstream = Upstream(stream_fail=ServerError("cut", status_code=500))
    response = await cache(_request(stream=True), upstream)
    assert response.stream is not None
    with pytest.raises(ServerError):
        async for _ in response.stream:
            pass
    upstream.stream_fail = None
    response = await cache(_request(stream=True), upstream)
    assert response.stream is not None
    await response.stream.__anext__()
    await response.stream.aclose()  # the caller stopped early
    assert not (await cache(_request(), upstream)).cached
    assert upstream.calls == 3


async def test_get_cache_seed_api(monkeypatch: pytest.MonkeyPatch, fresh_defaults: None) -> None:
    monkeypatch.delenv("LLM_CACHE_BACKEND", raising=False)
    cache = get_cache()
    assert cache is get_cache() and isinstance(cache, MemoryCache)
    assert await cache.get("seed-key") is None
    await cache.set("seed-key", {"answer": 42}, ttl=60)
    assert await cache.get("seed-key") == {"answer": 42}


async def test_from_config() -> None:
    cache = Cache.from_config(ClientConfig(cache_enabled=True, cache_ttl=12, cache_max_entries=5))
    assert isinstance(cache.backend, MemoryCache) and cache.backend.max_entries == 5
    assert cache.ttl == 12


# -- Redis -------------------------------------------------------------------------


_CHILD = textwrap.dedent(
    """
    import sys, anyio
    from aio_llm.middleware import Cache, RedisCache
    from aio_llm.types import ChatRequest, ChatResponse

    async def main(url, namespace, text):
        calls = 0
        async def upstream(request):
            nonlocal calls
            calls += 1
            return ChatResponse(model=request.model, content=text, finish_reason="stop")
        backend = RedisCache(url, namespace=namespace)
        try:
            cache = Cache(backend, tenant="tenant-1")
            req = ChatRequest(model="m", messages=[{"role": "user", "content": "shared?"}])
            response = await cache(req, upstream)
        finally:
            await backend.aclose()
        print(f"{calls} {response.cached} {response.content}")

    anyio.run(main, *sys.argv[1:])
    """
)


def _child(url: str, namespace: str, text: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[3]))
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, url, namespace, text],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=True,
    )
    return out.stdout.strip()


@pytest.mark.redis
def test_two_processes_share_a_redis_cache(redis_url: str) -> None:
    namespace = f"test-{uuid.uuid4().hex}"
    assert _child(redis_url, namespace, "from process one") == "1 False from process one"
    assert _child(redis_url, namespace, "from process two") == "0 True from process one"


@pytest.mark.redis
async def test_redis_entries_are_json_without_secrets(redis_url: str) -> None:
    import redis.asyncio as redis

    namespace = f"test-{uuid.uuid4().hex}"
    secret = "sk-live-abcdef0123456789"
    backend = RedisCache(redis_url, namespace=namespace)
    raw = redis.Redis.from_url(redis_url)
    try:
        cache = Cache(backend, tenant=api_key_fingerprint(secret))
        await cache(_request("json please"), Upstream())
        keys = await raw.keys(f"{namespace}:*")
        assert len(keys) == 1 and secret.encode() not in keys[0]
        value = await raw.get(keys[0])
        assert isinstance(value, bytes) and secret.encode() not in value
        entry = json.loads(value)
        assert entry["t"] == "chat" and entry["v"]["content"] == "answer 1" and entry["v"]["cached"]
        hit = await cache(_request("json please"), Upstream())
        assert hit.cached and hit.content == "answer 1"
        await backend.clear()
        assert await raw.keys(f"{namespace}:*") == []
    finally:
        await raw.aclose()
        await backend.aclose()


@pytest.mark.redis
async def test_redis_outage_degrades_then_recovers(
    private_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    backend = RedisCache(private_redis.url, retry_interval=5.0, clock=clock)
    cache = Cache(backend)
    upstream = Upstream()
    try:
        await cache(_request("before"), upstream)
        assert (await cache(_request("before"), upstream)).cached

        private_redis.stop()
        caplog.set_level(logging.WARNING, logger="aio_llm.cache")
        for i in range(5):  # requests keep succeeding, cache bypassed
            response = await cache(_request(f"during {i % 2}"), upstream)
            assert not response.cached and response.content.startswith("answer")
            clock.advance(2.0)  # past retry_interval: each probe fails again
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "unreachable" in warnings[0].getMessage()
        assert not backend.available and cache.metrics()["cache.available"] is False

        private_redis.start()
        clock.advance(10.0)
        await cache(_request("after"), upstream)  # a probe: stored again
        assert backend.available
        assert (await cache(_request("after"), upstream)).cached
        assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    finally:
        await backend.aclose()
