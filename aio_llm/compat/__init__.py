"""Code written against the ``app.ai`` client's API keeps working (DESIGN §7, docs/migration.md).

This package is a fence: everything the ``app.ai`` client had and aio_llm's own API does
not (the blocking facade, module-level helpers on process-wide defaults, the
``app.ai`` client's "transports", ``PromptOptimizer``) lives here, and the rest of
aio_llm never imports from it. The ``app.ai`` client's names also resolve from ``aio_llm``
itself, and ``aio_llm.facade`` is another name for ``aio_llm.compat.facade``.
Some names are aio_llm's own, listed here because the ``app.ai`` client had them too.
"""

import typing

from .._exports import lazy_exports as _lazy_exports

if typing.TYPE_CHECKING:
    from ..cost import BudgetConfig as BudgetConfig
    from ..cost import BudgetPeriod as BudgetPeriod
    from ..errors import CircuitBreakerOpenError as CircuitBreakerOpenError
    from ..middleware import AdaptiveRetry as AdaptiveRetry
    from ..middleware import CircuitBreaker as CircuitBreaker
    from ..middleware import CircuitBreakerConfig as CircuitBreakerConfig
    from ..middleware import ExponentialBackoffRetry as ExponentialBackoffRetry
    from ..middleware import FibonacciBackoffRetry as FibonacciBackoffRetry
    from ..middleware import LinearBackoffRetry as LinearBackoffRetry
    from ..middleware import RetryConfig as RetryConfig
    from ..middleware import RetryExecutor as RetryExecutor
    from ._defaults import get_cache as get_cache
    from ._defaults import get_circuit_breaker as get_circuit_breaker
    from ._defaults import get_cost_manager as get_cost_manager
    from ._defaults import get_deduplicator as get_deduplicator
    from ._defaults import get_observability as get_observability
    from ._defaults import reset_defaults as reset_defaults
    from ._functions import finish_operation as finish_operation
    from ._functions import get_budget_status as get_budget_status
    from ._functions import get_dashboard_data as get_dashboard_data
    from ._functions import get_metrics as get_metrics
    from ._functions import get_optimization_recommendations as get_optimization_recommendations
    from ._functions import trace_operation as trace_operation
    from ._functions import track_usage as track_usage
    from ._optimization import PromptOptimizer as PromptOptimizer
    from ._transports import AnthropicTransport as AnthropicTransport
    from ._transports import MockLLMTransport as MockLLMTransport
    from ._transports import OpenAITransport as OpenAITransport
    from ._transports import OpenRouterTransport as OpenRouterTransport
    from .facade import LLMClientService as LLMClientService
    from .facade import get_llm_client_service as get_llm_client_service
    from .facade import invoke_chat as invoke_chat

__all__, __getattr__, __dir__ = _lazy_exports(__name__)
