"""Issue 15, point 8: the breaker's defaults do not trip a healthy service.

Defaults (resilience4j's way): a failure rate of 50% over at least 20 calls in a 60 s
sliding window opens a breaker; it stays open 5 s, then 3 half-open probes decide; a failed
probe doubles the open time, up to 60 s. The older explicit settings (N consecutive
failures, a fixed timeout) keep working. Every call here crosses loopback HTTP to a
``FakeLLMServer``; time is a ``FakeClock``.
"""

from __future__ import annotations

from typing import Any

import pytest

from aio_llm import AsyncLLMClient, ClientConfig
from aio_llm.errors import CircuitOpenError, ServerError
from aio_llm.middleware import CircuitState
from aio_llm.testing import FakeLLMServer, Fault
from aio_llm.testing.clock import FakeClock

HI = [{"role": "user", "content": "hi"}]


def make(server: FakeLLMServer, transport: str, clock: FakeClock, **fields: Any) -> AsyncLLMClient:
    config = ClientConfig(transport=transport, max_retries=0, **fields)
    return AsyncLLMClient(
        "openai",
        api_key="sk-breaker",
        base_url=server.openai_url,
        model="gpt-4o-mini",
        config=config,
        clock=clock,
    )


def state(client: AsyncLLMClient) -> str:
    states = client.metrics()["circuit.state"]
    assert isinstance(states, dict)
    return str(states["openai:gpt-4o-mini"])


async def refused(client: AsyncLLMClient) -> float:
    """The ``retry_after`` of the ``CircuitOpenError`` the next call gets."""
    with pytest.raises(CircuitOpenError) as info:
        await client.chat(HI)
    assert info.value.retry_after is not None
    return info.value.retry_after


async def fail(client: AsyncLLMClient, n: int) -> None:
    for _ in range(n):
        with pytest.raises(ServerError):
            await client.chat(HI)


@pytest.mark.anyio
async def test_a_burst_of_errors_on_a_busy_healthy_service_does_not_open(
    server: FakeLLMServer, transport: str
) -> None:
    clock = FakeClock()
    async with make(server, transport, clock) as client:
        for _ in range(30):
            await client.chat(HI)
            clock.advance(0.1)
        server.enqueue(*[Fault.status(502)] * 8)  # eight 502s in a row: the old rule opened at 5
        await fail(client, 8)
        assert state(client) == CircuitState.CLOSED
        for _ in range(10):
            await client.chat(HI)  # nothing refused
    assert server.request_count == 48


@pytest.mark.anyio
async def test_few_calls_never_open_it_however_they_fail(
    server: FakeLLMServer, transport: str
) -> None:
    clock = FakeClock()
    server.set_fault(Fault.status(500))
    async with make(server, transport, clock) as client:
        await fail(client, 19)  # under minimum_calls: the rate is not yet evidence
        assert state(client) == CircuitState.CLOSED
    assert server.request_count == 19


@pytest.mark.anyio
async def test_a_failing_service_opens_briefly_then_probes_close_it(
    server: FakeLLMServer, transport: str
) -> None:
    clock = FakeClock()
    async with make(server, transport, clock) as client:
        for _ in range(10):
            await client.chat(HI)
        server.set_fault(Fault.status(500))
        await fail(client, 10)  # 10 of 20 calls failed: 50%
        assert state(client) == CircuitState.OPEN
        assert await refused(client) == pytest.approx(5.0)
        assert server.request_count == 20  # the refusal never reached the network

        clock.advance(5.0)  # a short open period, then probes
        assert state(client) == CircuitState.HALF_OPEN
        await fail(client, 1)  # the target is still down: open again, for twice as long
        assert 10.0 <= await refused(client) <= 11.0  # 10 s plus at most 10% jitter

        clock.advance(11.0)
        server.clear_faults()
        for _ in range(3):
            await client.chat(HI)  # three good probes close it
        assert state(client) == CircuitState.CLOSED
        assert client.metrics()["circuit.requests.rejected"] == 2


@pytest.mark.anyio
async def test_repeated_trips_back_off_to_a_minute_at_most(
    server: FakeLLMServer, transport: str
) -> None:
    clock = FakeClock()
    server.set_fault(Fault.status(500))
    async with make(server, transport, clock) as client:
        await fail(client, 20)
        waits: list[float] = []
        for _ in range(6):
            waits.append(await refused(client))
            clock.advance(waits[-1])
            await fail(client, 1)  # the probe fails
    assert waits[0] == pytest.approx(5.0)
    assert all(b >= a for a, b in zip(waits, waits[1:], strict=False))
    assert 60.0 <= max(waits) <= 66.0  # 60 s cap (plus jitter)


@pytest.mark.anyio
async def test_the_old_explicit_settings_still_apply(
    server: FakeLLMServer, transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLM_CIRCUIT_FAILURE_THRESHOLD", "5")
    monkeypatch.setenv("LLM_CIRCUIT_TIMEOUT", "60")
    config = ClientConfig.from_env(transport=transport, max_retries=0)
    assert (config.circuit_failure_threshold, config.circuit_timeout) == (5, 60.0)
    clock = FakeClock()
    server.set_fault(Fault.status(500))
    client = AsyncLLMClient(
        "openai",
        api_key="sk-breaker",
        base_url=server.openai_url,
        model="gpt-4o-mini",
        config=config,
        clock=clock,
    )
    async with client:
        await fail(client, 5)  # five consecutive failures, as configured
        assert await refused(client) == pytest.approx(60.0)
    assert server.request_count == 5


@pytest.mark.anyio
async def test_rate_window_and_minimum_are_settings(server: FakeLLMServer, transport: str) -> None:
    clock = FakeClock()
    server.set_fault(Fault.status(500))
    fields = {"circuit_minimum_calls": 4, "circuit_failure_rate": 1.0, "circuit_window": 10.0}
    async with make(server, transport, clock, **fields) as client:
        await fail(client, 3)
        clock.advance(11.0)  # those three left the window
        await fail(client, 3)
        assert state(client) == CircuitState.CLOSED
        await fail(client, 1)
        assert state(client) == CircuitState.OPEN
