"""The SSE stream decoder for OpenAI-style chat completions (OpenAI, OpenRouter, compatible).

One ``OpenAIStreamDecoder`` per streamed request: the base provider feeds it
the SSE events and it returns ``ChatChunk`` objects, keeping a
``ChunkAccumulator`` that rebuilds the final ``ChatResponse``. Per-event cost
is one JSON parse plus a few dict lookups; chunks are built with
``model_construct``.
"""

from __future__ import annotations

from ..errors import StreamError
from ..streaming import ChunkAccumulator
from ..transports.sse import SSEEvent
from ..types import (
    ChatChunk,
    ChatResponse,
    Choice,
    FinishReason,
    TokenLogprob,
    ToolCallDelta,
    fast_construct,
)
from ._choices import logprobs_from_wire
from ._common import json_event
from ._openai_wire import (
    FILTERED,
    error_from_payload,
    finish_reason,
    text_of,
    tool_call_arguments,
    usage_from_wire,
)

__all__ = ["OpenAIStreamDecoder"]


class OpenAIStreamDecoder:
    """Chat-completion SSE events to ``ChatChunk`` objects; rebuilds the response.

    ``data: [DONE]`` ends the stream. The usage chunk (``choices: []``) yields
    a chunk with only ``usage``. An ``error`` object inside a chunk
    (OpenRouter's mid-stream error) raises the typed error after its usage was
    recorded, so the rebuilt response still counts the tokens spent.
    """

    __slots__ = ("_done", "_label", "_logprobs", "accumulator")

    def __init__(self, label: str) -> None:
        self._label = label
        self._done = False
        self._logprobs: list[TokenLogprob] | None = None  # when the request asked for them
        self.accumulator = ChunkAccumulator()

    @property
    def done(self) -> bool:
        return self._done

    def feed(self, event: SSEEvent) -> list[ChatChunk]:
        data = event.data
        if data == "[DONE]":
            self._done = True
            return []
        obj = json_event(data, self._label)
        if obj is None:
            return []
        acc = self.accumulator
        if not acc.id:
            acc.id = str(obj.get("id") or "")
        if not acc.model:
            acc.model = str(obj.get("model") or "")
        usage_data = obj.get("usage")
        usage = usage_from_wire(usage_data) if isinstance(usage_data, dict) else None
        err = obj.get("error")
        if err:
            if usage is not None:
                acc.usage = usage
            raise error_from_payload(err, status=200, provider=self._label, headers=None, body=err)
        delta_text = reasoning = ""
        reason: FinishReason | None = None
        deltas: list[ToolCallDelta] = []
        choices = obj.get("choices")
        if choices and isinstance(choices, list):
            choice = choices[0]
            if isinstance(choice, dict):
                lp = choice.get("logprobs")
                if isinstance(lp, dict) and lp.get("content"):
                    self._logprobs = (self._logprobs or []) + logprobs_from_wire(lp["content"])
                reason = finish_reason(choice.get("finish_reason"))
                if reason == "content_filter" and acc.refusal is None:
                    acc.refusal = FILTERED
                delta = choice.get("delta")
                if isinstance(delta, dict):
                    c = delta.get("content")
                    if c:
                        delta_text = text_of(c)
                    else:
                        r = delta.get("refusal")
                        if isinstance(r, str) and r:
                            delta_text = r
                            acc.refusal = (acc.refusal or "") + r
                    r = delta.get("reasoning") or delta.get("reasoning_content")
                    if isinstance(r, str):
                        reasoning = r
                    tcs = delta.get("tool_calls")
                    if tcs:
                        deltas = self._tool_deltas(tcs)
        if not (delta_text or reasoning or deltas or reason or usage):
            return []
        chunk = fast_construct(
            ChatChunk,
            delta=delta_text,
            tool_calls=deltas,
            finish_reason=reason,
            usage=usage,
            reasoning=reasoning,
        )
        acc.add(chunk)
        return [chunk]

    def _tool_deltas(self, tcs: object) -> list[ToolCallDelta]:
        if not isinstance(tcs, list):
            raise StreamError("'tool_calls' in a delta is not a list", provider=self._label)
        out: list[ToolCallDelta] = []
        for pos, tc in enumerate(tcs):
            if not isinstance(tc, dict):
                raise StreamError("a tool-call delta is not an object", provider=self._label)
            fn = tc.get("function")
            if not isinstance(fn, dict):
                fn = {}
            index = tc.get("index")
            name = fn.get("name")
            tc_id = tc.get("id")
            out.append(
                fast_construct(
                    ToolCallDelta,
                    index=index if isinstance(index, int) else pos,
                    id=tc_id if isinstance(tc_id, str) and tc_id else None,
                    name=name if isinstance(name, str) and name else None,
                    arguments=tool_call_arguments(fn.get("arguments")),
                )
            )
        return out

    def build_response(self) -> ChatResponse:
        response = self.accumulator.build(provider=self._label)
        if self._logprobs is not None:
            choice = Choice(
                message=response.message,
                finish_reason=response.finish_reason,
                logprobs=self._logprobs,
            )
            response.all_choices = [choice]
        return response

    def __repr__(self) -> str:
        state = "done" if self._done else "open"
        return f"<OpenAIStreamDecoder {self._label} {state} text={len(self.accumulator.text)}>"
