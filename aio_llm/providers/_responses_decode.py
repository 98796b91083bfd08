"""Answers of the OpenAI Responses API: the JSON body and the SSE stream.

``parse_response`` reads a ``response`` object (the JSON answer, and the one
``response.completed`` carries); ``ResponsesStreamDecoder`` turns the SSE
events into chunks. Output items aio_llm does not surface (built-in tool
calls such as ``web_search_call``, future item types) are skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import _json
from ..errors import APIError, APIResponseError, StreamError, error_for_status
from ..streaming import ChunkAccumulator
from ..transports.sse import SSEEvent
from ..types import (
    ChatChunk,
    ChatResponse,
    FinishReason,
    ThinkingBlock,
    ToolCall,
    Usage,
    make_chunk,
    make_response,
    make_tool_call,
    make_tool_delta,
    make_usage,
)
from ._common import int_field, json_event
from ._openai_wire import shorten

__all__ = [
    "ResponsesStreamDecoder",
    "bad_body",
    "inband_error",
    "parse_response",
    "usage_from_wire",
]

# Error codes the Responses API sends inside a stream, and the status each stands for.
_STATUS_OF_CODE = {
    "rate_limit_exceeded": 429,
    "insufficient_quota": 429,
    "server_error": 500,
    "server_is_overloaded": 503,
    "slow_down": 503,
    "invalid_prompt": 400,
    "context_length_exceeded": 400,
    "invalid_request_error": 400,
}

_INCOMPLETE: dict[str, FinishReason] = {
    "max_output_tokens": "length",
    "content_filter": "content_filter",
}


def usage_from_wire(data: object) -> Usage:
    """``Usage`` from a Responses ``usage`` (``input_tokens`` already counts cached ones)."""
    if not isinstance(data, dict):
        return make_usage()
    prompt = int_field(data.get("input_tokens"))
    output = int_field(data.get("output_tokens"))
    cached = cache_write = reasoning = 0
    details = data.get("input_tokens_details")
    if isinstance(details, dict):
        cached = int_field(details.get("cached_tokens"))
        cache_write = int_field(details.get("cache_write_tokens"))
    details = data.get("output_tokens_details")
    if isinstance(details, dict):
        reasoning = int_field(details.get("reasoning_tokens"))
    total = int_field(data.get("total_tokens")) or prompt + output
    return make_usage(prompt, output, total, cached, cache_write, reasoning)


def bad_body(
    label: str, status: int, body: bytes, why: str, secret: str | None
) -> APIResponseError:
    snippet = body[:200].decode("utf-8", errors="replace")
    if secret:
        snippet = snippet.replace(secret, "[REDACTED]")
    return APIResponseError(
        f"{label} sent a body aio_llm cannot read: {why}: {snippet!r}",
        provider=label,
        status_code=status,
    )


def inband_error(err: object, label: str, headers: Mapping[str, str] | None) -> APIError:
    """The typed error for an ``error`` object inside a 2xx answer or a stream."""
    if not isinstance(err, Mapping):
        return StreamError(shorten(str(err)) or "error event", provider=label, body=err)
    message = str(err.get("message") or "").strip() or "error event"
    code = err.get("code")
    code_text = code if isinstance(code, str) else None
    status = _STATUS_OF_CODE.get(code_text or "") or _STATUS_OF_CODE.get(str(err.get("type")))
    if status is None:
        return StreamError(message, provider=label, code=code_text, body=dict(err))
    return error_for_status(
        status, message, provider=label, headers=headers, code=code_text, body=dict(err)
    )


def _reasoning_text(item: Mapping[str, Any]) -> str:
    texts = [
        str(p.get("text") or "")
        for key in ("summary", "content")
        for p in item.get(key) or ()
        if isinstance(p, Mapping)
    ]
    return "\n\n".join(t for t in texts if t)


def _thinking(item: Mapping[str, Any], text: str, kind: str) -> ThinkingBlock:
    sig = item.get("encrypted_content")
    ident = item.get("id")
    return ThinkingBlock(
        text=text,
        signature=sig if isinstance(sig, str) else None,
        id=ident if isinstance(ident, str) else None,
        provider=kind,
    )


def _finish(data: Mapping[str, Any], has_calls: bool) -> FinishReason | None:
    status = data.get("status")
    if has_calls and status != "incomplete":
        return "tool_calls"
    if status == "completed":
        return "stop"
    if status == "incomplete":
        details = data.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, Mapping) else None
        return _INCOMPLETE.get(str(reason), "length")
    return None


def parse_response(
    data: object, label: str, kind: str, headers: Mapping[str, str], model: str
) -> ChatResponse:
    """A ``ChatResponse`` from a Responses ``response`` object."""
    if not isinstance(data, dict):
        raise TypeError("the body is not a JSON object")
    if data.get("status") == "failed" or (data.get("error") and "output" not in data):
        raise inband_error(data.get("error") or {}, label, headers)
    output = data["output"]
    if not isinstance(output, list):
        raise TypeError("'output' is not a list")
    texts: list[str] = []
    refusals: list[str] = []
    thoughts: list[str] = []
    calls: list[ToolCall] = []
    kept: list[ThinkingBlock] = []
    for item in output:
        if not isinstance(item, dict):
            raise TypeError("an output item is not an object")
        itype = item.get("type")
        if itype == "message":
            for part in item.get("content") or ():
                if not isinstance(part, dict):
                    continue
                if part.get("type") == "output_text":
                    texts.append(str(part.get("text") or ""))
                elif part.get("type") == "refusal":
                    refusals.append(str(part.get("refusal") or ""))
                    texts.append(refusals[-1])
        elif itype == "function_call":
            calls.append(
                make_tool_call(
                    str(item["call_id"]),
                    str(item["name"]),
                    _arguments(item.get("arguments")),
                )
            )
        elif itype == "reasoning":
            text = _reasoning_text(item)
            if text:
                thoughts.append(text)
            kept.append(_thinking(item, text, kind))
    content = "".join(texts)
    return make_response(
        id=str(data.get("id") or ""),
        model=str(data.get("model") or model),
        provider=label,
        content=content,
        finish_reason=_finish(data, bool(calls)),
        usage=usage_from_wire(data.get("usage")),
        tool_calls=calls,
        thinking=kept,
        reasoning="\n\n".join(thoughts) or None,
        request_id=headers.get("x-request-id") or headers.get("apim-request-id"),
        raw=data,
        refusal=("".join(refusals) or "the model declined to answer") if refusals else None,
    )


def _arguments(value: object) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else _json.dumps_text(value)


class ResponsesStreamDecoder:
    """Responses SSE events to chunks (see ``providers.base.StreamDecoder``).

    Tool calls are numbered in the order they start; their id is the
    ``call_id``. A function call whose arguments came only whole (in
    ``.done`` or ``output_item.done``) gets them as one fragment. The stream
    ends at ``response.completed`` or ``response.incomplete``;
    ``response.failed`` and ``error`` events raise the typed error.
    """

    __slots__ = ("_done", "_kind", "_label", "_raw", "_tools", "accumulator")

    def __init__(self, label: str, kind: str, model: str) -> None:
        self._label = label
        self._kind = kind
        self._done = False
        self._raw: Any = None
        # item id -> [tool ordinal, saw-argument-fragments]
        self._tools: dict[str, list[Any]] = {}
        self.accumulator = ChunkAccumulator()
        self.accumulator.model = model

    @property
    def done(self) -> bool:
        return self._done

    def feed(self, event: SSEEvent) -> list[ChatChunk]:
        obj = json_event(event.data, self._label) if event.data != "[DONE]" else None
        if obj is None:
            return []
        etype = obj.get("type") or event.event
        chunk = self._event(etype, obj)
        if chunk is None:
            return []
        self.accumulator.add(chunk)
        return [chunk]

    def _event(self, etype: object, obj: dict[str, Any]) -> ChatChunk | None:
        if etype == "response.output_text.delta" or etype == "response.refusal.delta":
            text = obj.get("delta")
            if not isinstance(text, str) or not text:
                return None
            if etype == "response.refusal.delta":
                acc = self.accumulator
                acc.refusal = (acc.refusal or "") + text
            return make_chunk(delta=text)
        if etype == "response.function_call_arguments.delta":
            state = self._tools.get(str(obj.get("item_id")))
            part = obj.get("delta")
            if state is None or not isinstance(part, str) or not part:
                return None
            state[1] = True
            return make_chunk(tool_calls=[make_tool_delta(state[0], arguments=part)])
        if etype in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            text = obj.get("delta")
            return make_chunk(reasoning=text) if isinstance(text, str) and text else None
        if etype == "response.reasoning_summary_part.added" and self._saw_summary(obj):
            return make_chunk(reasoning="\n\n")
        if etype == "response.output_item.added":
            return self._item_added(obj.get("item"))
        if etype == "response.output_item.done":
            return self._item_done(obj.get("item"))
        if etype in ("response.completed", "response.incomplete"):
            return self._end(obj.get("response"))
        if etype in ("response.created", "response.in_progress"):
            self._start(obj.get("response"))
            return None
        if etype == "response.failed":
            response = obj.get("response")
            err = response.get("error") if isinstance(response, dict) else None
            self._record_usage(response)
            raise inband_error(err or {"message": "the response failed"}, self._label, None)
        if etype == "error":
            raise inband_error(obj.get("error") or obj, self._label, None)
        return None  # content_part.*, *.done text events, annotations, unknown events

    def _saw_summary(self, obj: dict[str, Any]) -> bool:
        index = obj.get("summary_index")
        return isinstance(index, int) and index > 0

    def _start(self, response: object) -> None:
        if isinstance(response, dict):
            acc = self.accumulator
            acc.id = str(response.get("id") or acc.id)
            acc.model = str(response.get("model") or acc.model)

    def _item_added(self, item: object) -> ChatChunk | None:
        if not isinstance(item, dict) or item.get("type") != "function_call":
            return None
        ordinal = len(self._tools)
        self._tools[str(item.get("id"))] = [ordinal, False]
        call_id, name = item.get("call_id"), item.get("name")
        tc = make_tool_delta(
            ordinal,
            id=call_id if isinstance(call_id, str) else None,
            name=name if isinstance(name, str) else None,
        )
        args = item.get("arguments")
        if isinstance(args, str) and args:
            self._tools[str(item.get("id"))][1] = True
            tc = make_tool_delta(ordinal, id=tc.id, name=tc.name, arguments=args)
        return make_chunk(tool_calls=[tc])

    def _item_done(self, item: object) -> ChatChunk | None:
        if not isinstance(item, dict):
            return None
        itype = item.get("type")
        if itype == "reasoning":
            self.accumulator.thinking.append(_thinking(item, _reasoning_text(item), self._kind))
            return None
        if itype != "function_call":
            return None
        key = str(item.get("id"))
        state = self._tools.get(key)
        if state is None:  # a call that was never announced: take it whole
            added = self._item_added(item)
            return added
        if state[1]:
            return None
        state[1] = True
        args = _arguments(item.get("arguments"))
        return make_chunk(tool_calls=[make_tool_delta(state[0], arguments=args)]) if args else None

    def _record_usage(self, response: object) -> Usage | None:
        if not isinstance(response, dict) or not isinstance(response.get("usage"), dict):
            return None
        usage = usage_from_wire(response["usage"])
        self.accumulator.usage = usage
        return usage

    def _end(self, response: object) -> ChatChunk:
        self._done = True
        self._start(response)
        self._raw = response
        usage = self._record_usage(response)
        finish: FinishReason | None = None
        if isinstance(response, dict):
            finish = _finish(response, bool(self._tools))
        return make_chunk(finish_reason=finish or "stop", usage=usage)

    def build_response(self) -> ChatResponse:
        return self.accumulator.build(provider=self._label, raw=self._raw)

    def __repr__(self) -> str:
        state = "done" if self._done else "open"
        return f"<ResponsesStreamDecoder {self._label} {state}>"
