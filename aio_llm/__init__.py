"""aio_llm: an asyncio-native LLM client with composable middleware.

::

    async with AsyncLLMClient() as c:
        r = await c.chat([{"role": "user", "content": "Hello"}], model="gpt-4o-mini")

The names below are the whole top-level API; each loads on first use (see
``aio_llm._exports``). Middleware, cost, embedding, provider and testing
names live in their subpackages (``aio_llm.middleware``, ``aio_llm.cost``,
...). The ``app.ai`` client's names (DESIGN §7: ``LLMClientService``, ``invoke_chat``,
``get_cost_manager``, ...) also resolve here, from ``aio_llm.compat``.
"""

import typing

from ._exports import lazy_exports as _lazy_exports
from .log import configure_from_env as _configure_logging

if typing.TYPE_CHECKING:
    from .client._client import USE_CLIENT_DEFAULT as USE_CLIENT_DEFAULT
    from .client._client import AsyncLLMClient as AsyncLLMClient
    from .client._client import UseClientDefault as UseClientDefault
    from .client._stream import ChatStream as ChatStream
    from .client._sync import LLMClient as LLMClient
    from .client._timeout import Timeout as Timeout
    from .clock import Clock as Clock
    from .config import ClientConfig as ClientConfig
    from .config import FallbackTarget as FallbackTarget
    from .errors import APIConnectionError as APIConnectionError
    from .errors import APIError as APIError
    from .errors import APIResponseError as APIResponseError
    from .errors import APIStatusError as APIStatusError
    from .errors import APITimeoutError as APITimeoutError
    from .errors import AuthenticationError as AuthenticationError
    from .errors import BadRequestError as BadRequestError
    from .errors import BatchCancelledError as BatchCancelledError
    from .errors import BatchError as BatchError
    from .errors import BatchExpiredError as BatchExpiredError
    from .errors import BudgetExceededError as BudgetExceededError
    from .errors import CircuitOpenError as CircuitOpenError
    from .errors import ClientStateError as ClientStateError
    from .errors import ConfigurationError as ConfigurationError
    from .errors import ConflictError as ConflictError
    from .errors import ContentFilterError as ContentFilterError
    from .errors import ContextWindowExceededError as ContextWindowExceededError
    from .errors import EventStreamError as EventStreamError
    from .errors import InternalServerError as InternalServerError
    from .errors import InvalidRequestError as InvalidRequestError
    from .errors import LLMError as LLMError
    from .errors import MissingExtraError as MissingExtraError
    from .errors import NotFoundError as NotFoundError
    from .errors import OutputValidationError as OutputValidationError
    from .errors import OverloadedError as OverloadedError
    from .errors import PermissionDeniedError as PermissionDeniedError
    from .errors import RateLimitError as RateLimitError
    from .errors import RateLimitExceededError as RateLimitExceededError
    from .errors import RedirectError as RedirectError
    from .errors import RequestTimeoutError as RequestTimeoutError
    from .errors import ServerError as ServerError
    from .errors import ServiceUnavailableError as ServiceUnavailableError
    from .errors import StreamError as StreamError
    from .errors import UnprocessableEntityError as UnprocessableEntityError
    from .errors import UnsupportedParameterError as UnsupportedParameterError
    from .pipeline import Middleware as Middleware
    from .pipeline import Next as Next
    from .types import ChatChunk as ChatChunk
    from .types import ChatRequest as ChatRequest
    from .types import ChatResponse as ChatResponse
    from .types import Choice as Choice
    from .types import ChunkStream as ChunkStream
    from .types import EmbeddingRequest as EmbeddingRequest
    from .types import EmbeddingResponse as EmbeddingResponse
    from .types import Message as Message
    from .types import ThinkingBlock as ThinkingBlock
    from .types import TokenLogprob as TokenLogprob
    from .types import ToolCall as ToolCall
    from .types import ToolCallDelta as ToolCallDelta
    from .types import TopLogprob as TopLogprob
    from .types import Usage as Usage

__version__ = "0.1.0"

__all__, __getattr__, __dir__ = _lazy_exports(__name__, fallback="aio_llm.compat")

_configure_logging()  # LLM_LOG=debug|info|warning|error|off (see aio_llm.log)
