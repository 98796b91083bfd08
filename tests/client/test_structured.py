"""Structured output through the whole client: gather, as_completed, the sync client,
invoke_chat, the caches and the deduplicator (keys include the schema), tracing
and the budget (every validation attempt is its own call), and edge cases.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel

from aio_llm import (
    AsyncLLMClient,
    ChatRequest,
    ClientConfig,
    InvalidRequestError,
    LLMClient,
    OutputValidationError,
    invoke_chat,
)
from aio_llm.cost import CostManager
from aio_llm.middleware import BudgetMiddleware, Cache, Dedup, SemanticCache, Tracing
from aio_llm.middleware._keys import request_key
from aio_llm.providers.mock import MockProvider
from aio_llm.testing import FakeLLMServer

ASK = [{"role": "user", "content": "Largest city?"}]


class City(BaseModel):
    name: str
    population: int


class Town(BaseModel):
    name: str
    mayor: str


def client(srv: FakeLLMServer, **kw: Any) -> AsyncLLMClient:
    kw.setdefault("config", ClientConfig())
    return AsyncLLMClient("openai", api_key="sk-x", base_url=srv.openai_url, model="gpt-4o", **kw)


@pytest.mark.anyio
async def test_gather_and_as_completed_parse_each_answer(server: FakeLLMServer) -> None:
    requests: list[Any] = [
        {"messages": ASK, "response_format": City},
        {"messages": ASK, "response_format": Town},
        ChatRequest(model="gpt-4o", messages=ASK, response_format={"type": "json_object"}),
        {"messages": [{"role": "user", "content": "SCHEMA_MISMATCH"}], "response_format": City},
    ]
    async with client(server) as c:
        results = await c.gather(requests, return_exceptions=True)
        seen = {i: r async for i, r in c.as_completed(requests)}
    for out in (results, [seen[i] for i in range(len(requests))]):
        city, town, obj, bad = out
        assert city.parsed == City(name="test", population=1)  # type: ignore[union-attr]
        assert town.parsed == Town(name="test", mayor="test")  # type: ignore[union-attr]
        assert obj.parsed == {"echo": "Largest city?"}  # type: ignore[union-attr]
        assert isinstance(bad, OutputValidationError)


@pytest.mark.anyio
async def test_gather_without_return_exceptions_raises_the_validation_error(
    server: FakeLLMServer,
) -> None:
    bad = {"messages": [{"role": "user", "content": "INVALID_JSON"}], "response_format": City}
    async with client(server) as c:
        with pytest.raises(OutputValidationError):
            await c.gather([bad, {"messages": ASK}])


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    handle = FakeLLMServer.spawn()
    try:
        yield handle.url
    finally:
        handle.close()


def test_sync_client_parses_chat_stream_and_gather(served: str) -> None:
    with LLMClient(
        "openai", api_key="sk-x", base_url=served + "/v1", model="gpt-4o", config=ClientConfig()
    ) as c:
        assert c.chat(ASK, response_format=City).parsed == City(name="test", population=1)
        with c.stream(ASK, response_format=City) as s:
            chunks = list(s)
        assert json.loads("".join(ch.delta for ch in chunks)) == {"name": "test", "population": 1}
        assert s.response is not None and s.response.parsed == City(name="test", population=1)
        (r,) = c.gather([{"messages": ASK, "response_format": Town}])
        assert r.parsed == Town(name="test", mayor="test")
        with pytest.raises(OutputValidationError):
            c.chat([{"role": "user", "content": "INVALID_JSON"}], response_format=City)
        with pytest.raises(OutputValidationError):
            list(c.stream([{"role": "user", "content": "INVALID_JSON"}], response_format=City))
        counted = c.count_tokens(ASK)
        assert counted > 0 and counted.source == "estimate"


def test_invoke_chat_parses(
    served: str, monkeypatch: pytest.MonkeyPatch, fresh_defaults: None
) -> None:
    monkeypatch.setenv("LLM_PROVIDER", "openai")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    monkeypatch.setenv("OPENAI_BASE_URL", served + "/v1")
    monkeypatch.setenv("LLM_MAX_VALIDATION_RETRIES", "1")
    r = invoke_chat(model="gpt-4o", messages=ASK, response_format=City)
    assert r.parsed == City(name="test", population=1)
    retried = invoke_chat(
        model="gpt-4o",
        messages=[{"role": "user", "content": "INVALID_JSON"}],
        response_format=City,
    )
    assert retried.parsed == City(name="test", population=1)


# -- keys ---------------------------------------------------------------------------------


def test_keys_include_the_schema() -> None:
    def key(fmt: Any) -> str:
        return request_key(ChatRequest(model="m", messages=ASK, response_format=fmt))

    class Other(BaseModel):  # the same name, another schema
        name: str

    Other.__name__ = "City"
    keys = {
        key(None),
        key(City),
        key(Town),
        key(Other),
        key({"type": "json_object"}),
        key({"type": "json_schema", "json_schema": {"name": "City", "schema": {}}}),
    }
    assert len(keys) == 6
    assert key(City) == key(City)


@pytest.mark.anyio
async def test_cache_semantic_cache_and_dedup_never_share_across_formats() -> None:
    mock = MockProvider()
    middleware: list[Any] = [Cache(), SemanticCache(threshold=0.5), Dedup()]
    async with AsyncLLMClient(mock, middleware=middleware, config=ClientConfig()) as c:
        a = await c.chat(ASK, model="m", response_format=City)
        b = await c.chat(ASK, model="m", response_format=Town)
        plain = await c.chat(ASK, model="m")
        again = await c.chat(ASK, model="m", response_format=City)
        got: dict[str, Any] = {}

        async def one(fmt: type[BaseModel]) -> None:
            got[fmt.__name__] = (await c.chat(ASK, model="m", response_format=fmt)).parsed

        async with anyio.create_task_group() as tg:  # concurrent: the deduplicator's turn
            for fmt in (City, Town):
                tg.start_soon(one, fmt)
    assert a.parsed == City(name="test", population=1) and not a.cached
    assert b.parsed == Town(name="test", mayor="test") and not b.cached
    assert plain.content == "Test response" and not plain.cached
    assert again.cached and again.parsed == a.parsed
    assert got == {"City": a.parsed, "Town": b.parsed}
    assert len(mock.calls) == 3  # one per format; the rest came from the cache


class GatedMock(MockProvider):
    """A mock that answers only once ``gate`` is set (so concurrent calls overlap)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = anyio.Event()

    async def send(self, request: ChatRequest, transport: Any) -> Any:
        await self.gate.wait()
        return await super().send(request, transport)


