from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from aio_llm import AsyncLLMClient, ClientConfig
from aio_llm.testing import FakeLLMServer

FIXTURES = Path(__file__).parent / "fixtures" / "recorded"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["aiohttp", "httpx"])
def transport(request: pytest.FixtureRequest) -> str:
    """Each HTTP transport in turn."""
    return str(request.param)


@pytest.fixture
async def server() -> AsyncIterator[FakeLLMServer]:
    """A fake provider on loopback, for the length of the test."""
    async with FakeLLMServer() as srv:
        yield srv


class OTel:
    """A private OpenTelemetry tracer and meter provider with in-memory export."""

    def __init__(self, *, sampled: bool = True) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider(sampler=None if sampled else ALWAYS_OFF)
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def span(self) -> ReadableSpan:
        spans = self.spans()
        assert len(spans) == 1, spans
        return spans[0]

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        if data is None:
            return []
        out: list[Any] = []
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        out.extend(metric.data.data_points)
        return out

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


@pytest.fixture
def otel() -> Iterator[OTel]:
    o = OTel()
    yield o
    o.shutdown()


@pytest.fixture
def fresh_defaults() -> Iterator[None]:
    """The seed's process-wide objects start afresh, and are closed after the test."""
    from aio_llm.compat import reset_defaults

    reset_defaults()
    try:
        yield
    finally:
        reset_defaults()


PROVIDER_VARIABLES: tuple[str, ...] = ("LLM_", "OPENAI_", "ANTHROPIC_", "OPENROUTER_", "GEMINI_")
PROVIDER_VARIABLES += ("GOOGLE_", "AZURE_", "AWS_")


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No ``LLM_*`` or provider variable set: a test sets what its users would set."""
    for name in list(os.environ):
        if name.startswith(PROVIDER_VARIABLES):
            monkeypatch.delenv(name)
    return monkeypatch


HI = [{"role": "user", "content": "hi"}]
OPENAI_ANSWER = {
    "id": "x",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


def openai_client(srv: FakeLLMServer, transport: str, **kwargs: Any) -> AsyncLLMClient:
    """An "openai" client of ``srv`` on ``transport``, with no retries unless a config says."""
    config = kwargs.pop("config", None) or ClientConfig(transport=transport, max_retries=0)
    return AsyncLLMClient(
        "openai",
        api_key=kwargs.pop("api_key", "sk-edge"),
        base_url=srv.openai_url,
        model="gpt-4o-mini",
        config=config,
        **kwargs,
    )


def load_fixture(name: str) -> dict[str, Any]:
    """One recorded provider exchange (see tests/fixtures/recorded/README.md)."""
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def all_fixtures() -> list[str]:
    return sorted(p.name for p in FIXTURES.glob("*.json"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A private redis-server on a fixed loopback port; a test may kill and restart it."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("no Redis: set LLM_TEST_REDIS_URL or install redis-server")
        self.binary = binary
        self.port = _free_port()
        self.dir = tempfile.mkdtemp(prefix="aio-llm-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", self.dir]
        self.proc = subprocess.Popen(
            [self.binary, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        pytest.fail("redis-server did not start")

    def stop(self) -> None:
        """Kill the server (a test's outage); ``start()`` brings it back on the same port."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A redis-server of the test's own, to kill and restart."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis: ``LLM_TEST_REDIS_URL`` (set by .ci/run), else a private redis-server.

    A missing Redis is a failure, not a skip: the tests that need it are part
    of the contract.
    """
    url = os.environ.get("LLM_TEST_REDIS_URL")
    if url:
        yield url
        return
    server = RedisServer()
    server.start()
    try:
        yield server.url
    finally:
        server.close()
