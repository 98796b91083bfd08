"""OpenAI chat completions and embeddings, and any OpenAI-compatible server.

``OpenAIProvider`` speaks ``POST {base_url}/chat/completions`` (JSON or SSE
with ``stream_options.include_usage``) and ``POST {base_url}/embeddings``;
``base_url`` ends in ``/v1`` like the official SDK's. ``OpenAICompatibleProvider``
is the same codec for vLLM, Ollama, LM Studio, proxies and
``aio_llm.testing.FakeLLMServer``: it needs a ``base_url`` and sends no
``Authorization`` header without a key.

The codec is pure: ``encode_chat`` builds bytes and headers (the static
headers are computed once per instance), ``decode_chat`` / the stream
decoder / ``decode_error`` turn bytes into aio_llm types and errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .. import _json
from .._redact import redact_text
from ..errors import APIError, APIResponseError, ConfigurationError, InvalidRequestError
from ..types import ChatRequest, ChatResponse, EmbeddingResponse
from ._choices import attach_choices
from ._openai_stream import OpenAIStreamDecoder
from ._openai_wire import (
    decode_embeddings,
    error_from_body,
    messages_to_wire,
    parse_chat,
    response_format_to_wire,
    tool_choice_to_wire,
    tools_to_wire,
)
from ._params import CHECKED_PARAMETERS, OPENAI_PARAMETERS, openai_parameters
from .base import HTTPRequest, Provider, StreamDecoder

__all__ = ["OpenAICompatibleProvider", "OpenAIProvider"]

_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")
"""Models that refuse ``max_tokens`` and take ``max_completion_tokens``."""


def _is_reasoning_model(model: str) -> bool:
    name = model.rpartition("/")[2].lower()
    return name.startswith(_REASONING_PREFIXES)


class OpenAIProvider(Provider):
    """The OpenAI chat-completions codec (``name = "openai"``).

    ``organization`` and ``project`` become the ``OpenAI-Organization`` /
    ``OpenAI-Project`` headers; ``headers`` are added to every request.
    The API key lives only in the ``Authorization`` header and never in a
    repr or an error message.
    """

    name: ClassVar[str] = "openai"
    supported_parameters: ClassVar[frozenset[str]] = OPENAI_PARAMETERS
    cache_markers: ClassVar[bool] = False
    """Whether the server reads Anthropic-style ``cache_control`` markers in messages."""
    api_key_env: ClassVar[str | None] = "OPENAI_API_KEY"
    base_url_env: ClassVar[str | None] = "OPENAI_BASE_URL"
    default_base_url: ClassVar[str] = "https://api.openai.com/v1"

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        organization: str | None = None,
        project: str | None = None,
        label: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(api_key, base_url, label=label, headers=headers)
        self.organization = organization
        self.project = project
        self._chat_url = self.base_url + "/chat/completions"
        self._embed_url = self.base_url + "/embeddings"
        self._auth_changed()

    def _auth_changed(self) -> None:
        static: dict[str, str] = {"Content-Type": "application/json"}
        static.update(self._auth_headers())
        if self.organization:
            static["OpenAI-Organization"] = self.organization
        if self.project:
            static["OpenAI-Project"] = self.project
        static.update(self._provider_headers())
        static.update(self.extra_headers)
        # shared by every request of this instance: transports copy, never mutate
        # (a rotated key gets new dicts; requests in flight keep the old ones)
        self._headers = static
        self._stream_headers = {**static, "Accept": "text/event-stream"}

    def _auth_headers(self) -> dict[str, str]:
        """The headers that carry the key (``Authorization: Bearer``)."""
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def _provider_headers(self) -> dict[str, str]:
        """Headers a subclass adds to every request (before the user's ``headers``)."""
        return {}

    def _max_tokens_field(self, model: str) -> str:
        return "max_completion_tokens" if _is_reasoning_model(model) else "max_tokens"

    def _extend_body(self, body: dict[str, Any], request: ChatRequest) -> None:
        """Provider-specific body fields, added before ``request.extra`` is merged."""

    # -- chat -------------------------------------------------------------
    def encode_chat(self, request: ChatRequest) -> HTTPRequest:
        body: dict[str, Any] = {
            "model": request.model,
            "messages": messages_to_wire(request.messages, self.cache_markers),
        }
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.max_tokens is not None:
            body[self._max_tokens_field(request.model)] = request.max_tokens
        if request.stop is not None:
            body["stop"] = request.stop
        if request.tools is not None:
            body["tools"] = tools_to_wire(request.tools)
        if request.tool_choice is not None:
            body["tool_choice"] = tool_choice_to_wire(request.tool_choice)
        if request.response_format is not None:
            body["response_format"] = response_format_to_wire(request.response_format)
        if request.seed is not None:
            body["seed"] = request.seed
        if request.user is not None:
            body["user"] = request.user
        if request.prompt_cache_key is not None:
            body["prompt_cache_key"] = request.prompt_cache_key
        if request.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        openai_parameters(body, request, self.label)
        self._extend_body(body, request)
        if request.extra:
            body.update(request.extra)
        return HTTPRequest(
            "POST",
            self._chat_url,
            self._stream_headers if request.stream else self._headers,
            self._dumps(body),
        )

    def _dumps(self, body: dict[str, Any]) -> bytes:
        try:
            return _json.dumps(body)
        except TypeError as exc:
            raise InvalidRequestError(
                f"the request for {self.label} cannot be sent as JSON: {exc}"
            ) from None

    def decode_chat(
        self, request: ChatRequest, status: int, headers: Mapping[str, str], body: bytes
    ) -> ChatResponse:
        try:
            data = _json.loads(body)
        except _json.JSONDecodeError:
            raise self._bad_body(status, headers, body, "malformed JSON") from None
        try:
            return self._parse(request, data, headers, status)
        except APIError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise self._bad_body(status, headers, body, f"unexpected shape ({exc!r})") from None

    def _parse(
        self, request: ChatRequest, data: object, headers: Mapping[str, str], status: int
    ) -> ChatResponse:
        """A ``ChatResponse`` from a parsed answer (a wrong shape raises ``KeyError``...).

        Every choice beyond the first, and logprobs, go to ``response.choices``.
        """
        response = parse_chat(data, provider=self.label, headers=headers, status=status)
        if not isinstance(data, dict):
            return response
        return attach_choices(
            response, data, parse_chat, provider=self.label, headers=headers, status=status
        )

    def _bad_body(
        self, status: int, headers: Mapping[str, str], body: bytes, why: str
    ) -> APIResponseError:
        snippet = redact_text(body[:200].decode("utf-8", errors="replace"), self.secrets)
        return APIResponseError(
            f"{self.label} sent a body aio_llm cannot read: {why}: {snippet!r}",
            provider=self.label,
            status_code=status,
            request_id=headers.get("x-request-id"),
        )

    def stream_decoder(self, request: ChatRequest) -> StreamDecoder:
        return OpenAIStreamDecoder(self.label)

    def decode_error(self, status: int, headers: Mapping[str, str], body: bytes) -> APIError:
        return error_from_body(status, headers, body, provider=self.label, secrets=self.secrets)

    # -- embeddings ---------------------------------------------------------
    def encode_embed(
        self,
        texts: list[str],
        model: str,
        dimensions: int | None = None,
        encoding_format: str = "float",
        **params: Any,
    ) -> HTTPRequest:
        """``POST {base_url}/embeddings``; extra keyword arguments go into the body."""
        body: dict[str, Any] = {"model": model, "input": texts, "encoding_format": encoding_format}
        if dimensions is not None:
            body["dimensions"] = dimensions
        if params:
            body.update(params)
        return HTTPRequest("POST", self._embed_url, self._headers, self._dumps(body))

    def decode_embed(
        self, model: str, status: int, headers: Mapping[str, str], body: bytes
    ) -> EmbeddingResponse:
        try:
            vectors, answered_model, usage = decode_embeddings(_json.loads(body))
        except _json.JSONDecodeError:
            raise self._bad_body(status, headers, body, "malformed JSON") from None
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise self._bad_body(status, headers, body, f"unexpected shape ({exc!r})") from None
        return EmbeddingResponse.model_construct(
            vectors=vectors, model=answered_model or model, usage=usage, provider=self.label
        )


class OpenAICompatibleProvider(OpenAIProvider):
    """Any server that speaks the OpenAI wire format (``name = "openai-compatible"``).

    ``base_url`` is required (e.g. ``http://localhost:8000/v1`` for vLLM,
    ``http://localhost:11434/v1`` for Ollama). No API key is read from the
    environment, so an OpenAI key is never sent to another host by accident.
    """

    name: ClassVar[str] = "openai-compatible"
    supported_parameters: ClassVar[frozenset[str]] = frozenset(CHECKED_PARAMETERS)
    """Everything: the server decides (vLLM and Ollama take ``top_k``, for one)."""
    cache_markers: ClassVar[bool] = True
    api_key_env: ClassVar[str | None] = None
    base_url_env: ClassVar[str | None] = None
    default_base_url: ClassVar[str] = ""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        organization: str | None = None,
        project: str | None = None,
        label: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if not base_url:
            raise ConfigurationError(
                f"provider {label or self.name!r} needs a base_url (the server's /v1 URL)"
            )
        super().__init__(
            api_key,
            base_url,
            organization=organization,
            project=project,
            label=label,
            headers=headers,
        )