@pytest.mark.anyio
async def test_dedup_merges_equal_formats_only() -> None:
    mock = GatedMock()
    got: list[Any] = []
    async with AsyncLLMClient(mock, middleware=[Dedup()], config=ClientConfig()) as c:

        async def one(fmt: type[BaseModel]) -> None:  # temperature 0: one answer to share
            got.append((await c.chat(ASK, model="m", response_format=fmt, temperature=0)).parsed)

        async with anyio.create_task_group() as tg:
            for fmt in (City, Town, City):
                tg.start_soon(one, fmt)
            await anyio.wait_all_tasks_blocked()
            mock.gate.set()
    assert len(mock.calls) == 2  # the two City requests shared one call
    assert sorted(type(p).__name__ for p in got) == ["City", "City", "Town"]


@pytest.mark.anyio
@pytest.mark.parametrize("cache", ["exact", "semantic"])
async def test_an_answer_that_does_not_validate_is_not_cached(cache: str) -> None:
    mock = MockProvider(responses=["not json", '{"name": "Oslo", "population": 7}'])
    layer: Any = Cache() if cache == "exact" else SemanticCache(threshold=0.5)
    async with AsyncLLMClient(mock, middleware=[layer], config=ClientConfig()) as c:
        with pytest.raises(OutputValidationError):
            await c.chat(ASK, model="m", response_format=City)
        r = await c.chat(ASK, model="m", response_format=City)  # asked again, not replayed
        cached = await c.chat(ASK, model="m", response_format=City)
    assert r.parsed == City(name="Oslo", population=7) and not r.cached
    assert cached.cached and cached.parsed == r.parsed
    assert len(mock.calls) == 2


