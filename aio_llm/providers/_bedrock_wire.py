"""Bedrock Converse's wire format: the request body, the JSON answer and the stream events.

Request: system and developer turns become ``system`` blocks; user turns
``role: "user"`` messages and assistant turns ``role: "assistant"``; tool
calls are ``toolUse`` blocks, tool results ``toolResult`` blocks in a user
message; images and documents go inline as base64 ``bytes`` (or an
``s3://`` location); Anthropic ``cache_control`` becomes a ``cachePoint``
after the block (with its ``ttl``, 5m or 1h). Reasoning blocks go back as ``reasoningContent`` with
their signature. ``response_format`` becomes ``outputConfig.textFormat``.

Answer: ``text`` blocks are the content, ``reasoningContent`` the reasoning
(kept with its signature, or as redacted content), ``toolUse`` the tool
calls, whose id is the ``toolUseId`` the next turn quotes back.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Mapping
from typing import Any

from .. import _json
from .._conversation import (
    Media,
    Opaque,
    Part,
    Text,
    ToolResult,
    Turn,
    conversation,
    output_format,
    provider_schema,
    tool_arguments,
    tool_choice,
    tool_specs,
)
from ..errors import APIError, InvalidRequestError, error_for_status
from ..types import (
    ChatRequest,
    ChatResponse,
    FinishReason,
    ThinkingBlock,
    ToolCall,
    Usage,
    make_response,
    make_tool_call,
    make_usage,
)
from ._common import int_field

__all__ = [
    "ANSWER_TOOL",
    "FINISH",
    "STATUS_OF_EXCEPTION",
    "decode_error",
    "encode_body",
    "finish_reason",
    "parse_response",
    "refusal_of",
    "answer_tool",
    "usage_from_wire",
]

FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}

STATUS_OF_EXCEPTION = {
    "validationexception": 400,
    "accessdeniedexception": 403,
    "resourcenotfoundexception": 404,
    "modeltimeoutexception": 408,
    "conflictexception": 409,
    "modelerrorexception": 424,
    "modelstreamerrorexception": 424,
    "throttlingexception": 429,
    "modelnotreadyexception": 429,
    "servicequotaexceededexception": 429,
    "internalserverexception": 500,
    "serviceunavailableexception": 503,
}
"""The HTTP status AWS documents for each Bedrock Runtime exception."""

_IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
_DOC_FORMATS = {
    "application/pdf": "pdf",
    "text/csv": "csv",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/html": "html",
    "text/plain": "txt",
    "text/markdown": "md",
}
_DOC_NAME = re.compile(r"[^A-Za-z0-9\s\-()\[\]]+")
_CACHE_TTLS = frozenset({"5m", "1h"})


# -- request ----------------------------------------------------------------------------


def encode_body(request: ChatRequest) -> dict[str, Any]:
    """The Converse body for ``request`` (``extra`` merged last, unchanged)."""
    system: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    turns = conversation(request.messages)
    for turn in turns:
        role = turn.role
        if role in ("system", "developer"):
            for part in turn.parts:
                system.extend(_blocks(part))
            continue
        if role == "tool":
            blocks = [b for r in turn.results for b in _result(r)]
            role = "user"
        elif role == "assistant":
            blocks = _assistant(turn)
        else:
            blocks = [b for p in turn.parts for b in _blocks(p)]
        if not blocks:
            continue
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": role, "content": blocks})
    if not messages:
        raise InvalidRequestError("Bedrock needs at least one user or assistant message")
    body: dict[str, Any] = {"messages": messages}
    if system:
        body["system"] = system
    config: dict[str, Any] = {}
    if request.max_tokens is not None:
        config["maxTokens"] = request.max_tokens
    if request.temperature is not None:
        config["temperature"] = request.temperature
    if request.top_p is not None:
        config["topP"] = request.top_p
    if request.stop is not None:
        config["stopSequences"] = [request.stop] if isinstance(request.stop, str) else request.stop
    if request.seed is not None:
        raise InvalidRequestError("Bedrock Converse has no 'seed' parameter")
    if config:
        body["inferenceConfig"] = config
    if request.tools:
        tool_config: dict[str, Any] = {"tools": _tools(request.tools)}
        if request.tool_choice is not None:
            choice = _tool_choice(request.tool_choice)
            if choice is not None:
                tool_config["toolChoice"] = choice
            elif any(t.tool_calls or t.results for t in turns):
                raise InvalidRequestError(
                    "Bedrock has no tool_choice 'none' and needs the tools while the "
                    "history holds tool calls; leave tool_choice unset"
                )
            else:  # "none" and no tool history: send no tools at all
                tool_config = {}
        if tool_config:
            body["toolConfig"] = tool_config
    fmt = output_format(request.response_format)
    if fmt is not None and fmt.kind == "json_object":
        _answer_tool(body, request)
    if fmt is not None and fmt.kind == "json_schema":
        assert fmt.schema is not None
        schema = provider_schema(fmt, "anthropic")
        spec: dict[str, Any] = {"name": fmt.name, "schema": _json.dumps_text(schema)}
        if fmt.description is not None:
            spec["description"] = fmt.description
        body["outputConfig"] = {
            "textFormat": {"type": "json_schema", "structure": {"jsonSchema": spec}}
        }
    if request.extra:
        body.update(request.extra)
    return body


ANSWER_TOOL = "json_output"
"""The tool whose input is the answer to ``{"type": "json_object"}`` (Converse's
``outputConfig`` needs a schema with closed objects, which "any JSON object" is not)."""


def answer_tool(request: ChatRequest) -> str | None:
    """``ANSWER_TOOL`` when ``request`` asks for a JSON object, else ``None``."""
    if request.response_format is None:
        return None
    fmt = output_format(request.response_format)
    return ANSWER_TOOL if fmt is not None and fmt.kind == "json_object" else None


def _answer_tool(body: dict[str, Any], request: ChatRequest) -> None:
    config = body.setdefault("toolConfig", {})
    tools = config.setdefault("tools", [])
    spec = {
        "name": ANSWER_TOOL,
        "description": "Give the answer as a JSON object.",
        "inputSchema": {"json": {"type": "object"}},
    }
    tools.append({"toolSpec": spec})
    if "toolChoice" not in config:
        choice = {"any": {}} if len(tools) > 1 else {"tool": {"name": ANSWER_TOOL}}
        config["toolChoice"] = choice


def refusal_of(stop: object) -> str | None:
    """``ChatResponse.refusal`` when a guardrail or content filter stopped the answer."""
    if stop in ("guardrail_intervened", "content_filtered"):
        return f"Bedrock stopped the answer (stopReason: {stop})"
    return None


def _cache_point(cache: Mapping[str, Any]) -> dict[str, Any]:
    """The ``cachePoint`` block for a ``cache_control`` marker, its ``ttl`` (5m or 1h) kept."""
    point: dict[str, Any] = {"type": "default"}
    ttl = cache.get("ttl")
    if ttl is not None:
        if ttl not in _CACHE_TTLS:
            raise InvalidRequestError(f"Bedrock takes a cache ttl of '5m' or '1h', not {ttl!r}")
        point["ttl"] = ttl
    return {"cachePoint": point}


def _with_cache(block: dict[str, Any], cache: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    return [block, _cache_point(cache)] if cache is not None else [block]


def _blocks(part: Part) -> list[dict[str, Any]]:
    if isinstance(part, Text):
        if not part.text:
            return [_cache_point(part.cache)] if part.cache is not None else []
        return _with_cache({"text": part.text}, part.cache)
    if isinstance(part, Opaque):
        raise InvalidRequestError(
            f"Bedrock cannot take a content part of type {part.raw.get('type')!r}"
        )
    return _with_cache(_media(part), part.cache)


def _source(part: Media) -> dict[str, Any]:
    if part.data is not None:
        return {"bytes": part.data}
    if part.url is not None and part.url.startswith("s3://"):
        return {"s3Location": {"uri": part.url}}
    raise InvalidRequestError(
        f"Bedrock takes {part.kind}s inline (base64) or from s3://, not from {part.url!r}"
    )


def _media(part: Media) -> dict[str, Any]:
    media_type = part.media_type
    if media_type is None and part.url is not None:  # s3://bucket/cat.png
        media_type = mimetypes.guess_type(part.url)[0]
    if part.kind == "image":
        fmt = _IMAGE_FORMATS.get(media_type or "")
        if fmt is None:
            raise InvalidRequestError(f"Bedrock cannot take an image of type {media_type!r}")
        return {"image": {"format": fmt, "source": _source(part)}}
    if part.kind == "document":
        # Bedrock allows letters, digits, single spaces, hyphens, parentheses, brackets
        name = " ".join(_DOC_NAME.sub(" ", part.name or "").split()) or "document"
        if part.text is not None:
            return {"document": {"format": "txt", "name": name, "source": {"text": part.text}}}
        fmt = _DOC_FORMATS.get(part.media_type or "")
        if fmt is None:
            raise InvalidRequestError(f"Bedrock cannot take a document of type {part.media_type!r}")
        return {"document": {"format": fmt, "name": name, "source": _source(part)}}
    raise InvalidRequestError(f"Bedrock Converse cannot take {part.kind} input")


def reasoning_block(block: ThinkingBlock) -> dict[str, Any] | None:
    """A ``reasoningContent`` block for a Bedrock or Anthropic-format thinking block."""
    if block.provider not in ("bedrock", None):
        return None
    if block.redacted is not None:
        return {"reasoningContent": {"redactedContent": block.redacted}}
    if block.signature is None:
        return None
    text = {"text": block.text, "signature": block.signature}
    return {"reasoningContent": {"reasoningText": text}}


def _assistant(turn: Turn) -> list[dict[str, Any]]:
    blocks = [b for t in turn.thinking if (b := reasoning_block(t)) is not None]
    for part in turn.parts:
        blocks.extend(_blocks(part))
    blocks.extend(
        {"toolUse": {"toolUseId": tc.id, "name": tc.name, "input": tool_arguments(tc)}}
        for tc in turn.tool_calls
    )
    if turn.calls_cache is not None:
        blocks.append(_cache_point(turn.calls_cache))
    return blocks


def _result(r: ToolResult) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = []
    for part in r.parts:
        if isinstance(part, Text):
            if part.text:
                content.append({"text": part.text})
        else:
            content.extend(_blocks(part))
    if not content:
        content = [{"text": ""}]
    result: dict[str, Any] = {"toolUseId": r.call_id, "content": content}
    if r.is_error:
        result["status"] = "error"
    return _with_cache({"toolResult": result}, r.cache)


def _tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for spec in tool_specs(tools):
        if isinstance(spec, Opaque):
            out.append(dict(spec.raw))  # cachePoint, systemTool, ...
            continue
        if spec.dialect == "bedrock" and spec.raw is not None:
            out.append(dict(spec.raw))
            continue
        tool: dict[str, Any] = {"name": spec.name}
        if spec.description is not None:
            tool["description"] = spec.description
        tool["inputSchema"] = {"json": dict(spec.parameters)}
        out.extend(_with_cache({"toolSpec": tool}, spec.cache))
    return out


def _tool_choice(choice: str | dict[str, Any]) -> dict[str, Any] | None:
    parsed = tool_choice(choice)
    if parsed is None or isinstance(parsed, Opaque):
        return dict(choice) if isinstance(choice, dict) else None
    if parsed.mode == "none":
        return None
    if parsed.mode == "tool":
        return {"tool": {"name": parsed.name}}
    return {"any": {}} if parsed.mode == "required" else {"auto": {}}


# -- answers ----------------------------------------------------------------------------


def finish_reason(value: object) -> FinishReason | None:
    return FINISH.get(value) if isinstance(value, str) else None


def usage_from_wire(data: object) -> Usage:
    """``Usage``; ``input_tokens`` is ``inputTokens`` plus cache reads and cache writes."""
    if not isinstance(data, Mapping):
        return make_usage()
    read = int_field(data.get("cacheReadInputTokens"))
    write = int_field(data.get("cacheWriteInputTokens"))
    prompt = int_field(data.get("inputTokens")) + read + write
    output = int_field(data.get("outputTokens"))
    total = int_field(data.get("totalTokens")) or prompt + output
    details = data.get("cacheDetails")  # writes by TTL, when one-hour cache points were set
    hour = 0
    if isinstance(details, list):
        hour = sum(
            int_field(d.get("inputTokens"))
            for d in details
            if isinstance(d, Mapping) and d.get("ttl") == "1h"
        )
    return make_usage(prompt, output, total, read, write, 0, cache_creation_1h_input_tokens=hour)


def parse_response(
    data: object,
    label: str,
    headers: Mapping[str, str],
    model: str,
    answer: str | None = None,
) -> ChatResponse:
    """A ``ChatResponse`` from a Converse answer (a call of tool ``answer`` is the text)."""
    if not isinstance(data, dict):
        raise TypeError("the body is not a JSON object")
    message = data["output"]["message"]
    blocks = message.get("content") or []
    if not isinstance(blocks, list):
        raise TypeError("'content' is not a list")
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[ToolCall] = []
    kept: list[ThinkingBlock] = []
    for block in blocks:
        if not isinstance(block, dict):
            raise TypeError("a content block is not an object")
        if isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif isinstance(block.get("toolUse"), dict):
            use = block["toolUse"]
            args = _json.dumps_text(use.get("input") if use.get("input") is not None else {})
            if answer is not None and use.get("name") == answer:
                texts.append(args)
            else:
                calls.append(make_tool_call(str(use["toolUseId"]), str(use["name"]), args))
        elif isinstance(block.get("reasoningContent"), dict):
            reasoning = block["reasoningContent"]
            rtext = reasoning.get("reasoningText")
            if isinstance(rtext, dict):
                text = str(rtext.get("text") or "")
                thoughts.append(text)
                sig = rtext.get("signature")
                sig = sig if isinstance(sig, str) else None
                kept.append(ThinkingBlock(text=text, signature=sig, provider="bedrock"))
            elif isinstance(reasoning.get("redactedContent"), str):
                kept.append(
                    ThinkingBlock(redacted=reasoning["redactedContent"], provider="bedrock")
                )
    stop = data.get("stopReason")
    reason = "tool_calls" if calls else finish_reason(stop)
    if reason == "tool_calls" and not calls:
        reason = "stop"  # only the answer tool was called
    text = "".join(texts)
    request_id = headers.get("x-amzn-requestid")
    return make_response(
        id=request_id or "",
        model=model,
        provider=label,
        content=text,
        finish_reason=reason,
        usage=usage_from_wire(data.get("usage")),
        tool_calls=calls,
        thinking=kept,
        reasoning="".join(thoughts) or None,
        request_id=request_id,
        raw=data,
        refusal=refusal_of(stop),
    )


def decode_error(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    provider: str,
    secret: str | None,
) -> APIError:
    """The typed error for a Bedrock error answer (``{"message": ...}`` + ``x-amzn-errortype``)."""
    text = body.decode("utf-8", errors="replace")
    if secret and secret in text:
        text = text.replace(secret, "[REDACTED]")
    data: Any
    try:
        data = _json.loads(text)
    except ValueError:
        data = None
    code = headers.get("x-amzn-errortype", "").partition(":")[0] or None
    message = ""
    if isinstance(data, dict):
        raw = data.get("message") or data.get("Message")
        message = str(raw or "").strip()
        code = code or (str(data["__type"]).rpartition("#")[2] if data.get("__type") else None)
    if not message:
        message = text.strip()[:500] or f"HTTP {status}"
    exc = error_for_status(
        status, message, provider=provider, headers=headers, code=code, body=data or text
    )
    if exc.request_id is None:
        exc.request_id = headers.get("x-amzn-requestid")
    return exc
