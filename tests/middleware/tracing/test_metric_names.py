"""Issue 15, point 12: one documented naming scheme for metrics(), the dashboard and OTel.

The names are the table under "Metric names" in docs/observability.md: the OpenTelemetry
GenAI names where the conventions have one (in their units), else
``<component>.<figure>``, and never two names for one figure. Requests cross loopback
HTTP to a ``FakeLLMServer`` on both transports.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from aio_llm import AsyncLLMClient, ClientConfig
from aio_llm.errors import ServerError
from aio_llm.middleware import Observability, Tracing
from aio_llm.testing import FakeLLMServer, Fault
from aio_llm.testing.clock import FakeClock
from tests.conftest import OTel

DOC = Path(__file__).resolve().parents[3] / "docs" / "observability.md"
DURATION = "gen_ai.client.operation.duration"
TOKENS = "gen_ai.client.token.usage"
TTFC = "gen_ai.client.operation.time_to_first_chunk"


def documented() -> tuple[set[str], list[str]]:
    """The names of the docs' table, and its wildcard prefixes (``retry.refused.*``)."""
    text = DOC.read_text()
    section = text.split("### Metric names", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    prefixes: list[str] = []
    for row in section.splitlines():
        if not row.startswith("| `"):
            continue
        cell = row.split(" | ")[0].lstrip("| ")
        parent = ""
        for name in re.findall(r"`([^`]+)`", cell):
            if name.startswith("."):  # `.successful` after `circuit.requests.total`
                name = parent + name
            else:
                parent = name.rsplit(".", 1)[0]
            names.add(name)
    table = "\n".join(row for row in section.splitlines() if row.startswith("| `"))
    for name in re.findall(r"`([a-z_]+(?:\.[a-z_]+)*)\.\*`", table):
        prefixes.append(name + ".")
    for name in re.findall(r"`([a-z_]+(?:\.[a-z_]+)+)`", section):
        names.add(name)  # names the prose adds (retry.budget.tokens, ...)
    return names, prefixes


def check_scheme(keys: set[str]) -> None:
    names, prefixes = documented()
    undocumented = {k for k in keys if k not in names and not k.startswith(tuple(prefixes))}
    assert undocumented == set()
    for key in keys:  # never "requests" beside "requests.total"
        assert not any(other.startswith(key + ".") for other in keys), key
    old = {"requests", "errors", "in_flight", "requests.cost", "cost.tokens.input"}
    assert not old & keys
    assert not any("_ms" in k for k in keys)  # durations are seconds, as OTel has them


def config(transport: str, **fields: Any) -> ClientConfig:
    return ClientConfig(transport=transport, max_retries=1, retry_base_delay=0.0, **fields)


@pytest.mark.anyio
async def test_metrics_and_the_dashboard_speak_one_documented_scheme(
    server: FakeLLMServer, transport: str
) -> None:
    cfg = config(transport, cache_enabled=True)
    async with AsyncLLMClient(
        "openai", api_key="sk-m", base_url=server.openai_url, model="gpt-4o-mini", config=cfg
    ) as client:
        await client.chat([{"role": "user", "content": "one"}])
        await client.chat([{"role": "user", "content": "one"}])  # a cache hit
        async with client.stream([{"role": "user", "content": "two"}]) as s:
            await s.text()
        server.enqueue(Fault.status(500), Fault.status(500))
        with pytest.raises(ServerError):
            await client.chat([{"role": "user", "content": "three"}])
        await client.embed(["a", "b"], model="text-embedding-3-small")
        m = client.metrics()
        assert client.observability is not None
        board = client.observability.get_dashboard_data()

    check_scheme(set(m))
    assert m["requests.total"] == 4 and m["requests.errors"] == 1 and m["requests.cached"] == 1
    assert m["requests.streams"] == 1 and m["requests.in_flight"] == 0
    assert m["retry.attempts"] == 1 and m["cache.hits"] == 1
    assert m["circuit.state"] == {
        "openai:gpt-4o-mini": "closed",
        "openai:text-embedding-3-small": "closed",
    }
    duration = m[DURATION]
    assert duration["count"] == 4
    assert duration["sum"] == pytest.approx(duration["avg"] * 4)
    assert 0 < duration["p50"] <= duration["max"] < 60  # seconds, not milliseconds
    assert m[TTFC]["count"] == 1
    assert m[TOKENS]["input"] > 0 and m[TOKENS]["output"] > 0
    assert m["cost.total"] == pytest.approx(sum(m["cost.by_model"].values()))

    # the dashboard: the same names, the same figures, plus breakdowns
    for key, value in m.items():
        if key == "requests.in_flight" or key.startswith("embeddings."):
            continue  # the client's own, not a middleware's
        assert board[key] == value, key
    assert board["avg_duration_ms"] == pytest.approx(duration["avg"] * 1000)
    assert board["models"]["gpt-4o-mini"]["requests.total"] == 4
    check_scheme(set(board["models"]["gpt-4o-mini"]))
    extra = set(board) - set(m)
    assert extra == {
        "avg_duration_ms",
        "errors_by_type",
        "models",
        "operations",
        "sources",
        "uptime_seconds",
    }


@pytest.mark.anyio
async def test_the_summaries_equal_what_opentelemetry_records(
    server: FakeLLMServer, transport: str, otel: OTel
) -> None:
    clock = FakeClock()
    obs = Observability(name="names", meter_provider=otel.meter_provider)
    tracing = Tracing(
        provider="openai",
        meter_provider=otel.meter_provider,
        tracer_provider=otel.tracer_provider,
        stats=obs.stats,
        clock=clock,
    )
    obs.register_source("Tracing", tracing.metrics)  # a chain of one's own: registered by hand
    async with AsyncLLMClient(
        "openai",
        api_key="sk-m",
        base_url=server.openai_url,
        model="gpt-4o-mini",
        config=config(transport),
        middleware=[tracing],
        observability=obs,
        clock=clock,
    ) as client:
        for i in range(3):
            await client.chat([{"role": "user", "content": f"q{i}"}])
        m = client.metrics()

    (point,) = otel.points(DURATION)
    assert point.count == m[DURATION]["count"] == 3
    assert point.sum == pytest.approx(m[DURATION]["sum"])
    by_type = {p.attributes["gen_ai.token.type"]: p.sum for p in otel.points(TOKENS)}
    assert by_type == m[TOKENS]
    # the middleware counters exported as instruments carry the same names
    data = otel.reader.get_metrics_data()
    assert data is not None
    exported = {
        metric.name
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
    }
    assert {DURATION, TOKENS, "requests.total"} <= exported
    check_scheme(exported)


def test_the_documented_table_parses() -> None:
    names, prefixes = documented()
    assert {DURATION, TOKENS, TTFC, "requests.total", "circuit.requests.rejected"} <= names
    assert {"fallback.answered", "ratelimit.requests.delayed", "retry.budget.tokens"} <= names
    assert prefixes == ["retry.refused."]
