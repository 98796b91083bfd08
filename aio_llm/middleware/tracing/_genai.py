"""GenAI semantic-convention pieces the ``Tracing`` middleware uses.

Attribute builders for the inference span and the client metrics, the
advised histogram bucket boundaries, and the JSON form of captured message
content (``gen_ai.input.messages`` / ``gen_ai.output.messages``), kept apart
so ``tracing.py`` holds only the middleware's control flow.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol
from urllib.parse import urlsplit

from opentelemetry.metrics import Histogram, Meter
from opentelemetry.util.types import AttributeValue

from ..._json import dumps
from ...types import ChatRequest, ChatResponse, Message
from ._stats import DURATION, TIME_TO_FIRST_CHUNK, TOKEN_USAGE

CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
DURATION_BUCKETS: tuple[float, ...] = tuple(0.01 * 2**i for i in range(14))  # 0.01 .. 81.92
"""The advised ``ExplicitBucketBoundaries`` of the duration histograms (seconds)."""
TOKEN_BUCKETS: tuple[int, ...] = tuple(4**i for i in range(14))  # 1 .. 67108864
"""The advised ``ExplicitBucketBoundaries`` of ``gen_ai.client.token.usage``."""

OPERATION = "chat"


class ProviderLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def base_url(self) -> str: ...


class Endpoint(NamedTuple):
    provider: str | None
    address: str | None
    port: int | None


def endpoint(kind: str, base_url: str | None) -> Endpoint:
    if not base_url:
        return Endpoint(kind, None, None)
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return Endpoint(kind, None, None)
    return Endpoint(kind, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))


class Instruments:
    __slots__ = ("duration", "tokens", "ttfc")

    def __init__(self, meter: Meter) -> None:
        self.duration: Histogram = meter.create_histogram(
            DURATION,
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.tokens: Histogram = meter.create_histogram(
            TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.ttfc: Histogram = meter.create_histogram(
            TIME_TO_FIRST_CHUNK,
            unit="s",
            description="Time to receive the first chunk of a streamed response.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )


def operation_attributes(operation: str, model: str, ep: Endpoint) -> dict[str, AttributeValue]:
    """What every GenAI span starts with: the operation, the model and where it goes."""
    attrs: dict[str, AttributeValue] = {
        "gen_ai.operation.name": operation,
        "gen_ai.request.model": model,
    }
    if ep.provider is not None:
        attrs["gen_ai.provider.name"] = ep.provider
    if ep.address is not None and ep.port is not None:
        attrs["server.address"] = ep.address
        attrs["server.port"] = ep.port
    return attrs


def request_attributes(request: ChatRequest, ep: Endpoint) -> dict[str, AttributeValue]:
    attrs = operation_attributes(OPERATION, request.model, ep)
    if request.stream:
        attrs["gen_ai.request.stream"] = True
    if request.max_tokens is not None:
        attrs["gen_ai.request.max_tokens"] = request.max_tokens
    if request.temperature is not None:
        attrs["gen_ai.request.temperature"] = request.temperature
    if request.top_p is not None:
        attrs["gen_ai.request.top_p"] = request.top_p
    if request.seed is not None:
        attrs["gen_ai.request.seed"] = request.seed
    if request.stop is not None:
        attrs["gen_ai.request.stop_sequences"] = (
            [request.stop] if isinstance(request.stop, str) else list(request.stop)
        )
    if request.response_format is not None:
        attrs["gen_ai.output.type"] = "json"
        attempt = request.metadata.get("aio_llm.validation_attempt")  # a re-ask (client)
        if isinstance(attempt, int):
            attrs["aio_llm.validation.attempt"] = attempt
    return attrs


def response_attributes(
    response: ChatResponse, ep: Endpoint, cached: bool
) -> dict[str, AttributeValue]:
    usage = response.usage
    attrs: dict[str, AttributeValue] = {
        "gen_ai.usage.input_tokens": usage.input_tokens,
        "gen_ai.usage.output_tokens": usage.output_tokens,
        "aio_llm.cache.hit": cached,
    }
    if ep.provider is not None:
        attrs["gen_ai.provider.name"] = ep.provider
    if ep.address is not None and ep.port is not None:
        attrs["server.address"] = ep.address
        attrs["server.port"] = ep.port
    if response.model:
        attrs["gen_ai.response.model"] = response.model
    if response.id:
        attrs["gen_ai.response.id"] = response.id
    if response.finish_reason is not None:
        attrs["gen_ai.response.finish_reasons"] = [response.finish_reason]
    if usage.cached_input_tokens:
        attrs["gen_ai.usage.cache_read.input_tokens"] = usage.cached_input_tokens
    if usage.cache_creation_input_tokens:
        attrs["gen_ai.usage.cache_creation.input_tokens"] = usage.cache_creation_input_tokens
    if usage.reasoning_tokens:
        attrs["gen_ai.usage.reasoning.output_tokens"] = usage.reasoning_tokens
    if response.cost is not None:
        attrs["aio_llm.cost_usd"] = response.cost
    if response.request_id:
        attrs["aio_llm.provider.request_id"] = response.request_id
    return attrs


def metric_attributes(
    request: ChatRequest, ep: Endpoint, response_model: str | None, error_type: str | None
) -> dict[str, AttributeValue]:
    attrs: dict[str, AttributeValue] = {
        "gen_ai.operation.name": OPERATION,
        "gen_ai.request.model": request.model,
    }
    if ep.provider is not None:
        attrs["gen_ai.provider.name"] = ep.provider
    if ep.address is not None and ep.port is not None:
        attrs["server.address"] = ep.address
        attrs["server.port"] = ep.port
    if response_model:
        attrs["gen_ai.response.model"] = response_model
    if error_type is not None:
        attrs["error.type"] = error_type
    return attrs


def message_dict(m: Message) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if m.role == "tool":
        parts.append({"type": "tool_call_response", "id": m.tool_call_id, "response": m.text})
    elif isinstance(m.content, str):
        if m.content:
            parts.append({"type": "text", "content": m.content})
    elif m.content:
        for p in m.content:  # non-text parts (images, audio) are named, not copied
            if p.get("type") == "text":
                parts.append({"type": "text", "content": str(p.get("text", ""))})
            else:
                parts.append({"type": str(p.get("type"))})
    for tc in m.tool_calls or ():
        parts.append({"type": "tool_call", "id": tc.id, "name": tc.name, "arguments": tc.arguments})
    out: dict[str, Any] = {"role": m.role, "parts": parts}
    if m.name:
        out["name"] = m.name
    return out


def messages_json(messages: list[Message]) -> str:
    return dumps([message_dict(m) for m in messages]).decode()


def output_json(response: ChatResponse) -> str:
    out = message_dict(response.message)
    out["finish_reason"] = response.finish_reason or ""
    return dumps([out]).decode()
