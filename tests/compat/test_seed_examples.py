"""Every example of the seed document (/work/shared/SEED.md) still runs.

Each test quotes one seed example with its ``app.ai...`` imports replaced by
``aio_llm`` and only these adaptations: a call that is now async is awaited
(``RetryExecutor.execute``, ``CircuitBreaker.call``, the cache's
``get``/``set``, ``Deduplicator.deduplicate``), and the placeholders the seed
leaves undefined (``my_function``, ``arg1``, ``long_prompt``, ...) are
defined. Network calls go to a ``FakeLLMServer`` in a child process (the
provider variables point at it, so the seed's own call shapes stay
unchanged) or to the mock provider.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from aio_llm import ClientConfig, LLMClient
from aio_llm.compat import reset_defaults
from aio_llm.errors import ServerError
from aio_llm.providers import MockProvider
from aio_llm.testing import FakeClock, FakeLLMServer, SpawnedServer
from aio_llm.types import ChatRequest

HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture(scope="module")
def served() -> Iterator[SpawnedServer]:
    """A FakeLLMServer in another process (blocking calls must not stall its loop)."""
    handle = FakeLLMServer.spawn()
    try:
        yield handle
    finally:
        handle.close()


@pytest.fixture(autouse=True)
def seed_env(monkeypatch: pytest.MonkeyPatch, served: SpawnedServer) -> Iterator[None]:
    """A clean environment whose providers all live on the fake server; fresh process defaults."""
    import os

    for var in list(os.environ):
        if var.startswith("LLM_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-seed-test")
    monkeypatch.setenv("OPENAI_BASE_URL", served.openai_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-seed-test")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", served.url)
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-seed-test")
    monkeypatch.setenv("OPENROUTER_BASE_URL", served.url + "/api/v1")
    reset_defaults()
    try:
        yield
    finally:
        reset_defaults()


# -- Facade pattern ---------------------------------------------------------------------


def test_facade_pattern() -> None:
    from aio_llm.facade import get_llm_client_service

    client = get_llm_client_service()
    response = client.invoke_chat(model="gpt-4", messages=[{"role": "user", "content": "Hello"}])

    assert response.content == "Echo: Hello"
    assert response.provider == "openrouter"  # LLM_PROVIDER's default, as in the seed
    assert get_llm_client_service() is client  # one per process
    client.close()
    assert get_llm_client_service() is not client  # a closed one is replaced


@pytest.mark.anyio
async def test_facade_inside_a_running_loop() -> None:
    """The blocking facade runs its own loop in a thread, so it works from async code too."""
    from aio_llm.facade import get_llm_client_service, invoke_chat

    assert invoke_chat(model="gpt-4", messages=HELLO).content == "Echo: Hello"
    assert get_llm_client_service().get_cost_metrics()["total_requests"] == 1


# -- Strategy pattern -------------------------------------------------------------------


def test_strategy_pattern() -> None:
    from aio_llm import (
        AdaptiveRetry,
        ExponentialBackoffRetry,
        FibonacciBackoffRetry,
        LinearBackoffRetry,
    )

    # Use adaptive retry that learns from errors
    strategy = AdaptiveRetry()

    error = ServerError("boom", status_code=503)
    assert strategy.should_retry(error)
    assert [LinearBackoffRetry().backoff(n, error) for n in (1, 2, 3)] == [0.5, 1.0, 1.5]
    assert [FibonacciBackoffRetry().backoff(n, error) for n in (1, 2, 3, 4)] == [
        0.5,
        0.5,
        1.0,
        1.5,
    ]
    assert [ExponentialBackoffRetry().backoff(n, error) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]


# -- Circuit breaker --------------------------------------------------------------------


@pytest.mark.anyio
async def test_circuit_breaker_pattern() -> None:
    from aio_llm import CircuitBreaker

    def expensive_operation() -> str:
        return "done"

    breaker = CircuitBreaker("llm_service")
    result = await breaker.call(lambda: expensive_operation())

    assert result == "done"
    assert breaker.metrics()["circuit.requests.successful"] == 1


@pytest.mark.anyio
async def test_circuit_breaker_usage() -> None:
    from aio_llm import CircuitBreaker, CircuitBreakerConfig, CircuitBreakerOpenError

    calls = 0

    async def my_function(a: int, b: int) -> int:
        nonlocal calls
        calls += 1
        raise ConnectionError("the service is down")

    arg1, arg2 = 1, 2

    config = CircuitBreakerConfig(
        failure_threshold=5,
        success_threshold=2,
        timeout=60.0,
    )

    breaker = CircuitBreaker("my_service", config)

    for _ in range(5):
        with pytest.raises(ConnectionError):
            await breaker.call(my_function, arg1, arg2)

    opened = False
    try:
        result = await breaker.call(my_function, arg1, arg2)
    except CircuitBreakerOpenError:
        # Handle circuit open
        opened = True

    assert opened and calls == 5  # the sixth call never reached my_function
    assert breaker.metrics()["circuit.state"] == "open"
    assert breaker.metrics()["circuit.requests.rejected"] == 1

    # Troubleshooting: "Circuit Breaker Stuck Open" -- manually reset
    breaker.reset()

    async def healthy(a: int, b: int) -> int:
        return a + b

    result = await breaker.call(healthy, arg1, arg2)
    assert result == 3 and breaker.state.value == "closed"

    # Or adjust thresholds
    config = CircuitBreakerConfig(failure_threshold=10)
    assert CircuitBreaker("my_service", config).config.failure_threshold == 10


# -- Cost management --------------------------------------------------------------------


def test_cost_management(capsys: pytest.CaptureFixture[str]) -> None:
    from aio_llm import BudgetConfig, BudgetPeriod, get_cost_manager

    manager = get_cost_manager()

    # Set budget
    manager.set_budget("daily_budget", BudgetConfig(limit=100.0, period=BudgetPeriod.DAILY))

    # Track usage
    record = manager.track_usage(
        model="gpt-4",
        input_tokens=1000,
        output_tokens=500,
        user_id="user123",
    )

    # Get metrics
    metrics = manager.get_metrics()
    print(f"Total cost: ${metrics.total_cost:.2f}")  # noqa: T201

    # Get recommendations
    recommendations = manager.get_optimization_recommendations()

    assert record.cost == pytest.approx(0.06)  # 1000 x $30/M + 500 x $60/M
    assert capsys.readouterr().out == "Total cost: $0.06\n"
    assert metrics.by_user == {"user123": pytest.approx(0.06)}
    assert isinstance(recommendations, list)
    assert manager.get_budget_status("daily")["percentage"] == pytest.approx(0.06)


def test_seed_cost_functions() -> None:
    from aio_llm import (
        get_budget_status,
        get_cost_manager,
        get_metrics,
        get_optimization_recommendations,
        track_usage,
    )
    from aio_llm.cost import BudgetConfig

    get_cost_manager().set_budget("daily", BudgetConfig(limit=1.0))
    record = track_usage("gpt-4", 1000, 500, user_id="user123")
    assert get_metrics().total_cost == pytest.approx(record.cost)
    assert get_budget_status("daily")["percentage"] == pytest.approx(6.0)
    for _ in range(5):
        track_usage("gpt-4", 10_000, 100)
    recommendations = get_optimization_recommendations()
    assert recommendations and all(str(rec) for rec in recommendations)


# -- Retry strategy ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_retry_strategy_usage() -> None:
    from aio_llm import ExponentialBackoffRetry, RetryConfig, RetryExecutor

    async def my_function(a: int, b: int) -> int:
        return a + b

    arg1, arg2 = 20, 22

    config = RetryConfig(
        max_attempts=5,
        base_delay=1.0,
        exponential_base=2.0,
    )

    strategy = ExponentialBackoffRetry(config)
    executor = RetryExecutor(strategy)

    result = await executor.execute(my_function, arg1, arg2)

    assert result == 42
    assert [strategy.backoff(n, ConnectionError()) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]


@pytest.mark.anyio
async def test_retry_strategy_retries_transient_errors() -> None:
    """The same executor with a fake clock: two failures, then success, no real sleep."""
    from aio_llm import ExponentialBackoffRetry, RetryConfig, RetryExecutor

    attempts = 0

    async def my_function(a: int, b: int) -> int:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise ConnectionError("flaky")
        return a + b

    clock = FakeClock()
    config = RetryConfig(max_attempts=5, base_delay=1.0, exponential_base=2.0)
    executor = RetryExecutor(ExponentialBackoffRetry(config), clock=clock)
    assert await executor.execute(my_function, 20, 22) == 42
    metrics = executor.metrics()
    assert attempts == 3
    assert metrics["retry.attempts"] == 2 and metrics["retry.successful"] == 1
    first, second = clock.sleeps  # full jitter: each wait in (0, backoff]
    assert 0 < first <= 1.0 and 0 < second <= 2.0


# -- Observability ----------------------------------------------------------------------


def test_observability_usage() -> None:
    from aio_llm import get_observability

    def perform_operation() -> str:
        return "ok"

    obs = get_observability()

    # Start tracing
    span = obs.trace_operation("llm_call", model="gpt-4")

    try:
        result = perform_operation()
        obs.finish_operation(span, status="success")
    except Exception as e:
        obs.finish_operation(span, status="error", error=str(e))
        raise

    # Get metrics
    dashboard = obs.get_dashboard_data()

    assert result == "ok"
    assert dashboard["operations"]["llm_call"]["requests.total"] == 1
    assert isinstance(dashboard["avg_duration_ms"], float)


def test_observability_error_path() -> None:
    from aio_llm import finish_operation, get_dashboard_data, get_observability, trace_operation

    def perform_operation() -> str:
        raise RuntimeError("upstream failed")

    obs = get_observability()
    span = obs.trace_operation("llm_call", model="gpt-4")
    with pytest.raises(RuntimeError):
        try:
            perform_operation()
            obs.finish_operation(span, status="success")
        except Exception as e:
            obs.finish_operation(span, status="error", error=str(e))
            raise
    # the module-level seed functions act on the same default
    op = trace_operation("llm_call", model="gpt-4")
    finish_operation(op, status="success")
    row = get_dashboard_data()["operations"]["llm_call"]
    assert row["requests.total"] == 2 and row["requests.errors"] == 1


# -- Performance optimization --------------------------------------------------------------


@pytest.mark.anyio
async def test_performance_optimization() -> None:
    from aio_llm import PromptOptimizer, get_cache, get_deduplicator

    llm_calls = 0

    async def call_llm() -> dict[str, str]:
        nonlocal llm_calls
        llm_calls += 1
        await anyio.lowlevel.checkpoint()
        return {"content": "Paris"}

    request_key = request_hash = "capital-of-france"
    long_prompt = (
        "You are a helpful assistant.\n"
        "You are a helpful assistant.\n"
        "Please   answer   briefly.  Please answer briefly.\n"
        "What is the capital of France?"
    )

    for _ in range(2):
        # Caching
        cache = get_cache()
        cached_response = await cache.get(request_key)
        if not cached_response:
            response = await call_llm()
            await cache.set(request_key, response, ttl=3600)
    assert llm_calls == 1 and await get_cache().get(request_key) == {"content": "Paris"}

    # Prompt optimization
    optimizer = PromptOptimizer()
    optimized = optimizer.optimize(
        text=long_prompt,
        max_tokens=1000,
        remove_redundancy=True,
    )
    assert optimized == (
        "You are a helpful assistant.\nPlease answer briefly.\nWhat is the capital of France?"
    )

    # Deduplication
    gate = anyio.Event()  # holds the one upstream call until every caller is waiting

    async def expensive_call() -> dict[str, str]:
        await gate.wait()
        return await call_llm()

    dedup = get_deduplicator()
    results: list[Any] = []

    async def one_caller() -> None:
        result: dict[str, str] = await dedup.deduplicate(
            key=request_hash,
            executor=lambda: expensive_call(),
        )
        results.append(result)

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(one_caller)
        await anyio.wait_all_tasks_blocked()
        gate.set()
    assert results == [{"content": "Paris"}] * 5
    assert llm_calls == 2  # five concurrent callers, one upstream call


# -- Transports ----------------------------------------------------------------------------


def test_openrouter_transport(served: SpawnedServer) -> None:
    from aio_llm import OpenRouterTransport

    with LLMClient(
        "openrouter", api_key="sk-or-x", base_url=served.url + "/api/v1", config=ClientConfig()
    ) as client:
        transport = OpenRouterTransport(client)
        response = transport.chat_completion(
            messages=[{"role": "user", "content": "Hello"}],
            model="openai/gpt-4",
        )
        assert response.content == "Echo: Hello" and response.model == "openai/gpt-4"
        assert response.provider == "openrouter"


def test_openrouter_transport_without_a_client() -> None:
    from aio_llm import OpenRouterTransport

    with OpenRouterTransport() as transport:  # OPENROUTER_API_KEY / OPENROUTER_BASE_URL
        response = transport.chat_completion(messages=HELLO, model="openai/gpt-4")
    assert response.content == "Echo: Hello"


def test_openai_transport() -> None:
    from aio_llm import OpenAITransport

    transport = OpenAITransport(api_key="sk-...")
    response = transport.chat_completion(
        messages=[{"role": "user", "content": "Hello"}],
        model="gpt-4",
    )
    transport.close()
    assert response.content == "Echo: Hello" and response.provider == "openai"


def test_anthropic_transport() -> None:
    from aio_llm import AnthropicTransport

    transport = AnthropicTransport(api_key="sk-ant-...")
    response = transport.chat_completion(
        messages=[{"role": "user", "content": "Hello"}],
        model="claude-3-opus-20240229",
    )
    transport.close()
    assert response.content == "Echo: Hello" and response.provider == "anthropic"
    assert response.model.startswith("claude-3-opus")


def test_mock_transport() -> None:
    from aio_llm import MockLLMTransport

    transport = MockLLMTransport(default_response="Test response")
    response = transport.chat_completion(
        messages=[{"role": "user", "content": "Hello"}],
        model="mock-model",
    )
    transport.close()
    assert response.content == "Test response" and len(transport.calls) == 1

    # Mock testing
    transport = MockLLMTransport("Mock response")
    # Use in tests
    with transport:
        assert transport.chat_completion(HELLO, model="m").content == "Mock response"
    assert transport.calls[0].messages[0].content == "Hello"


@pytest.mark.anyio
async def test_transports_are_async_too_and_block_inside_a_loop(served: SpawnedServer) -> None:
    import httpx

    from aio_llm import (
        AsyncLLMClient,
        MockLLMTransport,
        OpenAITransport,
        OpenRouterTransport,
    )

    # the blocking call works inside a running loop (it runs in its own loop thread)
    with OpenAITransport(api_key="sk-x") as transport:
        assert transport.chat_completion(HELLO, model="gpt-4").content == "Echo: Hello"
        # one-shot async call, then many over one pool inside `async with`
        assert (await transport.achat_completion(HELLO, model="gpt-4")).content == "Echo: Hello"
    async with OpenAITransport(api_key="sk-x") as transport:
        replies = [await transport.achat_completion(HELLO, model="gpt-4") for _ in range(3)]
    assert [r.content for r in replies] == ["Echo: Hello"] * 3

    async with AsyncLLMClient("openrouter", config=ClientConfig()) as client:
        via_client = OpenRouterTransport(client)
        r = await via_client.achat_completion(HELLO, model="openai/gpt-4")
        assert r.content == "Echo: Hello"
        with pytest.raises(TypeError, match="achat_completion"):
            via_client.chat_completion(HELLO, model="openai/gpt-4")

    async with httpx.AsyncClient() as session:
        via_session = OpenRouterTransport(session)
        r = await via_session.achat_completion(HELLO, model="openai/gpt-4")
        assert r.content == "Echo: Hello"
        with pytest.raises(TypeError, match="HTTP session"):
            via_session.chat_completion(HELLO, model="openai/gpt-4")
        assert not session.is_closed  # the caller's session stays the caller's

    with LLMClient("openrouter", config=ClientConfig()) as blocking:
        r = await OpenRouterTransport(blocking).achat_completion(HELLO, model="openai/gpt-4")
        assert r.content == "Echo: Hello"

    mock = MockLLMTransport("Mock response")
    assert (await mock.achat_completion(HELLO, model="m")).content == "Mock response"


def test_force_mock_turns_transports_into_the_mock(monkeypatch: pytest.MonkeyPatch) -> None:
    from aio_llm import AnthropicTransport

    monkeypatch.setenv("LLM_FORCE_MOCK", "1")
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with AnthropicTransport() as transport:  # no key needed: nothing is sent
        response = transport.chat_completion(HELLO, model="claude-3-opus-20240229")
    assert response.provider == "mock"


# -- Configuration -------------------------------------------------------------------------


def test_programmatic_configuration() -> None:
    from aio_llm import CircuitBreakerConfig, LLMClientService, RetryConfig

    client = LLMClientService(
        provider="openai",
        circuit_breaker_config=CircuitBreakerConfig(
            failure_threshold=5,
            timeout=60.0,
        ),
        retry_config=RetryConfig(
            max_attempts=5,
            base_delay=1.0,
        ),
    )

    with client:
        assert client.invoke_chat(model="gpt-4", messages=HELLO).content == "Echo: Hello"
        assert client.config.max_retries == 4  # max_attempts counts the first try
        assert client.config.retry_base_delay == 1.0
        assert client.config.circuit_failure_threshold == 5
        assert client.config.circuit_timeout == 60.0
        assert client.get_circuit_breaker_status()["breakers"]["openai:gpt-4"]["state"] == "closed"
        assert client.get_retry_metrics()["strategy"] == "AdaptiveRetry"


def _failing_then(replies: list[str | Exception]) -> MockProvider:
    """A mock provider whose answers (or failures) follow ``replies``, then repeat the last."""
    feed = itertools.chain(replies, itertools.repeat(replies[-1]))

    def answer(request: ChatRequest) -> str:
        item = next(feed)
        if isinstance(item, Exception):
            raise item
        return item

    return MockProvider(answer)


def test_service_applies_the_seed_configs() -> None:
    from aio_llm import (
        CircuitBreakerConfig,
        CircuitBreakerOpenError,
        LinearBackoffRetry,
        LLMClientService,
        RetryConfig,
    )
    from aio_llm.middleware import CircuitBreakerMiddleware, Retry

    down = ServerError("down", status_code=503)
    breaker_config = CircuitBreakerConfig(failure_threshold=2, timeout=30.0, minimum_calls=7)
    service = LLMClientService(
        _failing_then([down]),
        circuit_breaker_config=breaker_config,
        retry_config=RetryConfig(max_attempts=1, jitter=0.0),
    )
    with service:
        breakers = next(
            mw for mw in service.async_client.middleware if isinstance(mw, CircuitBreakerMiddleware)
        )
        assert breakers.breaker("mock", "gpt-4").config is breaker_config  # every field applies
        retry = next(mw for mw in service.async_client.middleware if isinstance(mw, Retry))
        assert retry.strategy.config.jitter == 0.0
        for _ in range(2):
            with pytest.raises(ServerError):
                service.invoke_chat(model="gpt-4", messages=HELLO)
        with pytest.raises(CircuitBreakerOpenError):
            service.invoke_chat(model="gpt-4", messages=HELLO)
        status = service.get_circuit_breaker_status()
        assert status["state"] == "open" and status["rejected_count"] == 1
        assert status["breakers"]["mock:gpt-4"]["retry_after"] == pytest.approx(30.0, abs=0.5)
        assert status["circuit.requests.failed"] == 2
        service.reset_circuit_breakers()
        assert service.get_circuit_breaker_status()["state"] == "closed"

    flaky = _failing_then([down, "recovered"])
    strategy = LinearBackoffRetry(RetryConfig(max_attempts=3, base_delay=0.0, max_delay=0.0))
    with LLMClientService(flaky, retry_strategy=strategy) as service:
        assert service.invoke_chat(model="gpt-4", messages=HELLO).content == "recovered"
        retry_metrics = service.get_retry_metrics()
        assert retry_metrics["successful_retries"] == 1 and retry_metrics["retry.attempts"] == 1
        assert retry_metrics["strategy"] == "LinearBackoffRetry"


# -- Metrics & monitoring ------------------------------------------------------------------


SEED_METRICS = [
    "circuit.state",
    "circuit.requests.total",
    "circuit.requests.successful",
    "circuit.requests.failed",
    "circuit.requests.rejected",
    "cost.total",
    "cost.by_model",
    "cost.by_user",
    "cost.requests",
    "retry.attempts",
    "retry.successful",
    "retry.failed",
    "retry.delay",
]


def test_dashboard_example(capsys: pytest.CaptureFixture[str]) -> None:
    from aio_llm.facade import get_llm_client_service

    client = get_llm_client_service()
    client.invoke_chat(model="gpt-4", messages=HELLO, user="user123")

    # Get all metrics
    cost_metrics = client.get_cost_metrics()
    circuit_status = client.get_circuit_breaker_status()
    retry_metrics = client.get_retry_metrics()

    print(f"Total cost: ${cost_metrics['total_cost']:.2f}")  # noqa: T201
    print(f"Circuit state: {circuit_status['state']}")  # noqa: T201
    print(f"Retry success rate: {retry_metrics['successful_retries']}")  # noqa: T201

    assert capsys.readouterr().out.splitlines() == [
        "Total cost: $0.00",
        "Circuit state: closed",
        "Retry success rate: 0",
    ]
    assert cost_metrics["total_cost"] > 0 and cost_metrics["by_user"].keys() == {"user123"}
    metrics = client.metrics()
    assert set(SEED_METRICS) <= metrics.keys()
    assert metrics["cost.total"] == cost_metrics["total_cost"]
    assert metrics["circuit.state"] == {"openrouter:gpt-4": "closed"}
    # the facade records into the process defaults
    from aio_llm import get_cost_manager, get_observability

    assert get_cost_manager().get_metrics().total_cost == cost_metrics["total_cost"]
    assert get_observability().get_dashboard_data()["requests.total"] == 1


# -- Best practices ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_best_practices(capsys: pytest.CaptureFixture[str]) -> None:
    from aio_llm import (
        AdaptiveRetry,
        BudgetConfig,
        BudgetPeriod,
        RetryExecutor,
        get_cache,
        get_cost_manager,
    )
    from aio_llm.facade import get_circuit_breaker

    async def external_api_call() -> str:
        return "ok"

    # 1. Always use circuit breaker
    breaker = get_circuit_breaker("external_service")
    result = await breaker.call(external_api_call)
    assert result == "ok" and get_circuit_breaker("external_service") is breaker

    # 2. Set appropriate budgets
    manager = get_cost_manager()
    manager.set_budget("daily", BudgetConfig(limit=100.0, period=BudgetPeriod.DAILY))
    assert manager.get_budget_status("daily")["limit"] == 100.0

    # 3. Use adaptive retry
    strategy = AdaptiveRetry()
    executor = RetryExecutor(strategy)
    assert await executor.execute(external_api_call) == "ok"

    # 4. Enable caching
    async def call_llm_and_cache(key: str) -> str:
        await cache.set(key, "answer", ttl=3600)
        return "answer"

    key = "k"
    cache = get_cache()
    response = await cache.get(key) or await call_llm_and_cache(key)
    assert response == "answer" and await cache.get(key) == "answer"

    # 5. Monitor metrics
    cost_manager = get_cost_manager()
    for _ in range(3):
        cost_manager.track_usage("gpt-4", 20_000, 200)
    recommendations = cost_manager.get_optimization_recommendations()
    for rec in recommendations:
        print(rec)  # noqa: T201
    assert recommendations and capsys.readouterr().out.strip()


# -- Migration guide -----------------------------------------------------------------------


def test_migration_from_the_old_client() -> None:
    from aio_llm.facade import get_llm_client_service, invoke_chat

    response = invoke_chat(
        model="gpt-4",
        messages=[{"role": "user", "content": "Hello"}],
    )

    assert response.content == "Echo: Hello"
    assert get_llm_client_service().get_cost_metrics()["total_requests"] == 1


# -- Troubleshooting -----------------------------------------------------------------------


def test_troubleshooting(capsys: pytest.CaptureFixture[str]) -> None:
    from aio_llm import (
        BudgetConfig,
        PromptOptimizer,
        get_cache,
        get_cost_manager,
        get_observability,
    )

    manager = get_cost_manager()
    manager.set_budget("daily", BudgetConfig(limit=100.0))
    manager.track_usage("gpt-4", 100_000, 50_000)  # $6

    # Budget exceeded: check status
    status = manager.get_budget_status("daily")
    print(f"Usage: {status['percentage']}%")  # noqa: T201

    # Increase limit
    manager.set_budget("daily", BudgetConfig(limit=200.0))
    assert manager.get_budget_status("daily")["percentage"] == pytest.approx(3.0)

    # High latency: enable caching
    cache = get_cache()
    assert cache is get_cache()

    # Use prompt optimization
    prompt = "Summarise this. " * 400 + "What is the gist?"
    optimizer = PromptOptimizer()
    optimized = optimizer.optimize(prompt, max_tokens=1000)
    assert optimizer.count_tokens(optimized) <= 1000 and optimized.endswith("What is the gist?")

    # Check metrics
    obs = get_observability()
    metrics = obs.get_dashboard_data()
    print(f"Avg duration: {metrics['avg_duration_ms']}ms")  # noqa: T201

    assert capsys.readouterr().out.splitlines() == ["Usage: 6.0%", "Avg duration: 0.0ms"]
