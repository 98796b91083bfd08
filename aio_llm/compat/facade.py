"""The ``app.ai`` client's API: ``LLMClientService``, ``invoke_chat``, the process-wide helpers.

Code written against the ``app.ai`` client keeps working::

    from aio_llm.facade import get_llm_client_service

    client = get_llm_client_service()
    response = client.invoke_chat(model="gpt-4", messages=[{"role": "user", "content": "Hi"}])
    client.get_cost_metrics()["total_cost"]

``LLMClientService`` is a blocking ``LLMClient`` with the default middleware
chain, configured from the ``LLM_*`` variables (plus the ``app.ai`` client's
``circuit_breaker_config`` and ``retry_config``), that records its spend in
the process default ``get_cost_manager()`` and its requests in
``get_observability()``. ``get_llm_client_service()`` returns one per
process. The module-level ``track_usage``, ``get_metrics``,
``get_budget_status`` and ``get_optimization_recommendations`` act on
``get_cost_manager()``; ``trace_operation``, ``finish_operation`` and
``get_dashboard_data`` on ``get_observability()``. The ``app.ai`` client's transports
live in ``aio_llm.compat._transports`` and are re-exported here.

New code should use ``AsyncLLMClient`` (or ``LLMClient``) directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..client._client import AsyncLLMClient
from ..client._sync import LLMClient, _at_exit
from ..config import ClientConfig
from ..cost import (
    BudgetConfig,
    BudgetPeriod,
    CostManager,
)
from ..middleware.circuit_breaker._breaker import (
    CircuitBreakerConfig,
    CircuitBreakerMiddleware,
    CircuitState,
)
from ..middleware.retry._retry import Retry, RetryConfig, RetryStrategy
from ..middleware.tracing._observability import Observability
from ..providers import Provider
from ..types import ChatResponse, MessageInput
from ._defaults import ProcessDefault, get_circuit_breaker
from ._defaults import get_cost_manager as _get_cost_manager
from ._defaults import get_observability as _get_observability
from ._functions import (
    finish_operation,
    get_budget_status,
    get_dashboard_data,
    get_metrics,
    get_optimization_recommendations,
    trace_operation,
    track_usage,
)
from ._transports import (
    AnthropicTransport,
    MockLLMTransport,
    OpenAITransport,
    OpenRouterTransport,
)

__all__ = [
    "AnthropicTransport",
    "LLMClientService",
    "MockLLMTransport",
    "OpenAITransport",
    "OpenRouterTransport",
    "finish_operation",
    "get_budget_status",
    "get_circuit_breaker",
    "get_dashboard_data",
    "get_llm_client_service",
    "get_metrics",
    "get_optimization_recommendations",
    "invoke_chat",
    "trace_operation",
    "track_usage",
]

_SEVERITY = {
    CircuitState.CLOSED.value: 0,
    CircuitState.HALF_OPEN.value: 1,
    CircuitState.OPEN.value: 2,
}


def _with_seed_settings(
    config: ClientConfig,
    circuit_breaker_config: CircuitBreakerConfig | None,
    retry_config: RetryConfig | None,
) -> ClientConfig:
    """``config`` with the fields that the ``app.ai`` client's config objects also carry."""
    updates: dict[str, Any] = {}
    if circuit_breaker_config is not None:
        updates.update(
            circuit_failure_threshold=circuit_breaker_config.failure_threshold,
            circuit_success_threshold=circuit_breaker_config.success_threshold,
            circuit_timeout=circuit_breaker_config.timeout,
            circuit_minimum_calls=circuit_breaker_config.minimum_calls,
            circuit_window=circuit_breaker_config.window,
        )
        if circuit_breaker_config.failure_rate_threshold is not None:
            updates["circuit_failure_rate"] = circuit_breaker_config.failure_rate_threshold
    if retry_config is not None:
        updates.update(
            max_retries=retry_config.max_attempts - 1,
            retry_base_delay=retry_config.base_delay,
            retry_max_delay=retry_config.max_delay,
            retry_backoff_base=retry_config.exponential_base,
        )
    if not updates:
        return config
    return ClientConfig.model_validate({**config.model_dump(), **updates})


