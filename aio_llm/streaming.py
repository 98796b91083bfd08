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
    ThinkingBlock,
    ToolCallDelta,
    Usage,
    fast_construct,
    make_response,
    make_tool_call,
)

__all__ = ["ChunkAccumulator", "ReplaySource", "replay_as_stream"]


class ChunkAccumulator:
    """Rebuilds a ``ChatResponse`` from chunks (text, reasoning, tool calls, usage).

    What a chunk does not carry, a stream decoder sets here directly:
    ``thinking`` (reasoning blocks with their signatures, for the next turn),
    ``signatures`` (tool-call index -> the provider's signature) and
    ``refusal`` (the text, once the stream said the model refused: its
    deltas are part of the text as well).
    """

    __slots__ = (
        "_reasoning",
        "_text",
        "_tools",
        "finish_reason",
        "id",
        "model",
        "refusal",
        "signatures",
        "thinking",
        "usage",
    )

    def __init__(self) -> None:
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._tools: dict[int, list[str]] = {}
        self.finish_reason: FinishReason | None = None
        self.usage: Usage | None = None
        self.id = ""
        self.model = ""
        self.thinking: list[ThinkingBlock] = []
        self.signatures: dict[int, str] = {}
        self.refusal: str | None = None

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
        signatures = self.signatures
        tool_calls = [
            make_tool_call(s[0], s[1], s[2], signatures.get(i))
            for i, s in sorted(self._tools.items())
        ]
        usage = self.usage
        if usage is None:
            usage = Usage()
        finish = self.finish_reason
        if tool_calls and finish is not None:
            finish = "tool_calls"  # whatever the provider said (OpenAI's forced choice: "stop")
        return make_response(
            id=self.id,
            model=self.model,
            provider=provider,
            content=text,
            finish_reason=finish,
            usage=usage,
            tool_calls=tool_calls,
            thinking=list(self.thinking),
            reasoning="".join(self._reasoning) or None,
            raw=raw,
            refusal=self.refusal,
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
