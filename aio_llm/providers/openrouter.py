"""OpenRouter: the OpenAI wire format plus attribution headers and usage accounting.

OpenRouter routes one chat-completions API to many upstream providers. It
adds ``HTTP-Referer`` / ``X-Title`` attribution headers, reports the
request's cost in ``usage.cost`` (mapped to ``Usage.provider_cost``), the
prompt-cache writes in ``prompt_tokens_details.cache_write_tokens``, the
model's ``reasoning`` text, numeric error codes with ``error.metadata``
(upstream provider name and raw message), and may send an ``error`` object
inside a 200 stream: all handled by the shared OpenAI codec.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ..types import ChatRequest
from ._params import OPENAI_PARAMETERS
from .openai import OpenAIProvider

__all__ = ["OpenRouterProvider"]


class OpenRouterProvider(OpenAIProvider):
    """The OpenRouter codec (``name = "openrouter"``).

    ``app_url`` and ``app_name`` become OpenRouter's ``HTTP-Referer`` and
    ``X-Title`` headers (app attribution on openrouter.ai). Every request asks
    for usage accounting (``"usage": {"include": true}``) unless
    ``request.extra`` sets ``usage`` itself.
    """

    name: ClassVar[str] = "openrouter"
    supported_parameters: ClassVar[frozenset[str]] = OPENAI_PARAMETERS - {"n", "service_tier"} | {
        "top_k"
    }
    """OpenRouter's documented parameters: ``top_k`` yes; ``n`` and ``service_tier`` no."""
    cache_markers: ClassVar[bool] = True
    api_key_env: ClassVar[str | None] = "OPENROUTER_API_KEY"
    base_url_env: ClassVar[str | None] = "OPENROUTER_BASE_URL"
    default_base_url: ClassVar[str] = "https://openrouter.ai/api/v1"

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        app_url: str | None = None,
        app_name: str | None = None,
        label: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.app_url = app_url
        self.app_name = app_name
        super().__init__(api_key, base_url, label=label, headers=headers)

    def _provider_headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.app_url:
            out["HTTP-Referer"] = self.app_url
        if self.app_name:
            out["X-Title"] = self.app_name
        return out

    def _max_tokens_field(self, model: str) -> str:
        # OpenRouter takes max_tokens for every model and translates it upstream
        return "max_tokens"

    def _extend_body(self, body: dict[str, Any], request: ChatRequest) -> None:
        body["usage"] = {"include": True}
