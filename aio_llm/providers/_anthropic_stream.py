"""The Anthropic codec's stream side: SSE events into chunks and a rebuilt response."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .. import _json
from ..errors import APIError, StreamError
from ..streaming import ChunkAccumulator
from ..transports.sse import SSEEvent
from ..types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    FinishReason,
    ThinkingBlock,
    Usage,
    make_chunk,
    make_tool_delta,
    make_usage,
)
from ._common import int_field, str_field

__all__ = [
    "FINISH",
    "AnthropicStreamDecoder",
    "int_field",
    "refusal_text",
    "str_field",
    "usage_from_wire",
]

FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def refusal_text(text: str) -> str:
    """``ChatResponse.refusal`` for ``stop_reason: "refusal"``: Claude's words, if any."""
    return text or "the model declined to answer (stop_reason: refusal)"


# Per-block kinds the stream decoder tracks; a block's state is
# [kind, tool ordinal, saw-arguments (tools) | text pieces (thinking), start input | signature].
_TEXT, _THINKING, _TOOL, _SKIP, _ANSWER = 0, 1, 2, 3, 4


class AnthropicStreamDecoder:
    """Turns Anthropic's SSE events into chunks (see ``providers.base.StreamDecoder``).

    Tool-call deltas are numbered by tool-call ordinal, not by content-block
    index, so the first ``tool_use`` is index 0 even after text or server-tool
    blocks. Usage from ``message_start`` is merged with the cumulative counts
    of ``message_delta``. A ``tool_use`` block of ``answer_tool`` (a
    structured answer asked for by tool) streams as text.
    """

    __slots__ = (
        "_answer_tool",
        "_blocks",
        "_done",
        "_inband_error",
        "_label",
        "_tools",
        "_usage",
        "accumulator",
    )

    def __init__(
        self,
        label: str,
        inband_error: Callable[[Mapping[str, Any]], APIError],
        request: ChatRequest,
        answer_tool: str | None = None,
    ) -> None:
        """``label`` names the provider in errors; ``inband_error`` types an ``error`` event."""
        self._answer_tool = answer_tool
        self._label = label
        self._inband_error = inband_error
        self.accumulator = ChunkAccumulator()
        self.accumulator.model = request.model
        self._blocks: dict[int, list[Any]] = {}
        self._tools = 0
        self._usage: dict[str, Any] = {}
        self._done = False

    @property
    def done(self) -> bool:
        return self._done

    def feed(self, event: SSEEvent) -> list[ChatChunk]:
        if event.event == "ping":
            return []
        try:
            data = _json.loads(event.data)
        except _json.JSONDecodeError:
            raise self._broken("an event that is not JSON") from None
        if not isinstance(data, dict):
            raise self._broken("an event that is not a JSON object")
        kind = data.get("type", event.event)
        if kind == "content_block_delta":
            chunk = self._delta(data)
            if chunk is None:
                return []
            self.accumulator.add(chunk)
            return [chunk]
        chunks: list[ChatChunk]
        if kind == "content_block_start":
            chunks = self._start(data)
        elif kind == "content_block_stop":
            chunks = self._stop(data)
        elif kind == "message_start":
            self._message_start(data)
            return []
        elif kind == "message_delta":
            chunks = [self._message_delta(data)]
        elif kind == "message_stop":
            self._done = True
            return []
        elif kind == "error":
            raise self._inband_error(data)
        else:  # ping and event types aio_llm does not know
            return []
        for chunk in chunks:
            self.accumulator.add(chunk)
        return chunks

    def build_response(self) -> ChatResponse:
        return self.accumulator.build(provider=self._label)

    # -- events ------------------------------------------------------------
    def _message_start(self, data: dict[str, Any]) -> None:
        message = data.get("message")
        if not isinstance(message, dict):
            raise self._broken("message_start without a message")
        acc = self.accumulator
        acc.id = str_field(message.get("id"))
        acc.model = str_field(message.get("model")) or acc.model
        usage = message.get("usage")
        if isinstance(usage, dict):
            self._usage = usage
            # a stream that breaks off later still reports the prompt it paid for
            acc.usage = usage_from_wire(usage)

    def _message_delta(self, data: dict[str, Any]) -> ChatChunk:
        delta = data.get("delta")
        stop = delta.get("stop_reason") if isinstance(delta, dict) else None
        usage = data.get("usage")
        if isinstance(usage, dict):
            merged = dict(self._usage)
            merged.update((k, v) for k, v in usage.items() if v is not None)
            self._usage = merged
        finish = FINISH.get(stop) if isinstance(stop, str) else None
        if finish == "tool_calls" and not self._tools:
            finish = "stop"  # only the answer tool was called
        if stop == "refusal":
            self.accumulator.refusal = refusal_text(self.accumulator.text)
        return make_chunk(finish_reason=finish, usage=usage_from_wire(self._usage))

    def _start(self, data: dict[str, Any]) -> list[ChatChunk]:
        index, block = data.get("index"), data.get("content_block")
        if not isinstance(index, int) or not isinstance(block, dict):
            raise self._broken("content_block_start without index or block")
        kind = block.get("type")
        if kind == "text":
            self._blocks[index] = [_TEXT, -1, False, None]
            text = block.get("text")
            return [make_chunk(delta=text)] if isinstance(text, str) and text else []
        if kind == "thinking":
            thought = block.get("thinking")
            thought = thought if isinstance(thought, str) else ""
            sig = block.get("signature")
            self._blocks[index] = [_THINKING, -1, [thought], sig if isinstance(sig, str) else None]
            return [make_chunk(reasoning=thought)] if thought else []
        if kind == "redacted_thinking":
            data_ = block.get("data")
            if isinstance(data_, str):
                kept = ThinkingBlock(redacted=data_, provider="anthropic")
                self.accumulator.thinking.append(kept)
        if kind == "tool_use":
            ident, name = block.get("id"), block.get("name")
            if not isinstance(ident, str) or not isinstance(name, str):
                raise self._broken("a tool_use block lacks id or name")
            if name == self._answer_tool:  # the structured answer: its input streams as text
                self._blocks[index] = [_ANSWER, -1, False, block.get("input")]
                return []
            ordinal = self._tools
            self._tools += 1
            self._blocks[index] = [_TOOL, ordinal, False, block.get("input")]
            tc = make_tool_delta(ordinal, ident, name, "")
            return [make_chunk(tool_calls=[tc])]
        # redacted_thinking, server_tool_use and its results, unknown types
        self._blocks[index] = [_SKIP, -1, False, None]
        return []

    def _delta(self, data: dict[str, Any]) -> ChatChunk | None:
        delta = data.get("delta")
        if not isinstance(delta, dict):
            raise self._broken("content_block_delta without a delta")
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            return make_chunk(delta=text) if isinstance(text, str) and text else None
        if kind == "thinking_delta":
            thought = delta.get("thinking")
            if not isinstance(thought, str) or not thought:
                return None
            state = self._block(data)
            if state is not None and state[0] == _THINKING:
                state[2].append(thought)
            return make_chunk(reasoning=thought)
        if kind == "signature_delta":
            state = self._block(data)
            sig = delta.get("signature")
            if state is not None and state[0] == _THINKING and isinstance(sig, str):
                state[3] = (state[3] or "") + sig
            return None
        if kind == "input_json_delta":
            state = self._block(data)
            part = delta.get("partial_json")
            if state is None or not isinstance(part, str) or not part:
                return None
            if state[0] == _ANSWER:
                state[2] = True
                return make_chunk(delta=part)
            if state[0] != _TOOL:
                return None
            state[2] = True
            tc = make_tool_delta(state[1], None, None, part)
            return make_chunk(tool_calls=[tc])
        return None  # citations_delta, unknown deltas

    def _stop(self, data: dict[str, Any]) -> list[ChatChunk]:
        state = self._block(data)
        if state is not None and state[0] == _THINKING:
            text = "".join(state[2])
            block = ThinkingBlock(text=text, signature=state[3], provider="anthropic")
            self.accumulator.thinking.append(block)
            return []
        if state is not None and state[0] == _ANSWER and not state[2]:
            state[2] = True
            whole = state[3] if isinstance(state[3], dict) else {}
            return [make_chunk(delta=_json.dumps_text(whole))]
        if state is None or state[0] != _TOOL or state[2]:
            return []
        # a tool call streamed without argument fragments: its input came whole
        args = _json.dumps_text(state[3] if isinstance(state[3], dict) else {})
        state[2] = True
        tc = make_tool_delta(state[1], None, None, args)
        return [make_chunk(tool_calls=[tc])]

    def _block(self, data: dict[str, Any]) -> list[Any] | None:
        index = data.get("index")
        return self._blocks.get(index) if isinstance(index, int) else None

    def _broken(self, what: str) -> StreamError:
        return StreamError(
            f"unexpected stream from {self._label}: {what}",
            provider=self._label,
        )


def usage_from_wire(raw: Mapping[str, Any]) -> Usage:
    """aio_llm's ``Usage``: ``input_tokens`` counts cached and cache-written tokens too.

    ``cache_creation.ephemeral_1h_input_tokens`` (writes with the one-hour
    TTL, priced higher) becomes ``cache_creation_1h_input_tokens``.
    """
    read = int_field(raw.get("cache_read_input_tokens"))
    created = int_field(raw.get("cache_creation_input_tokens"))
    prompt = int_field(raw.get("input_tokens")) + read + created
    output = int_field(raw.get("output_tokens"))
    details = raw.get("output_tokens_details")
    thinking = int_field(details.get("thinking_tokens")) if isinstance(details, dict) else 0
    split = raw.get("cache_creation")
    hour = int_field(split.get("ephemeral_1h_input_tokens")) if isinstance(split, dict) else 0
    return make_usage(
        prompt,
        output,
        prompt + output,
        read,
        created,
        thinking,
        None,
        min(hour, created),
    )
