"""The data that flows through aio_llm: requests, responses, chunks, usage.

All models are pydantic v2. User input (``ChatRequest``, ``Message``) is
validated; objects that aio_llm builds itself from a provider's answer are
constructed without re-validation on the hot path (``model_construct``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

if TYPE_CHECKING:
    from .streaming import ChunkStream

__all__ = [
    "ChatChunk",
    "ChatRequest",
    "ChatResponse",
    "EmbeddingResponse",
    "FinishReason",
    "Message",
    "MessageInput",
    "Role",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
]

Role = Literal["system", "developer", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


# Every model here says ``defer_build=True``: pydantic builds its validator and
# serializer on first use instead of at import (~15 ms of ``import aio_llm``).


class ToolCall(BaseModel):
    """A complete function call the model asked for; ``arguments`` is JSON text."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    id: str
    name: str
    arguments: str = ""


class ToolCallDelta(BaseModel):
    """A fragment of a tool call as it arrives in a stream."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class Message(BaseModel):
    """One chat message. Every API that takes messages also takes plain dicts."""

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    role: Role
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

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


class ChatRequest(BaseModel):
    """Everything needed to ask a model for one chat completion.

    ``timeout`` is the total deadline in seconds over the whole middleware
    chain, retries and backoff included (``None``: the client's default).
    ``extra`` is merged into the provider's request body unchanged.
    ``cache`` and ``cache_ttl`` switch the exact/semantic cache off or change
    its TTL for this request alone; they never change the cache key.
    """

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, gt=0)
    stop: str | list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    seed: int | None = None
    stream: bool = False
    user: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    extra: dict[str, Any] = Field(default_factory=dict)
    timeout: float | None = Field(default=None, gt=0)
    provider: str | None = None
    cache: bool = True
    cache_ttl: float | None = Field(default=None, gt=0)


class Usage(BaseModel):
    """Token counts for one response, normalised across providers.

    ``input_tokens`` counts every prompt token, cached ones included;
    ``cached_input_tokens`` and ``cache_creation_input_tokens`` say how many
    of them were read from or written to the provider's prompt cache.
    ``reasoning_tokens`` are part of ``output_tokens``.
    """

    model_config = ConfigDict(defer_build=True)

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cached_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    reasoning_tokens: int = 0
    provider_cost: float | None = None
    """The cost the provider itself reported (OpenRouter), in USD."""


class ChatResponse(BaseModel):
    """A model's answer, normalised across providers."""

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

    _stream: ChunkStream | None = PrivateAttr(default=None)
    _headers: Mapping[str, str] | None = PrivateAttr(default=None)

    @property
    def stream(self) -> ChunkStream | None:
        """The chunk stream while a streaming response is being read, else ``None``."""
        # read the private dict directly: ``self._stream`` goes through pydantic's
        # ``__getattr__`` and costs ~1.3 us per access on the hot path
        private = self.__pydantic_private__
        return private.get("_stream") if private else None

    @property
    def headers(self) -> Mapping[str, str] | None:
        """The provider's HTTP response headers (``x-ratelimit-*``, ...), when sent over HTTP."""
        private = self.__pydantic_private__
        return private.get("_headers") if private else None


class ChatChunk(BaseModel):
    """One increment of a streamed answer."""

    model_config = ConfigDict(defer_build=True)

    delta: str = ""
    tool_calls: list[ToolCallDelta] = Field(default_factory=list)
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    reasoning: str = ""


class EmbeddingResponse(BaseModel):
    """Vectors for a batch of input texts, in input order."""

    model_config = ConfigDict(defer_build=True)

    vectors: list[list[float]]
    model: str
    usage: Usage = Field(default_factory=Usage)
    provider: str = ""


_M = TypeVar("_M", bound=BaseModel)
_new = object.__new__
_set = object.__setattr__
_RESPONSE_PRIVATE = ("_stream", "_headers")


def fast_construct(cls: type[_M], **fields: Any) -> _M:
    """``cls.model_construct(**fields)`` for trusted, complete fields, without its cost.

    The decoders build every response and chunk from data they already
    checked; pydantic's ``model_construct`` costs ~2 µs per object, this
    ~0.5. ``fields`` must name every field: ``tests/providers/test_fixture_replay.py``
    checks that every decoded object has them all.
    """
    obj = _new(cls)
    _set(obj, "__dict__", fields)
    _set(obj, "__pydantic_fields_set__", set(fields))
    _set(obj, "__pydantic_extra__", None)
    _set(
        obj,
        "__pydantic_private__",
        dict.fromkeys(_RESPONSE_PRIVATE) if cls is ChatResponse else None,
    )
    return obj


def make_usage(
    input_tokens: int = 0,
    output_tokens: int = 0,
    total_tokens: int | None = None,
    cached_input_tokens: int = 0,
    cache_creation_input_tokens: int = 0,
    reasoning_tokens: int = 0,
    provider_cost: float | None = None,
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
    )
