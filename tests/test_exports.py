"""The public API is what ``__all__`` says: pinned here, resolvable, and light to import.

A name added to or removed from a public ``__all__`` must be added to or
removed from the lists below in the same change (and noted in CHANGELOG.md).
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import types

import pytest

AIO_LLM = [
    "APIConnectionError",
    "APIError",
    "APIResponseError",
    "APIStatusError",
    "APITimeoutError",
    "AdaptiveRetry",
    "AnthropicProvider",
    "AnthropicTransport",
    "AsyncLLMClient",
    "AuthenticationError",
    "BadRequestError",
    "BudgetAlert",
    "BudgetConfig",
    "BudgetExceededError",
    "BudgetMiddleware",
    "BudgetPeriod",
    "BudgetScope",
    "Cache",
    "ChatChunk",
    "ChatRequest",
    "ChatResponse",
    "ChatStream",
    "ChunkStream",
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitBreakerMiddleware",
    "CircuitBreakerOpenError",
    "CircuitOpenError",
    "CircuitState",
    "ClientConfig",
    "ClientEmbedder",
    "Clock",
    "ConfigurationError",
    "ConflictError",
    "ContextWindowExceededError",
    "CostManager",
    "CostMetrics",
    "Dedup",
    "Deduplicator",
    "Embedder",
    "EmbeddingBatcher",
    "EmbeddingResponse",
    "ExponentialBackoffRetry",
    "FakeClock",
    "Fallback",
    "FallbackTarget",
    "FibonacciBackoffRetry",
    "InvalidRequestError",
    "LLMClient",
    "LLMClientService",
    "LLMError",
    "LedgerUnavailableError",
    "LinearBackoffRetry",
    "LocalEmbedder",
    "Message",
    "Middleware",
    "MockLLMTransport",
    "MockProvider",
    "ModelPrice",
    "Next",
    "NotFoundError",
    "Observability",
    "OpenAICompatibleProvider",
    "OpenAIProvider",
    "OpenAITransport",
    "OpenRouterProvider",
    "OpenRouterTransport",
    "OverloadedError",
    "PermissionDeniedError",
    "PricingTable",
    "PromptOptimizer",
    "Provider",
    "RateLimit",
    "RateLimitConfig",
    "RateLimitError",
    "RateLimitExceededError",
    "RedirectError",
    "Recommendation",
    "RequestKeyer",
    "RequestStats",
    "RequestTimeoutError",
    "Retry",
    "RetryConfig",
    "RetryExecutor",
    "RetryStrategy",
    "SemanticCache",
    "ServerError",
    "StreamError",
    "SystemClock",
    "ToolCall",
    "ToolCallDelta",
    "Tracing",
    "USE_CLIENT_DEFAULT",
    "UnprocessableEntityError",
    "Usage",
    "UsageRecord",
    "UseClientDefault",
    "VectorIndex",
    "api_key_fingerprint",
    "build_chain",
    "create_provider",
    "default_middleware",
    "finish_operation",
    "get_budget_status",
    "get_cache",
    "get_circuit_breaker",
    "get_cost_manager",
    "get_dashboard_data",
    "get_deduplicator",
    "get_llm_client_service",
    "get_metrics",
    "get_observability",
    "get_optimization_recommendations",
    "invoke_chat",
    "record_event",
    "request_key",
    "trace_operation",
    "track_usage",
]

MIDDLEWARE = [
    "AdaptiveRetry",
    "BudgetMiddleware",
    "BudgetStatistics",
    "Cache",
    "CacheBackend",
    "CacheStatistics",
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitBreakerMiddleware",
    "CircuitBreakerStatistics",
    "CircuitState",
    "Dedup",
    "DedupStatistics",
    "Deduplicator",
    "ExponentialBackoffRetry",
    "Fallback",
    "FallbackStatistics",
    "FibonacciBackoffRetry",
    "LinearBackoffRetry",
    "MemoryCache",
    "RateLimit",
    "RateLimitConfig",
    "RateLimitStatistics",
    "RedisCache",
    "Retry",
    "RetryConfig",
    "RetryExecutor",
    "RetryStatistics",
    "RetryStrategy",
    "SemanticCache",
    "SemanticCacheStatistics",
    "Tracing",
    "default_middleware",
    "is_retryable",
    "is_transient",
    "record_event",
    "should_fall_back",
]

PROVIDERS = [
    "AnthropicProvider",
    "HTTPRequest",
    "MockProvider",
    "OpenAICompatibleProvider",
    "OpenAIProvider",
    "OpenRouterProvider",
    "PROVIDER_KINDS",
    "Provider",
    "StreamDecoder",
    "create_provider",
]

TESTING = [
    "DEFAULT_RANDOM_FAULTS",
    "FakeClock",
    "FakeLLMServer",
    "Fault",
    "RecordedRequest",
    "RequestHeaders",
    "ServerStatistics",
    "SpawnedServer",
    "run_fake_server",
    "spawn_fake_server",
]

PUBLIC = {
    "aio_llm": AIO_LLM,
    "aio_llm.middleware": MIDDLEWARE,
    "aio_llm.providers": PROVIDERS,
    "aio_llm.testing": TESTING,
}

# The seed's public names (DESIGN.md §7): each must be importable from aio_llm.
SEED_NAMES = [
    "AdaptiveRetry",
    "AnthropicTransport",
    "BudgetConfig",
    "BudgetPeriod",
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitBreakerOpenError",
    "ExponentialBackoffRetry",
    "FibonacciBackoffRetry",
    "LLMClientService",
    "LinearBackoffRetry",
    "MockLLMTransport",
    "OpenAITransport",
    "OpenRouterTransport",
    "PromptOptimizer",
    "RetryConfig",
    "RetryExecutor",
    "finish_operation",
    "get_budget_status",
    "get_cache",
    "get_circuit_breaker",
    "get_cost_manager",
    "get_dashboard_data",
    "get_deduplicator",
    "get_llm_client_service",
    "get_metrics",
    "get_observability",
    "get_optimization_recommendations",
    "invoke_chat",
    "trace_operation",
    "track_usage",
]

HEAVY = ["aiohttp", "httpx", "numpy", "redis", "aiocache", "opentelemetry.sdk"]


@pytest.mark.parametrize("expected", PUBLIC.values(), ids=PUBLIC.keys())
def test_expected_lists_are_sorted_and_unique(expected: list[str]) -> None:
    assert expected == sorted(expected)
    assert len(set(expected)) == len(expected)


@pytest.mark.parametrize(("module", "expected"), PUBLIC.items(), ids=PUBLIC.keys())
def test_all_is_pinned(module: str, expected: list[str]) -> None:
    names = importlib.import_module(module).__all__
    assert len(set(names)) == len(names), "duplicates in __all__"
    assert sorted(names) == expected


@pytest.mark.parametrize(("module", "expected"), PUBLIC.items(), ids=PUBLIC.keys())
def test_every_public_name_resolves(module: str, expected: list[str]) -> None:
    mod = importlib.import_module(module)
    for name in expected:
        value = getattr(mod, name)  # lazy names load through module __getattr__
        assert value is not None, name
        assert name in dir(mod)
    with pytest.raises(AttributeError):
        mod.no_such_name  # noqa: B018


def test_lazy_names_are_the_home_objects() -> None:
    import aio_llm
    import aio_llm.facade
    import aio_llm.middleware

    assert aio_llm.CircuitBreaker is aio_llm.middleware.CircuitBreaker
    assert aio_llm.LLMClientService is aio_llm.facade.LLMClientService
    assert aio_llm.CircuitBreakerOpenError is aio_llm.CircuitOpenError
    for name in aio_llm.facade.__all__:
        if name in AIO_LLM and name != "invoke_chat":
            assert getattr(aio_llm, name) is getattr(aio_llm.facade, name), name


def test_seed_names_are_exported() -> None:
    import aio_llm

    assert set(SEED_NAMES) <= set(aio_llm.__all__)
    facade = importlib.import_module("aio_llm.facade")
    for name in ("LLMClientService", "get_llm_client_service", "invoke_chat"):
        assert isinstance(getattr(facade, name), type | types.FunctionType)


def test_import_stays_light() -> None:
    """``import aio_llm`` loads none of the heavy optional dependencies."""
    code = (
        f"import json, sys, aio_llm; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(out.stdout) == []


def test_public_names_load_their_own_dependencies_only_when_used() -> None:
    """Touching a lazy name works in a fresh interpreter (no import-order accidents)."""
    code = (
        "import aio_llm; "
        "aio_llm.LLMClientService; aio_llm.SemanticCache; aio_llm.FakeClock; "
        "aio_llm.get_cache; aio_llm.CostManager; aio_llm.VectorIndex; print('ok')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "ok"
