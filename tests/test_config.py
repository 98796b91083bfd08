"""The ``LLM_*`` environment variables, the seed's ten above all, shape a client built from env.

Each seed variable gets a test that builds a client with ``config=None`` (so
``ClientConfig.from_env()``) and shows a change of behaviour against the
mock provider or a ``FakeLLMServer``; a last test sets every
``ClientConfig`` field from its variable.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

import aio_llm.facade
from aio_llm import (
    AsyncLLMClient,
    BudgetExceededError,
    CircuitOpenError,
    ClientConfig,
    ConfigurationError,
    LLMClientService,
    ServerError,
    get_cost_manager,
)
from aio_llm.config import env_name
from aio_llm.middleware import Retry
from aio_llm.testing import FakeClock, FakeLLMServer, Fault

HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, fresh_defaults: None) -> None:
    for var in list(os.environ):
        if var.startswith(("LLM_", "OPENAI_", "ANTHROPIC_", "OPENROUTER_")):
            monkeypatch.delenv(var)


@pytest.fixture
async def server(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeLLMServer]:
    """A FakeLLMServer that ``LLM_PROVIDER=openai`` clients reach through the SDK variables."""
    async with FakeLLMServer() as srv:
        monkeypatch.setenv("LLM_PROVIDER", "openai")
        monkeypatch.setenv("OPENAI_API_KEY", "sk-env-test")
        monkeypatch.setenv("OPENAI_BASE_URL", srv.openai_url)
        yield srv


def _retry(client: AsyncLLMClient) -> Retry:
    return next(mw for mw in client.middleware if isinstance(mw, Retry))


# -- provider selection -------------------------------------------------------------------


@pytest.mark.anyio
async def test_llm_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="OPENROUTER_API_KEY"):
        AsyncLLMClient()  # the default provider is openrouter, as in the seed
    monkeypatch.setenv("LLM_PROVIDER", "mock")
    async with AsyncLLMClient() as client:
        assert (await client.chat(HELLO, model="gpt-4")).provider == "mock"
    monkeypatch.setenv("LLM_PROVIDER", "anthropic")
    with pytest.raises(ConfigurationError, match="ANTHROPIC_API_KEY"):
        AsyncLLMClient()


@pytest.mark.anyio
async def test_llm_provider_reaches_the_server(server: FakeLLMServer) -> None:
    async with AsyncLLMClient() as client:
        response = await client.chat(HELLO, model="gpt-4")
    assert (response.provider, response.content) == ("openai", "Echo: Hello")
    assert server.last_request.path == "/v1/chat/completions"


@pytest.mark.anyio
async def test_llm_force_mock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_PROVIDER", "openai")  # and no OPENAI_API_KEY
    monkeypatch.setenv("LLM_FORCE_MOCK", "0")
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        AsyncLLMClient()
    monkeypatch.setenv("LLM_FORCE_MOCK", "1")
    async with AsyncLLMClient() as client:
        assert (await client.chat(HELLO, model="gpt-4")).provider == "mock"
    async with AsyncLLMClient("anthropic") as client:  # even an explicit provider
        assert (await client.chat(HELLO, model="claude-3-5-haiku-latest")).provider == "mock"


# -- budgets -------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("var", "budget"), [("LLM_DAILY_BUDGET", "daily"), ("LLM_MONTHLY_BUDGET", "monthly")]
)
async def test_budgets(monkeypatch: pytest.MonkeyPatch, var: str, budget: str) -> None:
    monkeypatch.setenv("LLM_FORCE_MOCK", "1")
    async with AsyncLLMClient() as client:
        await client.chat(HELLO, model="gpt-4", max_tokens=1000)  # no budget: allowed
        assert budget not in client.cost_manager.budgets()
    monkeypatch.setenv(var, "0.01")
    async with AsyncLLMClient() as client:
        assert client.cost_manager.budgets()[budget].limit == 0.01
        with pytest.raises(BudgetExceededError):  # up to 1000 x $60/M = $0.06 > $0.01
            await client.chat(HELLO, model="gpt-4", max_tokens=1000)
        await client.chat(HELLO, model="gpt-4", max_tokens=10)  # worst case fits
    assert get_cost_manager().get_budget_status(budget)["limit"] == 0.01  # the seed's default


# -- circuit breaker -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_llm_circuit_failure_threshold(
    server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLM_MAX_RETRIES", "0")
    server.set_fault(Fault.status(500))
    for threshold, failures in (("2", 2), ("4", 4)):
        monkeypatch.setenv("LLM_CIRCUIT_FAILURE_THRESHOLD", threshold)
        async with AsyncLLMClient() as client:
            for _ in range(failures):
                with pytest.raises(ServerError):
                    await client.chat(HELLO, model="gpt-4")
            with pytest.raises(CircuitOpenError):
                await client.chat(HELLO, model="gpt-4")


@pytest.mark.anyio
async def test_llm_circuit_timeout(server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_MAX_RETRIES", "0")
    monkeypatch.setenv("LLM_CIRCUIT_FAILURE_THRESHOLD", "1")
    monkeypatch.setenv("LLM_CIRCUIT_TIMEOUT", "5")
    clock = FakeClock()
    async with AsyncLLMClient(clock=clock) as client:
        server.enqueue(Fault.status(500))
        with pytest.raises(ServerError):
            await client.chat(HELLO, model="gpt-4")
        with pytest.raises(CircuitOpenError) as info:
            await client.chat(HELLO, model="gpt-4")
        assert info.value.retry_after == pytest.approx(5.0)
        clock.advance(4.9)
        with pytest.raises(CircuitOpenError):
            await client.chat(HELLO, model="gpt-4")
        clock.advance(0.2)  # past LLM_CIRCUIT_TIMEOUT: a probe goes through
        assert (await client.chat(HELLO, model="gpt-4")).content == "Echo: Hello"


# -- retries -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_llm_max_retries(server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for retries in (2, 0):
        monkeypatch.setenv("LLM_MAX_RETRIES", str(retries))
        clock = FakeClock()
        async with AsyncLLMClient(clock=clock) as client:
            server.reset_stats()
            server.set_fault(Fault.status(503))
            with pytest.raises(ServerError):
                await client.chat(HELLO, model="gpt-4")
            server.set_fault(None)
            assert len(server.requests) == retries + 1
            assert len(clock.sleeps) == retries
            assert client.metrics()["retry.attempts"] == retries


@pytest.mark.anyio
async def test_llm_retry_backoff_base(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_FORCE_MOCK", "1")
    monkeypatch.setenv("LLM_RETRY_STRATEGY", "exponential")
    error = ServerError("down", status_code=503)
    expected = {"2.0": [0.5, 1.0, 2.0], "3": [0.5, 1.5, 4.5]}
    for base, backoffs in expected.items():
        monkeypatch.setenv("LLM_RETRY_BACKOFF_BASE", base)
        async with AsyncLLMClient() as client:
            strategy = _retry(client).strategy
            assert strategy.config.exponential_base == float(base)
            assert [strategy.backoff(n, error) for n in (1, 2, 3)] == backoffs


# -- cache ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_llm_cache_enabled(server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for enabled, upstream in (("0", 2), ("1", 1)):
        monkeypatch.setenv("LLM_CACHE_ENABLED", enabled)
        server.reset_stats()
        async with AsyncLLMClient() as client:
            first = await client.chat(HELLO, model="gpt-4")
            second = await client.chat(HELLO, model="gpt-4")
        assert len(server.requests) == upstream
        assert (first.cached, second.cached) == (False, enabled == "1")


@pytest.mark.anyio
async def test_llm_cache_ttl(server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_CACHE_ENABLED", "1")
    for ttl, upstream in (("3600", 1), ("10", 2)):
        monkeypatch.setenv("LLM_CACHE_TTL", ttl)
        server.reset_stats()
        clock = FakeClock()
        async with AsyncLLMClient(clock=clock) as client:
            await client.chat(HELLO, model="gpt-4")
            clock.advance(11)
            await client.chat(HELLO, model="gpt-4")
        assert len(server.requests) == upstream


# -- the facade reads the same variables ---------------------------------------------------


def test_facade_service_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_FORCE_MOCK", "1")
    monkeypatch.setenv("LLM_CACHE_ENABLED", "1")
    monkeypatch.setenv("LLM_MAX_RETRIES", "7")
    monkeypatch.setenv("LLM_CIRCUIT_FAILURE_THRESHOLD", "9")
    monkeypatch.setenv("LLM_DAILY_BUDGET", "12.5")
    service = aio_llm.facade.get_llm_client_service()
    try:
        assert service.invoke_chat(model="gpt-4", messages=HELLO).provider == "mock"
        assert service.invoke_chat(model="gpt-4", messages=HELLO).cached
        status = service.get_circuit_breaker_status()
        assert status["failure_threshold"] == 9
        assert service.config.max_retries == 7
        assert aio_llm.facade.get_budget_status("daily")["limit"] == 12.5
    finally:
        service.close()
    with LLMClientService(config=ClientConfig(force_mock=True, monthly_budget=7.0)) as explicit:
        assert explicit.config.max_retries == 3  # an explicit config ignores the environment
        budgets = explicit.cost_manager.budgets()
        assert budgets["daily"].limit == 12.5  # the process manager's own budget stays
        assert budgets["monthly"].limit == 7.0  # the config's missing one is added


def test_a_bad_value_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_CIRCUIT_TIMEOUT", "soon")
    with pytest.raises(ConfigurationError, match="LLM_CIRCUIT_TIMEOUT"):
        ClientConfig.from_env()
    monkeypatch.setenv("LLM_CIRCUIT_TIMEOUT", "60")
    monkeypatch.setenv("LLM_CACHE_ENABLED", "maybe")
    with pytest.raises(ConfigurationError, match="LLM_CACHE_ENABLED"):
        ClientConfig.from_env()


# -- every field has a variable ------------------------------------------------------------

# A value different from the default for every ClientConfig field, as its variable's text.
SAMPLES: dict[str, tuple[str, Any]] = {
    "provider": ("Anthropic", "anthropic"),
    "force_mock": ("yes", True),
    "model": ("gpt-4o-mini", "gpt-4o-mini"),
    "base_url": ("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1"),
    "timeout": ("30", 30.0),
    "connect_timeout": ("2.5", 2.5),
    "read_timeout": ("none", None),
    "transport": ("httpx", "httpx"),
    "max_connections": ("64", 64),
    "max_response_bytes": ("1024", 1024),
    "max_retries": ("5", 5),
    "max_validation_retries": ("2", 2),
    "retry_strategy": ("fibonacci", "fibonacci"),
    "retry_base_delay": ("0.25", 0.25),
    "retry_max_delay": ("10", 10.0),
    "retry_backoff_base": ("3", 3.0),
    "retry_after_cap": ("5", 5.0),
    "circuit_failure_threshold": ("7", 7),
    "circuit_success_threshold": ("4", 4),
    "circuit_failure_rate": ("0.25", 0.25),
    "circuit_minimum_calls": ("50", 50),
    "circuit_window": ("30", 30.0),
    "circuit_timeout": ("15", 15.0),
    "circuit_backend": ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    "rpm": ("600", 600.0),
    "tpm": ("100000", 100000.0),
    "ratelimit_backend": ("redis://127.0.0.1:6379/1", "redis://127.0.0.1:6379/1"),
    "ratelimit_fail_open": ("0", False),
    "cache_enabled": ("true", True),
    "cache_ttl": ("60", 60.0),
    "cache_backend": ("redis://127.0.0.1:6379/2", "redis://127.0.0.1:6379/2"),
    "cache_max_entries": ("100", 100),
    "semantic_cache_threshold": ("0.9", 0.9),
    "semantic_cache_max_error": ("0.02", 0.02),
    "semantic_cache_embedder": ("minilm", "minilm"),
    "semantic_cache_backend": ("redis://127.0.0.1:1/0", "redis://127.0.0.1:1/0"),
    "dedup_enabled": ("off", False),
    "dedup_sampling": ("1", True),
    "daily_budget": ("100.0", 100.0),
    "monthly_budget": ("3000.0", 3000.0),
    "budget_backend": ("budget.sqlite3", "budget.sqlite3"),
    "budget_fail_open": ("on", True),
    "fallbacks": ("anthropic:claude-3-5-haiku-latest", None),
    "capture_content": ("1", True),
    "redis_url": ("redis://127.0.0.1:6379/3", "redis://127.0.0.1:6379/3"),
}


def test_samples_cover_every_field() -> None:
    assert SAMPLES.keys() == ClientConfig.model_fields.keys()


@pytest.mark.parametrize("field", sorted(SAMPLES))
def test_every_field_reads_its_variable(field: str, monkeypatch: pytest.MonkeyPatch) -> None:
    text, expected = SAMPLES[field]
    monkeypatch.setenv(env_name(field), text)
    value = getattr(ClientConfig.from_env(), field)
    assert value != getattr(ClientConfig(), field)
    if field == "fallbacks":
        assert [(t.provider, t.model) for t in value] == [("anthropic", "claude-3-5-haiku-latest")]
    else:
        assert value == expected


def test_keyword_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_MAX_RETRIES", "9")
    assert ClientConfig.from_env(max_retries=1).max_retries == 1
    assert ClientConfig().max_retries == 3  # the constructor alone reads nothing


def test_config_repr_hides_passwords_in_urls() -> None:
    config = ClientConfig(
        redis_url="redis://:hunter2@cache:6379/0", cache_backend="redis://u:pw@h/1"
    )
    assert "hunter2" not in repr(config) and ":pw@" not in repr(config)
    assert "redis://***@cache:6379/0" in repr(config)
