"""One provider of each kind pointed at a FakeLLMServer, for the wire tests."""

from __future__ import annotations

from typing import Any

from aio_llm.providers import Provider, create_provider
from aio_llm.providers.mock import MockProvider
from aio_llm.testing import FakeLLMServer

KEY = "sk-wire-test-0123456789abcdef"
OPENAI_WIRE = ("openai", "openai-compatible", "openrouter", "openai-responses")


def make_provider(kind: str, srv: FakeLLMServer, **options: Any) -> Provider:
    """A ``kind`` provider for ``srv``; ``options`` go to its constructor."""
    if kind == "mock":
        return MockProvider(**options)
    if kind in OPENAI_WIRE:
        return create_provider(kind, api_key=KEY, base_url=srv.openai_url, environ={}, **options)
    if kind == "anthropic":
        return create_provider(kind, api_key=KEY, base_url=srv.url, environ={}, **options)
    if kind == "gemini":
        return create_provider(kind, api_key=KEY, base_url=srv.url + "/v1beta", environ={})
    if kind == "azure-openai":
        return create_provider(
            kind, api_key=KEY, base_url=srv.url, api_version="2024-10-21", environ={}
        )
    if kind == "azure-openai-responses":
        return create_provider(kind, api_key=KEY, base_url=srv.url, environ={})
    env = {"AWS_ACCESS_KEY_ID": "AKIDWIRETEST", "AWS_SECRET_ACCESS_KEY": KEY}
    return create_provider("bedrock", base_url=srv.url, region="us-east-1", environ=env)
