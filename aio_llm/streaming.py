"""Building streams: the accumulator that rebuilds a response from chunks, and replays.

``ChunkStream`` itself, what a streaming ``ChatResponse`` carries while it is
read, is in ``aio_llm.types``.
"""

from __future__ import annotations

from typing import Any

from .types import (
    ChatChunk,
    ChatResponse,
    ChunkStream,
    FinishReason,
    Message,
    ToolCall,
    ToolCallDelta,
    Usage,
    fast_construct,
)

__all__ = ["ChunkAccumulator", "ReplaySource", "replay_as_stream"]


class ChunkAccumulator:
    """Rebuilds a ``ChatResponse`` from chunks (text, reasoning, tool calls, usage)."""

    __slots__ = ("_reasoning", "_text", "_tools", "finish_reason", "id", "model", "usage")

    def __init__(self) -> None:
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._tools: dict[int, list[str]] = {}
        self.finish_reason: FinishReason | None = None
        self.usage: Usage | None = None
        self.id = ""
        self.model = ""

    def add(self, chunk: ChatChunk) -> None:
        if chunk.delta:
            self._text.append(chunk.delta)
        if chunk.reasoning:
            self._reasoning.append(chunk.reasoning)
        for tc in chunk.tool_calls:
            slot = self._tools.get(tc.index)
            if slot is None:
                slot = self._tools[tc.index] = [tc.id or "", tc.name or "", tc.arguments]
            else:
                if tc.id and not slot[0]:
                    slot[0] = tc.id
                if tc.name and not slot[1]:
                    slot[1] = tc.name
                slot[2] += tc.arguments
        if chunk.finish_reason is not None:
            self.finish_reason = chunk.finish_reason
        if chunk.usage is not None:
            self.usage = chunk.usage

    @property
    def text(self) -> str:
        return "".join(self._text)

    def build(self, *, provider: str, raw: Any = None) -> ChatResponse:
        text = "".join(self._text)
        tool_calls = [
            fast_construct(ToolCall, id=s[0], name=s[1], arguments=s[2])
            for _, s in sorted(self._tools.items())
        ]
        message = fast_construct(
            Message,
            role="assistant",
            content=text,
            name=None,
            tool_calls=tool_calls or None,
            tool_call_id=None,
        )
        usage = self.usage
        if usage is None:
            usage = Usage()
        return fast_construct(
            ChatResponse,
            id=self.id,
            model=self.model,
            provider=provider,
            content=text,
            message=message,
            finish_reason=self.finish_reason,
            tool_calls=tool_calls,
            usage=usage,
            cost=None,
            cached=False,
            latency_ms=0.0,
            reasoning="".join(self._reasoning) or None,
            request_id=None,
            raw=raw,
            stream=None,
            headers=None,
        )


class ReplaySource:
    """Replays a finished ``ChatResponse`` as a stream (cache hits, dedup followers)."""

    __slots__ = ("_done", "_response")

    def __init__(self, response: ChatResponse) -> None:
        self._response = response
        self._done = False

    async def next_chunks(self) -> list[ChatChunk] | None:
        if self._done:
            return None
        self._done = True
        r = self._response
        deltas = [
            fast_construct(ToolCallDelta, index=i, id=tc.id, name=tc.name, arguments=tc.arguments)
            for i, tc in enumerate(r.tool_calls)
        ]
        return [
            fast_construct(
                ChatChunk,
                delta=r.content,
                tool_calls=deltas,
                finish_reason=r.finish_reason,
                usage=r.usage,
                reasoning=r.reasoning or "",
            )
        ]

    def build_response(self) -> ChatResponse:
        return self._response

    async def aclose(self) -> None:
        self._done = True


def replay_as_stream(response: ChatResponse) -> ChatResponse:
    """A copy of ``response`` whose ``.stream`` replays it as one chunk."""
    return response.model_copy(update={"stream": ChunkStream(ReplaySource(response))})
