"""Provider adapters: sans-I/O codecs for each wire format, plus the mock.

``create_provider(kind, ...)`` builds one by kind, reading the API key and
base URL from the variables the official SDKs read when not given. Each
name loads its module on first use (see ``aio_llm._exports``), so a program
pays only for the providers it uses.
"""

import typing

from .._exports import lazy_exports as _lazy_exports

if typing.TYPE_CHECKING:
    from ._kinds import PROVIDER_KINDS as PROVIDER_KINDS
    from ._kinds import create_provider as create_provider
    from .anthropic import AnthropicProvider as AnthropicProvider
    from .azure import AzureOpenAIProvider as AzureOpenAIProvider
    from .azure import AzureOpenAIResponsesProvider as AzureOpenAIResponsesProvider
    from .base import HTTPRequest as HTTPRequest
    from .base import Provider as Provider
    from .base import StreamDecoder as StreamDecoder
    from .bedrock import BedrockProvider as BedrockProvider
    from .gemini import GeminiProvider as GeminiProvider
    from .mock import MockProvider as MockProvider
    from .openai import OpenAICompatibleProvider as OpenAICompatibleProvider
    from .openai import OpenAIProvider as OpenAIProvider
    from .openai_responses import OpenAIResponsesProvider as OpenAIResponsesProvider
    from .openrouter import OpenRouterProvider as OpenRouterProvider

__all__, __getattr__, __dir__ = _lazy_exports(__name__)
