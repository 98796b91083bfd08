"""An in-process provider: answers without any network, for tests and offline runs.

``LLM_FORCE_MOCK=1`` (``ClientConfig.force_mock``) makes every client use it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

import anyio

from ..streaming import ChunkAccumulator
from ..transports.base import HTTPTransport
from ..types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ChunkStream,
    EmbeddingResponse,
    Usage,
    fast_construct,
    make_message,
)
from ._params import SDK_PARAMETERS
from .base import Provider

__all__ = ["MockProvider"]

Reply = str | Callable[[ChatRequest], str]


class MockProvider(Provider):
    """Answers every request with ``default_response`` (or the next of ``responses``).

    ``default_response`` may be a callable ``(request) -> str``. Streams split
    the answer into word chunks. ``latency`` (seconds) is awaited per request.
    ``calls`` lists the requests received.
    """

    name: ClassVar[str] = "mock"
    supported_parameters: ClassVar[frozenset[str]] = frozenset(SDK_PARAMETERS)
    """All of them: the mock answers the same text whatever they say."""
    samples_by_default: ClassVar[bool] = False
    default_base_url: ClassVar[str] = "http://mock.invalid"

    def __init__(
        self,
        default_response: Reply = "Test response",
        *,
        responses: Iterable[str] | None = None,
        latency: float = 0.0,
        label: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(api_key, base_url, label=label, headers=headers)
        self.default_response = default_response
        self._responses = iter(responses) if responses is not None else None
        self.latency = latency
        self.calls: list[ChatRequest] = []
        self._ids = itertools.count(1)

    def _answer(self, request: ChatRequest) -> str:
        if self._responses is not None:
            nxt = next(self._responses, None)
            if nxt is not None:
                return nxt
        reply = self.default_response
        return reply(request) if callable(reply) else reply

    def _usage(self, request: ChatRequest, text: str) -> Usage:
        prompt = sum(len(m.text.split()) for m in request.messages) + 3 * len(request.messages)
        completion = len(text.split())
        return fast_construct(
            Usage,
            input_tokens=prompt,
            output_tokens=completion,
            total_tokens=prompt + completion,
            cached_input_tokens=0,
            cache_creation_input_tokens=0,
            reasoning_tokens=0,
            provider_cost=None,
        )

    async def send(self, request: ChatRequest, transport: HTTPTransport | None) -> ChatResponse:
        self.calls.append(request)
        if self.latency:
            await anyio.sleep(self.latency)
        else:
            await anyio.lowlevel.checkpoint()
        text = self._answer(request)
        usage = self._usage(request, text)
        rid = f"mock-{next(self._ids)}"
        if request.stream:
            source = _MockSource(self.label, rid, request.model, text, usage)
            stream = ChunkStream(source)
            await stream.prefetch()
            response = source.build_response()
            response.stream = stream
            return response
        return fast_construct(
            ChatResponse,
            id=rid,
            model=request.model,
            provider=self.label,
            content=text,
            message=make_message(text),
            finish_reason="stop",
            tool_calls=[],
            usage=usage,
            cost=None,
            cached=False,
            latency_ms=self.latency * 1000.0,
            reasoning=None,
            request_id=None,
            raw=None,
            stream=None,
            headers=None,
            all_choices=None,
        )

    async def embed(
        self, texts: list[str], model: str, transport: HTTPTransport | None, **params: Any
    ) -> EmbeddingResponse:
        import hashlib

        dims = int(params.get("dimensions") or 8)
        vectors = []
        for t in texts:
            digest = hashlib.sha256(t.encode()).digest()
            vectors.append([(digest[i % len(digest)] - 127.5) / 127.5 for i in range(dims)])
        tokens = sum(len(t.split()) for t in texts)
        return EmbeddingResponse(
            vectors=vectors,
            model=model,
            usage=Usage(input_tokens=tokens, total_tokens=tokens),
            provider=self.label,
        )


class _MockSource:
    __slots__ = ("_acc", "_label", "_parts", "_usage")

    def __init__(self, label: str, rid: str, model: str, text: str, usage: Usage) -> None:
        words = text.split(" ")
        self._parts = [w if i == 0 else " " + w for i, w in enumerate(words)]
        self._usage = usage
        self._label = label
        self._acc = ChunkAccumulator()
        self._acc.id = rid
        self._acc.model = model

    async def next_chunks(self) -> list[ChatChunk] | None:
        await anyio.lowlevel.checkpoint()
        if not self._parts and self._acc.finish_reason is not None:
            return None
        if self._parts:
            chunk = fast_construct(
                ChatChunk,
                delta=self._parts.pop(0),
                tool_calls=[],
                finish_reason=None,
                usage=None,
                reasoning="",
            )
        else:
            chunk = fast_construct(
                ChatChunk,
                delta="",
                tool_calls=[],
                finish_reason="stop",
                usage=self._usage,
                reasoning="",
            )
        self._acc.add(chunk)
        return [chunk]

    def build_response(self) -> ChatResponse:
        return self._acc.build(provider=self._label)

    async def aclose(self) -> None:
        self._parts = []
