"""The Anthropic Messages API codec (``POST {base_url}/v1/messages``), JSON and SSE.

aio_llm speaks one request shape (OpenAI-style messages); this module maps it
onto Anthropic's: system and developer messages become the top-level
``system``, tool calls and tool results become ``tool_use`` / ``tool_result``
blocks, and consecutive turns of one role are merged because the API wants
user and assistant turns to alternate. Blocks already in Anthropic's form
pass through unchanged, and ``request.extra`` is merged into the body last.

Answers map back to ``ChatResponse``: text blocks joined, ``thinking`` as
``reasoning``, client ``tool_use`` as tool calls; block types aio_llm does not
know (server tools, their results, future ones) are skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import _json
from .._redact import redact_text
from ..errors import (
    APIError,
    APIResponseError,
    ConfigurationError,
    InvalidRequestError,
    ServiceUnavailableError,
    StreamError,
    error_for_status,
)
from ..types import (
    ChatRequest,
    ChatResponse,
    ThinkingBlock,
    ToolCall,
    make_response,
    make_tool_call,
)
from ._anthropic_encode import encode_body, output_tool_name
from ._anthropic_stream import (
    FINISH,
    AnthropicStreamDecoder,
    refusal_text,
    str_field,
    usage_from_wire,
)
from ._error_text import describe_text_body
from .base import HTTPRequest, Provider, StreamDecoder

__all__ = ["AnthropicProvider"]


# The HTTP status Anthropic documents for each error type: an error that
# arrives inside a 200 stream is raised as the same class it would have had.
_STATUS_OF_TYPE: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "conflict_error": 409,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
# the anthropic SDK's names where they differ from the common ones
_CLASSES = {503: ServiceUnavailableError}


# the fields of a Messages body that /v1/messages/count_tokens takes
_COUNTED = frozenset(
    {
        "model",
        "messages",
        "system",
        "tools",
        "tool_choice",
        "thinking",
        "output_config",
        "mcp_servers",
        "context_management",
    }
)


class AnthropicProvider(Provider):
    """Anthropic's Messages API.

    ``base_url`` is the host, as in Anthropic's own SDK
    (``https://api.anthropic.com``); a URL that already ends in ``/v1`` is
    accepted too. ``create_provider("anthropic")`` fills ``api_key`` and
    ``base_url`` from ``ANTHROPIC_API_KEY`` / ``ANTHROPIC_BASE_URL``; without
    a key (and without an ``x-api-key``/``authorization`` header) requests are
    refused with ``ConfigurationError`` before anything is sent. ``max_tokens``
    is required by the API, so requests without one get ``default_max_tokens``.

    ``structured_outputs`` says how a ``response_format`` is asked for:
    ``"auto"`` (JSON outputs, ``output_config.format``, on Claude 4.5 and
    later; a forced tool call on older models and for ``json_object``),
    ``"native"`` or ``"tool"`` (always that way).
    """

    name = "anthropic"
    supported_parameters = frozenset(
        {"top_k", "parallel_tool_calls", "service_tier", "response_format"}
    )
    api_key_env = "ANTHROPIC_API_KEY"
    base_url_env = "ANTHROPIC_BASE_URL"
    default_base_url = "https://api.anthropic.com"

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        version: str = "2023-06-01",
        default_max_tokens: int = 4096,
        structured_outputs: str = "auto",
        label: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if structured_outputs not in ("auto", "native", "tool"):
            raise ValueError("structured_outputs must be 'auto', 'native' or 'tool'")
        if not isinstance(version, str) or not version:
            raise ValueError("version must be a non-empty string")
        if isinstance(default_max_tokens, bool) or not isinstance(default_max_tokens, int):
            raise ValueError("default_max_tokens must be an int")
        if default_max_tokens <= 0:
            raise ValueError("default_max_tokens must be > 0")
        super().__init__(api_key, base_url, label=label, headers=headers)
        self.version = version
        self.default_max_tokens = default_max_tokens
        self.structured_outputs = structured_outputs
        root = self.base_url[:-3] if self.base_url.endswith("/v1") else self.base_url
        self._url = f"{root}/v1/messages"
        self._count_url = f"{root}/v1/messages/count_tokens"
        self._auth_changed()

    def _auth_changed(self) -> None:
        static = {"anthropic-version": self.version, "content-type": "application/json"}
        if self.api_key:
            static["x-api-key"] = self.api_key
        static.update(self.extra_headers)
        self._headers = static
        lowered = {k.lower() for k in static}
        self._has_auth = "x-api-key" in lowered or "authorization" in lowered

    # -- encode ------------------------------------------------------------
    def encode_chat(self, request: ChatRequest) -> HTTPRequest:
        """The HTTP request for ``request``; ``InvalidRequestError`` if it cannot be mapped."""
        if not self._has_auth:
            raise ConfigurationError(
                f"no API key for {self.label}: pass api_key= or set ANTHROPIC_API_KEY"
            )
        body = encode_body(request, self.default_max_tokens, self.structured_outputs)
        try:
            content = _json.dumps(body)
        except TypeError as exc:  # an int beyond 64 bits, a lone surrogate...
            raise InvalidRequestError(
                f"the request for {self.label} cannot be sent as JSON: {exc}"
            ) from None
        return HTTPRequest("POST", self._url, dict(self._headers), content)

    def encode_count(self, request: ChatRequest) -> HTTPRequest:
        """``POST /v1/messages/count_tokens`` with the body's countable fields (free)."""
        http = self.encode_chat(request.model_copy(update={"stream": False}))
        body = _json.loads(http.content)
        counted = {k: v for k, v in body.items() if k in _COUNTED}
        return HTTPRequest("POST", self._count_url, http.headers, _json.dumps(counted))

    def decode_count(self, status: int, headers: Mapping[str, str], body: bytes) -> int:
        value = _json.loads(body)["input_tokens"]
        if not isinstance(value, int):
            raise TypeError("input_tokens is not an integer")
        return value

    # -- decode ------------------------------------------------------------
    def decode_chat(
        self, request: ChatRequest, status: int, headers: Mapping[str, str], body: bytes
    ) -> ChatResponse:
        """A ``ChatResponse`` from a Messages JSON body; ``APIResponseError`` if unreadable."""
        if status >= 400:
            raise self.decode_error(status, headers, body)
        try:
            data = _json.loads(body)
        except _json.JSONDecodeError:
            raise APIResponseError(
                f"{self.label} sent a body that is not JSON", provider=self.label, body=_clip(body)
            ) from None
        if not isinstance(data, dict):
            raise self._shape("the body is not a JSON object", data)
        if data.get("type") == "error":
            raise self._inband_error(data, headers)
        blocks = data.get("content")
        if not isinstance(blocks, list):
            raise self._shape("'content' is not a list", data)
        texts: list[str] = []
        thoughts: list[str] = []
        calls: list[ToolCall] = []
        kept: list[ThinkingBlock] = []
        answer_tool = (
            output_tool_name(request, self.structured_outputs)
            if request.response_format is not None
            else None
        )
        for block in blocks:
            if not isinstance(block, dict):
                raise self._shape("a content block is not an object", data)
            kind = block.get("type")
            if kind == "text":
                text = block.get("text")
                if not isinstance(text, str):
                    raise self._shape("a text block has no text", data)
                texts.append(text)
            elif kind == "tool_use":
                ident, name = block.get("id"), block.get("name")
                if not isinstance(ident, str) or not isinstance(name, str):
                    raise self._shape("a tool_use block lacks id or name", data)
                args = _json.dumps_text(block.get("input") or {})
                if name == answer_tool:
                    texts.append(args)  # the structured answer, asked for as a tool call
                else:
                    calls.append(make_tool_call(ident, name, args))
            elif kind == "thinking":
                thought = block.get("thinking")
                if isinstance(thought, str):
                    thoughts.append(thought)
                    sig = block.get("signature")
                    kept.append(
                        ThinkingBlock(
                            text=thought,
                            signature=sig if isinstance(sig, str) else None,
                            provider=self.name,
                        )
                    )
            elif kind == "redacted_thinking":
                data_ = block.get("data")
                if isinstance(data_, str):
                    kept.append(ThinkingBlock(redacted=data_, provider=self.name))
            # server tools and unknown block types: skipped
        usage = data.get("usage")
        if usage is not None and not isinstance(usage, dict):
            raise self._shape("'usage' is not an object", data)
        text = "".join(texts)
        stop = data.get("stop_reason")
        finish = FINISH.get(stop) if isinstance(stop, str) else None
        if finish == "tool_calls" and not calls:
            finish = "stop"  # only the answer tool was called
        return make_response(
            id=str_field(data.get("id")),
            model=str_field(data.get("model")) or request.model,
            provider=self.label,
            content=text,
            finish_reason=finish,
            usage=usage_from_wire(usage or {}),
            tool_calls=calls,
            thinking=kept,
            reasoning="".join(thoughts) or None,
            request_id=headers.get("request-id") or headers.get("x-request-id"),
            raw=data,
            refusal=refusal_text(text) if stop == "refusal" else None,
        )

    def decode_error(self, status: int, headers: Mapping[str, str], body: bytes) -> APIError:
        """The typed error for an error answer; never quotes the API key."""
        parsed: Any = None
        try:
            parsed = _json.loads(body)
        except _json.JSONDecodeError:
            parsed = None
        error_type: str | None = None
        body_request_id: str | None = None
        message = ""
        if isinstance(parsed, dict):
            err = parsed.get("error")
            if isinstance(err, dict):
                error_type = err.get("type") if isinstance(err.get("type"), str) else None
                message = str_field(err.get("message"))
            elif isinstance(err, str):
                message = err
            body_request_id = parsed.get("request_id") or None
            if not isinstance(body_request_id, str):
                body_request_id = None
        else:  # the whole text, as the anthropic SDK keeps it
            parsed = redact_text(body.decode("utf-8", errors="replace"), self.secrets)
        if not message:
            message = describe_text_body(status, headers, _clip(body))
        message = redact_text(message, self.secrets)
        exc = error_for_status(
            status,
            message,
            provider=self.label,
            headers=headers,
            error_type=error_type,
            code=error_type,
            body=parsed,
            raw=parsed.encode() if isinstance(parsed, str) else _redact_bytes(body, self.secrets),
            classes=_CLASSES,
        )
        if exc.request_id is None:
            exc.request_id = body_request_id
        self.scrub(exc)  # the body, the request id: anything may echo the key
        return exc

    def stream_decoder(self, request: ChatRequest) -> StreamDecoder:
        """A fresh decoder for one streamed answer to ``request``."""
        answer_tool = (
            output_tool_name(request, self.structured_outputs)
            if request.response_format is not None
            else None
        )
        return AnthropicStreamDecoder(
            self.label, lambda data: self._inband_error(data, None), request, answer_tool
        )

    # -- helpers -----------------------------------------------------------
    def _shape(self, what: str, data: Any) -> APIResponseError:
        return APIResponseError(
            f"unexpected answer from {self.label}: {what}", provider=self.label, body=data
        )

    def _inband_error(self, data: Mapping[str, Any], headers: Mapping[str, str] | None) -> APIError:
        """The typed error for an ``{"type": "error"}`` payload inside a 2xx answer."""
        err = data.get("error")
        err = err if isinstance(err, dict) else {}
        error_type = err.get("type") if isinstance(err.get("type"), str) else None
        message = redact_text(str_field(err.get("message")) or "error event", self.secrets)
        request_id = data.get("request_id") if isinstance(data.get("request_id"), str) else None
        status = _STATUS_OF_TYPE.get(error_type or "")
        exc: APIError
        if status is None:
            exc = StreamError(message, provider=self.label, code=error_type, body=dict(data))
        else:
            exc = error_for_status(
                status,
                message,
                provider=self.label,
                headers=headers,
                error_type=error_type,
                code=error_type,
                body=dict(data),
            )
        if exc.request_id is None:
            exc.request_id = request_id
        self.scrub(exc)
        return exc


def _redact_bytes(body: bytes, secrets: tuple[str, ...]) -> bytes:
    for secret in secrets:
        if secret.encode() in body:
            body = body.replace(secret.encode(), b"[REDACTED]")
    return body


def _clip(body: bytes, limit: int = 2000) -> str:
    return body[:limit].decode("utf-8", errors="replace")
