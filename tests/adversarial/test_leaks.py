"""No API key and no prompt in any output channel, whatever the server does.

One client with everything on (the default chain with an OpenTelemetry
tracer and meter, the cache, limiter and breaker states in Redis, a budget
ledger in SQLite or Redis) meets good answers and every kind of failure,
including servers that echo the key. Then each channel is searched for the
key and for the prompt: ``str``/``repr``/traceback of every error and its
whole cause chain, the logs at DEBUG (every logger), spans and their
events, metrics (OpenTelemetry and ``client.metrics()``), every Redis key
and value, the SQLite file, and the reprs of the client and its parts.
Content capture is off (the default), so the prompt may appear nowhere.
"""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from aio_llm import AsyncLLMClient, LLMError
from aio_llm.cost import BudgetConfig, BudgetPeriod, CostManager
from aio_llm.cost.ledger import RedisLedger, SQLiteLedger
from aio_llm.middleware import Tracing, default_middleware

from .conftest import FORMAT_KINDS, KEY, bare_config, make_provider
from .leakcheck import assert_clean, exception_texts, log_texts
from .rawserver import Conn, RawServer, Seen, answer, sse_events

PROMPT = "my private prompt " + uuid.uuid4().hex


def _key_of(req: Seen) -> str:
    return (req.headers.get("authorization") or req.headers.get("x-api-key") or "").removeprefix(
        "Bearer "
    )


async def _handler(req: Seen, conn: Conn) -> None:
    mode = req.prompt.rpartition(" ")[2]
    key = _key_of(req)
    if mode == "401":
        body = {"error": {"message": f"Incorrect API key provided: {key}", "type": "auth"}}
        await conn.full(401, json.dumps(body).encode())
    elif mode == "500":
        await conn.full(500, f"<html>upstream failed for {key}</html>", content_type="text/html")
    elif mode == "reset":
        conn.reset()
    elif mode == "inband" and req.wants_stream:
        err = {"error": {"message": f"rejected {key}", "code": 500}}
        events = sse_events(req, ["part"])[:1]
        if req.path.endswith("/messages"):
            event = {"type": "error", "error": {"type": "api_error", "message": f"rejected {key}"}}
            events = sse_events(req, ["part"])[:3]
            events.append(b"event: error\ndata: " + json.dumps(event).encode() + b"\n\n")
        else:
            events.append(b"data: " + json.dumps(err).encode() + b"\n\n")
        await conn.chunked(200, events)
    elif mode == "badjson":
        await conn.full(200, b'{"choices": [' + key.encode())
    else:
        await answer(req, conn, "a fine answer")


MODES = ["ok", "401", "500", "reset", "inband", "badjson"]


def _redis_texts(url: str) -> list[str]:
    import redis

    client = redis.Redis.from_url(url)
    try:
        out = []
        for key in client.scan_iter(count=1000):
            out.append(repr(key))
            dumped = client.dump(key)
            out.append(repr(dumped))
            if dumped is not None:
                out.append(dumped.decode("utf-8", errors="replace"))
        return out
    finally:
        client.close()


def _file_texts(paths: list[Path]) -> list[str]:
    return [p.read_bytes().decode("utf-8", errors="replace") for p in paths if p.exists()]


@pytest.mark.parametrize("kind", FORMAT_KINDS)
@pytest.mark.anyio
async def test_no_key_or_prompt_reaches_any_output_channel(
    kind: str,
    transport: str,
    redis_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    db = tmp_path / "budget.db"
    ledger: Any = SQLiteLedger(db) if transport == "aiohttp" else RedisLedger(redis_url)
    manager = CostManager(ledger=ledger)
    manager.set_budget("daily", BudgetConfig(1000.0, BudgetPeriod.DAILY))
    errors: list[BaseException] = []
    texts: list[str] = []
    async with RawServer(_handler) as srv:
        provider = make_provider(kind, srv.url)
        config = bare_config(
            transport,
            model="gpt-4o-mini",
            max_retries=1,
            retry_base_delay=0.001,
            cache_enabled=True,
            cache_backend=redis_url,
            ratelimit_backend=redis_url,
            circuit_backend=redis_url,
            rpm=100_000,
        )
        template = AsyncLLMClient(provider, config=config, cost_manager=manager)
        chain = [
            Tracing(
                provider=provider.label,
                providers=template.providers,
                tracer_provider=tracer_provider,
                meter_provider=meter_provider,
            )
            if isinstance(mw, Tracing)
            else mw
            for mw in default_middleware(
                config,
                cost_manager=manager,
                providers=template.providers,
                default_provider=provider.label,
                tenant=template.tenant_of,
            )
        ]
        async with AsyncLLMClient(
            provider, config=config, cost_manager=manager, middleware=chain
        ) as client:
            for mode in MODES:
                for stream in (False, True):
                    messages = [{"role": "user", "content": f"{PROMPT} {stream} {mode}"}]
                    try:
                        if stream:
                            async with client.stream(messages, max_tokens=16) as s:
                                await s.text()
                                texts.append(repr(s.response))
                        else:
                            texts.append(repr(await client.chat(messages, max_tokens=16)))
                    except LLMError as exc:
                        logging.getLogger("app").exception("call failed")
                        errors.append(exc)
            texts += [repr(client), repr(client.middleware), repr(client.providers)]
            texts += [json.dumps(client.metrics(), default=str), repr(client.config)]
        texts.append(repr(await manager.aget_budget_status("daily")))
        await manager.aclose()
    tracer_provider.force_flush()
    metrics_data = reader.get_metrics_data()
    assert len(errors) >= 8, errors
    assert any("[REDACTED]" in str(e) for e in errors)
    secrets = (KEY, PROMPT)
    for error in errors:
        assert_clean(exception_texts(error), secrets=(KEY,), where=f"{type(error).__name__}")
        assert_clean(exception_texts(error), secrets=(PROMPT,), where="an error")
    assert_clean(log_texts(caplog.records), secrets=secrets, where="logs at DEBUG")
    spans = exporter.get_finished_spans()
    assert spans
    span_texts = [s.to_json() for s in spans]
    span_texts += [repr(dict(e.attributes or {})) for s in spans for e in s.events]
    assert_clean(span_texts, secrets=secrets, where="spans")
    assert metrics_data is not None
    assert_clean([metrics_data.to_json()], secrets=secrets, where="OpenTelemetry metrics")
    assert_clean(texts, secrets=secrets, where="reprs, metrics() and budget status")
    assert_clean(_redis_texts(redis_url), secrets=secrets, where="Redis")
    sqlite_files = [db, Path(f"{db}-wal"), Path(f"{db}-shm")]
    assert_clean(_file_texts(sqlite_files), secrets=secrets, where="SQLite")
    # the requests did carry the key, to the configured server only
    assert all(_key_of(r) == KEY for r in srv.requests)
    tracer_provider.shutdown()
    meter_provider.shutdown()
