"""The OpenAI and Anthropic encodings of an ``Answer``: JSON bodies, SSE events, errors.

Streams come back as ``(head, content, tail)`` lists of SSE event bytes so the
server can cut them after any number of content chunks.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from ..._json import dumps, loads
from ._wire import Answer, pieces

__all__ = [
    "anthropic_error",
    "anthropic_json",
    "anthropic_stream",
    "anthropic_stream_error",
    "anthropic_count_json",
    "openai_error",
    "openai_json",
    "openai_stream",
    "openai_stream_error",
]

Events = list[bytes]

# -- OpenAI ----------------------------------------------------------------------


def _openai_usage(a: Answer) -> dict[str, Any]:
    details: dict[str, Any] = {"cached_tokens": a.cache_read}
    if a.cache_write:
        details["cache_write_tokens"] = a.cache_write  # OpenRouter's field
    return {
        "prompt_tokens": a.input_tokens,
        "completion_tokens": a.output_tokens,
        "total_tokens": a.input_tokens + a.output_tokens,
        "prompt_tokens_details": details,
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def openai_json(a: Answer, rid: str, created: int) -> bytes:
    if a.refusal is not None:
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": a.refusal}
    else:
        message = {"role": "assistant", "content": a.text or None, "refusal": None}
    if a.tool_name is not None:
        message["tool_calls"] = [
            {
                "id": f"call_{rid[-12:]}",
                "type": "function",
                "function": {"name": a.tool_name, "arguments": a.tool_args},
            }
        ]
    return dumps(
        {
            "id": f"chatcmpl-{rid}",
            "object": "chat.completion",
            "created": created,
            "model": a.model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": a.finish}
            ],
            "usage": _openai_usage(a),
            "system_fingerprint": "fp_fake",
        }
    )


def openai_stream(a: Answer, rid: str, created: int, n: int) -> tuple[Events, Events, Events]:
    base = {
        "id": f"chatcmpl-{rid}",
        "object": "chat.completion.chunk",
        "created": created,
        "model": a.model,
        "system_fingerprint": "fp_fake",
    }
    if a.include_usage:
        base["usage"] = None

    def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
        chunk = dict(
            base, choices=[{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        )
        return b"data: " + dumps(chunk) + b"\n\n"

    content: Events = []
    if a.tool_name is not None:
        call = {
            "index": 0,
            "id": f"call_{rid[-12:]}",
            "type": "function",
            "function": {"name": a.tool_name, "arguments": ""},
        }
        head = [event({"role": "assistant", "content": None, "tool_calls": [call]})]
        for piece in pieces(a.tool_args, n):
            content.append(event({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
    elif a.refusal is not None:
        head = [event({"role": "assistant", "content": None, "refusal": ""})]
        content = [event({"refusal": piece}) for piece in pieces(a.refusal, n)]
    else:
        head = [event({"role": "assistant", "content": "", "refusal": None})]
        content = [event({"content": piece}) for piece in pieces(a.text, n)]
    tail = [event({}, a.finish)]
    if a.include_usage:
        usage_chunk = dict(base, choices=[], usage=_openai_usage(a))
        tail.append(b"data: " + dumps(usage_chunk) + b"\n\n")
    tail.append(b"data: [DONE]\n\n")
    return head, content, tail


_OPENAI_ERRORS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "not_found"),
    408: ("timeout", None),
    409: ("conflict", None),
    413: ("invalid_request_error", "request_too_large"),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}


def _message(status: int) -> str:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Overloaded" if status == 529 else "Error"
    return f"{phrase} (fake server, HTTP {status})"


def openai_error(status: int, message: str | None = None, error_type: str | None = None) -> bytes:
    kind, code = _OPENAI_ERRORS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None)
    )
    error = {
        "message": message or _message(status),
        "type": error_type or kind,
        "param": None,
        "code": code,
    }
    return dumps({"error": error})


def openai_stream_error(message: str, error_type: str | None) -> bytes:
    error = {"message": message, "type": error_type or "server_error", "param": None, "code": None}
    return b"data: " + dumps({"error": error}) + b"\n\n"


# -- Anthropic -------------------------------------------------------------------

_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def _anthropic_stop(a: Answer) -> str:
    return "refusal" if a.refusal is not None else _STOP[a.finish]


def _anthropic_usage(a: Answer, output_tokens: int | None = None) -> dict[str, Any]:
    return {
        "input_tokens": a.input_tokens - a.cache_read - a.cache_write,
        "output_tokens": a.output_tokens if output_tokens is None else output_tokens,
        "cache_creation_input_tokens": a.cache_write,
        "cache_read_input_tokens": a.cache_read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": a.cache_write - a.cache_write_1h,
            "ephemeral_1h_input_tokens": a.cache_write_1h,
        },
    }


def _anthropic_block(a: Answer, rid: str) -> dict[str, Any]:
    if a.tool_name is not None:
        return {
            "type": "tool_use",
            "id": f"toolu_{rid}",
            "name": a.tool_name,
            "input": loads(a.tool_args),
        }
    return {"type": "text", "text": a.text}


def anthropic_json(a: Answer, rid: str) -> bytes:
    return dumps(
        {
            "id": f"msg_{rid}",
            "type": "message",
            "role": "assistant",
            "model": a.model,
            "content": [_anthropic_block(a, rid)],
            "stop_reason": _anthropic_stop(a),
            "stop_sequence": None,
            "usage": _anthropic_usage(a),
        }
    )


def _sse(name: str, obj: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + dumps(obj) + b"\n\n"


def anthropic_stream(a: Answer, rid: str, n: int) -> tuple[Events, Events, Events]:
    start_usage = _anthropic_usage(a, 1)
    message: dict[str, Any] = {
        "id": f"msg_{rid}",
        "type": "message",
        "role": "assistant",
        "model": a.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": start_usage,
    }
    if a.tool_name is not None:
        block: dict[str, Any] = {
            "type": "tool_use",
            "id": f"toolu_{rid}",
            "name": a.tool_name,
            "input": {},
        }
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces(a.tool_args, n)]
    else:
        block = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": p} for p in pieces(a.text, n)]
    head = [
        _sse("message_start", {"type": "message_start", "message": message}),
        _sse(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": block},
        ),
        _sse("ping", {"type": "ping"}),
    ]
    content = [
        _sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": d})
        for d in deltas
    ]
    tail = [
        _sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
        _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": _anthropic_stop(a), "stop_sequence": None},
                "usage": {"output_tokens": a.output_tokens},
            },
        ),
        _sse("message_stop", {"type": "message_stop"}),
    ]
    return head, content, tail


_ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def anthropic_error(
    status: int, message: str | None, error_type: str | None, request_id: str
) -> bytes:
    kind = error_type or _ANTHROPIC_ERRORS.get(
        status, "api_error" if status >= 500 else "invalid_request_error"
    )
    error = {"type": kind, "message": message or _message(status)}
    return dumps({"type": "error", "error": error, "request_id": request_id})


def anthropic_count_json(tokens: int) -> bytes:
    """The answer of ``POST /v1/messages/count_tokens``."""
    return dumps({"input_tokens": tokens})


def anthropic_stream_error(message: str, error_type: str | None) -> bytes:
    error = {"type": error_type or "overloaded_error", "message": message}
    return _sse("error", {"type": "error", "error": error})
