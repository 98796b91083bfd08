"""The OpenAI Responses API as ``FakeLLMServer`` writes it (``/v1/responses``, Azure's too)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..._json import dumps
from . import _formats as fmt
from ._wire import Answer, pieces, text_of

if TYPE_CHECKING:
    from ._dialect import Events, Header, Route

__all__ = ["RESPONSES_DIALECT"]


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    items = body.get("input")
    out: list[dict[str, Any]] = []
    if isinstance(body.get("instructions"), str) and body["instructions"]:
        out.append({"role": "system", "content": body["instructions"]})
    if isinstance(items, str):
        return [*out, {"role": "user", "content": items}]
    if not isinstance(items, list):
        raise ValueError("'input' must be a string or a list of items")
    for item in items:
        if not isinstance(item, dict):
            raise ValueError("every input item must be an object")
        kind = item.get("type", "message")
        if kind == "message":
            out.append({"role": item.get("role", "user"), "content": text_of(item.get("content"))})
        elif kind == "function_call_output":
            output = item.get("output")
            out.append({"role": "tool", "content": text_of(output)})
        elif kind == "function_call":
            out.append({"role": "assistant", "content": ""})
    return out


def _tools(tools: object) -> list[dict[str, Any]] | None:
    if not isinstance(tools, list):
        return None
    out = []
    for t in tools:
        if isinstance(t, dict) and t.get("type") == "function":
            out.append({"type": "function", "function": {"name": t.get("name"), **t}})
    return out or None


def _usage(a: Answer) -> dict[str, Any]:
    return {
        "input_tokens": a.input_tokens,
        "input_tokens_details": {"cached_tokens": a.cache_read},
        "output_tokens": a.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": a.input_tokens + a.output_tokens,
    }


def _call_item(a: Answer, rid: str, arguments: str, status: str) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": f"fc_{rid}",
        "call_id": f"call_{rid[-12:]}",
        "name": a.tool_name,
        "arguments": arguments,
        "status": status,
    }


def _message_item(text: str, rid: str, status: str, refusal: bool = False) -> dict[str, Any]:
    part = (
        {"type": "refusal", "refusal": text}
        if refusal
        else {"type": "output_text", "text": text, "annotations": []}
    )
    content = [part] if status else []
    return {
        "type": "message",
        "id": f"msg_{rid}",
        "status": status or "in_progress",
        "role": "assistant",
        "content": content,
    }


def _response(a: Answer, rid: str, created: int, output: list[Any], done: bool) -> dict[str, Any]:
    status = "in_progress"
    if done:
        status = "incomplete" if a.finish == "length" else "completed"
    return {
        "id": f"resp_{rid}",
        "object": "response",
        "created_at": created,
        "status": status,
        "error": None,
        "incomplete_details": ({"reason": "max_output_tokens"} if status == "incomplete" else None),
        "model": a.model,
        "output": output,
        "usage": _usage(a) if done else None,
    }


def _event(name: str, seq: int, data: dict[str, Any]) -> bytes:
    payload = {"type": name, "sequence_number": seq, **data}
    return b"event: " + name.encode() + b"\ndata: " + dumps(payload) + b"\n\n"


class _Responses:
    name = "openai-responses"
    request_id_header = "x-request-id"
    stream_headers: list[Header] = [
        ("content-type", "text/event-stream; charset=utf-8"),
        ("cache-control", "no-cache"),
    ]
    malformed_event = b"event: response.output_text.delta\ndata: {not json\n\n"

    def normalize(self, body: dict[str, Any], route: Route) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model": body.get("model"),
            "messages": _messages(body),
            "stream": body.get("stream") is True,
            "stream_options": {"include_usage": True},
        }
        tools = _tools(body.get("tools"))
        if tools:
            out["tools"] = tools
        if body.get("tool_choice") is not None:
            out["tool_choice"] = body["tool_choice"]
        if isinstance(body.get("max_output_tokens"), int):
            out["max_tokens"] = body["max_output_tokens"]
        text = body.get("text")
        spec = text.get("format") if isinstance(text, dict) else None
        if isinstance(spec, dict) and spec.get("type") == "json_schema":
            out["response_format"] = {"type": "json_schema", "json_schema": spec}
        elif isinstance(spec, dict) and spec.get("type") == "json_object":
            out["response_format"] = {"type": "json_object"}
        items = body.get("input")
        media = sum(
            1
            for item in (items if isinstance(items, list) else ())
            if isinstance(item, dict) and isinstance(item.get("content"), list)
            for p in item["content"]
            if isinstance(p, dict) and p.get("type") in ("input_image", "input_file")
        )
        if media:
            out["_media"] = media
        return out

    def json(self, a: Answer, rid: str, created: int) -> bytes:
        item = (
            _call_item(a, rid, a.tool_args, "completed")
            if a.tool_name is not None
            else _message_item(a.text, rid, "completed", a.refusal is not None)
        )
        return dumps(_response(a, rid, created, [item], done=True))

    def stream(self, a: Answer, rid: str, created: int, n: int) -> tuple[Events, Events, Events]:
        seq = 0

        def event(name: str, data: dict[str, Any]) -> bytes:
            nonlocal seq
            seq += 1
            return _event(name, seq - 1, data)

        start = _response(a, rid, created, [], done=False)
        head = [
            event("response.created", {"response": start}),
            event("response.in_progress", {"response": start}),
        ]
        if a.tool_name is not None:
            head.append(
                event(
                    "response.output_item.added",
                    {"output_index": 0, "item": _call_item(a, rid, "", "in_progress")},
                )
            )
            content = [
                event(
                    "response.function_call_arguments.delta",
                    {"item_id": f"fc_{rid}", "output_index": 0, "delta": p},
                )
                for p in pieces(a.tool_args, n)
            ]
            done_item = _call_item(a, rid, a.tool_args, "completed")
            tail = [
                event(
                    "response.function_call_arguments.done",
                    {"item_id": f"fc_{rid}", "output_index": 0, "arguments": a.tool_args},
                )
            ]
        else:
            refused = a.refusal is not None
            text = a.refusal if a.refusal is not None else a.text
            key, kind = ("refusal", "refusal") if refused else ("text", "output_text")
            part: dict[str, Any] = {"type": kind, key: ""}
            if not refused:
                part["annotations"] = []
            where = {"item_id": f"msg_{rid}", "output_index": 0, "content_index": 0}
            head.append(
                event(
                    "response.output_item.added",
                    {"output_index": 0, "item": _message_item("", rid, "")},
                )
            )
            head.append(event("response.content_part.added", {**where, "part": part}))
            content = [
                event(f"response.{kind}.delta", {**where, "delta": p}) for p in pieces(text, n)
            ]
            done_item = _message_item(text, rid, "completed", refused)
            tail = [
                event(f"response.{kind}.done", {**where, key: text}),
                event("response.content_part.done", {**where, "part": {**part, key: text}}),
            ]
        tail.append(event("response.output_item.done", {"output_index": 0, "item": done_item}))
        final = _response(a, rid, created, [done_item], done=True)
        name = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
        tail.append(event(name, {"response": final}))
        return head, content, tail

    def error(self, status: int, message: str | None, error_type: str | None, rid: str) -> bytes:
        return fmt.openai_error(status, message, error_type)

    def error_headers(self, status: int, error_type: str | None) -> list[Header]:
        return []

    def stream_error(self, message: str, error_type: str | None) -> Events:
        data = {"code": error_type or "server_error", "message": message, "param": None}
        return [b"event: error\ndata: " + dumps({"type": "error", **data}) + b"\n\n"]


RESPONSES_DIALECT = _Responses()
