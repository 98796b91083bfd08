"""From a parsed API request (and maybe a ``Fault``) to the ``Reply`` to write.

The route's ``Dialect`` (``_dialects``) writes the format: OpenAI chat
completions, Anthropic Messages, the Responses API, Gemini or Bedrock
Converse. Faults behave the same in every one of them.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import Any

from ..._json import dumps, loads
from . import _formats as fmt
from ._conn import Reply
from ._dialects import CHAT, COUNT, EMBED, JSON, MESSAGES, Route
from ._faults import Fault
from ._wire import Answer, PromptCache, embeddings_json, plan_answer, prompt_tokens

__all__ = [
    "CHAT",
    "EMBED",
    "JSON",
    "MESSAGES",
    "build_reply",
    "fault_reply",
    "no_route_reply",
    "rate_limited_reply",
]

_EVENTSTREAM = "application/vnd.amazon.eventstream"


def build_reply(
    route: Route,
    body_bytes: bytes,
    fault: Fault | None,
    *,
    rid: str,
    created: int,
    reply: str | Callable[[dict[str, Any]], str] | None,
    seed: int,
    stream_chunks: int,
    extra_headers: list[tuple[str, str]] | None = None,
    structured: str = "valid",
    cache: PromptCache | None = None,
) -> Reply:
    """The answer to an API request on ``route``, with ``fault`` applied."""
    dialect = route.dialect
    headers = [JSON, (dialect.request_id_header, f"req_{rid}")]
    fkind = "ok" if fault is None else fault.kind
    if fault is not None and fkind in ("status", "raw"):
        return fault_reply(fault, headers, route, rid)
    answer: Answer | None = None
    try:
        body = loads(body_bytes)
        if not isinstance(body, dict):
            raise ValueError("the request body must be a JSON object")
        if route.kind == EMBED:
            payload = embeddings_json(dialect.normalize(body, route), seed)
        elif route.kind == COUNT:
            payload = _count(route, body)
        else:
            answer = plan_answer(
                dialect.normalize(body, route),
                reply,
                anthropic=route.kind == MESSAGES,
                structured=structured,
                cache=cache,
            )
    except ValueError as exc:  # also JSON and UTF-8 decoding errors
        return _error(route, 400, f"Invalid request: {exc}", None, headers, rid)
    if extra_headers:
        headers += extra_headers
    if answer is None or not answer.stream:
        if fault is not None and fkind == "stream_error":
            return fault_reply(Fault.status(500, message=fault.message), headers, route, rid)
        if answer is not None:
            payload = dialect.json(answer, rid, created)
        if fkind == "malformed":
            payload = payload[: len(payload) // 2]
        return Reply(200, headers, payload, cut=fkind == "truncate")
    head, content, tail = dialect.stream(answer, rid, created, stream_chunks)
    headers[0:1] = dialect.stream_headers
    if fault is None or fkind == "ok":
        return Reply(200, headers, events=head + content + tail)
    k = fault.after_chunks
    if fkind == "truncate":
        return Reply(200, headers, events=head + content[:k], cut=not fault.clean)
    if fkind == "stream_error":
        err = dialect.stream_error(fault.message or "stream error", fault.error_type)
        return Reply(200, headers, events=head + content[:k] + err)
    bad = dialect.malformed_event  # malformed
    return Reply(200, headers, events=head + content[:1] + [bad] + content[1:] + tail)


def _count(route: Route, body: dict[str, Any]) -> bytes:
    """The answer of a token-counting route, in the fake's tokens (as its usage would say)."""
    dialect = route.dialect
    if dialect.name == "anthropic":
        normal = dialect.normalize({**body, "max_tokens": 1}, route)
        return fmt.anthropic_count_json(prompt_tokens(normal, anthropic=True))
    if dialect.name == "gemini":
        inner = body.get("generateContentRequest")
        normal = dialect.normalize(inner if isinstance(inner, dict) else body, route)
        return dumps({"totalTokens": prompt_tokens(normal, anthropic=False)})
    if dialect.name == "bedrock":
        inner = body.get("input")
        converse = inner.get("converse") if isinstance(inner, dict) else None
        normal = dialect.normalize(converse if isinstance(converse, dict) else body, route)
        return dumps({"inputTokens": prompt_tokens(normal, anthropic=False)})
    normal = dialect.normalize(body, route)  # the Responses API's input_tokens
    tokens = prompt_tokens(normal, anthropic=False)
    return dumps({"object": "response.input_tokens", "input_tokens": tokens})


def _error(
    route: Route,
    status: int,
    message: str | None,
    error_type: str | None,
    headers: list[tuple[str, str]],
    rid: str,
) -> Reply:
    dialect = route.dialect
    out = headers + dialect.error_headers(status, error_type)
    return Reply(status, out, dialect.error(status, message, error_type, rid))


def _frames(raw: bytes) -> list[bytes]:
    """An event-stream body split into its messages (by their length prelude)."""
    out: list[bytes] = []
    pos = 0
    while pos + 4 <= len(raw):
        (total,) = struct.unpack_from(">I", raw, pos)
        if total < 16:
            break
        out.append(raw[pos : pos + total])
        pos += total
    if pos < len(raw):
        out.append(raw[pos:])
    return out


def fault_reply(fault: Fault, headers: list[tuple[str, str]], route: Route, rid: str) -> Reply:
    """The answer for a ``status`` or ``raw`` fault."""
    if fault.kind == "raw":
        skip = ("content-length", "transfer-encoding", "connection")
        raw_headers = [(k, v) for k, v in fault.headers if k not in skip]
        raw = fault.body or b""
        ctype = next((v for k, v in raw_headers if k == "content-type"), "")
        if ctype.startswith(_EVENTSTREAM):
            return Reply(fault.code, raw_headers, events=_frames(raw))
        if not ctype.startswith("text/event-stream"):
            return Reply(fault.code, raw_headers, raw)
        sep = b"\r\n\r\n" if b"\r\n\r\n" in raw else b"\n\n"
        parts = raw.split(sep)
        events = [p + sep for p in parts[:-1]]
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
        return Reply(fault.code, out, fault.body)
    return _error(route, fault.code, fault.message, fault.error_type, out, rid)


def rate_limited_reply(
    wait: float, limit_headers: list[tuple[str, str]], route: Route, rid: str
) -> Reply:
    """429 with ``Retry-After`` (whole seconds, rounded up) and the window's headers."""
    headers = [JSON, ("retry-after", str(math.ceil(wait))), *limit_headers]
    message = None if route.kind == MESSAGES else "Rate limit reached for requests (fake server)"
    return _error(route, 429, message, None, headers, rid)


def no_route_reply(method: str, path: str, route: Route | None) -> Reply:
    """405 on a known path with the wrong method, else 404; OpenAI error envelope."""
    if route is not None:
        body = fmt.openai_error(405, f"Method {method} not allowed on {path}")
        return Reply(405, [JSON, ("allow", "POST")], body)
    return Reply(404, [JSON], fmt.openai_error(404, f"Unknown route {method} {path}"))
