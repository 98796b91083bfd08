"""Issue 15, point 7: aio_llm logs the way the standard ``logging`` conventions and the SDKs do.

DEBUG (``aio_llm.http``): one line per request and one per response or failure, with
method, URL, status, time and request id; never a key; content only when enabled.
INFO: retries, breaker transitions, fallbacks, limiter waits. ``LLM_LOG`` switches it on.
Every exchange crosses loopback HTTP, on both transports.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aio_llm import AsyncLLMClient, ClientConfig, FallbackTarget
from aio_llm import log as llm_log
from aio_llm.errors import APIConnectionError, CircuitOpenError, RateLimitError, ServerError
from aio_llm.testing import FakeLLMServer, Fault
from aio_llm.testing.clock import FakeClock

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-logging-secret-0123456789"
PROMPT = "the secret plans for tomorrow"


@pytest.fixture
def content_off() -> Iterator[None]:
    llm_log.configure(content=False)
    yield
    llm_log.configure(content=False)


def client(server: FakeLLMServer, transport: str, **kwargs: Any) -> AsyncLLMClient:
    fields = {"transport": transport, "max_retries": 0, **kwargs.pop("fields", {})}
    return AsyncLLMClient(
        "openai",
        api_key=KEY,
        base_url=kwargs.pop("base_url", server.openai_url),
        model="gpt-4o-mini",
        config=ClientConfig(**fields),
        **kwargs,
    )


def lines(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == name]


def nothing_secret(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        text = record.getMessage()
        assert KEY not in text and KEY[-12:] not in text, text


# -- DEBUG: the wire ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_debug_logs_one_line_per_request_and_response(
    caplog: pytest.LogCaptureFixture, server: FakeLLMServer, transport: str, content_off: None
) -> None:
    caplog.set_level(logging.DEBUG, logger="aio_llm")
    async with client(server, transport) as c:
        r = await c.chat([{"role": "user", "content": PROMPT}])
    sent, answer = lines(caplog, "aio_llm.http")
    url = server.openai_url + "/chat/completions"
    assert sent.startswith(f"POST {url} (openai, ")
    assert answer.startswith(f"POST {url} -> 200 in ")
    assert " ms (openai, request id req_" in answer
    assert r.request_id is None or r.request_id in answer
    assert all(rec.levelno == logging.DEBUG for rec in caplog.records if rec.name == "aio_llm.http")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert PROMPT not in text and r.content not in text  # no content unless enabled
    nothing_secret(caplog)


@pytest.mark.anyio
async def test_streams_errors_and_refused_connections_each_get_their_line(
    caplog: pytest.LogCaptureFixture, server: FakeLLMServer, transport: str, content_off: None
) -> None:
    caplog.set_level(logging.DEBUG, logger="aio_llm.http")
    async with client(server, transport) as c:
        async with c.stream([{"role": "user", "content": "hi"}]) as s:
            await s.text()
        server.enqueue(Fault.status(500))
        with pytest.raises(ServerError):
            await c.chat([{"role": "user", "content": "hi"}])
    async with client(server, transport, base_url="http://127.0.0.1:9/v1") as dead:
        with pytest.raises(APIConnectionError):
            await dead.chat([{"role": "user", "content": "hi"}])
    got = lines(caplog, "aio_llm.http")
    assert len(got) == 6
    assert " -> 200 (stream) in " in got[1]
    assert " -> 500 in " in got[3]
    assert got[5].startswith("POST http://127.0.0.1:9/v1/chat/completions -> APIConnectionError")
    nothing_secret(caplog)


@pytest.mark.anyio
async def test_content_is_logged_only_when_enabled(
    caplog: pytest.LogCaptureFixture, server: FakeLLMServer, transport: str, content_off: None
) -> None:
    caplog.set_level(logging.DEBUG, logger="aio_llm.http")
    server.reply = "the answer, in full"
    llm_log.configure(content=True)
    async with client(server, transport) as c:
        await c.chat([{"role": "user", "content": PROMPT}])
    sent, answer = lines(caplog, "aio_llm.http")
    assert PROMPT in sent and "the answer, in full" in answer
    nothing_secret(caplog)  # bodies, never headers


@pytest.mark.anyio
async def test_nothing_is_formatted_when_debug_is_off(
    caplog: pytest.LogCaptureFixture, server: FakeLLMServer, transport: str
) -> None:
    caplog.set_level(logging.INFO, logger="aio_llm")
    async with client(server, transport) as c:
        await c.chat([{"role": "user", "content": "hi"}])
    assert lines(caplog, "aio_llm.http") == []


# -- INFO: what the resilience layers decide ----------------------------------------------


@pytest.mark.anyio
async def test_retries_are_logged_at_info(
    caplog: pytest.LogCaptureFixture, server: FakeLLMServer, transport: str
) -> None:
    caplog.set_level(logging.INFO, logger="aio_llm")
    server.enqueue(Fault.status(503))
    fields = {"max_retries": 2, "retry_strategy": "exponential"}
    async with client(server, transport, fields=fields, clock=FakeClock()) as c:
        await c.chat([{"role": "user", "content": "hi"}])
    (line,) = lines(caplog, "aio_llm.retry")
    assert line.startswith("Retrying request to gpt-4o-mini in ")
    assert " seconds (attempt 2) after InternalServerError" in line
    nothing_secret(caplog)


@pytest.mark.anyio
async def test_breaker_transitions_are_logged_at_info(
    caplog: pytest.LogCaptureFixture, server: FakeLLMServer, transport: str
) -> None:
    caplog.set_level(logging.INFO, logger="aio_llm.circuit")
    clock = FakeClock()
    fields = {"circuit_failure_threshold": 1}
    async with client(server, transport, fields=fields, clock=clock) as c:
        server.enqueue(Fault.status(500))
        with pytest.raises(ServerError):
            await c.chat([{"role": "user", "content": "hi"}])
        with pytest.raises(CircuitOpenError):
            await c.chat([{"role": "user", "content": "hi"}])
        clock.advance(5.0)
        for _ in range(3):
            await c.chat([{"role": "user", "content": "hi"}])
    assert lines(caplog, "aio_llm.circuit") == [
        "Circuit openai:gpt-4o-mini: closed -> open for 5.0 s "
        "(1 consecutive failures, 1 of 1 calls failed in the window)",
        "Circuit openai:gpt-4o-mini: open -> half_open",
        "Circuit openai:gpt-4o-mini: half_open -> closed",
    ]


@pytest.mark.anyio
async def test_fallbacks_are_logged_at_info(
    caplog: pytest.LogCaptureFixture, server: FakeLLMServer, transport: str
) -> None:
    caplog.set_level(logging.INFO, logger="aio_llm.fallback")
    fields = {"fallbacks": (FallbackTarget(provider="backup", model="gpt-4o"),)}
    async with FakeLLMServer() as backup:
        backup.reply = "from the backup"
        providers = {"backup": {"kind": "openai", "api_key": "sk-b", "base_url": backup.openai_url}}
        server.enqueue(Fault.status(500))
        async with client(server, transport, fields=fields, providers=providers) as c:
            r = await c.chat([{"role": "user", "content": "hi"}])
    assert r.content == "from the backup"
    (line,) = lines(caplog, "aio_llm.fallback")
    assert line.startswith(
        "Falling back from default:gpt-4o-mini to backup:gpt-4o after InternalServerError"
    )


@pytest.mark.anyio
async def test_limiter_waits_are_logged_at_info(
    caplog: pytest.LogCaptureFixture, server: FakeLLMServer, transport: str
) -> None:
    caplog.set_level(logging.INFO, logger="aio_llm.ratelimit")
    clock = FakeClock()
    async with client(server, transport, fields={"rpm": 60.0}, clock=clock) as c:
        for _ in range(10):  # a burst of 10% of a minute (6) passes, then each one waits
            await c.chat([{"role": "user", "content": "hi"}])
    waits = lines(caplog, "aio_llm.ratelimit")
    assert waits and all(w.startswith("Rate limit for openai:gpt-4o-mini: waiting ") for w in waits)
    assert len(waits) == 4 and sum(clock.sleeps) > 0


# -- the switch -----------------------------------------------------------------------------


_PROGRAM = textwrap.dedent(
    """
    import anyio
    from aio_llm import AsyncLLMClient, ClientConfig
    from aio_llm.testing import FakeLLMServer

    async def main():
        async with FakeLLMServer() as srv:
            config = ClientConfig(transport="httpx", max_retries=0)
            async with AsyncLLMClient(
                "openai", api_key="sk-env-0123456789", base_url=srv.openai_url,
                model="gpt-4o-mini", config=config,
            ) as c:
                await c.chat([{"role": "user", "content": "hello there"}])
        async with AsyncLLMClient("mock", model="mock-model", config=ClientConfig()) as m:
            await m.chat([{"role": "user", "content": "hi"}])

    anyio.run(main)
    """
)


def _run(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_", "OPENAI", "OTEL"))}
    return subprocess.run(
        [sys.executable, "-c", _PROGRAM],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**clean, **env},
    )


def test_silent_by_default_even_with_the_mock_provider() -> None:
    proc = _run()
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no "no price for model" for a mock answer, nothing at all


def test_llm_log_debug_switches_the_wire_log_on() -> None:
    proc = _run(LLM_LOG="debug")
    assert proc.returncode == 0, proc.stderr
    wire = [line for line in proc.stderr.splitlines() if " DEBUG aio_llm.http] " in line]
    assert len(wire) == 2, proc.stderr
    assert "POST http://127.0.0.1:" in wire[0] and " -> 200 in " in wire[1]
    assert "sk-env-0123456789" not in proc.stderr and "hello there" not in proc.stderr
    for switch in ("LLM_CAPTURE_CONTENT", "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"):
        with_content = _run(LLM_LOG="debug", **{switch: "true"})
        assert "hello there" in with_content.stderr
        assert "sk-env-0123456789" not in with_content.stderr


def test_llm_log_info_hides_the_wire_and_a_typo_is_reported() -> None:
    assert " DEBUG " not in _run(LLM_LOG="info").stderr
    proc = _run(LLM_LOG="verbose")
    assert proc.returncode == 0
    assert "unknown log level 'verbose'" in proc.stderr and "LLM_LOG is ignored" in proc.stderr


def test_configure_replaces_only_its_own_handler() -> None:
    import io

    mine = logging.StreamHandler(io.StringIO())
    root = logging.getLogger("aio_llm")
    root.addHandler(mine)
    before = root.level
    try:
        out = io.StringIO()
        llm_log.configure("info", stream=out)
        llm_log.configure("warning", stream=out)
        assert mine in root.handlers
        assert sum(isinstance(h, logging.StreamHandler) for h in root.handlers) == 2
        assert root.level == logging.WARNING
        with pytest.raises(ValueError, match="unknown log level"):
            llm_log.configure("loud")
    finally:
        llm_log.configure("off")
        for h in list(root.handlers):
            root.removeHandler(h)
        root.setLevel(before)


@pytest.mark.anyio
async def test_a_provider_429_is_logged_with_its_hold(
    caplog: pytest.LogCaptureFixture, server: FakeLLMServer, transport: str
) -> None:
    caplog.set_level(logging.INFO, logger="aio_llm.ratelimit")
    server.enqueue(Fault.status(429, retry_after=2))
    async with client(server, transport, clock=FakeClock()) as c:
        with pytest.raises(RateLimitError):
            await c.chat([{"role": "user", "content": "hi"}])
    assert lines(caplog, "aio_llm.ratelimit") == [
        "Rate limit for openai:gpt-4o-mini: the provider answered 429 (retry after 2 s); "
        "slowing down"
    ]
