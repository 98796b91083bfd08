"""The public API: each package declares its names once (``aio_llm._exports``); pinned here.

A package's ``__all__`` is derived from its ``if typing.TYPE_CHECKING:``
block, so a name cannot be exported without being declared there, nor
declared without being exported. What these tests pin is the invariant
itself, as httpx's export test does: once every name is loaded, a package's
public namespace is exactly its ``__all__``.
"""

from __future__ import annotations

import importlib
import inspect
import json
import subprocess
import sys

import pytest

import aio_llm

DECLARING = [
    "aio_llm",
    "aio_llm.batch",
    "aio_llm.compat",
    "aio_llm.cost",
    "aio_llm.cost.ledger",
    "aio_llm.embeddings",
    "aio_llm.middleware",
    "aio_llm.middleware.semantic_cache",
    "aio_llm.providers",
    "aio_llm.testing",
    "aio_llm.transports",
]

# The seed's public names (DESIGN §7): each must stay importable from aio_llm itself.
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


@pytest.mark.parametrize("name", DECLARING)
def test_public_namespace_is_exactly_all(name: str) -> None:
    package = importlib.import_module(name)
    for public in package.__all__:
        getattr(package, public)  # loads it
    assert package.__all__ == sorted(
        n for n, v in vars(package).items() if not n.startswith("_") and not inspect.ismodule(v)
    )


def test_top_level_is_what_a_user_imports() -> None:
    # about 50: the clients, the types, the config and the errors users catch; each error a
    # provider kind or feature adds (batch, event stream, content filter, client state) counts
    assert len(aio_llm.__all__) <= 60
    assert {"AsyncLLMClient", "LLMClient", "ChatRequest", "ClientConfig"} <= set(aio_llm.__all__)
    assert not {"Retry", "CostManager", "FakeClock", "LocalEmbedder"} & set(aio_llm.__all__)


def test_unknown_names_raise_attribute_error() -> None:
    for name in DECLARING:
        with pytest.raises(AttributeError, match="no_such_name"):
            importlib.import_module(name).no_such_name  # noqa: B018


def test_seed_names_resolve_from_aio_llm_and_compat() -> None:
    import aio_llm.compat
    import aio_llm.facade
    import aio_llm.middleware

    assert set(SEED_NAMES) <= set(aio_llm.compat.__all__)
    assert not set(SEED_NAMES) & set(aio_llm.__all__) - {"CircuitOpenError"}
    for name in SEED_NAMES:
        assert getattr(aio_llm, name) is getattr(aio_llm.compat, name), name
    assert aio_llm.CircuitBreaker is aio_llm.middleware.CircuitBreaker
    assert aio_llm.CircuitBreakerOpenError is aio_llm.CircuitOpenError
    assert aio_llm.facade is aio_llm.compat.facade
    assert aio_llm.invoke_chat is aio_llm.facade.invoke_chat  # one invoke_chat


def _fresh(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return out.stdout.strip()


def test_importing_the_client_stays_light() -> None:
    """The client and its types load none of the heavy optional dependencies."""
    code = (
        "import json, sys; from aio_llm import AsyncLLMClient, ChatRequest, LLMClient; "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    assert json.loads(_fresh(code)) == []


@pytest.mark.parametrize("name", DECLARING)
def test_each_package_loads_in_a_fresh_interpreter(name: str) -> None:
    """Every declared name loads on its own (no import-order accidents)."""
    code = f"import importlib; p = importlib.import_module({name!r}); print(len(p.__all__))"
    code += "; [getattr(p, n) for n in p.__all__]"
    assert int(_fresh(code)) > 0
    assert _fresh("import aio_llm; print(aio_llm.LLMClientService.__name__)") == "LLMClientService"