# -- each attempt through the chain ------------------------------------------------------


@pytest.mark.anyio
async def test_each_attempt_is_traced_and_budgeted(server: FakeLLMServer) -> None:
    exporter = InMemorySpanExporter()
    tracer = TracerProvider()
    tracer.add_span_processor(SimpleSpanProcessor(exporter))
    manager = CostManager()
    middleware = [Tracing(tracer_provider=tracer), BudgetMiddleware(manager)]
    async with client(server, middleware=middleware, cost_manager=manager) as c:
        r = await c.chat(
            [{"role": "user", "content": "INVALID_JSON"}],
            response_format=City,
            max_validation_retries=3,
        )
    assert r.parsed == City(name="test", population=1)
    spans = exporter.get_finished_spans()
    assert len(spans) == 2  # the invalid answer and the re-ask
    first, reask = sorted(spans, key=lambda s: s.start_time or 0)
    assert first.attributes is not None and reask.attributes is not None
    assert "aio_llm.validation.attempt" not in first.attributes
    assert reask.attributes["aio_llm.validation.attempt"] == 2
    metrics = manager.get_metrics()
    assert metrics.total_requests == 2
    # the response carries both attempts' cost, as the ledger charged them
    assert r.cost is not None and r.cost > 0
    assert r.cost == pytest.approx(metrics.total_cost)
    tracer.shutdown()


@pytest.mark.anyio
async def test_per_call_retries_win_over_the_config(server: FakeLLMServer) -> None:
    bad = [{"role": "user", "content": "INVALID_JSON"}]
    async with client(server, config=ClientConfig(max_validation_retries=2)) as c:
        assert (await c.chat(bad, response_format=City)).parsed is not None
        with pytest.raises(OutputValidationError) as info:
            await c.chat(bad, response_format=City, max_validation_retries=0)
    assert info.value.attempts == 1


# -- edge cases ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_fenced_json_and_tool_calls_instead_of_an_answer() -> None:
    fenced = '```json\n{"name": "Oslo", "population": 7}\n```'
    async with AsyncLLMClient(MockProvider(fenced), config=ClientConfig()) as c:
        r = await c.chat(ASK, model="m", response_format=City)
    assert r.parsed == City(name="Oslo", population=7)


@pytest.mark.anyio
async def test_a_bad_response_format_is_refused_before_sending() -> None:
    mock = MockProvider()
    async with AsyncLLMClient(mock, config=ClientConfig()) as c:
        for fmt in ({"type": "xml"}, {"type": "json_schema"}, int):
            with pytest.raises(InvalidRequestError):
                await c.chat(ASK, model="m", response_format=fmt)
            with pytest.raises(InvalidRequestError):
                async with c.stream(ASK, model="m", response_format=fmt):
                    pass
    assert mock.calls == []


@pytest.mark.anyio
async def test_a_cut_off_answer_says_so() -> None:
    async with AsyncLLMClient(MockProvider('{"name": "Os'), config=ClientConfig()) as c:
        with pytest.raises(OutputValidationError) as info:
            await c.chat(ASK, model="m", response_format=City)
    assert info.value.raw == '{"name": "Os'
    assert info.value.errors[0]["type"] == "json_invalid"
    assert "Os" not in str(info.value)


def test_a_request_with_a_class_dumps_to_json_as_its_strict_schema() -> None:
    request = ChatRequest(model="m", messages=ASK, response_format=City)
    dumped = json.loads(request.model_dump_json())["response_format"]
    assert dumped["type"] == "json_schema" and dumped["json_schema"]["name"] == "City"
    assert dumped["json_schema"]["schema"]["additionalProperties"] is False
    again = ChatRequest.model_validate_json(request.model_dump_json())
    assert again.response_format == dumped
    assert request.model_dump()["response_format"] is City  # Python dumps keep the class
