"""Azure OpenAI: chat completions (``azure-openai``) and Responses (``azure-openai-responses``).

The wire formats are OpenAI's; what differs is the URL and the key's header.
``base_url`` is the resource URL (``https://<resource>.openai.azure.com``)
and the model name is the deployment's:

- with an ``api_version``:
  ``{base_url}/openai/deployments/{model}/chat/completions?api-version=...``
  (Responses: ``{base_url}/openai/responses?api-version=...``);
- without one, the v1 API: ``{base_url}/openai/v1/chat/completions`` and
  ``{base_url}/openai/v1/responses``, the deployment named in the body.

The key goes in the ``api-key`` header; a Microsoft Entra ID token
(``azure_ad_token``) goes in ``Authorization: Bearer`` instead. Azure's
content-filter results stay in ``response.raw`` (``prompt_filter_results``
and each choice's ``content_filter_results``, or the Responses API's
``content_filters``); an answer the filter stopped has ``finish_reason ==
"content_filter"``, and a prompt it refused raises ``ContentFilterError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from ..errors import ConfigurationError
from ..types import ChatRequest, ChatResponse
from .base import HTTPRequest
from .openai import OpenAIProvider
from .openai_responses import OpenAIResponsesProvider

__all__ = ["AzureOpenAIProvider", "AzureOpenAIResponsesProvider"]


def _resource_root(base_url: str) -> str:
    """The resource URL, also when given with the SDK's ``/openai`` or ``/openai/v1`` suffix."""
    for suffix in ("/openai/v1", "/openai"):
        if base_url.endswith(suffix):
            return base_url[: -len(suffix)]
    return base_url


def _auth(api_key: str | None, azure_ad_token: str | None, label: str) -> dict[str, str]:
    if api_key:
        return {"api-key": api_key}
    if azure_ad_token:
        return {"Authorization": f"Bearer {azure_ad_token}"}
    raise ConfigurationError(
        f"no credentials for {label}: set AZURE_OPENAI_API_KEY (or AZURE_OPENAI_AD_TOKEN) "
        "or pass api_key="
    )


def _env_settings(env: Mapping[str, str]) -> dict[str, Any]:
    return {
        "api_version": env.get("OPENAI_API_VERSION") or None,
        "azure_ad_token": env.get("AZURE_OPENAI_AD_TOKEN") or None,
    }


class AzureOpenAIProvider(OpenAIProvider):
    """Azure OpenAI chat completions (``name = "azure-openai"``).

    ``create_provider("azure-openai")`` reads ``AZURE_OPENAI_API_KEY``,
    ``AZURE_OPENAI_ENDPOINT`` and ``OPENAI_API_VERSION`` (and
    ``AZURE_OPENAI_AD_TOKEN`` when there is no key).
    """

    name: ClassVar[str] = "azure-openai"
    genai_system: ClassVar[str | None] = "azure.ai.openai"
    api_key_env: ClassVar[str | None] = "AZURE_OPENAI_API_KEY"
    base_url_env: ClassVar[str | None] = "AZURE_OPENAI_ENDPOINT"
    default_base_url: ClassVar[str] = ""

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        api_version: str | None = None,
        azure_ad_token: str | None = None,
        label: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if not base_url:
            raise ConfigurationError(
                f"provider {label or self.name!r} needs the resource URL: set "
                "AZURE_OPENAI_ENDPOINT or pass base_url="
            )
        self.api_version = api_version or None
        self._ad_token = azure_ad_token or None
        super().__init__(
            api_key, _resource_root(base_url.rstrip("/")), label=label, headers=headers
        )
        if self.api_version is None:
            self._chat_url = f"{self.base_url}/openai/v1/chat/completions"

    @classmethod
    def settings_from_env(cls, env: Mapping[str, str]) -> dict[str, Any]:
        return _env_settings(env)

    @classmethod
    def has_credentials(cls, options: Mapping[str, Any]) -> bool:
        return bool(options.get("azure_ad_token"))

    def _auth_headers(self) -> dict[str, str]:
        return _auth(self.api_key, self._ad_token, self.label)

    def _collect_secrets(self) -> tuple[str, ...]:
        # the Entra ID token is a credential too: blanked from errors like the key
        base = super()._collect_secrets()
        return (*base, self._ad_token) if self._ad_token else base

    def _deployment_url(self, model: str, operation: str) -> str:
        deployment = quote(model, safe="")
        return (
            f"{self.base_url}/openai/deployments/{deployment}/{operation}"
            f"?api-version={quote(self.api_version or '', safe='')}"
        )

    def _max_tokens_field(self, model: str) -> str:
        # deployment names say nothing about the model: the current API takes
        # max_completion_tokens for every model, older api-versions max_tokens
        if self.api_version is None or self.api_version >= "2024-09-01":
            return "max_completion_tokens"
        return super()._max_tokens_field(model)

    def encode_chat(self, request: ChatRequest) -> HTTPRequest:
        http = super().encode_chat(request)
        if self.api_version is not None:
            http = HTTPRequest(
                http.method,
                self._deployment_url(request.model, "chat/completions"),
                http.headers,
                http.content,
            )
        return http

    def decode_chat(
        self, request: ChatRequest, status: int, headers: Mapping[str, str], body: bytes
    ) -> ChatResponse:
        response = super().decode_chat(request, status, headers, body)
        if response.request_id is None:  # Azure's API gateway names the request
            response.__dict__["request_id"] = headers.get("apim-request-id")
        return response

    def encode_embed(
        self,
        texts: list[str],
        model: str,
        dimensions: int | None = None,
        encoding_format: str = "float",
        **params: Any,
    ) -> HTTPRequest:
        http = super().encode_embed(texts, model, dimensions, encoding_format, **params)
        if self.api_version is None:
            url = f"{self.base_url}/openai/v1/embeddings"
        else:
            url = self._deployment_url(model, "embeddings")
        return HTTPRequest(http.method, url, http.headers, http.content)


class AzureOpenAIResponsesProvider(OpenAIResponsesProvider, AzureOpenAIProvider):
    """The Responses API on Azure OpenAI (``name = "azure-openai-responses"``).

    Same settings and variables as ``AzureOpenAIProvider``; without an
    ``api_version`` it uses the v1 API (``{base_url}/openai/v1/responses``).
    """

    name: ClassVar[str] = "azure-openai-responses"
    genai_system: ClassVar[str | None] = "azure.ai.openai"

    def encode_count(self, request: ChatRequest) -> HTTPRequest | None:
        return None  # Azure documents no input-token count: counted locally

    def _responses_url(self) -> str:
        if self.api_version is None:
            return f"{self.base_url}/openai/v1/responses"
        return f"{self.base_url}/openai/responses?api-version={quote(self.api_version, safe='')}"
