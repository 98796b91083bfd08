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
from ..errors import (
    APIError,
    APIResponseError,
    ConfigurationError,
    InvalidRequestError,
    StreamError,
    error_for_status,
)
from ..streaming import ChunkAccumulator
from ..transports.sse import SSEEvent
from ..types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    FinishReason,
    Message,
    ToolCall,
    ToolCallDelta,
    Usage,
    fast_construct,
)
from .base import HTTPRequest, Provider, StreamDecoder, redact

__all__ = ["AnthropicProvider"]

_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

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


class AnthropicProvider(Provider):
    """Anthropic's Messages API.

    ``base_url`` is the host, as in Anthropic's own SDK
    (``https://api.anthropic.com``); a URL that already ends in ``/v1`` is
    accepted too. ``create_provider("anthropic")`` fills ``api_key`` and
    ``base_url`` from ``ANTHROPIC_API_KEY`` / ``ANTHROPIC_BASE_URL``; without
    a key (and without an ``x-api-key``/``authorization`` header) requests are
    refused with ``ConfigurationError`` before anything is sent. ``max_tokens``
    is required by the API, so requests without one get ``default_max_tokens``.
    """

    name = "anthropic"
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
        label: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if not isinstance(version, str) or not version:
            raise ValueError("version must be a non-empty string")
        if isinstance(default_max_tokens, bool) or not isinstance(default_max_tokens, int):
            raise ValueError("default_max_tokens must be an int")
        if default_max_tokens <= 0:
            raise ValueError("default_max_tokens must be > 0")
        super().__init__(api_key, base_url, label=label, headers=headers)
        self.version = version
        self.default_max_tokens = default_max_tokens
        root = self.base_url[:-3] if self.base_url.endswith("/v1") else self.base_url
        self._url = f"{root}/v1/messages"
        static = {"anthropic-version": version, "content-type": "application/json"}
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
        body = _encode_body(request, self.default_max_tokens)
        try:
            content = _json.dumps(body)
        except TypeError as exc:  # an int beyond 64 bits, a lone surrogate...
            raise InvalidRequestError(
                f"the request for {self.label} cannot be sent as JSON: {exc}"
            ) from None
        return HTTPRequest("POST", self._url, dict(self._headers), content)

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
                calls.append(fast_construct(ToolCall, id=ident, name=name, arguments=args))
            elif kind == "thinking":
                thought = block.get("thinking")
                if isinstance(thought, str):
                    thoughts.append(thought)
            # redacted_thinking, server tools and unknown block types: skipped
        usage = data.get("usage")
        if usage is not None and not isinstance(usage, dict):
            raise self._shape("'usage' is not an object", data)
        text = "".join(texts)
        stop = data.get("stop_reason")
        message = fast_construct(
            Message,
            role="assistant",
            content=text,
            name=None,
            tool_calls=calls or None,
            tool_call_id=None,
        )
        return fast_construct(
            ChatResponse,
            id=_str(data.get("id")),
            model=_str(data.get("model")) or request.model,
            provider=self.label,
            content=text,
            message=message,
            finish_reason=_FINISH.get(stop) if isinstance(stop, str) else None,
            tool_calls=calls,
            usage=_usage(usage or {}),
            cost=None,
            cached=False,
            latency_ms=0.0,
            reasoning="".join(thoughts) or None,
            request_id=headers.get("request-id") or headers.get("x-request-id"),
            raw=data,
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
                message = _str(err.get("message"))
            elif isinstance(err, str):
                message = err
            body_request_id = parsed.get("request_id") or None
            if not isinstance(body_request_id, str):
                body_request_id = None
        else:
            parsed = _clip(body)
        if not message:
            message = _clip(body, 500).strip() or f"{self.label} answered HTTP {status}"
        message = redact(message, self.api_key)
        exc = error_for_status(
            status,
            message,
            provider=self.label,
            headers=headers,
            error_type=error_type,
            code=error_type,
            body=parsed,
        )
        if exc.request_id is None:
            exc.request_id = body_request_id
        return exc

    def stream_decoder(self, request: ChatRequest) -> StreamDecoder:
        """A fresh decoder for one streamed answer to ``request``."""
        return _AnthropicStreamDecoder(self, request)

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
        message = redact(_str(err.get("message")) or "error event", self.api_key)
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
        return exc


# Per-block kinds the stream decoder tracks.
_TEXT, _THINKING, _TOOL, _SKIP = 0, 1, 2, 3


class _AnthropicStreamDecoder:
    """Turns Anthropic's SSE events into chunks (see ``providers.base.StreamDecoder``).

    Tool-call deltas are numbered by tool-call ordinal, not by content-block
    index, so the first ``tool_use`` is index 0 even after text or server-tool
    blocks. Usage from ``message_start`` is merged with the cumulative counts
    of ``message_delta``.
    """

    __slots__ = ("_blocks", "_done", "_provider", "_tools", "_usage", "accumulator")

    def __init__(self, provider: AnthropicProvider, request: ChatRequest) -> None:
        self._provider = provider
        self.accumulator = ChunkAccumulator()
        self.accumulator.model = request.model
        # block index -> [kind, tool ordinal, saw-arguments, start input]
        self._blocks: dict[int, list[Any]] = {}
        self._tools = 0
        self._usage: dict[str, Any] = {}
        self._done = False

    @property
    def done(self) -> bool:
        return self._done

    def feed(self, event: SSEEvent) -> list[ChatChunk]:
        if event.event == "ping":
            return []
        try:
            data = _json.loads(event.data)
        except _json.JSONDecodeError:
            raise self._broken("an event that is not JSON") from None
        if not isinstance(data, dict):
            raise self._broken("an event that is not a JSON object")
        kind = data.get("type", event.event)
        if kind == "content_block_delta":
            chunk = self._delta(data)
            if chunk is None:
                return []
            self.accumulator.add(chunk)
            return [chunk]
        chunks: list[ChatChunk]
        if kind == "content_block_start":
            chunks = self._start(data)
        elif kind == "content_block_stop":
            chunks = self._stop(data)
        elif kind == "message_start":
            self._message_start(data)
            return []
        elif kind == "message_delta":
            chunks = [self._message_delta(data)]
        elif kind == "message_stop":
            self._done = True
            return []
        elif kind == "error":
            raise self._provider._inband_error(data, None)
        else:  # ping and event types aio_llm does not know
            return []
        for chunk in chunks:
            self.accumulator.add(chunk)
        return chunks

    def build_response(self) -> ChatResponse:
        return self.accumulator.build(provider=self._provider.label)

    # -- events ------------------------------------------------------------
    def _message_start(self, data: dict[str, Any]) -> None:
        message = data.get("message")
        if not isinstance(message, dict):
            raise self._broken("message_start without a message")
        acc = self.accumulator
        acc.id = _str(message.get("id"))
        acc.model = _str(message.get("model")) or acc.model
        usage = message.get("usage")
        if isinstance(usage, dict):
            self._usage = usage
            # a stream that breaks off later still reports the prompt it paid for
            acc.usage = _usage(usage)

    def _message_delta(self, data: dict[str, Any]) -> ChatChunk:
        delta = data.get("delta")
        stop = delta.get("stop_reason") if isinstance(delta, dict) else None
        usage = data.get("usage")
        if isinstance(usage, dict):
            merged = dict(self._usage)
            merged.update((k, v) for k, v in usage.items() if v is not None)
            self._usage = merged
        return _chunk(
            finish_reason=_FINISH.get(stop) if isinstance(stop, str) else None,
            usage=_usage(self._usage),
        )

    def _start(self, data: dict[str, Any]) -> list[ChatChunk]:
        index, block = data.get("index"), data.get("content_block")
        if not isinstance(index, int) or not isinstance(block, dict):
            raise self._broken("content_block_start without index or block")
        kind = block.get("type")
        if kind == "text":
            self._blocks[index] = [_TEXT, -1, False, None]
            text = block.get("text")
            return [_chunk(delta=text)] if isinstance(text, str) and text else []
        if kind == "thinking":
            self._blocks[index] = [_THINKING, -1, False, None]
            thought = block.get("thinking")
            return [_chunk(reasoning=thought)] if isinstance(thought, str) and thought else []
        if kind == "tool_use":
            ident, name = block.get("id"), block.get("name")
            if not isinstance(ident, str) or not isinstance(name, str):
                raise self._broken("a tool_use block lacks id or name")
            ordinal = self._tools
            self._tools += 1
            self._blocks[index] = [_TOOL, ordinal, False, block.get("input")]
            tc = fast_construct(ToolCallDelta, index=ordinal, id=ident, name=name, arguments="")
            return [_chunk(tool_calls=[tc])]
        # redacted_thinking, server_tool_use and its results, unknown types
        self._blocks[index] = [_SKIP, -1, False, None]
        return []

    def _delta(self, data: dict[str, Any]) -> ChatChunk | None:
        delta = data.get("delta")
        if not isinstance(delta, dict):
            raise self._broken("content_block_delta without a delta")
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            return _chunk(delta=text) if isinstance(text, str) and text else None
        if kind == "thinking_delta":
            thought = delta.get("thinking")
            return _chunk(reasoning=thought) if isinstance(thought, str) and thought else None
        if kind == "input_json_delta":
            state = self._block(data)
            part = delta.get("partial_json")
            if state is None or state[0] != _TOOL or not isinstance(part, str) or not part:
                return None
            state[2] = True
            tc = fast_construct(ToolCallDelta, index=state[1], id=None, name=None, arguments=part)
            return _chunk(tool_calls=[tc])
        return None  # signature_delta, citations_delta, unknown deltas

    def _stop(self, data: dict[str, Any]) -> list[ChatChunk]:
        state = self._block(data)
        if state is None or state[0] != _TOOL or state[2]:
            return []
        # a tool call streamed without argument fragments: its input came whole
        args = _json.dumps_text(state[3] if isinstance(state[3], dict) else {})
        state[2] = True
        tc = fast_construct(ToolCallDelta, index=state[1], id=None, name=None, arguments=args)
        return [_chunk(tool_calls=[tc])]

    def _block(self, data: dict[str, Any]) -> list[Any] | None:
        index = data.get("index")
        return self._blocks.get(index) if isinstance(index, int) else None

    def _broken(self, what: str) -> StreamError:
        return StreamError(
            f"unexpected stream from {self._provider.label}: {what}",
            provider=self._provider.label,
        )


def _chunk(
    *,
    delta: str = "",
    reasoning: str = "",
    tool_calls: list[ToolCallDelta] | None = None,
    finish_reason: FinishReason | None = None,
    usage: Usage | None = None,
) -> ChatChunk:
    return fast_construct(
        ChatChunk,
        delta=delta,
        tool_calls=tool_calls if tool_calls is not None else [],
        finish_reason=finish_reason,
        usage=usage,
        reasoning=reasoning,
    )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _usage(raw: Mapping[str, Any]) -> Usage:
    """aio_llm's ``Usage``: ``input_tokens`` counts cached and cache-written tokens too."""
    read = _int(raw.get("cache_read_input_tokens"))
    created = _int(raw.get("cache_creation_input_tokens"))
    prompt = _int(raw.get("input_tokens")) + read + created
    output = _int(raw.get("output_tokens"))
    details = raw.get("output_tokens_details")
    thinking = _int(details.get("thinking_tokens")) if isinstance(details, dict) else 0
    return fast_construct(
        Usage,
        input_tokens=prompt,
        output_tokens=output,
        total_tokens=prompt + output,
        cached_input_tokens=read,
        cache_creation_input_tokens=created,
        reasoning_tokens=thinking,
        provider_cost=None,
    )


def _clip(body: bytes, limit: int = 2000) -> str:
    return body[:limit].decode("utf-8", errors="replace")


# -- request mapping --------------------------------------------------------------

_TOOL_CHOICE: dict[str, dict[str, str]] = {
    "auto": {"type": "auto"},
    "required": {"type": "any"},
    "any": {"type": "any"},
    "none": {"type": "none"},
}


def _encode_body(request: ChatRequest, default_max_tokens: int) -> dict[str, Any]:
    """The Messages request body for ``request`` (``extra`` merged last, unchanged)."""
    system: list[str | list[dict[str, Any]]] = []
    turns: list[dict[str, Any]] = []
    for m in request.messages:
        role = m.role
        if role == "system" or role == "developer":
            if m.content:
                system.append(m.content)
            continue
        content: str | list[dict[str, Any]]
        if role == "tool":
            if not m.tool_call_id:
                raise InvalidRequestError("a tool message needs tool_call_id")
            result: dict[str, Any] = {"type": "tool_result", "tool_use_id": m.tool_call_id}
            if m.content is not None:
                result["content"] = m.content if isinstance(m.content, str) else _blocks(m.content)
            role, content = "user", [result]
        elif isinstance(m.content, list):
            content = _blocks(m.content)
        else:
            content = m.content or ""
        if m.tool_calls:
            content = _as_blocks(content) + [_tool_use(tc) for tc in m.tool_calls]
        if turns and turns[-1]["role"] == role:
            last = turns[-1]
            last["content"] = _as_blocks(last["content"]) + _as_blocks(content)
        else:
            turns.append({"role": role, "content": content})
    if not turns:
        raise InvalidRequestError("Anthropic needs at least one user or assistant message")
    body: dict[str, Any] = {
        "model": request.model,
        "messages": turns,
        "max_tokens": request.max_tokens or default_max_tokens,
    }
    if system:
        body["system"] = _system(system)
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop is not None:
        body["stop_sequences"] = [request.stop] if isinstance(request.stop, str) else request.stop
    if request.tools:
        body["tools"] = [_tool(t) for t in request.tools]
    if request.tool_choice is not None:
        body["tool_choice"] = _tool_choice(request.tool_choice)
    if request.user is not None:
        body["metadata"] = {"user_id": request.user}
    if request.stream:
        body["stream"] = True
    if request.extra:
        body.update(request.extra)
    return body


def _system(parts: list[str | list[dict[str, Any]]]) -> str | list[dict[str, Any]]:
    """Plain strings joined by a blank line; any block list keeps the whole as blocks."""
    if all(isinstance(p, str) for p in parts):
        return "\n\n".join(p for p in parts if isinstance(p, str))
    blocks: list[dict[str, Any]] = []
    for p in parts:
        blocks.extend([{"type": "text", "text": p}] if isinstance(p, str) else p)
    return blocks


def _as_blocks(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return list(content)


def _blocks(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Content parts in Anthropic's form: OpenAI ``image_url`` parts become image blocks."""
    return [_image(p) if p.get("type") == "image_url" else p for p in parts]


def _image(part: dict[str, Any]) -> dict[str, Any]:
    ref = part.get("image_url")
    url = ref.get("url") if isinstance(ref, dict) else ref
    if not isinstance(url, str) or not url:
        raise InvalidRequestError("an image_url part needs a url")
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if not sep or encoding != "base64" or not media_type:
            raise InvalidRequestError("an image data URL must be data:<media type>;base64,...")
        source = {"type": "base64", "media_type": media_type, "data": data}
    else:
        source = {"type": "url", "url": url}
    return {"type": "image", "source": source}


def _tool_use(tc: ToolCall) -> dict[str, Any]:
    try:
        args = _json.loads(tc.arguments) if tc.arguments.strip() else {}
    except _json.JSONDecodeError:
        raise InvalidRequestError(
            f"the arguments of tool call {tc.id!r} ({tc.name}) are not valid JSON"
        ) from None
    if not isinstance(args, dict):
        raise InvalidRequestError(
            f"the arguments of tool call {tc.id!r} ({tc.name}) must be a JSON object"
        )
    return {"type": "tool_use", "id": tc.id, "name": tc.name, "input": args}


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI-style function tool in Anthropic's form; native tools pass through."""
    fn = tool.get("function")
    if tool.get("type") != "function" or not isinstance(fn, dict):
        return tool
    name = fn.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequestError("a function tool needs a name")
    out: dict[str, Any] = {"name": name}
    if fn.get("description") is not None:
        out["description"] = fn["description"]
    out["input_schema"] = fn.get("parameters") or {"type": "object", "properties": {}}
    return out


def _tool_choice(choice: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(choice, str):
        mapped = _TOOL_CHOICE.get(choice)
        if mapped is None:
            raise InvalidRequestError(f"unknown tool_choice {choice!r}")
        return dict(mapped)
    fn = choice.get("function")
    if choice.get("type") == "function" and isinstance(fn, dict):
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequestError("tool_choice names no function")
        return {"type": "tool", "name": name}
    return choice
