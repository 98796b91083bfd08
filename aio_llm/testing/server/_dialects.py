"""The wire formats ``FakeLLMServer`` speaks, and which URL paths speak which.

A ``Dialect`` knows one format: how to read a chat request into the common
OpenAI-like body that ``_wire.plan_answer`` decides from, how to write the
answer as JSON or as stream events (``head``, ``content``, ``tail``, so the
server can cut a stream after any content chunk), and how to write errors,
in-band stream errors and a malformed event. ``route_of`` maps a request
path to its ``Route``: the dialect, plus the model and the stream flag when
the path carries them (Gemini, Bedrock, Azure deployments).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from . import _formats as fmt
from ._dialect import (
    BEDROCK,
    CHAT,
    COUNT,
    EMBED,
    GEMINI,
    JSON,
    MESSAGES,
    RESPONSES,
    SSE_HEADERS,
    STREAMED,
    Dialect,
    Events,
    Header,
    Route,
)
from ._fmt_bedrock import BEDROCK_DIALECT
from ._fmt_gemini import GEMINI_DIALECT
from ._fmt_responses import RESPONSES_DIALECT
from ._wire import Answer, message_marks

__all__ = [
    "ANTHROPIC",
    "BEDROCK",
    "CHAT",
    "COUNT",
    "EMBED",
    "GEMINI",
    "JSON",
    "MESSAGES",
    "OPENAI",
    "RESPONSES",
    "SSE_HEADERS",
    "STREAMED",
    "Dialect",
    "Events",
    "Route",
    "route_of",
]


class _OpenAI:
    name = "openai"
    request_id_header = "x-request-id"
    stream_headers = SSE_HEADERS
    malformed_event = b"data: {not json\n\n"

    def normalize(self, body: dict[str, Any], route: Route) -> dict[str, Any]:
        if route.model is not None and "model" not in body:
            body = {**body, "model": route.model}  # an Azure deployment URL names the model
        messages = body.get("messages")
        if isinstance(messages, list) and any(
            isinstance(m, dict) and isinstance(m.get("content"), list) for m in messages
        ):  # cache_control markers in parts, as OpenRouter takes them
            marks = message_marks(messages)
            if marks:
                body = {**body, "_cache_marks": marks}
        return body

    def json(self, a: Answer, rid: str, created: int) -> bytes:
        return fmt.openai_json(a, rid, created)

    def stream(self, a: Answer, rid: str, created: int, n: int) -> tuple[Events, Events, Events]:
        return fmt.openai_stream(a, rid, created, n)

    def error(self, status: int, message: str | None, error_type: str | None, rid: str) -> bytes:
        return fmt.openai_error(status, message, error_type)

    def error_headers(self, status: int, error_type: str | None) -> list[Header]:
        return []

    def stream_error(self, message: str, error_type: str | None) -> Events:
        return [fmt.openai_stream_error(message, error_type), b"data: [DONE]\n\n"]


class _Anthropic(_OpenAI):
    name = "anthropic"
    request_id_header = "request-id"
    malformed_event = b"event: content_block_delta\ndata: {not json\n\n"

    def normalize(self, body: dict[str, Any], route: Route) -> dict[str, Any]:
        out = dict(body)
        config = body.get("output_config")
        spec = config.get("format") if isinstance(config, dict) else None
        if isinstance(spec, dict) and isinstance(spec.get("schema"), dict):
            out["response_format"] = {"type": "json_schema", "json_schema": spec}
        marks = message_marks(body.get("messages"), body.get("system"), body.get("tools"))
        if marks:
            out["_cache_marks"] = marks
        return out

    def json(self, a: Answer, rid: str, created: int) -> bytes:
        return fmt.anthropic_json(a, rid)

    def stream(self, a: Answer, rid: str, created: int, n: int) -> tuple[Events, Events, Events]:
        return fmt.anthropic_stream(a, rid, n)

    def error(self, status: int, message: str | None, error_type: str | None, rid: str) -> bytes:
        return fmt.anthropic_error(status, message, error_type, f"req_{rid}")

    def stream_error(self, message: str, error_type: str | None) -> Events:
        return [fmt.anthropic_stream_error(message, error_type)]


OPENAI: Dialect = _OpenAI()
ANTHROPIC: Dialect = _Anthropic()


def _exact() -> dict[str, Route]:
    chat = Route(CHAT, OPENAI)
    embed = Route(EMBED, OPENAI)
    responses = Route(RESPONSES, RESPONSES_DIALECT)
    return {
        "/v1/responses": responses,
        "/responses": responses,
        "/openai/v1/responses": responses,
        "/openai/responses": responses,
        "/v1/chat/completions": chat,
        "/chat/completions": chat,
        "/api/v1/chat/completions": chat,
        "/openai/v1/chat/completions": chat,
        "/v1/messages": Route(MESSAGES, ANTHROPIC),
        "/v1/messages/count_tokens": Route(COUNT, ANTHROPIC),
        "/v1/responses/input_tokens": Route(COUNT, RESPONSES_DIALECT),
        "/responses/input_tokens": Route(COUNT, RESPONSES_DIALECT),
        "/v1/embeddings": embed,
        "/embeddings": embed,
        "/api/v1/embeddings": embed,
        "/openai/v1/embeddings": embed,
    }


_ROUTES = _exact()
_PATTERNS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], Route]]] = [
    (
        re.compile(r"/openai/deployments/([^/]+)/chat/completions"),
        lambda m: Route(CHAT, OPENAI, unquote(m[1])),
    ),
    (
        re.compile(r"/openai/deployments/([^/]+)/embeddings"),
        lambda m: Route(EMBED, OPENAI, unquote(m[1])),
    ),
    (
        re.compile(
            r"(?:/v1beta|/v1)?/(?:models|tunedModels)/([^/:]+):(generate|streamGenerate)Content"
        ),
        lambda m: Route(GEMINI, GEMINI_DIALECT, unquote(m[1]), m[2] == "streamGenerate"),
    ),
    (
        re.compile(r"(?:/v1beta|/v1)?/(?:models|tunedModels)/([^/:]+):countTokens"),
        lambda m: Route(COUNT, GEMINI_DIALECT, unquote(m[1])),
    ),
    (
        re.compile(r"/model/([^/]+)/count-tokens"),
        lambda m: Route(COUNT, BEDROCK_DIALECT, unquote(m[1])),
    ),
    (
        re.compile(r"/model/([^/]+)/(converse|converse-stream)"),
        lambda m: Route(BEDROCK, BEDROCK_DIALECT, unquote(m[1]), m[2] == "converse-stream"),
    ),
]


def route_of(path: str) -> Route | None:
    """The ``Route`` for a request path (no query string), or ``None``."""
    route = _ROUTES.get(path)
    if route is not None:
        return route
    for pattern, make in _PATTERNS:
        m = pattern.fullmatch(path)
        if m is not None:
            return make(m)
    return None
