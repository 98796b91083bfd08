"""Provider kinds by name, and ``create_provider``.

A kind's class is imported the first time the kind is looked up, so a
program pays only for the providers it uses.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

from ..errors import ConfigurationError
from .base import Provider

__all__ = ["PROVIDER_KINDS", "create_provider"]

_HOMES: dict[str, tuple[str, str]] = {
    "openai": ("openai", "OpenAIProvider"),
    "openai-responses": ("openai_responses", "OpenAIResponsesProvider"),
    "anthropic": ("anthropic", "AnthropicProvider"),
    "openrouter": ("openrouter", "OpenRouterProvider"),
    "gemini": ("gemini", "GeminiProvider"),
    "azure-openai": ("azure", "AzureOpenAIProvider"),
    "azure-openai-responses": ("azure", "AzureOpenAIResponsesProvider"),
    "bedrock": ("bedrock", "BedrockProvider"),
    "openai-compatible": ("openai", "OpenAICompatibleProvider"),
    "mock": ("mock", "MockProvider"),
}


class _Kinds(Mapping[str, type[Provider]]):
    """Kind -> provider class, each imported on its first lookup."""

    def __init__(self, homes: Mapping[str, tuple[str, str]]) -> None:
        self._homes = dict(homes)
        self._loaded: dict[str, type[Provider]] = {}

    def __getitem__(self, kind: str) -> type[Provider]:
        cls = self._loaded.get(kind)
        if cls is None:
            module, name = self._homes[kind]
            cls = getattr(importlib.import_module(f"{__package__}.{module}"), name)
            self._loaded[kind] = cls
        return cls

    def __iter__(self) -> Iterator[str]:
        return iter(self._homes)

    def __len__(self) -> int:
        return len(self._homes)


PROVIDER_KINDS: Mapping[str, type[Provider]] = _Kinds(_HOMES)


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
    if normalized == "openai-compatible" and base_url is None:
        raise ConfigurationError("provider 'openai-compatible' needs base_url")
    if normalized == "mock":
        return cls(label=label, **options)
    return cls(api_key=api_key, base_url=base_url, label=label, **options)
