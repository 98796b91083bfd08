"""Google Gemini as ``FakeLLMServer`` writes it (``/v1beta/models/{model}:generateContent``).

Streams are ``alt=sse`` events separated by CRLF pairs, as Gemini sends them:
one chunk per text piece (or one per function call), then a final chunk with
the ``finishReason`` and the full usage. There is no end marker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..._json import dumps, loads
from ._wire import Answer, pieces

if TYPE_CHECKING:
    from ._dialect import Events, Header, Route

__all__ = ["GEMINI_DIALECT"]

_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"}
_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def _parts_text(parts: object) -> str:
    if not isinstance(parts, list):
        return ""
    out: list[str] = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("text"), str) and not part.get("thought"):
            out.append(part["text"])
        response = part.get("functionResponse")
        if isinstance(response, dict):
            out.append(dumps(response.get("response")).decode())
    return " ".join(out)


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    system = body.get("systemInstruction")
    if isinstance(system, dict):
        out.append({"role": "system", "content": _parts_text(system.get("parts"))})
    contents = body.get("contents")
    if not isinstance(contents, list):
        raise ValueError("'contents' (list) is required")
    for c in contents:
        if not isinstance(c, dict):
            raise ValueError("every content must be an object")
        parts = c.get("parts")
        results = isinstance(parts, list) and any(
            isinstance(p, dict) and "functionResponse" in p for p in parts
        )
        role = "assistant" if c.get("role") == "model" else "tool" if results else "user"
        out.append({"role": role, "content": _parts_text(parts)})
    return out


def _tools(tools: object) -> list[dict[str, Any]] | None:
    if not isinstance(tools, list):
        return None
    out = []
    for tool in tools:
        decls = tool.get("functionDeclarations") if isinstance(tool, dict) else None
        for d in decls or ():
            schema = d.get("parametersJsonSchema") or d.get("parameters") or {}
            out.append(
                {"type": "function", "function": {"name": d.get("name"), "parameters": schema}}
            )
    return out or None


def _usage(a: Answer, final: bool) -> dict[str, Any]:
    usage: dict[str, Any] = {"promptTokenCount": a.input_tokens}
    if final:
        usage["candidatesTokenCount"] = a.output_tokens
        usage["totalTokenCount"] = a.input_tokens + a.output_tokens
    else:
        usage["totalTokenCount"] = a.input_tokens
    return usage


def _chunk(a: Answer, rid: str, parts: list[dict[str, Any]], finish: bool) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = "SAFETY" if a.refusal is not None else _FINISH[a.finish]
    return {
        "candidates": [candidate],
        "usageMetadata": _usage(a, final=finish),
        "modelVersion": a.model,
        "responseId": rid,
    }


def _sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + dumps(obj) + b"\r\n\r\n"


def _call_part(a: Answer) -> dict[str, Any]:
    return {"functionCall": {"name": a.tool_name, "args": loads(a.tool_args or "{}")}}


class _Gemini:
    name = "gemini"
    request_id_header = "x-request-id"
    stream_headers: list[Header] = [("content-type", "text/event-stream")]
    malformed_event = b"data: {not json\r\n\r\n"

    def normalize(self, body: dict[str, Any], route: Route) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model": route.model,
            "messages": _messages(body),
            "stream": bool(route.stream),
        }
        tools = _tools(body.get("tools"))
        if tools:
            out["tools"] = tools
        config = body.get("toolConfig")
        calling = config.get("functionCallingConfig") if isinstance(config, dict) else None
        if isinstance(calling, dict) and calling.get("mode") == "NONE":
            out["tool_choice"] = "none"
        if isinstance(calling, dict) and calling.get("mode") == "ANY":
            names = calling.get("allowedFunctionNames")
            name = names[0] if isinstance(names, list) and len(names) == 1 else None
            out["tool_choice"] = {"type": "tool", "name": name} if name else "required"
        gen = body.get("generationConfig")
        if isinstance(gen, dict):
            if isinstance(gen.get("maxOutputTokens"), int):
                out["max_tokens"] = gen["maxOutputTokens"]
            schema = gen.get("responseJsonSchema") or gen.get("responseSchema")
            if isinstance(schema, dict):
                out["response_format"] = {"type": "json_schema", "json_schema": {"schema": schema}}
            elif gen.get("responseMimeType") == "application/json":
                out["response_format"] = {"type": "json_object"}
        media = sum(
            1
            for c in body.get("contents") or ()
            if isinstance(c, dict)
            for p in c.get("parts") or ()
            if isinstance(p, dict) and ("inlineData" in p or "fileData" in p)
        )
        if media:
            out["_media"] = media
        return out

    def json(self, a: Answer, rid: str, created: int) -> bytes:
        if a.refusal is not None:  # a safety block: no content at all
            chunk = _chunk(a, rid, [], finish=True)
            del chunk["candidates"][0]["content"]
            return dumps(chunk)
        parts = [_call_part(a)] if a.tool_name is not None else [{"text": a.text}]
        return dumps(_chunk(a, rid, parts, finish=True))

    def stream(self, a: Answer, rid: str, created: int, n: int) -> tuple[Events, Events, Events]:
        if a.refusal is not None:
            return [], [], [_sse(loads(self.json(a, rid, created)))]
        if a.tool_name is not None:
            content = [_sse(_chunk(a, rid, [_call_part(a)], finish=False))]
        else:
            content = [_sse(_chunk(a, rid, [{"text": p}], finish=False)) for p in pieces(a.text, n)]
        tail = [_sse(_chunk(a, rid, [{"text": ""}], finish=True))]
        return [], content, tail

    def error(self, status: int, message: str | None, error_type: str | None, rid: str) -> bytes:
        code = error_type or _STATUS.get(status, "INTERNAL" if status >= 500 else "UNKNOWN")
        text = message or f"{code} (fake server, HTTP {status})"
        return dumps({"error": {"code": status, "message": text, "status": code}})

    def error_headers(self, status: int, error_type: str | None) -> list[Header]:
        return []

    def stream_error(self, message: str, error_type: str | None) -> Events:
        err = {"code": 500, "message": message, "status": error_type or "INTERNAL"}
        return [_sse({"error": err})]


GEMINI_DIALECT = _Gemini()
