"""From a parsed API request (and maybe a ``Fault``) to the ``Reply`` to write."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ..._json import loads
from . import _formats as fmt
from ._conn import Reply
from ._faults import Fault
from ._wire import Answer, embeddings_json, plan_answer

__all__ = [
    "CHAT",
    "EMBED",
    "JSON",
    "MESSAGES",
    "ROUTES",
    "build_reply",
    "fault_reply",
    "no_route_reply",
    "rate_limited_reply",
]

CHAT, MESSAGES, EMBED = 1, 2, 3
ROUTES = {
    "/v1/chat/completions": CHAT,
    "/chat/completions": CHAT,
    "/api/v1/chat/completions": CHAT,
    "/v1/messages": MESSAGES,
    "/v1/embeddings": EMBED,
    "/embeddings": EMBED,
    "/api/v1/embeddings": EMBED,
}
JSON = ("content-type", "application/json")
_SSE = [("content-type", "text/event-stream; charset=utf-8"), ("cache-control", "no-cache")]
_DONE = b"data: [DONE]\n\n"
_BAD_OPENAI = b"data: {not json\n\n"
_BAD_ANTHROPIC = b"event: content_block_delta\ndata: {not json\n\n"


def build_reply(
    kind: int,
    body_bytes: bytes,
    fault: Fault | None,
    *,
    rid: str,
    created: int,
    reply: str | Callable[[dict[str, Any]], str] | None,
    seed: int,
    stream_chunks: int,
    extra_headers: list[tuple[str, str]] | None = None,
) -> Reply:
    """The answer to an API request of route ``kind``, with ``fault`` applied."""
    anthropic = kind == MESSAGES
    headers = [JSON, ("request-id" if anthropic else "x-request-id", f"req_{rid}")]
    fkind = "ok" if fault is None else fault.kind
    if fault is not None and fkind in ("status", "raw"):
        return fault_reply(fault, headers, anthropic, rid)
    answer: Answer | None = None
    try:
        body = loads(body_bytes)
        if not isinstance(body, dict):
            raise ValueError("the request body must be a JSON object")
        if kind == EMBED:
            payload = embeddings_json(body, seed)
        else:
            answer = plan_answer(body, reply, anthropic=anthropic)
    except ValueError as exc:  # also JSON and UTF-8 decoding errors
        message = f"Invalid request: {exc}"
        if anthropic:
            return Reply(400, headers, fmt.anthropic_error(400, message, None, f"req_{rid}"))
        return Reply(400, headers, fmt.openai_error(400, message))
    if extra_headers:
        headers += extra_headers
    if answer is None or not answer.stream:
        if fault is not None and fkind == "stream_error":
            return fault_reply(Fault.status(500, message=fault.message), headers, anthropic, rid)
        if answer is not None:
            if anthropic:
                payload = fmt.anthropic_json(answer, rid)
            else:
                payload = fmt.openai_json(answer, rid, created)
        if fkind == "malformed":
            payload = payload[: len(payload) // 2]
        return Reply(200, headers, payload, cut=fkind == "truncate")
    if anthropic:
        head, content, tail = fmt.anthropic_stream(answer, rid, stream_chunks)
    else:
        head, content, tail = fmt.openai_stream(answer, rid, created, stream_chunks)
    headers[0:1] = _SSE
    if fault is None or fkind == "ok":
        return Reply(200, headers, events=head + content + tail)
    k = fault.after_chunks
    if fkind == "truncate":
        return Reply(200, headers, events=head + content[:k], cut=not fault.clean)
    if fkind == "stream_error":
        message = fault.message or "stream error"
        if anthropic:
            err = [fmt.anthropic_stream_error(message, fault.error_type)]
        else:
            err = [fmt.openai_stream_error(message, fault.error_type), _DONE]
        return Reply(200, headers, events=head + content[:k] + err)
    bad = _BAD_ANTHROPIC if anthropic else _BAD_OPENAI  # malformed
    return Reply(200, headers, events=head + content[:1] + [bad] + content[1:] + tail)


def fault_reply(fault: Fault, headers: list[tuple[str, str]], anthropic: bool, rid: str) -> Reply:
    """The answer for a ``status`` or ``raw`` fault."""
    if fault.kind == "raw":
        skip = ("content-length", "transfer-encoding", "connection")
        raw_headers = [(k, v) for k, v in fault.headers if k not in skip]
        raw = fault.body or b""
        ctype = next((v for k, v in raw_headers if k == "content-type"), "")
        if not ctype.startswith("text/event-stream"):
            return Reply(fault.code, raw_headers, raw)
        parts = raw.split(b"\n\n")
        events = [p + b"\n\n" for p in parts[:-1]]
        if parts[-1]:
            events.append(parts[-1])
        return Reply(fault.code, raw_headers, events=events)
    out = list(headers)
    if fault.retry_after is not None:
        ra = fault.retry_after
        out.append(("retry-after", str(int(ra)) if ra == int(ra) else f"{ra:g}"))
    if fault.retry_after_ms is not None:
        out.append(("retry-after-ms", str(fault.retry_after_ms)))
    out.extend(fault.headers)
    if fault.body is not None:
        body = fault.body
    elif anthropic:
        body = fmt.anthropic_error(fault.code, fault.message, fault.error_type, f"req_{rid}")
    else:
        body = fmt.openai_error(fault.code, fault.message, fault.error_type)
    return Reply(fault.code, out, body)


def rate_limited_reply(
    wait: float, limit_headers: list[tuple[str, str]], anthropic: bool, rid: str
) -> Reply:
    """429 with ``Retry-After`` (whole seconds, rounded up) and the window's headers."""
    headers = [JSON, ("retry-after", str(math.ceil(wait))), *limit_headers]
    if anthropic:
        body = fmt.anthropic_error(429, None, None, f"req_{rid}")
    else:
        body = fmt.openai_error(429, "Rate limit reached for requests (fake server)")
    return Reply(429, headers, body)


def no_route_reply(method: str, path: str, kind: int | None) -> Reply:
    """405 on a known path with the wrong method, else 404; OpenAI error envelope."""
    if kind is not None:
        body = fmt.openai_error(405, f"Method {method} not allowed on {path}")
        return Reply(405, [JSON, ("allow", "POST")], body)
    return Reply(404, [JSON], fmt.openai_error(404, f"Unknown route {method} {path}"))
