"""Provider adapters: sans-I/O codecs for each wire format, plus the mock.

``create_provider(kind, ...)`` builds one by kind, reading the API key and
base URL from the variables the official SDKs read when not given. The
Responses, Gemini, Azure and Bedrock adapters load on first use, so that
``import aio_llm`` costs nothing for the providers a program does not use.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .._lazy import lazy_getattr
from ..errors import ConfigurationError
from .anthropic import AnthropicProvider
from .base import HTTPRequest, Provider, StreamDecoder
from .mock import MockProvider
from .openai import OpenAICompatibleProvider, OpenAIProvider
from .openrouter import OpenRouterProvider

if TYPE_CHECKING:
    from .azure import AzureOpenAIProvider, AzureOpenAIResponsesProvider
    from .bedrock import BedrockProvider
    from .gemini import GeminiProvider
    from .openai_responses import OpenAIResponsesProvider

__all__ = [
    "PROVIDER_KINDS",
    "AnthropicProvider",
    "AzureOpenAIProvider",
    "AzureOpenAIResponsesProvider",
    "BedrockProvider",
    "GeminiProvider",
    "HTTPRequest",
    "MockProvider",
    "OpenAICompatibleProvider",
    "OpenAIProvider",
    "OpenAIResponsesProvider",
    "OpenRouterProvider",
    "Provider",
    "StreamDecoder",
    "create_provider",
]

_LAZY = {
    "AzureOpenAIProvider": "azure",
    "AzureOpenAIResponsesProvider": "azure",
    "BedrockProvider": "bedrock",
    "GeminiProvider": "gemini",
    "OpenAIResponsesProvider": "openai_responses",
}

__getattr__ = lazy_getattr(__name__, _LAZY, globals())


class _Kinds(Mapping[str, type[Provider]]):
    """Kind -> provider class; a class whose module is not loaded yet is imported on lookup."""

    def __init__(self, table: Mapping[str, type[Provider] | str]) -> None:
        self._table = dict(table)

    def __getitem__(self, kind: str) -> type[Provider]:
        entry = self._table[kind]
        if isinstance(entry, str):
            cls: type[Provider] = getattr(importlib.import_module(f"{__name__}"), entry)
            self._table[kind] = entry = cls
        return entry

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)


PROVIDER_KINDS: Mapping[str, type[Provider]] = _Kinds(
    {
        "openai": OpenAIProvider,
        "openai-responses": "OpenAIResponsesProvider",
        "anthropic": AnthropicProvider,
        "openrouter": OpenRouterProvider,
        "gemini": "GeminiProvider",
        "azure-openai": "AzureOpenAIProvider",
        "azure-openai-responses": "AzureOpenAIResponsesProvider",
        "bedrock": "BedrockProvider",
        "openai-compatible": OpenAICompatibleProvider,
        "mock": MockProvider,
    }
)


def create_provider(
    kind: str,
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    label: str | None = None,
    environ: Mapping[str, str] | None = None,
    **options: Any,
) -> Provider:
    """Build a provider of ``kind``; a missing API key raises ``ConfigurationError``.

    The key and base URL default to the provider's own variables
    (``OPENAI_API_KEY``/``OPENAI_BASE_URL``, ``ANTHROPIC_API_KEY``/
    ``ANTHROPIC_BASE_URL``, ``OPENROUTER_API_KEY``, ``GEMINI_API_KEY``,
    ``AZURE_OPENAI_API_KEY``/``AZURE_OPENAI_ENDPOINT``, ...); the kind's own
    settings (Azure's ``OPENAI_API_VERSION``, Bedrock's AWS region and
    credentials) come from ``Provider.settings_from_env``.
    """
    env = os.environ if environ is None else environ
    normalized = kind.strip().lower().replace("_", "-")
    if normalized in {"openai_compatible", "compatible"}:
        normalized = "openai-compatible"
    cls = PROVIDER_KINDS.get(normalized)
    if cls is None:
        known = ", ".join(sorted(PROVIDER_KINDS))
        raise ConfigurationError(f"unknown provider {kind!r}; known providers: {known}")
    if base_url is None and cls.base_url_env:
        base_url = env.get(cls.base_url_env) or None
    from_env = {k: v for k, v in cls.settings_from_env(env).items() if v is not None}
    options = {**from_env, **options}
    env_base_url = options.pop("base_url", None)  # a kind's second variable (AWS_ENDPOINT_URL)
    base_url = base_url or env_base_url
    if api_key is None and cls.api_key_env:
        names = (cls.api_key_env, *cls.api_key_alt_envs)
        api_key = next((env[n] for n in names if env.get(n)), None)
        if api_key is None and not cls.has_credentials(options):
            raise ConfigurationError(
                f"no API key for provider {label or normalized!r}: set {' or '.join(names)} "
                "or pass api_key="
            )
    if cls is OpenAICompatibleProvider and base_url is None:
        raise ConfigurationError("provider 'openai-compatible' needs base_url")
    if cls is MockProvider:
        return MockProvider(label=label, **options)
    return cls(api_key=api_key, base_url=base_url, label=label, **options)
