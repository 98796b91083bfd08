"""Google Gemini (the Gemini API, v1beta): ``generateContent`` and its SSE stream.

``POST {base_url}/models/{model}:generateContent``; streaming goes to
``:streamGenerateContent?alt=sse``. The API key travels only in the
``x-goog-api-key`` header, never in the URL, so it cannot leak through
proxies' and servers' access logs. The wire mapping is in ``_gemini_wire``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

from .. import _json
from ..errors import APIError, InvalidRequestError, StreamError
from ..streaming import ChunkAccumulator
from ..transports.sse import SSEEvent
from ..types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    FinishReason,
    ThinkingBlock,
    make_chunk,
    make_tool_delta,
)
from ._common import json_event
from ._gemini_wire import (
    decode_error,
    encode_body,
    finish_reason,
    parse_candidate_parts,
    parse_response,
    refusal_of,
    usage_from_wire,
)
from ._responses_decode import bad_body
from .base import HTTPRequest, Provider

__all__ = ["GeminiProvider", "GeminiStreamDecoder"]


class GeminiProvider(Provider):
    """Google's Gemini API (``name = "gemini"``).

    ``create_provider("gemini")`` reads ``GEMINI_API_KEY`` (or
    ``GOOGLE_API_KEY``) and ``GOOGLE_GEMINI_BASE_URL``. ``base_url`` is the
    versioned root (``https://generativelanguage.googleapis.com/v1beta``); a
    bare host gets ``/v1beta`` appended. A model may be named with or without
    its ``models/`` prefix (``tunedModels/...`` works too).
    """

    name: ClassVar[str] = "gemini"
    genai_system: ClassVar[str | None] = "gcp.gemini"
    api_key_env: ClassVar[str | None] = "GEMINI_API_KEY"
    base_url_env: ClassVar[str | None] = "GOOGLE_GEMINI_BASE_URL"
    default_base_url: ClassVar[str] = "https://generativelanguage.googleapis.com/v1beta"
    api_key_alt_envs: ClassVar[tuple[str, ...]] = ("GOOGLE_API_KEY",)
    # generationConfig's seed, topK, presencePenalty, frequencyPenalty; n (candidateCount)
    # and logprobs stay refused until the decoder reads every candidate and logprobsResult
    supported_parameters: ClassVar[frozenset[str]] = frozenset(
        {"seed", "top_k", "presence_penalty", "frequency_penalty", "response_format"}
    )

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        label: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(api_key, base_url, label=label, headers=headers)
        if urlsplit(self.base_url).path in ("", "/"):
            self.base_url += "/v1beta"
        self._auth_changed()

    def _auth_changed(self) -> None:
        # a rotated key (provider.api_key = new) gets new header dicts
        static = {"Content-Type": "application/json"}
        if self.api_key:
            static["x-goog-api-key"] = self.api_key
        static.update(self.extra_headers)
        self._headers = static
        self._stream_headers = {**static, "Accept": "text/event-stream"}

    def _url(self, model: str, stream: bool) -> str:
        path = model if "/" in model else f"models/{model}"
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return f"{self.base_url}/{quote(path, safe='/')}:{method}"

    def encode_chat(self, request: ChatRequest) -> HTTPRequest:
        if "?" in request.model or "#" in request.model or ":" in request.model:
            raise InvalidRequestError(f"{request.model!r} is not a Gemini model name")
        body = encode_body(request)
        try:
            content = _json.dumps(body)
        except TypeError as exc:
            raise InvalidRequestError(
                f"the request for {self.label} cannot be sent as JSON: {exc}"
            ) from None
        headers = self._stream_headers if request.stream else self._headers
        return HTTPRequest("POST", self._url(request.model, request.stream), headers, content)

    def encode_count(self, request: ChatRequest) -> HTTPRequest:
        """``POST {base_url}/models/{model}:countTokens`` around the whole request (free)."""
        http = self.encode_chat(request.model_copy(update={"stream": False}))
        body = _json.loads(http.content)
        path = request.model if "/" in request.model else f"models/{request.model}"
        body["model"] = path
        url = f"{self.base_url}/{quote(path, safe='/')}:countTokens"
        return HTTPRequest(
            "POST", url, self._headers, _json.dumps({"generateContentRequest": body})
        )

    def decode_count(self, status: int, headers: Mapping[str, str], body: bytes) -> int:
        value = _json.loads(body).get("totalTokens", 0)
        if not isinstance(value, int):
            raise TypeError("totalTokens is not an integer")
        return value

    def decode_chat(
        self, request: ChatRequest, status: int, headers: Mapping[str, str], body: bytes
    ) -> ChatResponse:
        try:
            data = _json.loads(body)
        except _json.JSONDecodeError:
            raise bad_body(self.label, status, body, "malformed JSON", self.api_key) from None
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            raise _inband(data["error"], self.label)
        try:
            return parse_response(data, self.label, headers, request.model)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            why = f"unexpected shape ({exc!r})"
            raise bad_body(self.label, status, body, why, self.api_key) from None

    def stream_decoder(self, request: ChatRequest) -> GeminiStreamDecoder:
        return GeminiStreamDecoder(self.label, request.model)

    def decode_error(self, status: int, headers: Mapping[str, str], body: bytes) -> APIError:
        return decode_error(status, headers, body, provider=self.label, secret=self.api_key)


def _inband(err: Mapping[str, Any], label: str) -> APIError:
    """An ``error`` object inside a 2xx answer or stream: its ``code`` is the status."""
    code = err.get("code")
    body = _json.dumps(dict(err))
    if isinstance(code, int) and 400 <= code <= 599:
        return decode_error(code, {}, b'{"error":' + body + b"}", provider=label, secret=None)
    message = str(err.get("message") or "error event")
    return StreamError(message, provider=label, body=dict(err))


class GeminiStreamDecoder:
    """``streamGenerateContent?alt=sse`` chunks to ``ChatChunk`` objects.

    Each event is a whole ``GenerateContentResponse``. Function calls arrive
    whole, one per part; thought parts are reasoning. Usage is the last
    chunk's (earlier chunks report a partial count). Gemini sends no end
    marker: a stream that ends after a chunk with a ``finishReason`` is
    ``complete``.
    """

    __slots__ = ("_calls", "_complete", "_label", "_raw", "_thought", "accumulator")

    def __init__(self, label: str, model: str) -> None:
        self._label = label
        self._calls = 0
        self._complete = False
        self._raw: Any = None
        self._thought: list[str] = []  # thought text not yet closed by a signature
        self.accumulator = ChunkAccumulator()
        self.accumulator.model = model

    @property
    def done(self) -> bool:
        return False  # no end marker: read until the body ends

    @property
    def complete(self) -> bool:
        return self._complete

    def feed(self, event: SSEEvent) -> list[ChatChunk]:
        obj = json_event(event.data, self._label)
        if obj is None:
            return []
        acc = self.accumulator
        if isinstance(obj.get("error"), dict):
            raise _inband(obj["error"], self._label)
        acc.id = str(obj.get("responseId") or acc.id)
        acc.model = str(obj.get("modelVersion") or acc.model)
        usage = None
        if isinstance(obj.get("usageMetadata"), dict):
            usage = usage_from_wire(obj["usageMetadata"])
            acc.usage = usage  # a stream cut later still reports what was counted
        self._raw = obj
        candidates = obj.get("candidates")
        candidate = candidates[0] if isinstance(candidates, list) and candidates else None
        reason: FinishReason | None = None
        parts: Any = None
        if isinstance(candidate, dict):
            content = candidate.get("content")
            parts = content.get("parts") if isinstance(content, dict) else None
            reason = finish_reason(candidate.get("finishReason"))
            if candidate.get("finishReason"):
                self._complete = True
        elif isinstance(obj.get("promptFeedback"), dict) and obj["promptFeedback"].get(
            "blockReason"
        ):
            reason = "content_filter"
            self._complete = True
        refusal = refusal_of(candidate, obj)
        if refusal is not None:
            acc.refusal = refusal
        chunks = self._parts(parts)
        if reason is not None or (self._complete and usage is not None):
            if self._calls and reason is not None:
                reason = "tool_calls"
            self._close_thought(None)
            chunks.append(make_chunk(finish_reason=reason, usage=usage))
        for chunk in chunks:
            acc.add(chunk)
        return chunks

    def _parts(self, parts: object) -> list[ChatChunk]:
        read = parse_candidate_parts(parts, self.accumulator.id, self._calls)
        chunks: list[ChatChunk] = []
        thinking = self.accumulator.thinking
        for block in read.thinking:
            if block.text:  # a thought part: thoughts split across chunks make one block
                self._thought.append(block.text)
                chunks.append(make_chunk(reasoning=block.text))
                if block.signature is not None:
                    self._close_thought(block.signature)
            else:  # a signature that came on an answer part
                self._close_thought(None)
                thinking.append(block)
        if read.text or read.calls:
            self._close_thought(None)
        if read.text:
            chunks.append(make_chunk(delta="".join(read.text)))
        for call in read.calls:
            index = self._calls
            self._calls += 1
            if call.signature is not None:
                self.accumulator.signatures[index] = call.signature
            delta = make_tool_delta(index, call.id, call.name, call.arguments)
            chunks.append(make_chunk(tool_calls=[delta]))
        return chunks

    def _close_thought(self, signature: str | None) -> None:
        if self._thought:
            text = "".join(self._thought)
            self._thought = []
            block = ThinkingBlock(text=text, signature=signature, provider="gemini")
            self.accumulator.thinking.append(block)

    def build_response(self) -> ChatResponse:
        acc = self.accumulator
        if not self._thought:
            return acc.build(provider=self._label, raw=self._raw)
        # thoughts still open (the stream is read on): in the response, not closed here
        kept = acc.thinking
        pending = ThinkingBlock(text="".join(self._thought), provider="gemini")
        acc.thinking = [*kept, pending]
        try:
            return acc.build(provider=self._label, raw=self._raw)
        finally:
            acc.thinking = kept

    def __repr__(self) -> str:
        state = "complete" if self._complete else "open"
        return f"<GeminiStreamDecoder {self._label} {state}>"
