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
from .._redact import redact_text
from ..errors import APIError, StreamError, error_for_status
from ..types import ChatResponse, FinishReason, Message, ToolCall, Usage, fast_construct, make_usage

__all__ = [
    "decode_embeddings",
    "error_from_body",
    "error_from_payload",
    "finish_reason",
    "message_to_wire",
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


def finish_reason(value: object) -> FinishReason | None:
    """The wire ``finish_reason`` normalised; unknown values (``error``, ...) are ``None``."""
    if isinstance(value, str):
        return _FINISH.get(value) or _FINISH.get(value.lower())
    return None


def message_to_wire(message: Message) -> dict[str, Any]:
    """One ``Message`` as the OpenAI wire dict, ``None`` fields left out."""
    out: dict[str, Any] = {"role": message.role}
    if message.content is not None:
        out["content"] = message.content
    if message.name is not None:
        out["name"] = message.name
    if message.tool_calls:
        out["tool_calls"] = [
            {
                "id": tc.id,
                "type": "function",
                "function": {"name": tc.name, "arguments": tc.arguments},
            }
            for tc in message.tool_calls
        ]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    return out


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_from_wire(data: object) -> Usage:
    """``Usage`` from an OpenAI/OpenRouter ``usage`` object (missing fields are 0)."""
    if not isinstance(data, dict):
        return make_usage()
    prompt = _int(data.get("prompt_tokens"))
    completion = _int(data.get("completion_tokens"))
    cached = cache_write = reasoning = 0
    details = data.get("prompt_tokens_details")
    if details and isinstance(details, dict):
        cached = _int(details.get("cached_tokens"))
        cache_write = _int(details.get("cache_write_tokens"))
    details = data.get("completion_tokens_details")
    if details and isinstance(details, dict):
        reasoning = _int(details.get("reasoning_tokens"))
    cost = data.get("cost")
    return make_usage(
        prompt,
        completion,
        _int(data.get("total_tokens")) or prompt + completion,
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
    reason: FinishReason | None = None
    tool_calls: list[ToolCall] = []
    if choices:
        choice = choices[0]
        msg = choice["message"]
        if not isinstance(msg, dict):
            raise TypeError("'message' is not an object")
        content = text_of(msg.get("content"))
        if not content:
            refusal = msg.get("refusal")
            if isinstance(refusal, str):
                content = refusal  # a refusal is the answer the user sees
        r = msg.get("reasoning") or msg.get("reasoning_content")
        reasoning = r if isinstance(r, str) and r else None
        reason = finish_reason(choice.get("finish_reason"))
        raw_calls = msg.get("tool_calls")
        if raw_calls:
            for i, tc in enumerate(raw_calls):
                fn = tc["function"]
                tool_calls.append(
                    fast_construct(
                        ToolCall,
                        id=str(tc.get("id") or f"call_{i}"),
                        name=str(fn["name"]),
                        arguments=tool_call_arguments(fn.get("arguments")),
                    )
                )
    message = fast_construct(
        Message,
        role="assistant",
        content=content,
        name=None,
        tool_calls=tool_calls or None,
        tool_call_id=None,
    )
    return fast_construct(
        ChatResponse,
        id=str(data.get("id") or ""),
        model=str(data.get("model") or ""),
        provider=provider,
        content=content,
        message=message,
        finish_reason=reason,
        tool_calls=tool_calls,
        usage=usage_from_wire(data.get("usage")),
        cost=None,
        cached=False,
        latency_ms=0.0,
        reasoning=reasoning,
        request_id=headers.get("x-request-id"),
        raw=data,
        stream=None,
        headers=None,
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
            raw = meta.get("raw")
            if raw:
                raw_text = raw if isinstance(raw, str) else _json.dumps_text(raw)
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
        if err:
            return error_from_payload(
                err, status=status, provider=provider, headers=headers, body=data
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
            )
    message = shorten(text) or f"HTTP {status}"
    return error_for_status(status, message, provider=provider, headers=headers, body=text)


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
