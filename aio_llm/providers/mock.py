"""An in-process provider: answers without any network, for tests and offline runs.

``LLM_FORCE_MOCK=1`` (``ClientConfig.force_mock``) makes every client use it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

import anyio

from .. import _json
from .._conversation import output_format
from .._schema import sample
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
    make_response,
    make_usage,
)
from ._params import CHECKED_PARAMETERS
from .base import Provider

__all__ = ["MockProvider"]

Reply = str | Callable[[ChatRequest], str]


class MockProvider(Provider):
    """Answers every request with ``default_response`` (or the next of ``responses``).

    ``default_response`` may be a callable ``(request) -> str``; left unset,
    a request with a JSON-schema ``response_format`` gets a JSON value that
    fits the schema (``{}`` for ``json_object``) and any other request
    ``"Test response"``. ``refusal`` makes every answer a refusal with that
    text (``ChatResponse.refusal``). Streams split the answer into word
    chunks. ``latency`` (seconds) is awaited per request. ``calls`` lists
    the requests received.
    """

    name: ClassVar[str] = "mock"
    supported_parameters: ClassVar[frozenset[str]] = frozenset(CHECKED_PARAMETERS)
    """All of them: the mock answers the same text whatever they say."""
    samples_by_default: ClassVar[bool] = False
    default_base_url: ClassVar[str] = "http://mock.invalid"

    def __init__(
        self,
        default_response: Reply | None = None,
        *,
        responses: Iterable[str] | None = None,
        refusal: str | None = None,
        latency: float = 0.0,
        label: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(api_key, base_url, label=label, headers=headers)
        self.default_response = default_response
        self.refusal = refusal
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
        if reply is None:
            return _default_answer(request)
        return reply(request) if callable(reply) else reply

    def _usage(self, request: ChatRequest, text: str) -> Usage:
        prompt = sum(len(m.text.split()) for m in request.messages) + 3 * len(request.messages)
        completion = len(text.split())
        return make_usage(prompt, completion)

    async def send(self, request: ChatRequest, transport: HTTPTransport | None) -> ChatResponse:
        self.calls.append(request)
        if self.latency:
            await anyio.sleep(self.latency)
        else:
            await anyio.lowlevel.checkpoint()
        text = self.refusal if self.refusal is not None else self._answer(request)
        usage = self._usage(request, text)
        rid = f"mock-{next(self._ids)}"
        if request.stream:
            source = _MockSource(self.label, rid, request.model, text, usage, self.refusal)
            stream = ChunkStream(source)
            await stream.prefetch()
            response = source.build_response()
            response.stream = stream
            return response
        response = make_response(
            id=rid,
            model=request.model,
            provider=self.label,
            content=text,
            finish_reason="content_filter" if self.refusal is not None else "stop",
            usage=usage,
            refusal=self.refusal,
        )
        response.latency_ms = self.latency * 1000.0
        return response

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


def _default_answer(request: ChatRequest) -> str:
    fmt = output_format(request.response_format)
    if fmt is None or fmt.kind == "text":
        return "Test response"
    if fmt.schema is None:
        return "{}"
    return _json.dumps_text(sample(fmt.schema))


class _MockSource:
    __slots__ = ("_acc", "_label", "_parts", "_refusal", "_usage")

    def __init__(
        self, label: str, rid: str, model: str, text: str, usage: Usage, refusal: str | None
    ) -> None:
        words = text.split(" ")
        self._parts = [w if i == 0 else " " + w for i, w in enumerate(words)]
        self._usage = usage
        self._refusal = refusal
        self._label = label
        self._acc = ChunkAccumulator()
        self._acc.id = rid
        self._acc.model = model
        self._acc.refusal = refusal

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
                finish_reason="content_filter" if self._refusal is not None else "stop",
                usage=self._usage,
                reasoning="",
            )
        self._acc.add(chunk)
        return [chunk]

    def build_response(self) -> ChatResponse:
        return self._acc.build(provider=self._label)

    async def aclose(self) -> None:
        self._parts = []
