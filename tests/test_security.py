"""Security: API keys never leak, tenants never share answers, URLs and bodies are bounded.

* The API key never appears in logs (DEBUG), spans (content capture on),
  reprs, exception chains (str, repr, attributes, causes, contexts, notes)
  or cache entries (memory and Redis), even when a server echoes it back.
* Two users, or two API keys, asking the same question at the same moment
  make two upstream calls: no shared cache entry, semantic hit or dedup
  result.
* ``base_url`` must be http(s); a response body over
  ``ClientConfig.max_response_bytes`` is refused with ``APIResponseError``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import anyio
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from aio_llm import (
    APIResponseError,
    AsyncLLMClient,
    ChatRequest,
    ClientConfig,
    ConfigurationError,
)
from aio_llm.cost import CostManager
from aio_llm.middleware import Cache, Tracing, default_middleware
from aio_llm.providers import create_provider
from aio_llm.testing import FakeLLMServer, Fault

from .adversarial.leakcheck import exception_texts

SECRET = "sk-live-SECRET-" + uuid.uuid4().hex
OTHER_SECRET = "sk-live-OTHER-" + uuid.uuid4().hex
HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def traced_client(
    base_url: str,
    config: ClientConfig,
    tracer_provider: TracerProvider,
    *,
    api_key: str = SECRET,
    kind: str = "openai",
) -> AsyncLLMClient:
    """A client with the default chain, whose Tracing exports to ``tracer_provider``."""
    provider = create_provider(kind, api_key=api_key, base_url=base_url)
    costs = CostManager.from_config(config)
    template = AsyncLLMClient(provider, config=config, cost_manager=costs)
    chain = default_middleware(
        config,
        cost_manager=costs,
        providers=template.providers,
        default_provider=provider.label,
        tenant=template.tenant_of,
    )
    tracing = Tracing(
        provider=provider.label,
        providers=template.providers,
        capture_content=True,  # the worst case: prompts and answers in spans
        tracer_provider=tracer_provider,
    )
    chain = [tracing if isinstance(mw, Tracing) else mw for mw in chain]
    return AsyncLLMClient(provider, config=config, cost_manager=costs, middleware=chain)


def span_texts(exporter: InMemorySpanExporter) -> Iterator[str]:
    for span in exporter.get_finished_spans():
        yield span.to_json()
        for event in span.events:
            yield repr(dict(event.attributes or {}))


def assert_no_secret(texts: Iterable[str], where: str) -> None:
    for text in texts:
        assert SECRET not in text, f"API key found in {where}: {text[:300]}"


# -- the key never leaks --------------------------------------------------------------


ERROR_SCENARIOS = {
    # a server that echoes the key back in its error message is the hard case
    "401": Fault.status(401, message=f"Incorrect API key provided: {SECRET}"),
    "500": Fault.status(500, message=f"upstream failed for key {SECRET}"),
    "reset": Fault.reset(),
    "malformed": Fault.malformed(),
    "truncated": Fault.truncate(after_chunks=1),
}


@pytest.mark.anyio
async def test_api_key_never_leaks(
    server: FakeLLMServer,
    transport: str,
    spans: tuple[TracerProvider, InMemorySpanExporter],
    caplog: pytest.LogCaptureFixture,
) -> None:
    tracer_provider, exporter = spans
    caplog.set_level(logging.DEBUG)
    config = ClientConfig(
        transport=transport,
        model="gpt-4o-mini",
        max_retries=1,
        retry_base_delay=0.0,
        cache_enabled=True,
        capture_content=True,
    )
    errors: list[BaseException] = []
    texts: list[str] = []
    async with traced_client(server.openai_url, config, tracer_provider) as client:
        ok = await client.chat(HELLO)
        async with client.stream([{"role": "user", "content": "stream"}]) as s:
            await s.text()
        for name, fault in ERROR_SCENARIOS.items():
            for stream in (False, True):
                server.set_fault(fault)
                try:
                    if stream:
                        async with client.stream([{"role": "user", "content": name}]) as s:
                            await s.text()
                    else:
                        await client.chat([{"role": "user", "content": f"{name} chat"}])
                except Exception as exc:
                    errors.append(exc)
                finally:
                    server.set_fault(None)
        request = client.build_request(HELLO, temperature=0.5, user="u1")
        provider = client.providers["openai"]
        texts += [repr(client), str(client.metrics()), repr(client.middleware)]
        texts += [repr(provider), str(provider), repr(client.config), repr(request)]
        texts += [repr(provider.encode_chat(request)), repr(ok), ok.model_dump_json()]
        cache = next(mw for mw in client.middleware if isinstance(mw, Cache))
        memory = cache.backend
        entries = getattr(memory, "_data", {})
        assert entries, "the memory cache stored nothing"
        texts += [repr(memory)]
        texts += [k + repr(v) + v[1].model_dump_json() for k, v in entries.items()]

    assert len(errors) >= 2 * len(ERROR_SCENARIOS) - 2  # (a truncated JSON answer may parse)
    assert any(getattr(e, "status_code", None) == 401 for e in errors)
    assert any("[REDACTED]" in str(e) for e in errors)  # the echoed key was blanked out
    for error in errors:
        assert_no_secret(exception_texts(error), f"exception {type(error).__name__}")
    assert_no_secret(texts, "a repr or the memory cache")
    assert_no_secret([caplog.text], "logs")
    assert_no_secret((repr(r.args) + r.getMessage() for r in caplog.records), "log records")
    assert exporter.get_finished_spans(), "no span was exported"
    assert_no_secret(span_texts(exporter), "spans")
    # the requests did carry the key: it is only ever in the Authorization header
    assert server.requests[0].headers["authorization"] == f"Bearer {SECRET}"


@pytest.mark.anyio
@pytest.mark.redis
async def test_redis_cache_entries_hold_no_key(redis_url: str, server: FakeLLMServer) -> None:
    import redis.asyncio as redis

    prompt = f"redis secret test {uuid.uuid4().hex}"
    config = ClientConfig(cache_enabled=True, cache_backend=redis_url, model="gpt-4o-mini")
    async with AsyncLLMClient(
        "openai", api_key=SECRET, base_url=server.openai_url, config=config
    ) as client:
        await client.chat([{"role": "user", "content": prompt}])
        assert (await client.chat([{"role": "user", "content": prompt}])).cached
    raw = redis.Redis.from_url(redis_url)
    try:
        found = 0
        async for key in raw.scan_iter(match="aio_llm:cache*"):
            value = await raw.get(key)
            if value is not None and prompt.encode() in value:
                found += 1
            assert SECRET.encode() not in key
            assert value is None or SECRET.encode() not in value
        assert found == 1
    finally:
        await raw.aclose()


# -- tenants never share -----------------------------------------------------------------


def _ask(text: str, **params: Any) -> ChatRequest:
    return ChatRequest(model="gpt-4o-mini", messages=[{"role": "user", "content": text}], **params)


@pytest.mark.anyio
async def test_users_never_share_cache_semantic_hits_or_dedup() -> None:
    async with FakeLLMServer(latency=0.2, reply=lambda body: f"for {body.get('user')}") as srv:
        config = ClientConfig(
            cache_enabled=True, semantic_cache_threshold=0.8, dedup_enabled=True, max_retries=0
        )
        async with AsyncLLMClient(
            "openai", api_key=SECRET, base_url=srv.openai_url, config=config
        ) as client:
            # the same question at the same moment: one upstream call per user
            same = [_ask("What is the capital of France?", user=u) for u in ("alice", "bob")]
            first = await client.gather(same)
            assert srv.request_count == 2
            assert [r.content for r in first] == ["for alice", "for bob"]
            # dedup does join one user's identical requests (the control)
            twice = [_ask("Dedup me", user="alice", temperature=0)] * 2
            await client.gather(twice)
            assert srv.request_count == 3
            # exact cache: each user gets only their own entry
            again = await client.gather(same)
            assert [(r.cached, r.content) for r in again] == [
                (True, "for alice"),
                (True, "for bob"),
            ]
            assert srv.request_count == 3
            # semantic cache: a paraphrase hits for the user who asked, not for another
            hit = await client.chat(request=_ask("what is the capital of France", user="alice"))
            assert hit.cached and hit.content == "for alice" and srv.request_count == 3
            miss = await client.chat(request=_ask("what is the capital of France", user="carol"))
            assert not miss.cached and miss.content == "for carol"
            assert srv.request_count == 4


@pytest.mark.anyio
async def test_api_keys_never_share_dedup_or_cache() -> None:
    async with FakeLLMServer(latency=0.2) as srv:
        config = ClientConfig(cache_enabled=True, semantic_cache_threshold=0.8, max_retries=0)
        providers = {
            "a": {"kind": "openai", "api_key": SECRET, "base_url": srv.openai_url},
            "b": {"kind": "openai", "api_key": OTHER_SECRET, "base_url": srv.openai_url},
        }
        async with AsyncLLMClient(
            "openai", api_key=SECRET, base_url=srv.openai_url, config=config, providers=providers
        ) as client:
            # the default provider and provider "a" use the same key at the same URL, but
            # they are different targets; "b" has another key. None may share an answer.
            prompt = "Tell me a secret"
            one = {"temperature": 0}  # requests dedup would merge, were they one target's
            reqs = [_ask(prompt, **one), _ask(prompt, provider="a", **one)]
            reqs.append(_ask(prompt, provider="b", **one))
            await client.gather(reqs)
            assert srv.request_count == 3
            keys = {r.headers["authorization"] for r in srv.requests}
            assert keys == {f"Bearer {SECRET}", f"Bearer {OTHER_SECRET}"}
            again = await client.gather(reqs)
            assert all(r.cached for r in again)
            assert srv.request_count == 3


@pytest.mark.anyio
@pytest.mark.redis
async def test_api_keys_never_share_a_redis_cache(redis_url: str) -> None:
    """Two clients (think: two services) with different keys on one Redis cache."""
    prompt = f"shared redis {uuid.uuid4().hex}"
    async with FakeLLMServer(latency=0.2) as srv:
        config = ClientConfig(cache_enabled=True, cache_backend=redis_url, max_retries=0)

        def client(key: str) -> AsyncLLMClient:
            return AsyncLLMClient(
                "openai", api_key=key, base_url=srv.openai_url, model="m", config=config
            )

        async with client(SECRET) as one, client(OTHER_SECRET) as two:
            async with anyio.create_task_group() as tg:
                tg.start_soon(one.chat, [{"role": "user", "content": prompt}])
                tg.start_soon(two.chat, [{"role": "user", "content": prompt}])
            assert srv.request_count == 2
            hit = await two.chat([{"role": "user", "content": prompt}])
            assert hit.cached and srv.request_count == 2
        async with client(SECRET) as three:  # same key as `one`: its entry is shared
            assert (await three.chat([{"role": "user", "content": prompt}])).cached
        assert srv.request_count == 2


# -- base URLs ------------------------------------------------------------------------------

BAD_URLS = [
    "ftp://api.example.com/v1",
    "file:///etc/passwd",
    "api.openai.com/v1",
    "localhost:8000",
    "//api.example.com",
    "javascript:alert(1)",
    "",
]


@pytest.mark.parametrize("url", [u for u in BAD_URLS if u])
@pytest.mark.parametrize("kind", ["openai", "anthropic", "openrouter"])
def test_base_url_must_be_http(url: str, kind: str) -> None:
    with pytest.raises(ConfigurationError, match="http"):
        AsyncLLMClient(kind, api_key=SECRET, base_url=url)
    with pytest.raises(ConfigurationError, match="http"):
        AsyncLLMClient(
            kind,
            api_key=SECRET,
            providers={"x": {"kind": kind, "api_key": SECRET, "base_url": url}},
        )
    with pytest.raises(ConfigurationError, match="LLM_BASE_URL"):
        ClientConfig.from_env({"LLM_BASE_URL": url})
    with pytest.raises(ValueError, match="http"):
        ClientConfig(base_url=url)


@pytest.mark.parametrize("var", ["OPENAI_BASE_URL", "ANTHROPIC_BASE_URL"])
def test_base_url_from_the_sdk_variables_must_be_http(
    var: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    kind = "openai" if var.startswith("OPENAI") else "anthropic"
    monkeypatch.setenv(var, "file:///etc/passwd")
    with pytest.raises(ConfigurationError, match="http"):
        AsyncLLMClient(kind, api_key=SECRET)


def test_http_and_https_urls_are_accepted() -> None:
    for url in ("http://127.0.0.1:8000/v1", "https://api.openai.com/v1"):
        assert AsyncLLMClient("openai", api_key=SECRET, base_url=url).providers["openai"]


# -- response size limit --------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_oversized_response_is_refused(transport: str, stream: bool) -> None:
    limit = 16 * 1024  # a 20-chunk stream of a short answer is ~5 KB of SSE
    async with FakeLLMServer(reply=lambda body: body["messages"][-1]["content"]) as srv:
        config = ClientConfig(
            transport=transport,
            max_response_bytes=limit,
            max_retries=0,
        )
        async with AsyncLLMClient(
            "openai",
            api_key=SECRET,
            base_url=srv.openai_url,
            model="m",
            config=config,
            middleware=[],
        ) as client:

            async def ask(text: str) -> str:
                messages = [{"role": "user", "content": text}]
                if stream:
                    async with client.stream(messages) as s:
                        return await s.text()
                return (await client.chat(messages)).content

            small = "small " * 10
            assert await ask(small) == small  # under the limit: fine
            with pytest.raises(APIResponseError, match="limit") as info:
                await ask("x" * (limit * 4))
            assert SECRET not in str(info.value)
            assert await ask(small) == small  # and the client still works
