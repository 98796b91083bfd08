"""The OpenAI Responses API (``POST {base_url}/responses``), JSON and SSE.

The request is written from the canonical conversation (``aio_llm._conversation``):
system and developer turns stay input messages with their role; an assistant
turn becomes its reasoning items (those this provider kind produced, with their
encrypted content), a message and ``function_call`` items; tool results become
``function_call_output`` items. Tools go out flat (``{"type": "function",
"name", ...}``) with ``strict`` said explicitly, since the Responses API
defaults it to true where chat completions defaults it to false.
``response_format`` becomes ``text.format``; ``max_tokens`` becomes
``max_output_tokens``. ``stop`` and ``seed`` do not exist in this API and are
refused. ``request.extra`` (``reasoning``, ``include``, ``store``, ...) is
merged last.

Answers: ``output_text`` parts are the content, reasoning summaries (and
``reasoning_text``) the reasoning, ``function_call`` items the tool calls, whose
id is the ``call_id`` that the next turn quotes back (not the ``fc_`` item id).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .. import _json
from .._conversation import (
    Media,
    Opaque,
    Part,
    Text,
    Turn,
    conversation,
    data_url,
    output_format,
    provider_schema,
    tool_choice,
    tool_specs,
)
from ..errors import InvalidRequestError
from ..types import ChatRequest, ChatResponse
from ._params import openai_service_tier
from ._responses_decode import ResponsesStreamDecoder, parse_response
from .base import HTTPRequest, StreamDecoder
from .openai import OpenAIProvider

__all__ = ["OpenAIResponsesProvider", "encode_responses_body"]


class OpenAIResponsesProvider(OpenAIProvider):
    """OpenAI's Responses API (``name = "openai-responses"``).

    Settings, headers and variables are the chat-completions provider's
    (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``organization``, ``project``),
    and so are embeddings; only chat goes to ``{base_url}/responses``.
    """

    name: ClassVar[str] = "openai-responses"
    genai_system: ClassVar[str | None] = "openai"
    # what the Responses API takes of the SDK parameters; no n, penalties, logit_bias or seed,
    # and top_logprobs stays refused until the decoder reads logprobs back
    supported_parameters: ClassVar[frozenset[str]] = frozenset(
        {"parallel_tool_calls", "service_tier", "response_format", "prompt_cache_key"}
    )

    def _responses_url(self) -> str:
        return self.base_url + "/responses"

    def encode_chat(self, request: ChatRequest) -> HTTPRequest:
        content = self._dumps(encode_responses_body(request, self.name))
        headers = self._stream_headers if request.stream else self._headers
        return HTTPRequest("POST", self._responses_url(), headers, content)

    def encode_count(self, request: ChatRequest) -> HTTPRequest | None:
        """``POST {base_url}/responses/input_tokens`` with the body's countable fields."""
        body = encode_responses_body(request.model_copy(update={"stream": False}), self.name)
        counted = {k: v for k, v in body.items() if k in _COUNTED}
        return HTTPRequest(
            "POST", self.base_url + "/responses/input_tokens", self._headers, self._dumps(counted)
        )

    def decode_count(self, status: int, headers: Mapping[str, str], body: bytes) -> int:
        value = _json.loads(body)["input_tokens"]
        if not isinstance(value, int):
            raise TypeError("input_tokens is not an integer")
        return value

    def _parse(
        self, request: ChatRequest, data: object, headers: Mapping[str, str], status: int
    ) -> ChatResponse:
        return parse_response(data, self.label, self.name, headers, request.model)

    def stream_decoder(self, request: ChatRequest) -> StreamDecoder:
        return ResponsesStreamDecoder(self.label, self.name, request.model)


# the fields of a Responses body that /responses/input_tokens takes
_COUNTED = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "text",
        "reasoning",
        "truncation",
        "parallel_tool_calls",
        "previous_response_id",
        "conversation",
    }
)


# -- the request body --------------------------------------------------------------------


