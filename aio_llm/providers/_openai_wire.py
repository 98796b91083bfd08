"""The OpenAI chat-completions wire format, shared by OpenAI, OpenRouter and compatible servers.

Pure functions from wire dicts to aio_llm types and back for messages (the
SSE stream decoder is in ``_openai_stream``). Everything a server sends
that these helpers do not know (``obfuscation``, ``moderation``,
``annotations``, ``native_finish_reason``, ...) is ignored, so new extension
fields never break decoding. Objects are built with ``model_construct``:
the provider's answer is not re-validated on the hot path.
"""

from __future__ import annotations

import base64
import sys
from array import array
from collections.abc import Mapping
from typing import Any

from .. import _json
from .._conversation import (
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
from .._redact import redact_text
from ..errors import APIError, InvalidRequestError, StreamError, error_for_status
from ..types import (
    ChatResponse,
    FinishReason,
    Message,
    ToolCall,
    Usage,
    make_response,
    make_tool_call,
    make_usage,
)
from ._common import int_field
from ._error_text import describe_text_body

__all__ = [
    "FILTERED",
    "decode_embeddings",
    "error_from_body",
    "error_from_payload",
    "finish_reason",
    "message_to_wire",
    "messages_to_wire",
    "part_to_wire",
    "response_format_to_wire",
    "tool_choice_to_wire",
    "tools_to_wire",
    "parse_chat",
    "shorten",
    "text_of",
    "tool_call_arguments",
    "usage_from_wire",
]

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
    # legacy and non-OpenAI spellings seen on compatible servers
    "function_call": "tool_calls",
    "tool_use": "tool_calls",
    "eos": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_length": "length",
}

_ERROR_TEXT_LIMIT = 500

FILTERED = "the provider's content filter stopped the answer (finish_reason: content_filter)"
"""``ChatResponse.refusal`` for a ``content_filter`` finish without refusal text (Azure)."""


def finish_reason(value: object) -> FinishReason | None:
    """The wire ``finish_reason`` normalised; unknown values (``error``, ...) are ``None``."""
    if isinstance(value, str):
        return _FINISH.get(value) or _FINISH.get(value.lower())
    return None


_OPENAI_PARTS = frozenset({"text", "image_url", "input_audio", "file", "refusal"})


def message_to_wire(message: Message, markers: bool = False) -> dict[str, Any]:
    """One OpenAI-format ``Message`` as the wire dict, ``None`` fields left out.

    ``markers``: the server reads ``cache_control`` (OpenRouter, proxies): a
    message-level marker goes onto the message's last content part. Without
    it, markers are left out (OpenAI refuses keys it does not know).
    """
    out: dict[str, Any] = {"role": message.role}
    content = message.content
    if isinstance(content, list) and not markers:
        content = [_unmarked(p) for p in content]
    elif markers and message.cache_control is not None and content:
        content = _marked(content, message.cache_control)
    if content is not None and (content or not message.tool_calls):
        out["content"] = content  # a call-only turn has none, as the SDKs write it
    if message.name is not None:
        out["name"] = message.name
    if message.tool_calls:
        out["tool_calls"] = [_call_to_wire(tc) for tc in message.tool_calls]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    return out


def _unmarked(part: dict[str, Any]) -> dict[str, Any]:
    if "cache_control" not in part:
        return part
    return {k: v for k, v in part.items() if k != "cache_control"}