def _ensure_budgets(manager: CostManager, config: ClientConfig) -> None:
    """Give ``manager`` the ``daily``/``monthly`` budgets of ``config`` it does not have yet."""
    have = manager.budgets()
    for name, limit, period in (
        ("daily", config.daily_budget, BudgetPeriod.DAILY),
        ("monthly", config.monthly_budget, BudgetPeriod.MONTHLY),
    ):
        if limit is not None and name not in have:
            manager.set_budget(name, BudgetConfig(limit, period))


class LLMClientService:
    """The ``app.ai`` client service: a blocking client with the default chain.

    ``provider`` defaults to ``LLM_PROVIDER`` (``LLM_FORCE_MOCK=1`` forces
    the mock); every other setting comes from ``config`` (default:
    ``ClientConfig.from_env()``). ``circuit_breaker_config`` replaces the
    breaker settings of every (provider, model) breaker; ``retry_config``
    the retry settings (``max_attempts`` counts the first try), keeping the
    configured strategy kind; ``retry_strategy`` replaces the strategy
    outright. Spend goes to ``cost_manager`` (default: the process's
    ``get_cost_manager()``), which gets the config's ``daily_budget`` /
    ``monthly_budget`` unless it already has a ``daily`` / ``monthly``
    budget; request statistics go to ``observability`` (default:
    ``get_observability()``).

    It works from plain code and from inside a running event loop; call
    ``close()`` (or use ``with``) when done.
    """

    def __init__(
        self,
        provider: str | Provider | None = None,
        *,
        circuit_breaker_config: CircuitBreakerConfig | None = None,
        retry_config: RetryConfig | None = None,
        retry_strategy: RetryStrategy | None = None,
        config: ClientConfig | None = None,
        model: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        providers: Mapping[str, Provider | Mapping[str, Any]] | None = None,
        cost_manager: CostManager | None = None,
        observability: Observability | None = None,
    ) -> None:
        base = config if config is not None else ClientConfig.from_env()
        self.config = _with_seed_settings(base, circuit_breaker_config, retry_config)
        self.cost_manager = cost_manager if cost_manager is not None else _get_cost_manager()
        _ensure_budgets(self.cost_manager, self.config)
        self.observability = observability if observability is not None else _get_observability()
        self._client = LLMClient(
            provider,
            model=model,
            api_key=api_key,
            base_url=base_url,
            config=self.config,
            providers=providers,
            cost_manager=self.cost_manager,
            observability=self.observability,
        )
        self._closed = False
        self._retry: Retry | None = None
        self._breakers: CircuitBreakerMiddleware | None = None
        for mw in self._client.async_client.middleware:
            if isinstance(mw, Retry):
                self._retry = mw
            elif isinstance(mw, CircuitBreakerMiddleware):
                self._breakers = mw
        # No request has run yet: the middleware can still take the ``app.ai`` full objects.
        if self._retry is not None:
            if retry_strategy is not None:
                self._retry.strategy = retry_strategy
            elif retry_config is not None:
                self._retry.strategy = type(self._retry.strategy)(retry_config)
        if self._breakers is not None and circuit_breaker_config is not None:
            # breakers are created on first use from this config
            self._breakers._config = circuit_breaker_config

    # -- calls ------------------------------------------------------------------
    @property
    def client(self) -> LLMClient:
        """The blocking client underneath."""
        return self._client

    @property
    def async_client(self) -> AsyncLLMClient:
        """The ``AsyncLLMClient`` running in the service's event-loop thread."""
        return self._client.async_client

    def invoke_chat(
        self,
        model: str | None = None,
        messages: Sequence[MessageInput] | None = None,
        **params: Any,
    ) -> ChatResponse:
        """One chat completion through the whole chain (blocking).

        ``params`` are ``ChatRequest`` fields (``temperature``, ``max_tokens``,
        ``user``, ``timeout``, ...).
        """
        return self._client.chat(messages, model=model, **params)

    # -- the ``app.ai`` client's dashboard ------------------------------------------------------
    def get_cost_metrics(self) -> dict[str, Any]:
        """``total_cost``, ``total_requests``, tokens, ``by_model``/``by_user``/``by_project``,
        and the same under the ``app.ai`` client's metric names (``cost.total``, ...)."""
        out = self.cost_manager.get_metrics().as_dict()
        out.update(self.cost_manager.metrics())
        return out

    def get_circuit_breaker_status(self) -> dict[str, Any]:
        """``state`` (the worst breaker's: open > half_open > closed), the request
        counts, and every (provider, model) breaker under ``breakers``."""
        stats = self._breakers.statistics() if self._breakers is not None else {}
        breakers = {
            name: {
                "state": s.state.value,
                "total": s.total,
                "successful": s.successful,
                "failed": s.failed,
                "rejected": s.rejected,
                "consecutive_failures": s.consecutive_failures,
                "trips": s.trips,
                "retry_after": s.retry_after,
            }
            for name, s in stats.items()
        }
        state = max(
            (b["state"] for b in breakers.values()),
            key=lambda v: _SEVERITY.get(str(v), 0),
            default=CircuitState.CLOSED.value,
        )
        out: dict[str, Any] = {
            "state": state,
            "failure_count": sum(s.failed for s in stats.values()),
            "success_count": sum(s.successful for s in stats.values()),
            "rejected_count": sum(s.rejected for s in stats.values()),
            "total_requests": sum(s.total for s in stats.values()),
            "failure_threshold": self.config.circuit_failure_threshold,
            "timeout": self.config.circuit_timeout,
            "breakers": breakers,
        }
        if self._breakers is not None:
            out.update(self._breakers.metrics())
        return out

    def get_retry_metrics(self) -> dict[str, Any]:
        """``successful_retries``, ``failed_retries``, ``total_retries``, ``total_delay``,
        and the ``app.ai`` client's ``retry.*`` names."""
        retry = self._retry
        if retry is None:
            return {
                "calls": 0,
                "total_retries": 0,
                "successful_retries": 0,
                "failed_retries": 0,
                "total_delay": 0.0,
                "exhausted": 0,
                "strategy": None,
            }
        s = retry.statistics()
        out: dict[str, Any] = {
            "calls": s.calls,
            "total_retries": s.retries,
            "successful_retries": s.successful,
            "failed_retries": s.failed,
            "total_delay": s.total_delay,
            "exhausted": s.exhausted,
            "strategy": type(retry.strategy).__name__,
        }
        out.update(retry.metrics())
        return out

    def get_dashboard_data(self) -> dict[str, Any]:
        """``get_observability().get_dashboard_data()`` for this service's ``Observability``."""
        return self.observability.get_dashboard_data()

    def metrics(self) -> dict[str, Any]:
        """The client's metrics snapshot (see ``AsyncLLMClient.metrics``)."""
        return self._client.metrics()

    def reset_circuit_breakers(self) -> None:
        """Close every breaker and forget its failures (``app.ai``'s ``breaker.reset()``)."""
        mw = self._breakers
        if mw is None:
            return
        for name in mw.statistics():
            provider, _, model = name.partition(":")
            mw.breaker(provider, model).reset()

    # -- lifetime -------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close the client and its event-loop thread (idempotent)."""
        self._closed = True
        self._client.close()

    def __enter__(self) -> LLMClientService:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<LLMClientService {self._client!r}>"


_service = ProcessDefault(lambda _: LLMClientService(), usable=lambda s: not s.closed)


def get_llm_client_service() -> LLMClientService:
    """The process's ``LLMClientService``, built from the environment on first use.

    After ``close()`` the next call builds a new one (reading the
    environment again).
    """
    return _service.get()


def invoke_chat(
    model: str | None = None,
    messages: Sequence[MessageInput] | None = None,
    **params: Any,
) -> ChatResponse:
    """One blocking chat call on ``get_llm_client_service()``.

    From an ``atexit`` handler it uses a service of its own, closed before it
    returns: a client made during shutdown is never closed by ``atexit``.
    """
    if _at_exit():
        with LLMClientService() as service:
            return service.invoke_chat(model, messages, **params)
    return get_llm_client_service().invoke_chat(model, messages, **params)
