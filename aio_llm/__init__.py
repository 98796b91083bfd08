"""aio_llm: an asyncio-native LLM client with composable middleware.

::

    async with AsyncLLMClient() as c:
        r = await c.chat([{"role": "user", "content": "Hello"}], model="gpt-4o-mini")
"""

from __future__ import annotations

from .client import USE_CLIENT_DEFAULT, AsyncLLMClient, ChatStream, UseClientDefault
from .clock import Clock, SystemClock
from .config import ClientConfig, FallbackTarget
from .errors import (
    APIConnectionError,
    APIError,
    APIResponseError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    CircuitBreakerOpenError,
    CircuitOpenError,
    ConfigurationError,
    ConflictError,
    ContextWindowExceededError,
    InvalidRequestError,
    LLMError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
    RateLimitExceededError,
    RequestTimeoutError,
    ServerError,
    StreamError,
    UnprocessableEntityError,
)
from .pipeline import Middleware, Next, build_chain
from .providers import (
    AnthropicProvider,
    MockProvider,
    OpenAICompatibleProvider,
    OpenAIProvider,
    OpenRouterProvider,
    Provider,
    create_provider,
)
from .streaming import ChunkStream
from .sync import LLMClient, invoke_chat
from .types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    EmbeddingResponse,
    Message,
    ToolCall,
    ToolCallDelta,
    Usage,
)

__version__ = "0.1.0"

__all__ = [
    "USE_CLIENT_DEFAULT",
    "APIConnectionError",
    "APIError",
    "APIResponseError",
    "APIStatusError",
    "APITimeoutError",
    "AnthropicProvider",
    "AsyncLLMClient",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "ChatChunk",
    "ChatRequest",
    "ChatResponse",
    "ChatStream",
    "ChunkStream",
    "CircuitBreakerOpenError",
    "CircuitOpenError",
    "ClientConfig",
    "Clock",
    "ConfigurationError",
    "ConflictError",
    "ContextWindowExceededError",
    "EmbeddingResponse",
    "FallbackTarget",
    "InvalidRequestError",
    "LLMClient",
    "LLMError",
    "Message",
    "Middleware",
    "MockProvider",
    "Next",
    "NotFoundError",
    "OpenAICompatibleProvider",
    "OpenAIProvider",
    "OpenRouterProvider",
    "OverloadedError",
    "PermissionDeniedError",
    "Provider",
    "RateLimitError",
    "RateLimitExceededError",
    "RequestTimeoutError",
    "ServerError",
    "StreamError",
    "SystemClock",
    "ToolCall",
    "ToolCallDelta",
    "UnprocessableEntityError",
    "Usage",
    "UseClientDefault",
    "build_chain",
    "create_provider",
    "invoke_chat",
]