def _marked(content: str | list[dict[str, Any]], cache: dict[str, Any]) -> list[dict[str, Any]]:
    """``content`` as parts, the last one carrying ``cache_control``."""
    parts: list[dict[str, Any]] = (
        [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
    )
    parts[-1] = {**parts[-1], "cache_control": dict(cache)}
    return parts


def messages_to_wire(messages: list[Message], markers: bool = False) -> list[dict[str, Any]]:
    """The ``messages`` of a chat-completions body, from messages in any accepted format.

    Messages already in OpenAI's format (string content, or OpenAI's part
    types) go out as they are, in one pass; any other shape (Anthropic
    blocks, Responses parts) sends the whole list through the canonical
    conversation, since one message there may become several here.
    ``markers``: keep ``cache_control`` markers (see ``message_to_wire``).
    """
    out: list[dict[str, Any]] = []
    for m in messages:
        content = m.content
        if (
            content is None
            or isinstance(content, str)
            or (m.role != "assistant" and all(p.get("type") in _OPENAI_PARTS for p in content))
        ):
            out.append(message_to_wire(m, markers))
            continue
        turns = conversation(messages)
        return [wire for turn in turns for wire in _turn_to_wire(turn, markers)]
    return out


def tools_to_wire(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool definitions as chat completions wants them (Anthropic's and flat ones translated)."""
    if all(t.get("type") == "function" and "function" in t for t in tools):
        return tools
    out: list[dict[str, Any]] = []
    for spec in tool_specs(tools):
        if isinstance(spec, Opaque):
            out.append(dict(spec.raw))
            continue
        fn: dict[str, Any] = {"name": spec.name}
        if spec.description is not None:
            fn["description"] = spec.description
        fn["parameters"] = dict(spec.parameters)
        if spec.strict is not None:
            fn["strict"] = spec.strict
        out.append({"type": "function", "function": fn})
    return out


def tool_choice_to_wire(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    """``tool_choice`` in chat completions' shape (Anthropic's and Bedrock's translated)."""
    if choice in ("auto", "none", "required"):
        return choice
    parsed = tool_choice(choice)
    if isinstance(parsed, Opaque) or parsed is None:
        return choice
    if parsed.mode == "tool":
        return {"type": "function", "function": {"name": parsed.name}}
    return parsed.mode


def response_format_to_wire(fmt: dict[str, Any] | type[Any]) -> dict[str, Any]:
    """``response_format`` in chat completions' shape.

    A pydantic class becomes a strict ``json_schema`` (its schema made
    strict-compatible as the official SDK does); the Responses API's flat
    shape is nested; anything else goes as given.
    """
    if isinstance(fmt, dict) and (fmt.get("type") != "json_schema" or "json_schema" in fmt):
        return fmt
    parsed = output_format(fmt)
    assert parsed is not None and parsed.schema is not None
    spec: dict[str, Any] = {"name": parsed.name, "schema": provider_schema(parsed, "strict")}
    if parsed.strict is not None:
        spec["strict"] = parsed.strict
    if parsed.description is not None:
        spec["description"] = parsed.description
    return {"type": "json_schema", "json_schema": spec}


def _call_to_wire(tc: ToolCall) -> dict[str, Any]:
    return {
        "id": tc.id,
        "type": "function",
        "function": {"name": tc.name, "arguments": tc.arguments},
    }


def _turn_to_wire(turn: Turn, markers: bool = False) -> list[dict[str, Any]]:
    role = turn.role
    if role == "tool":
        out: list[dict[str, Any]] = []
        media: list[dict[str, Any]] = []
        for r in turn.results:
            text = r.text
            if r.is_error and text:
                text = f"Error: {text}"
            out.append({"role": "tool", "tool_call_id": r.call_id, "content": text})
            media.extend(part_to_wire(p, markers) for p in r.parts if not isinstance(p, Text))
        if media:  # tool messages take text only: images and files follow as a user turn
            out.append({"role": "user", "content": media})
        return out
    msg: dict[str, Any] = {"role": role}
    plain = turn.plain_text
    if role == "assistant":
        text = turn.text
        if markers and any(isinstance(p, Text) and p.cache is not None for p in turn.parts):
            msg["content"] = [part_to_wire(p, markers) for p in turn.parts if isinstance(p, Text)]
        elif text or not turn.tool_calls:
            msg["content"] = text
        if turn.tool_calls:
            msg["tool_calls"] = [_call_to_wire(tc) for tc in turn.tool_calls]
    elif plain is not None:
        msg["content"] = plain
    else:
        msg["content"] = [part_to_wire(p, markers) for p in turn.parts]
    if turn.name is not None:
        msg["name"] = turn.name
    return [msg]


def part_to_wire(part: Part, markers: bool = False) -> dict[str, Any]:
    """One canonical content part as an OpenAI chat-completions part.

    ``markers``: keep a part's ``cache_control`` (servers that read it).
    """
    if isinstance(part, Opaque):
        return dict(part.raw)
    if part.raw is not None and (part.dialect == "openai" or part.raw.get("type") == "text"):
        return dict(part.raw) if markers else _unmarked(dict(part.raw))
    if isinstance(part, Text):
        if markers and part.cache is not None:
            return {"type": "text", "text": part.text, "cache_control": dict(part.cache)}
        return {"type": "text", "text": part.text}
    if part.kind == "image":
        if part.file_id is not None:
            raise InvalidRequestError("OpenAI chat completions take images as URLs or data")
        url = part.url if part.url is not None else data_url(part.media_type, part.data or "")
        ref: dict[str, Any] = {"url": url}
        if part.detail is not None:
            ref["detail"] = part.detail
        return {"type": "image_url", "image_url": ref}
    if part.kind == "audio":
        fmt = (part.media_type or "audio/wav").rpartition("/")[2]
        return {"type": "input_audio", "input_audio": {"data": part.data, "format": fmt}}
    if part.text is not None:
        return {"type": "text", "text": part.text}
    file: dict[str, Any] = {}
    if part.file_id is not None:
        file["file_id"] = part.file_id
    elif part.data is not None:
        file["file_data"] = data_url(part.media_type, part.data)
        file["filename"] = part.name or "document"
    else:
        raise InvalidRequestError(
            "OpenAI chat completions take documents as data or file ids, not URLs"
        )
    return {"type": "file", "file": file}


def usage_from_wire(data: object) -> Usage:
    """``Usage`` from an OpenAI/OpenRouter ``usage`` object (missing fields are 0)."""
    if not isinstance(data, dict):
        return make_usage()
    prompt = int_field(data.get("prompt_tokens"))
    completion = int_field(data.get("completion_tokens"))
    cached = cache_write = reasoning = 0
    details = data.get("prompt_tokens_details")
    if details and isinstance(details, dict):
        cached = int_field(details.get("cached_tokens"))
        cache_write = int_field(details.get("cache_write_tokens"))
    details = data.get("completion_tokens_details")
    if details and isinstance(details, dict):
        reasoning = int_field(details.get("reasoning_tokens"))
    cost = data.get("cost")
    return make_usage(
        prompt,
        completion,
        int_field(data.get("total_tokens")) or prompt + completion,
        cached,
        cache_write,
        reasoning,
        float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None,
    )


def tool_call_arguments(value: object) -> str:
    """Tool-call arguments as JSON text (some compatible servers send an object)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return _json.dumps_text(value)


def text_of(content: object) -> str:
    """Text of a wire ``content`` value: a string, ``None`` or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def parse_chat(
    data: object, *, provider: str, headers: Mapping[str, str], status: int
) -> ChatResponse:
    """A ``ChatResponse`` from a parsed chat-completion body.

    A body of the wrong shape raises ``KeyError``/``TypeError``/``ValueError``,
    which the caller turns into ``APIResponseError``.
    """
    if not isinstance(data, dict):
        raise TypeError("the body is not a JSON object")
    choices = data.get("choices")
    if choices is None and data.get("error"):
        # OpenRouter may answer 200 with an error envelope
        raise error_from_payload(data["error"], status=status, provider=provider, headers=headers)
    if not isinstance(choices, list):
        raise TypeError("'choices' is not a list")
    content = ""
    reasoning: str | None = None
    refused: str | None = None
    reason: FinishReason | None = None
    tool_calls: list[ToolCall] = []
    if choices:
        choice = choices[0]
        msg = choice["message"]
        if not isinstance(msg, dict):
            raise TypeError("'message' is not an object")
        content = text_of(msg.get("content"))
        refusal = msg.get("refusal")
        if isinstance(refusal, str) and refusal:
            refused = refusal
            if not content:
                content = refusal  # a refusal is the answer the user sees
        r = msg.get("reasoning") or msg.get("reasoning_content")
        reasoning = r if isinstance(r, str) and r else None
        reason = finish_reason(choice.get("finish_reason"))
        raw_calls = msg.get("tool_calls")
        if raw_calls:
            for i, tc in enumerate(raw_calls):
                fn = tc["function"]
                tool_calls.append(
                    make_tool_call(
                        str(tc.get("id") or f"call_{i}"),
                        str(fn["name"]),
                        tool_call_arguments(fn.get("arguments")),
                    )
                )
            reason = "tool_calls"  # a forced tool choice answers "stop" with the calls
    if reason == "content_filter" and refused is None:
        refused = FILTERED
    return make_response(
        id=str(data.get("id") or ""),
        model=str(data.get("model") or ""),
        provider=provider,
        content=content,
        finish_reason=reason,
        usage=usage_from_wire(data.get("usage")),
        tool_calls=tool_calls,
        reasoning=reasoning,
        request_id=headers.get("x-request-id"),
        raw=data,
        refusal=refused,
    )


def shorten(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _ERROR_TEXT_LIMIT else text[:_ERROR_TEXT_LIMIT] + "..."


def error_from_payload(
    err: object,
    *,
    status: int,
    provider: str,
    headers: Mapping[str, str] | None,
    body: object = None,
    raw: bytes | None = None,
) -> APIError:
    """The typed error for an ``error`` object (OpenAI or OpenRouter shape, or a bare string)."""
    code: object = None
    error_type: str | None = None
    if isinstance(err, dict):
        message = str(err.get("message") or "").strip() or f"HTTP {status}"
        code = err.get("code")
        t = err.get("type")
        error_type = t if isinstance(t, str) else None
        param = err.get("param")
        if isinstance(param, str) and param and param not in message:
            message = f"{message} (param: {param})"
        meta = err.get("metadata")
        if isinstance(meta, dict):
            upstream = meta.get("provider_name")
            if isinstance(upstream, str) and upstream:
                message = f"{message} (upstream: {upstream})"
            upstream_raw = meta.get("raw")
            if upstream_raw:
                raw_text = (
                    upstream_raw
                    if isinstance(upstream_raw, str)
                    else _json.dumps_text(upstream_raw)
                )
                message = f"{message}: {shorten(raw_text)}"
    else:
        message = shorten(str(err)) or f"HTTP {status}"
    if isinstance(code, int) and not isinstance(code, bool) and status < 400:
        status = code  # in-band error: its numeric code is the status
    code_text = None if code is None else str(code)
    if status < 400:
        return StreamError(message, provider=provider, code=code_text, body=body)
    return error_for_status(
        status,
        message,
        provider=provider,
        headers=headers,
        code=code_text,
        error_type=error_type,
        body=body,
        raw=raw,
    )


def error_from_body(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    provider: str,
    secrets: tuple[str, ...] = (),
) -> APIError:
    """The typed error for an HTTP error answer; ``secrets`` are blanked from it."""
    text = redact_text(body.decode("utf-8", errors="replace"), secrets)
    try:
        data = _json.loads(text)
    except ValueError:  # every JSON decode error is one
        data = None
    if isinstance(data, dict):
        err = data.get("error")
        if err:  # ``body`` is the error object, as the openai SDK's errors carry it
            return error_from_payload(
                err, status=status, provider=provider, headers=headers, body=err, raw=text.encode()
            )
        # vLLM-style {"object": "error", "message": ...} or FastAPI {"detail": ...}
        msg = data.get("message") or data.get("detail")
        if msg:
            return error_from_payload(
                {
                    "message": msg if isinstance(msg, str) else _json.dumps_text(msg),
                    "type": data.get("type"),
                    "code": data.get("code"),
                },
                status=status,
                provider=provider,
                headers=headers,
                body=data,
                raw=text.encode(),
            )
    message = describe_text_body(status, headers, text)
    return error_for_status(
        status, message, provider=provider, headers=headers, body=text, raw=text.encode()
    )


def decode_embeddings(data: object) -> tuple[list[list[float]], str, Usage]:
    """Vectors (in input order), model and usage from an embeddings body.

    A ``base64`` embedding is little-endian float32. A wrong shape raises
    ``KeyError``/``TypeError``/``ValueError`` for the caller to wrap.
    """
    if not isinstance(data, dict):
        raise TypeError("the body is not a JSON object")
    items = data["data"]
    if not isinstance(items, list):
        raise TypeError("'data' is not a list")
    ordered = sorted(
        ((item.get("index", i), item["embedding"]) for i, item in enumerate(items)),
        key=lambda pair: pair[0],
    )
    vectors: list[list[float]] = []
    for _, emb in ordered:
        if isinstance(emb, str):
            floats = array("f")
            floats.frombytes(base64.b64decode(emb, validate=True))
            if sys.byteorder == "big":  # pragma: no cover - little-endian hosts
                floats.byteswap()
            vectors.append(floats.tolist())
        elif isinstance(emb, list):
            vectors.append([float(x) for x in emb])
        else:
            raise TypeError("an embedding is neither a list nor base64 text")
    usage = usage_from_wire(data.get("usage"))
    return vectors, str(data.get("model") or ""), usage