def encode_responses_body(request: ChatRequest, kind: str) -> dict[str, Any]:
    """The Responses API body for ``request``; reasoning goes back to the same ``kind`` only."""
    if request.stop is not None:
        raise InvalidRequestError("the Responses API has no 'stop' parameter")
    if request.seed is not None:
        raise InvalidRequestError("the Responses API has no 'seed' parameter")
    items: list[dict[str, Any]] = []
    for turn in conversation(request.messages):
        items.extend(_turn_items(turn, kind))
    body: dict[str, Any] = {"model": request.model, "input": items}
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.max_tokens is not None:
        body["max_output_tokens"] = request.max_tokens
    if request.tools:
        body["tools"] = [_tool(t) for t in tool_specs(request.tools)]
    if request.tool_choice is not None:
        body["tool_choice"] = _tool_choice(request.tool_choice)
    fmt = output_format(request.response_format)
    if fmt is not None:
        spec: dict[str, Any] = {"type": fmt.kind}
        if fmt.kind == "json_schema":
            assert fmt.schema is not None
            spec["name"] = fmt.name
            spec["schema"] = provider_schema(fmt, "strict")
            if fmt.strict is not None:
                spec["strict"] = fmt.strict
            if fmt.description is not None:
                spec["description"] = fmt.description
        body["text"] = {"format": spec}
    if request.user is not None:
        body["user"] = request.user
    if request.parallel_tool_calls is not None and request.tools:
        body["parallel_tool_calls"] = request.parallel_tool_calls
    if request.service_tier is not None:
        body["service_tier"] = openai_service_tier(request.service_tier, kind)
    if request.prompt_cache_key is not None:
        body["prompt_cache_key"] = request.prompt_cache_key
    if request.stream:
        body["stream"] = True
    if request.extra:
        body.update(request.extra)
    return body


def _turn_items(turn: Turn, kind: str) -> list[dict[str, Any]]:
    role = turn.role
    if role == "tool":
        out: list[dict[str, Any]] = []
        for r in turn.results:
            if all(isinstance(p, Text) for p in r.parts):
                output: str | list[dict[str, Any]] = r.text
            else:
                output = [_part(p) for p in r.parts]
            out.append({"type": "function_call_output", "call_id": r.call_id, "output": output})
        return out
    if role == "assistant":
        items: list[dict[str, Any]] = []
        for block in turn.thinking:
            if block.provider != kind or block.id is None:
                continue
            item: dict[str, Any] = {"type": "reasoning", "id": block.id, "summary": []}
            if block.text:
                item["summary"] = [{"type": "summary_text", "text": block.text}]
            if block.signature is not None:
                item["encrypted_content"] = block.signature
            items.append(item)
        text = turn.text
        if text:
            items.append({"role": "assistant", "content": text})
        items.extend(
            {"type": "function_call", "call_id": tc.id, "name": tc.name, "arguments": tc.arguments}
            for tc in turn.tool_calls
        )
        return items
    plain = turn.plain_text
    content: str | list[dict[str, Any]]
    content = plain if plain is not None else [_part(p) for p in turn.parts]
    return [{"role": role, "content": content}]


def _part(part: Part) -> dict[str, Any]:
    """A canonical part as a Responses input part."""
    if isinstance(part, Opaque):
        return dict(part.raw)
    if part.raw is not None and part.dialect == "responses":
        return dict(part.raw)
    if isinstance(part, Text):
        return {"type": "input_text", "text": part.text}
    return _media(part)


def _media(part: Media) -> dict[str, Any]:
    if part.kind == "image":
        out: dict[str, Any] = {"type": "input_image"}
        if part.file_id is not None:
            out["file_id"] = part.file_id
        else:
            out["image_url"] = part.url or data_url(part.media_type, part.data or "")
        out["detail"] = part.detail or "auto"
        return out
    if part.kind == "audio":
        raise InvalidRequestError("the Responses API does not take audio input parts")
    if part.text is not None:
        return {"type": "input_text", "text": part.text}
    out = {"type": "input_file"}
    if part.file_id is not None:
        out["file_id"] = part.file_id
    elif part.url is not None:
        out["file_url"] = part.url
    else:
        out["file_data"] = data_url(part.media_type, part.data or "")
        out["filename"] = part.name or "document"
    return out


def _tool(spec: Any) -> dict[str, Any]:
    if isinstance(spec, Opaque):
        return dict(spec.raw)
    if spec.dialect == "responses" and spec.raw is not None:
        return dict(spec.raw)
    out: dict[str, Any] = {"type": "function", "name": spec.name}
    if spec.description is not None:
        out["description"] = spec.description
    out["parameters"] = dict(spec.parameters)
    # the Responses API makes a tool strict unless told otherwise; chat completions does not
    out["strict"] = bool(spec.strict)
    return out


def _tool_choice(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    parsed = tool_choice(choice)
    if parsed is None or isinstance(parsed, Opaque):
        return choice
    if parsed.mode == "tool":
        return {"type": "function", "name": parsed.name}
    return parsed.mode
