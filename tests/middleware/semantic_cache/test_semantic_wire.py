"""The semantic cache in a real client, over loopback HTTP to FakeLLMServer.

The provider embedder path: ``semantic_cache_embedder="provider:<model>"``
embeds each question through ``client.embed`` (the client's embeddings
route, micro-batched), so concurrent lookups share one upstream request.
"""

from __future__ import annotations

import uuid
from typing import Any

import anyio
import pytest

from aio_llm import AsyncLLMClient, ClientConfig
from aio_llm.errors import ConfigurationError
from aio_llm.middleware.semantic_cache import SemanticCache
from aio_llm.testing import FakeLLMServer, Fault

pytestmark = pytest.mark.anyio

MODEL = "gpt-4o-mini"


def _config(**kw: Any) -> ClientConfig:
    base: dict[str, Any] = {
        "semantic_cache_threshold": 0.95,
        "semantic_cache_embedder": "provider:text-embedding-3-small",
        "dedup_enabled": False,
        "max_retries": 0,
    }
    return ClientConfig(**{**base, **kw})


def _ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def _paths(server: FakeLLMServer) -> list[str]:
    return [r.path.rsplit("/", 1)[-1] for r in server.requests]


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_the_provider_embedder_drives_the_cache_over_loopback(transport: str) -> None:
    async with FakeLLMServer() as server:
        config = _config(transport=transport)
        async with AsyncLLMClient(
            "openai", api_key="sk-test", base_url=server.openai_url, config=config
        ) as client:
            first = await client.chat(_ask("Why is the sky blue?"), model=MODEL)
            again = await client.chat(_ask("why is the sky blue"), model=MODEL)
            other = await client.chat(_ask("Why is the sea blue?"), model=MODEL)
            tenant = await client.chat(_ask("why is the sky blue"), model=MODEL, user="u2")
        assert again.cached and again.content == first.content and again.cost == 0.0
        assert not first.cached and not other.cached and not tenant.cached
        assert _paths(server).count("embeddings") == 4
        assert _paths(server).count("completions") == 3
        embeds = [r.json() for r in server.requests if r.path.endswith("/embeddings")]
        assert {e["model"] for e in embeds} == {"text-embedding-3-small"}
        assert embeds[0]["input"] == ["Why is the sky blue?"]


async def test_concurrent_lookups_share_one_embedding_request() -> None:
    async with FakeLLMServer(latency=0.05) as server:
        async with AsyncLLMClient(
            "openai", api_key="sk-test", base_url=server.openai_url, config=_config()
        ) as client:

            async def ask(i: int) -> None:
                await client.chat(_ask(f"Question number {i}?"), model=MODEL)

            async with anyio.create_task_group() as tg:
                for i in range(8):
                    tg.start_soon(ask, i)
        embeds = [r.json() for r in server.requests if r.path.endswith("/embeddings")]
        assert sum(len(e["input"]) for e in embeds) == 8 and len(embeds) < 8


async def test_an_embeddings_outage_lets_requests_through() -> None:
    async with FakeLLMServer() as server:
        server.set_fault(Fault.status(500), path="/v1/embeddings")
        async with AsyncLLMClient(
            "openai", api_key="sk-test", base_url=server.openai_url, config=_config()
        ) as client:
            reply = await client.chat(_ask("Still answered?"), model=MODEL)
            cache = next(m for m in client.middleware if isinstance(m, SemanticCache))
        assert reply.content and not reply.cached and cache.statistics().errors == 1


async def test_semantic_settings_are_checked() -> None:
    bad: list[dict[str, Any]] = [
        {"semantic_cache_embedder": "hub:some-model"},
        {"semantic_cache_embedder": "provider:"},
        {"semantic_cache_max_error": 0.02},  # with the fixed threshold too
    ]
    for kw in bad:
        with pytest.raises(ConfigurationError):
            async with AsyncLLMClient("mock", config=_config(**kw)):
                pass


@pytest.mark.redis
async def test_api_keys_are_tenants_of_a_shared_cache(redis_url: str) -> None:
    """Two clients on one Redis-backed semantic cache: another API key never sees an entry."""
    config = _config(
        semantic_cache_embedder="local",
        semantic_cache_threshold=0.9,
        semantic_cache_backend=redis_url,
    )
    question = _ask(f"What is the tallest mountain on planet {uuid.uuid4().hex}?")
    async with FakeLLMServer() as server:
        replies = []
        for key in ("sk-tenant-a", "sk-tenant-b", "sk-tenant-a"):
            async with AsyncLLMClient(
                "openai", api_key=key, base_url=server.openai_url, config=config
            ) as client:
                replies.append(await client.chat(question, model=MODEL))
        assert [r.cached for r in replies] == [False, False, True]
        assert _paths(server).count("completions") == 2
