"""AWS Bedrock Converse as ``FakeLLMServer`` writes it (``/model/{id}/converse[-stream]``).

Streams are AWS's binary event stream: one message per event with correct
prelude and message CRCs (a ``malformed`` fault sends one with a broken
message CRC), in-band errors as ``exception`` messages. Errors carry
``x-amzn-errortype``; the fake checks no signature.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..._json import dumps, loads
from ...transports.eventstream import encode_message
from ._wire import MEDIA_TOKENS, Answer, cache_marks, pieces

if TYPE_CHECKING:
    from ._dialect import Events, Header, Route

__all__ = ["BEDROCK_DIALECT", "EVENTSTREAM", "event_frame"]

EVENTSTREAM = "application/vnd.amazon.eventstream"
_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
_ERRORS = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}


def event_frame(event_type: str, payload: dict[str, Any]) -> bytes:
    """One ``event`` message of a ConverseStream answer."""
    headers = {
        ":event-type": event_type,
        ":content-type": "application/json",
        ":message-type": "event",
    }
    return encode_message(headers, dumps(payload))


def _blocks_text(blocks: object) -> str:
    if isinstance(blocks, str):
        return blocks
    if not isinstance(blocks, list):
        return ""
    out: list[str] = []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            out.append(block["text"])
        result = block.get("toolResult")
        if isinstance(result, dict):
            out.append(_blocks_text(result.get("content")))
        if "json" in block:
            out.append(json.dumps(block["json"]))
    return " ".join(out)


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    system = body.get("system")
    if isinstance(system, list) and system:
        out.append({"role": "system", "content": _blocks_text(system)})
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise ValueError("'messages' (list) is required")
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            raise ValueError("every message needs role 'user' or 'assistant'")
        content = m.get("content")
        results = isinstance(content, list) and any(
            isinstance(b, dict) and "toolResult" in b for b in content
        )
        role = "tool" if results and m["role"] == "user" else m["role"]
        out.append({"role": role, "content": _blocks_text(content)})
    return out


def _tools(config: object) -> list[dict[str, Any]] | None:
    tools = config.get("tools") if isinstance(config, dict) else None
    out = []
    for tool in tools or ():
        spec = tool.get("toolSpec") if isinstance(tool, dict) else None
        if isinstance(spec, dict):
            schema = spec.get("inputSchema")
            params = schema.get("json") if isinstance(schema, dict) else {}
            out.append(
                {"type": "function", "function": {"name": spec.get("name"), "parameters": params}}
            )
    return out or None


def _usage(a: Answer) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "inputTokens": a.input_tokens - a.cache_read - a.cache_write,
        "outputTokens": a.output_tokens,
        "totalTokens": a.input_tokens + a.output_tokens,
        "cacheReadInputTokens": a.cache_read,
        "cacheWriteInputTokens": a.cache_write,
    }
    if a.cache_write:  # writes by TTL, one hour first, as Converse sorts them
        details = [("1h", a.cache_write_1h), ("5m", a.cache_write - a.cache_write_1h)]
        usage["cacheDetails"] = [{"ttl": t, "inputTokens": n} for t, n in details if n]
    return usage


_MEDIA = ("image", "document", "video", "audio")


def _stop(a: Answer) -> str:
    return "content_filtered" if a.refusal is not None else _STOP[a.finish]


def _cache_marks(body: dict[str, Any]) -> list[tuple[str, int, str]]:
    """``PromptCache`` marks: each ``cachePoint`` block marks everything before it."""
    items: list[tuple[Any, int, Any]] = []
    config = body.get("toolConfig")
    for tool in config.get("tools") or () if isinstance(config, dict) else ():
        point = tool.get("cachePoint") if isinstance(tool, dict) else None
        items.append((tool, 0, point if isinstance(point, dict) else None))
    system = body.get("system")
    blocks: list[Any] = [("system", b) for b in system] if isinstance(system, list) else []
    for m in body.get("messages") or ():
        if isinstance(m, dict) and isinstance(m.get("content"), list):
            blocks.extend((m.get("role"), b) for b in m["content"])
    for role, block in blocks:
        point = block.get("cachePoint") if isinstance(block, dict) else None
        if isinstance(point, dict):
            items.append((None, 0, point))
            continue
        media = isinstance(block, dict) and any(k in block for k in _MEDIA)
        tokens = MEDIA_TOKENS if media else len(_blocks_text([block]).split())
        items.append(([role, block], tokens, None))
    return cache_marks(items)


def _corrupt(frame: bytes) -> bytes:
    """``frame`` with a message CRC that does not match."""
    return frame[:-1] + bytes([frame[-1] ^ 0xFF])


class _Bedrock:
    name = "bedrock"
    request_id_header = "x-amzn-requestid"
    stream_headers: list[Header] = [("content-type", EVENTSTREAM)]

    malformed_event = _corrupt(event_frame("contentBlockDelta", {"contentBlockIndex": 0}))

    def normalize(self, body: dict[str, Any], route: Route) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model": route.model,
            "messages": _messages(body),
            "stream": bool(route.stream),
        }
        config = body.get("toolConfig")
        tools = _tools(config)
        if tools:
            out["tools"] = tools
        if isinstance(config, dict) and isinstance(config.get("toolChoice"), dict):
            out["tool_choice"] = config["toolChoice"]
        media = sum(
            1
            for m in body.get("messages") or ()
            if isinstance(m, dict)
            for b in m.get("content") or ()
            if isinstance(b, dict) and any(k in b for k in _MEDIA)
        )
        if media:
            out["_media"] = media
        if "cachePoint" in dumps(body).decode():
            marks = _cache_marks(body)
            if marks:
                out["_cache_marks"] = marks
        inference = body.get("inferenceConfig")
        if isinstance(inference, dict) and isinstance(inference.get("maxTokens"), int):
            out["max_tokens"] = inference["maxTokens"]
        output = body.get("outputConfig")
        fmt = output.get("textFormat") if isinstance(output, dict) else None
        structure = fmt.get("structure") if isinstance(fmt, dict) else None
        spec = structure.get("jsonSchema") if isinstance(structure, dict) else None
        if isinstance(spec, dict) and isinstance(spec.get("schema"), str):
            out["response_format"] = {
                "type": "json_schema",
                "json_schema": {"schema": loads(spec["schema"])},
            }
        return out

    def json(self, a: Answer, rid: str, created: int) -> bytes:
        if a.tool_name is not None:
            block: dict[str, Any] = {
                "toolUse": {
                    "toolUseId": f"tooluse_{rid}",
                    "name": a.tool_name,
                    "input": loads(a.tool_args or "{}"),
                }
            }
        else:
            block = {"text": a.text}
        return dumps(
            {
                "output": {"message": {"role": "assistant", "content": [block]}},
                "stopReason": _stop(a),
                "usage": _usage(a),
                "metrics": {"latencyMs": 1},
            }
        )

    def stream(self, a: Answer, rid: str, created: int, n: int) -> tuple[Events, Events, Events]:
        head = [event_frame("messageStart", {"role": "assistant"})]
        if a.tool_name is not None:
            use = {"toolUseId": f"tooluse_{rid}", "name": a.tool_name}
            head.append(
                event_frame(
                    "contentBlockStart", {"contentBlockIndex": 0, "start": {"toolUse": use}}
                )
            )
            deltas: list[dict[str, Any]] = [
                {"toolUse": {"input": p}} for p in pieces(a.tool_args, n)
            ]
        else:
            deltas = [{"text": p} for p in pieces(a.text, n)]
        content = [
            event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": d}) for d in deltas
        ]
        tail = [
            event_frame("contentBlockStop", {"contentBlockIndex": 0}),
            event_frame("messageStop", {"stopReason": _stop(a)}),
            event_frame("metadata", {"usage": _usage(a), "metrics": {"latencyMs": 1}}),
        ]
        return head, content, tail

    def error(self, status: int, message: str | None, error_type: str | None, rid: str) -> bytes:
        kind = error_type or _ERRORS.get(status, "InternalServerException")
        return dumps({"message": message or f"{kind} (fake server, HTTP {status})"})

    def error_headers(self, status: int, error_type: str | None) -> list[Header]:
        kind = error_type or _ERRORS.get(status, "InternalServerException")
        return [
            ("x-amzn-errortype", f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/")
        ]

    def stream_error(self, message: str, error_type: str | None) -> Events:
        headers = {
            ":exception-type": error_type or "internalServerException",
            ":content-type": "application/json",
            ":message-type": "exception",
        }
        return [encode_message(headers, dumps({"message": message}))]


BEDROCK_DIALECT = _Bedrock()
