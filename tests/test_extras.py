"""Issue 15, point 10: optional dependencies are optional, and a missing one names its extra.

``pip install aio-llm`` brings anyio, aiohttp, httpx, pydantic and the OpenTelemetry API.
Redis backends need the ``redis`` extra; orjson (the ``speedups`` extra) only makes JSON
faster. A package is made "not installed" here the way Python itself reports it: a
``None`` entry in ``sys.modules`` makes its import raise ``ImportError``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aio_llm import AsyncLLMClient, ClientConfig
from aio_llm.cost.ledger import ledger_from_url
from aio_llm.errors import ConfigurationError, MissingExtraError
from aio_llm.middleware._keys import request_key
from aio_llm.middleware._redis_limits import RedisCircuitState, RedisGCRA
from aio_llm.middleware.cache._stores import RedisCache
from aio_llm.middleware.semantic_cache._redis_store import RedisStore
from aio_llm.testing import FakeLLMServer
from aio_llm.types import ChatRequest

ROOT = Path(__file__).resolve().parents[1]
HI = [{"role": "user", "content": "hi"}]
REDIS_MODULES = ["redis", "redis.asyncio", "redis.asyncio.retry", "redis.backoff"]
REDIS_MODULES += ["redis.exceptions"]


@pytest.fixture
def no_redis(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in REDIS_MODULES:
        monkeypatch.setitem(sys.modules, name, None)
    yield


def _check(exc: BaseException, extra: str) -> None:
    assert isinstance(exc, MissingExtraError)
    assert isinstance(exc, ConfigurationError) and isinstance(exc, ImportError)
    assert f"pip install 'aio-llm[{extra}]'" in str(exc)
    assert isinstance(exc.__cause__, ImportError)


# -- the redis extra ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: RedisCache("redis://127.0.0.1:1/0"),
        lambda: RedisGCRA("redis://127.0.0.1:1/0"),
        lambda: RedisCircuitState("redis://127.0.0.1:1/0"),
        lambda: ledger_from_url("redis://127.0.0.1:1/0"),
        lambda: RedisStore("redis://127.0.0.1:1/0"),
    ],
    ids=["cache", "ratelimit", "circuit", "ledger", "semantic"],
)
def test_each_redis_backend_names_the_redis_extra(no_redis: None, build: Any) -> None:
    with pytest.raises(MissingExtraError) as info:
        build()
    _check(info.value, "redis")


@pytest.mark.parametrize(
    "setting",
    [
        {"cache_enabled": True, "cache_backend": "redis"},
        {"ratelimit_backend": "redis"},
        {"circuit_backend": "redis"},
        {"budget_backend": "redis", "daily_budget": 5.0},
    ],
    ids=["cache", "ratelimit", "circuit", "budget"],
)
@pytest.mark.anyio
async def test_a_client_with_a_redis_backend_says_which_extra(
    no_redis: None, server: FakeLLMServer, transport: str, setting: dict[str, Any]
) -> None:
    config = ClientConfig(
        transport=transport, max_retries=0, redis_url="redis://127.0.0.1:1/0", **setting
    )
    with pytest.raises(MissingExtraError) as info:  # at construction or at open, never later
        async with AsyncLLMClient(
            "openai", api_key="sk-x", base_url=server.openai_url, model="gpt-4o-mini", config=config
        ) as client:
            await client.chat(HI)
    _check(info.value, "redis")
    assert server.request_count == 0  # refused before anything was sent
    assert "sk-x" not in repr(info.value) and "sk-x" not in str(info.value.__cause__)


@pytest.mark.redis
@pytest.mark.anyio
async def test_the_redis_cache_needs_no_aiocache(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, server: FakeLLMServer, transport: str
) -> None:
    monkeypatch.setitem(sys.modules, "aiocache", None)
    server.reply = "from upstream"
    config = ClientConfig(
        transport=transport, max_retries=0, cache_enabled=True, cache_backend=redis_url
    )
    async with AsyncLLMClient(
        "openai", api_key="sk-x", base_url=server.openai_url, model="gpt-4o-mini", config=config
    ) as client:
        prompt = [{"role": "user", "content": f"extras {uuid.uuid4().hex}"}]
        first = await client.chat(prompt)
        second = await client.chat(prompt)
    assert (first.cached, second.cached) == (False, True)
    assert second.content == "from upstream" and server.request_count == 1


@pytest.mark.redis
@pytest.mark.anyio
async def test_redis_cache_namespace_ttl_and_clear(redis_url: str) -> None:
    ns = f"extras-{uuid.uuid4().hex}"
    a, b = RedisCache(redis_url, namespace=ns), RedisCache(redis_url, namespace=ns + "x")
    try:
        await a.set("k", {"v": [1, "two"]})
        await b.set("k", "other")
        await a.set("short", 1, ttl=0.001)
        assert await a.get("k") == {"v": [1, "two"]}
        assert await b.get("k") == "other"  # namespaces never share keys
        await a.clear()
        assert await a.get("k") is None
        assert await b.get("k") == "other"  # clearing one leaves the other
        await a.delete("missing")
        assert a.available and a.errors == 0
    finally:
        await b.clear()
        await a.aclose()
        await b.aclose()


# -- orjson is optional -----------------------------------------------------------------


_NO_ORJSON = textwrap.dedent(
    """
    import sys
    sys.modules["orjson"] = None
    import json
    import anyio
    from aio_llm import AsyncLLMClient, ClientConfig
    from aio_llm import _json
    from aio_llm.middleware._keys import request_key
    from aio_llm.testing import FakeLLMServer
    from aio_llm.types import ChatRequest

    async def main():
        out = {}
        async with FakeLLMServer() as srv:
            srv.reply = "héllo ✓"
            for transport in ("aiohttp", "httpx"):
                config = ClientConfig(transport=transport, max_retries=0)
                async with AsyncLLMClient(
                    "openai", api_key="sk-x", base_url=srv.openai_url,
                    model="gpt-4o-mini", config=config,
                ) as c:
                    r = await c.chat([{"role": "user", "content": "hi"}])
                    async with c.stream([{"role": "user", "content": "hi"}]) as s:
                        streamed = await s.text()
                out[transport] = [r.content, streamed]
        try:
            _json.dumps("\\ud800")
            out["surrogate"] = "accepted"
        except TypeError:
            out["surrogate"] = "refused"
        req = ChatRequest(model="m", messages=[{"role": "user", "content": "é"}], temperature=0)
        out["key"] = request_key(req)
        out["orjson_loaded"] = sys.modules.get("orjson") is not None
        print(json.dumps(out))

    anyio.run(main)
    """
)


def test_without_orjson_everything_runs_on_the_standard_library() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _NO_ORJSON], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["aiohttp"] == ["héllo ✓", "héllo ✓"]
    assert out["httpx"] == ["héllo ✓", "héllo ✓"]
    assert out["surrogate"] == "refused"  # as orjson refuses it
    assert out["orjson_loaded"] is False
    # the cache key does not depend on which JSON library made it: processes with and
    # without orjson share one Redis cache
    req = ChatRequest(model="m", messages=[{"role": "user", "content": "é"}], temperature=0)
    assert out["key"] == request_key(req)


# -- what a plain install pulls in ------------------------------------------------------


def _project() -> dict[str, Any]:
    data: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return dict(data["project"])


def _names(specs: list[str]) -> set[str]:
    return {s.split(">")[0].split("=")[0].split("[")[0].split("<")[0].strip() for s in specs}


def test_a_plain_install_pulls_no_optional_backend() -> None:
    core = _names(_project()["dependencies"])
    assert {"anyio", "aiohttp", "httpx", "pydantic", "opentelemetry-api"} <= core
    assert not {"aiocache", "orjson", "redis", "opentelemetry-sdk", "tiktoken"} & core


def test_every_extra_an_error_names_exists() -> None:
    extras = set(_project()["optional-dependencies"])
    named = set()
    for path in (ROOT / "aio_llm").rglob("*.py"):
        text = path.read_text()
        for marker in ("pip install 'aio-llm[", 'pip install "aio-llm['):
            for part in text.split(marker)[1:]:
                if not part.startswith("{"):
                    named.add(part.split("]")[0])
        for fn, extra in (("require_redis(", "redis"), ("require_numpy(", "semantic")):
            if fn in text and "def " + fn not in text:
                named.add(extra)
    assert "redis" in named
    assert named <= extras, named - extras
    assert _names(_project()["optional-dependencies"]["speedups"]) == {"orjson"}
