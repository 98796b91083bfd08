"""The data that flows through aio_llm: requests, responses, chunks, usage, streams.

All models are pydantic v2. User input (``ChatRequest``, ``Message``) is
validated; objects that aio_llm builds itself from a provider's answer are
constructed without re-validation on the hot path (``fast_construct``).

A ``ChunkStream`` is what a streaming ``ChatResponse`` carries while it is
read. It yields ``ChatChunk`` objects, rebuilds the final ``ChatResponse``
as it goes (``stream.response`` once it ended) and tells the middleware how
it ended through ``on_close`` callbacks (see ``aio_llm.pipeline``).
"""

from __future__ import annotations

import inspect
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Annotated, Any, Literal, Protocol, TypeVar

import anyio
from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

__all__ = [
    "ChatChunk",
    "ChatRequest",
    "ChatResponse",
    "Choice",
    "ChunkSource",
    "ChunkStream",
    "CloseCallback",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "FinishReason",
    "Message",
    "MessageInput",
    "Role",
    "ThinkingBlock",
    "TokenLogprob",
    "ToolCall",
    "ToolCallDelta",
    "TopLogprob",
    "Usage",
]

Role = Literal["system", "developer", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


def _seconds(value: Any) -> Any:
    """A number of seconds as given: a string or a bool is refused, not converted."""
    if isinstance(value, str | bool):
        raise ValueError(f"must be a number of seconds, not {type(value).__name__} {value!r}")
    return value


def _token_bias(value: Any) -> Any:
    """``logit_bias`` keys as token id strings (the SDKs take ints too); values -100..100."""
    if not isinstance(value, Mapping):
        return value
    out = {}
    for key, bias in value.items():
        token = str(key).strip()
        if isinstance(key, bool) or not token.isdigit():
            raise ValueError(f"logit_bias keys are token ids, not {key!r}")
        if isinstance(bias, int | float) and not -100 <= bias <= 100:
            raise ValueError(f"logit_bias values go from -100 to 100, not {bias!r}")
        out[token] = bias
    return out


# Every model here says ``defer_build=True``: pydantic builds its validator and
# serializer on first use instead of at import (~15 ms of ``import aio_llm``).


class ToolCall(BaseModel):
    """A complete function call the model asked for; ``arguments`` is JSON text.

    Also accepts OpenAI's nested shape, ``{"id", "type": "function",
    "function": {"name", "arguments"}}`` (``arguments`` may be an object),
    as users copy it from the SDK. ``signature`` is an opaque token the
    provider needs back with this call in the next turn (Gemini's
    ``thoughtSignature``; OpenAI-compatible Gemini sends it as
    ``extra_content.google.thought_signature``, which is read too).
    """

    model_config = ConfigDict(defer_build=True, frozen=True)

    id: str
    name: str
    arguments: str = ""
    signature: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _flatten_openai_shape(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and ("function" in data or "extra_content" in data):
            return flat_tool_call(data)
        if isinstance(data, Mapping) and not isinstance(data.get("arguments", ""), str):
            return {**data, "arguments": _json_text(data["arguments"])}
        return data


class ToolCallDelta(BaseModel):
    """A fragment of a tool call as it arrives in a stream."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class ThinkingBlock(BaseModel):
    """Reasoning an assistant turn carried, kept so that the next turn can send it back.

    Providers that reason visibly want their reasoning returned unchanged in
    the history of the next request (Anthropic and Bedrock thinking with its
    ``signature``, redacted reasoning, OpenAI Responses reasoning items with
    their encrypted content, Gemini thought parts and signatures). A block
    goes back only to the kind of provider that produced it (``provider``);
    a block without ``provider`` (Anthropic-format input) goes to Anthropic
    and Bedrock.
    """

    model_config = ConfigDict(defer_build=True, frozen=True)

    text: str = ""
    signature: str | None = None
    """The opaque token that vouches for ``text`` (Responses: the encrypted content)."""
    redacted: str | None = None
    """Reasoning the provider sent encrypted instead of as text."""
    id: str | None = None
    """The provider's id of the reasoning item (Responses ``rs_...``)."""
    provider: str | None = None
    """The kind of provider that produced it ("anthropic", "bedrock", "gemini", ...)."""


class Message(BaseModel):
    """One chat message. Every API that takes messages also takes plain dicts.

    Messages in OpenAI's chat format and in Anthropic's content-block format
    are accepted as they are and translated for each provider (a request also
    takes messages dumped from the OpenAI SDK, with their empty ``refusal``,
    ``annotations``, ``audio`` and ``function_call``): ``content``
    may hold Anthropic ``tool_use`` / ``tool_result`` / ``thinking`` /
    ``image`` / ``document`` blocks as well as OpenAI parts. ``thinking``
    carries an assistant turn's reasoning for the next request (see
    ``ThinkingBlock``).

    ``cache_control`` (e.g. ``{"type": "ephemeral", "ttl": "1h"}``) marks
    "cache the prompt up to here": it applies to the message's last content
    block, as Anthropic's wire wants, and becomes a Bedrock ``cachePoint``;
    OpenAI-wire servers that read the marker (OpenRouter, proxies) get it on
    that block, OpenAI and Azure (which cache on their own) never see it.
    """

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    role: Role
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    thinking: list[ThinkingBlock] | None = None
    cache_control: dict[str, Any] | None = None

    @field_validator("content")
    @classmethod
    def _content_parts_are_typed(
        cls, value: str | list[dict[str, Any]] | None
    ) -> str | list[dict[str, Any]] | None:
        if isinstance(value, list):
            for part in value:
                if not isinstance(part.get("type"), str):
                    raise ValueError("every content part needs a string 'type'")
        return value

    @property
    def text(self) -> str:
        """The message's text: the string content, or its text parts joined."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")


MessageInput = Message | Mapping[str, Any]

_MESSAGE_KEYS = frozenset(Message.model_fields)


def _json_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    from ._json import dumps_text

    return dumps_text(value)


def flat_tool_call(data: Mapping[str, Any]) -> dict[str, Any]:
    """OpenAI's nested tool call ``{"id", "type", "function": {...}}`` as ``ToolCall`` fields."""
    out = {k: v for k, v in data.items() if k not in ("function", "type", "extra_content")}
    kind = data.get("type", "function")
    if kind != "function":
        raise ValueError(f"tool call type {kind!r} is not supported (only 'function')")
    fn = data.get("function")
    if fn is not None:
        if not isinstance(fn, Mapping):
            raise ValueError("'function' must be an object with 'name' and 'arguments'")
        if "name" in fn:
            out.setdefault("name", fn["name"])
        if "arguments" in fn:
            out.setdefault("arguments", fn["arguments"])
    if not isinstance(out.get("arguments", ""), str):
        out["arguments"] = _json_text(out["arguments"])
    extra = data.get("extra_content")
    google = extra.get("google") if isinstance(extra, Mapping) else None
    if isinstance(google, Mapping) and isinstance(google.get("thought_signature"), str):
        out.setdefault("signature", google["thought_signature"])
    return out


_SDK_EMPTY_FIELDS = ("refusal", "audio", "function_call", "annotations")


def sdk_message(data: Mapping[str, Any]) -> dict[str, Any]:
    """A message dict from an SDK (``model_dump()`` of an OpenAI message) in aio_llm's fields.

    Empty ``refusal``/``audio``/``function_call``/``annotations`` are dropped; a
    refusal without content becomes the content. Anything else that is not a
    field is left for validation to refuse.
    """
    out = dict(data)
    for key in _SDK_EMPTY_FIELDS:
        if key in out and not out[key]:
            del out[key]
    refusal = out.pop("refusal", None)
    if isinstance(refusal, str) and not out.get("content"):
        out["content"] = refusal
    return out


class ChatRequest(BaseModel):
    """Everything needed to ask a model for one chat completion.

    ``timeout`` is the total deadline in seconds over the whole middleware
    chain, retries and backoff included (``None``: the client's default).
    ``extra`` is merged into the provider's request body unchanged.
    ``cache`` and ``cache_ttl`` switch the exact/semantic cache off or change
    its TTL for this request alone; they never change the cache key.

    ``response_format`` is a pydantic model class (the answer comes back
    validated in ``ChatResponse.parsed``), a JSON schema
    (``{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}``,
    or the Responses API's flat form) or ``{"type": "json_object"}``; see
    docs/structured-outputs.md. ``max_validation_retries`` re-asks that many
    times when the answer does not validate (``None``: the client's
    setting). ``prompt_cache_key`` is OpenAI's prompt-cache routing hint,
    sent where the API takes it and dropped elsewhere.
    """

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    max_tokens: int | None = Field(
        default=None, gt=0, validation_alias=AliasChoices("max_tokens", "max_completion_tokens")
    )
    stop: str | list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | type[BaseModel] | None = None
    seed: int | None = None
    n: int | None = Field(default=None, ge=1, le=128)
    """How many answers to generate (OpenAI-style providers); see ``ChatResponse.choices``."""
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    logit_bias: Annotated[dict[str, float], BeforeValidator(_token_bias)] | None = None
    """Token id -> bias from -100 to 100."""
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    parallel_tool_calls: bool | None = None
    service_tier: str | None = None
    """OpenAI's ``auto``/``default``/``flex``/``scale``/``priority`` or Anthropic's
    ``auto``/``standard_only`` (``default`` and ``standard_only`` map onto each other)."""
    top_k: int | None = Field(default=None, ge=1)
    extra_headers: dict[str, str] = Field(default_factory=dict)
    """HTTP headers added to this request (they win over the provider's)."""
    extra_query: dict[str, str] = Field(default_factory=dict)
    """Query parameters added to this request's URL."""
    dedup: bool | None = None
    """Share an identical request's call in flight: None, only when the answer is meant to
    be the same (no sampling); True, even when sampling; False, never."""
    stream: bool = False
    user: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    extra: dict[str, Any] = Field(
        default_factory=dict, validation_alias=AliasChoices("extra", "extra_body")
    )
    timeout: Annotated[float | None, BeforeValidator(_seconds)] = Field(default=None, gt=0)
    provider: str | None = None
    cache: bool = True
    cache_ttl: float | None = Field(default=None, gt=0)
    max_validation_retries: int | None = Field(default=None, ge=0, le=100)
    prompt_cache_key: str | None = None

    @field_serializer("response_format", when_used="json")
    def _format_as_json(self, value: dict[str, Any] | type[BaseModel] | None) -> Any:
        """A class is written as the JSON schema it stands for (the class stays in Python)."""
        if isinstance(value, type):
            from ._schema import strict_schema

            schema = strict_schema(value.model_json_schema())
            spec = {"name": value.__name__, "schema": schema, "strict": True}
            return {"type": "json_schema", "json_schema": spec}
        return value

    @field_validator("messages", mode="before")
    @classmethod
    def _messages_from_sdks(cls, value: Any) -> Any:
        # a message dumped from an OpenAI SDK object carries more keys, mostly empty;
        # checked once per request rather than by a validator on every Message
        if isinstance(value, list):
            keys = _MESSAGE_KEYS
            for m in value:
                if type(m) is dict and not keys.issuperset(m):
                    return [sdk_message(x) if type(x) is dict else x for x in value]
        return value


class Usage(BaseModel):
    """Token counts for one response, normalised across providers.

    ``input_tokens`` counts every prompt token, cached ones included;
    ``cached_input_tokens`` and ``cache_creation_input_tokens`` say how many
    of them were read from or written to the provider's prompt cache.
    ``reasoning_tokens`` are part of ``output_tokens``.
    ``cache_creation_1h_input_tokens`` are the part of
    ``cache_creation_input_tokens`` written with a one-hour TTL (Anthropic
    prices them above five-minute writes).
    """

    model_config = ConfigDict(defer_build=True)

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cached_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    reasoning_tokens: int = 0
    cache_creation_1h_input_tokens: int = 0
    provider_cost: float | None = None
    """The cost the provider itself reported (OpenRouter), in USD."""


class ChatResponse(BaseModel):
    """A model's answer, normalised across providers.

    With a ``response_format``, ``parsed`` holds the answer validated into
    the requested pydantic class (or the decoded JSON for a raw schema or
    ``json_object``). ``refusal`` is the provider's refusal text when the
    model declined (OpenAI's ``message.refusal``, Anthropic's
    ``stop_reason: "refusal"``, a Responses ``refusal`` part, a Gemini or
    Bedrock safety block); ``parsed`` is then ``None`` and nothing is raised.
    """

    model_config = ConfigDict(defer_build=True, arbitrary_types_allowed=True)

    id: str = ""
    model: str = ""
    provider: str = ""
    content: str = ""
    message: Message = Field(default_factory=lambda: Message(role="assistant", content=""))
    finish_reason: FinishReason | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    cost: float | None = None
    cached: bool = False
    latency_ms: float = 0.0
    reasoning: str | None = None
    request_id: str | None = None
    raw: Any = None
    parsed: Any = None
    refusal: str | None = None
    stream: SkipJsonSchema[ChunkStream | None] = Field(default=None, exclude=True, repr=False)
    """The chunk stream while a streaming response is being read, else ``None``."""
    headers: SkipJsonSchema[Mapping[str, str] | None] = Field(
        default=None, exclude=True, repr=False
    )
    """The provider's HTTP response headers (``x-ratelimit-*``, ...), when sent over HTTP.

    ``stream`` and ``headers`` belong to this process: they are never dumped,
    serialised or cached.
    """
    all_choices: list[Choice] | None = Field(default=None, repr=False)
    """Every answer, when there is more than ``message`` to tell: the request asked for
    ``n`` > 1 or for logprobs (else ``None``). Read them as ``choices``."""

    @property
    def choices(self) -> list[Choice]:
        """Every answer: ``n`` of them when the request asked for ``n`` (else one).

        The first is this response's own ``message`` and ``finish_reason``.
        """
        if self.all_choices is not None:
            return list(self.all_choices)
        return [Choice(index=0, message=self.message, finish_reason=self.finish_reason)]

    @property
    def logprobs(self) -> list[TokenLogprob] | None:
        """Log probabilities of the first answer's tokens, when the request asked for them."""
        return self.choices[0].logprobs


class ChatChunk(BaseModel):
    """One increment of a streamed answer."""

    model_config = ConfigDict(defer_build=True)

    delta: str = ""
    tool_calls: list[ToolCallDelta] = Field(default_factory=list)
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    reasoning: str = ""


class EmbeddingRequest(BaseModel):
    """Texts to embed with one model: what the embedding chain carries.

    ``params`` go to the provider's body unchanged (``dimensions``, ...);
    requests with the same ``params`` arriving together share one upstream
    call. ``timeout`` is the total deadline in seconds (``None``: the
    client's default).
    """

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    model: str = Field(min_length=1)
    texts: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    """Non-empty strings (providers refuse an empty one)."""
    provider: str | None = None
    user: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    timeout: float | None = Field(default=None, gt=0)


class EmbeddingResponse(BaseModel):
    """Vectors for a batch of input texts, in input order."""

    model_config = ConfigDict(defer_build=True)

    vectors: list[list[float]]
    model: str
    usage: Usage = Field(default_factory=Usage)
    provider: str = ""
    cost: float | None = None
    """USD, priced by the ``Budget`` middleware (``None``: not priced, or no price known)."""


class TopLogprob(BaseModel):
    """One of the most likely tokens at a position, with its log probability."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprob(TopLogprob):
    """A token of an answer with its log probability and the likeliest alternatives."""

    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class Choice(BaseModel):
    """One answer of a response (``ChatResponse.choices``), as the SDKs' ``choices[i]``."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    index: int = 0
    message: Message
    finish_reason: FinishReason | None = None
    logprobs: list[TokenLogprob] | None = None
    """The answer's tokens with their log probabilities (the SDKs' ``logprobs.content``)."""


_M = TypeVar("_M", bound=BaseModel)
_new = object.__new__
_STATES: dict[type[BaseModel], dict[str, Any]] = {}


def fast_construct(cls: type[_M], **fields: Any) -> _M:
    """``cls.model_construct(**fields)`` for trusted, complete fields, at a third of its cost.

    The decoders build every response and chunk from data they already
    checked; ``model_construct`` loops over every field (~2 µs per object),
    this ~0.6 µs. It uses pydantic's pickle protocol: the state of one
    ``model_construct`` object per class is kept as a template, and each new
    object gets that state with ``fields`` as its values (``__setstate__``),
    so no pydantic attribute is named here. ``fields`` must name every field
    (``tests/providers/test_fixture_replay.py`` checks every decoded object);
    ``tests/test_types.py`` fails if pydantic changes under this.
    """
    state = _STATES.get(cls)
    if state is None:
        state = _STATES[cls] = cls.model_construct(**dict.fromkeys(cls.model_fields)).__getstate__()
    obj = _new(cls)
    obj.__setstate__({**state, "__dict__": fields})
    return obj


def make_tool_call(id: str, name: str, arguments: str, signature: str | None = None) -> ToolCall:
    """A ``ToolCall`` from trusted values (no validation)."""
    return fast_construct(ToolCall, id=id, name=name, arguments=arguments, signature=signature)


def make_message(
    content: str,
    tool_calls: list[ToolCall] | None = None,
    thinking: list[ThinkingBlock] | None = None,
) -> Message:
    """An assistant ``Message`` from trusted values (no validation)."""
    return fast_construct(
        Message,
        role="assistant",
        content=content,
        name=None,
        tool_calls=tool_calls or None,
        tool_call_id=None,
        thinking=thinking or None,
        cache_control=None,
    )


def make_response(
    *,
    id: str,
    model: str,
    provider: str,
    content: str,
    finish_reason: FinishReason | None,
    usage: Usage,
    tool_calls: list[ToolCall] | None = None,
    thinking: list[ThinkingBlock] | None = None,
    reasoning: str | None = None,
    request_id: str | None = None,
    raw: Any = None,
    refusal: str | None = None,
) -> ChatResponse:
    """A decoded ``ChatResponse`` (and its assistant ``message``) from trusted values."""
    calls = tool_calls or []
    return fast_construct(
        ChatResponse,
        id=id,
        model=model,
        provider=provider,
        content=content,
        message=make_message(content, calls, thinking),
        finish_reason=finish_reason,
        tool_calls=calls,
        usage=usage,
        cost=None,
        cached=False,
        latency_ms=0.0,
        reasoning=reasoning,
        request_id=request_id,
        raw=raw,
        parsed=None,
        refusal=refusal,
        stream=None,
        headers=None,
        all_choices=None,
    )


def make_chunk(
    *,
    delta: str = "",
    reasoning: str = "",
    tool_calls: list[ToolCallDelta] | None = None,
    finish_reason: FinishReason | None = None,
    usage: Usage | None = None,
) -> ChatChunk:
    """A ``ChatChunk`` from trusted values (no validation)."""
    return fast_construct(
        ChatChunk,
        delta=delta,
        tool_calls=tool_calls if tool_calls is not None else [],
        finish_reason=finish_reason,
        usage=usage,
        reasoning=reasoning,
    )


def make_tool_delta(
    index: int, id: str | None = None, name: str | None = None, arguments: str = ""
) -> ToolCallDelta:
    """A ``ToolCallDelta`` from trusted values (no validation)."""
    return fast_construct(ToolCallDelta, index=index, id=id, name=name, arguments=arguments)


def make_usage(
    input_tokens: int = 0,
    output_tokens: int = 0,
    total_tokens: int | None = None,
    cached_input_tokens: int = 0,
    cache_creation_input_tokens: int = 0,
    reasoning_tokens: int = 0,
    provider_cost: float | None = None,
    cache_creation_1h_input_tokens: int = 0,
) -> Usage:
    """A ``Usage`` from trusted counts (no validation)."""
    return fast_construct(
        Usage,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens if total_tokens is None else total_tokens,
        cached_input_tokens=cached_input_tokens,
        cache_creation_input_tokens=cache_creation_input_tokens,
        reasoning_tokens=reasoning_tokens,
        provider_cost=provider_cost,
        cache_creation_1h_input_tokens=cache_creation_1h_input_tokens,
    )


# -- the stream a streaming response carries ---------------------------------------------

_log = logging.getLogger("aio_llm.streaming")

CloseCallback = Callable[["ChunkStream"], Awaitable[None] | None]


class ChunkSource(Protocol):
    """Where a stream's chunks come from (a provider's decoder over HTTP, a replay)."""

    async def next_chunks(self) -> list[ChatChunk] | None:
        """The next chunks, or ``None`` at the regular end; raises on failure."""
        ...

    def build_response(self) -> ChatResponse:
        """The response rebuilt from everything read so far."""
        ...

    async def aclose(self) -> None:
        """Release the connection; reading stops."""
        ...


class ChunkStream:
    """An async iterator of ``ChatChunk`` with the final response at its end.

    ``completed`` is true once the provider's end of stream was read; ``error``
    holds the exception that ended it, if any. A stream closed before its end
    (the caller stopped reading) has neither; ``cancelled`` says it was
    closed by cancellation (its caller's deadline passed, or its task was
    cancelled). The end is reported once, to every ``on_close`` callback,
    when the stream is read past its last chunk or closed.
    """

    __slots__ = (
        "_buffer",
        "_callbacks",
        "_closed",
        "_ended",
        "_source",
        "cancelled",
        "chunks_received",
        "completed",
        "error",
        "response",
    )

    def __init__(self, source: ChunkSource) -> None:
        self._source = source
        self._buffer: deque[ChatChunk] = deque()
        self._callbacks: list[CloseCallback] = []
        self._closed = False
        self._ended = False  # the source said "no more"; reported at the next read
        self.cancelled = False
        self.completed = False
        self.error: BaseException | None = None
        self.response: ChatResponse | None = None
        self.chunks_received = 0

    async def on_close(self, callback: CloseCallback) -> None:
        """Run ``callback(stream)`` once the stream ended, failed or was closed.

        On a stream that already did, the callback runs now, so whoever
        registers needs no guard of its own.
        """
        if not self._closed:
            self._callbacks.append(callback)
            return
        result = callback(self)
        if inspect.isawaitable(result):
            await result

    @property
    def closed(self) -> bool:
        return self._closed

    async def prefetch(self) -> None:
        """Read until the first chunk (or the end) so early errors surface now.

        A stream that ends before any chunk stays open (``on_close`` still
        works) and reports its end at the first read or at ``aclose()``.
        """
        while not self._buffer and not self._closed and not self._ended:
            try:
                chunks = await self._source.next_chunks()
            except BaseException as exc:
                await self._finish(exc)
                raise
            if chunks is None:
                self._ended = True
                return
            self._buffer.extend(chunks)

    def __aiter__(self) -> AsyncIterator[ChatChunk]:
        return self

    async def __anext__(self) -> ChatChunk:
        while not self._buffer:
            if self._closed:
                raise StopAsyncIteration
            if self._ended:
                await self._finish(None)
                raise StopAsyncIteration
            try:
                chunks = await self._source.next_chunks()
            except BaseException as exc:
                await self._finish(exc)
                raise
            if chunks is None:
                await self._finish(None)
                raise StopAsyncIteration
            self._buffer.extend(chunks)
        self.chunks_received += 1
        return self._buffer.popleft()

    async def aclose(self) -> None:
        """Stop reading and release the connection (idempotent)."""
        if not self._closed:
            await self._finish(None, early=not (self._ended and not self._buffer))

    async def _finish(self, exc: BaseException | None, *, early: bool = False) -> None:
        if self._closed:
            return
        self._closed = True
        if exc is None and not early:
            self.completed = True
        elif exc is not None:
            if isinstance(exc, anyio.get_cancelled_exc_class()):
                self.cancelled = True
            else:
                self.error = exc
        failure: Exception | None = None
        with anyio.CancelScope(shield=True):
            try:
                await self._source.aclose()
            finally:
                try:
                    self.response = self._source.build_response()
                except Exception as build_exc:  # a broken stream may not rebuild
                    if self.error is None and self.completed:
                        self.error = build_exc
                        self.completed = False
                for callback in self._callbacks:  # each runs, whatever the others do
                    try:
                        result = callback(self)
                        if inspect.isawaitable(result):
                            await result
                    except Exception as cb_exc:
                        _log.exception("an on_close callback of a stream failed")
                        failure = failure or cb_exc
        if failure is not None and exc is None:
            raise failure

    def __repr__(self) -> str:
        state = "completed" if self.completed else "failed" if self.error else "open"
        if self._closed and not self.completed and self.error is None:
            state = "cancelled" if self.cancelled else "closed early"
        return f"<ChunkStream {state} chunks={self.chunks_received}>"
