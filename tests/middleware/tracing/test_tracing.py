"""Tracing middleware: GenAI spans and metrics on the SDK's in-memory exporter and reader."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from opentelemetry import metrics as otel_metrics
from opentelemetry import trace
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from aio_llm.errors import RateLimitError, StreamError
from aio_llm.middleware import RequestStats, Tracing
from aio_llm.middleware.events import (
    EVENT_DEDUP_HIT,
    EVENT_RETRY,
    events_active,
    record_event,
    set_attribute,
)
from aio_llm.middleware.tracing._tracing import DURATION_BUCKETS, TOKEN_BUCKETS
from aio_llm.pipeline import Next, build_chain
from aio_llm.streaming import replay_as_stream
from aio_llm.testing.clock import FakeClock
from aio_llm.types import ChatChunk, ChatRequest, ChatResponse, ChunkStream, Message, Usage
from tests.conftest import OTel

PROMPT = "What is the secret recipe of grandma's soup?"
ANSWER = "Carrots, patience and a bay leaf."
API_KEY = "sk-test-THIS-MUST-NEVER-LEAK"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_tracing(otel: OTel, clock: FakeClock, **kw: Any) -> Tracing:
    kw.setdefault("provider", "openai")
    kw.setdefault("providers", {"openai": "https://api.openai.com/v1"})
    return Tracing(
        tracer_provider=otel.tracer_provider,
        meter_provider=otel.meter_provider,
        clock=clock,
        **kw,
    )


def request(**kw: Any) -> ChatRequest:
    base: dict[str, Any] = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": PROMPT},
        ],
        "max_tokens": 64,
        "temperature": 0.3,
        "top_p": 0.9,
        "user": "end-user-7",
        "extra": {"api_key": API_KEY},
    }
    base.update(kw)
    return ChatRequest(**base)


def response(**kw: Any) -> ChatResponse:
    base: dict[str, Any] = {
        "id": "chatcmpl-123",
        "model": "gpt-4o-2024-08-06",
        "provider": "openai",
        "content": ANSWER,
        "message": Message(role="assistant", content=ANSWER),
        "finish_reason": "stop",
        "usage": Usage(input_tokens=21, output_tokens=9, total_tokens=30),
        "cost": 0.00042,
    }
    base.update(kw)
    return ChatResponse(**base)


def answering(clock: FakeClock, resp: ChatResponse, delay: float = 0.5) -> Next:
    async def next(req: ChatRequest) -> ChatResponse:
        clock.advance(delay)
        return resp

    return next


class ListSource:
    """A stream source over fixed chunks, optionally failing after them."""

    def __init__(
        self, chunks: list[ChatChunk], final: ChatResponse, error: Exception | None = None
    ) -> None:
        self._chunks = list(chunks)
        self._final = final
        self._error = error

    async def next_chunks(self) -> list[ChatChunk] | None:
        if self._chunks:
            return [self._chunks.pop(0)]
        if self._error is not None:
            raise self._error
        return None

    def build_response(self) -> ChatResponse:
        return self._final

    async def aclose(self) -> None:
        self._chunks.clear()


def streaming(clock: FakeClock, source: ListSource, ttft: float) -> Next:
    async def next(req: ChatRequest) -> ChatResponse:
        clock.advance(ttft)
        stream = ChunkStream(source)
        await stream.prefetch()
        head = ChatResponse(model="gpt-4o-2024-08-06", provider="openai")
        head.stream = stream
        return head

    return next


def all_attribute_text(spans: list[ReadableSpan]) -> str:
    parts = []
    for s in spans:
        parts.append(repr(dict(s.attributes or {})))
        parts.append(repr(s.status.description))
        for e in s.events:
            parts.append(repr(dict(e.attributes or {})))
    return " ".join(parts)


# -- a plain chat ------------------------------------------------------------------


@pytest.mark.anyio
async def test_chat_span_follows_genai_conventions(otel: OTel, clock: FakeClock) -> None:
    mw = make_tracing(otel, clock)
    result = await mw(request(seed=7, stop="END"), answering(clock, response()))
    assert result.content == ANSWER

    span = otel.span()
    assert span.name == "chat gpt-4o"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    attrs = dict(span.attributes or {})
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "gpt-4o"
    assert attrs["gen_ai.request.max_tokens"] == 64
    assert attrs["gen_ai.request.temperature"] == 0.3
    assert attrs["gen_ai.request.top_p"] == 0.9
    assert attrs["gen_ai.request.seed"] == 7
    assert attrs["gen_ai.request.stop_sequences"] == ("END",)
    assert attrs["gen_ai.response.model"] == "gpt-4o-2024-08-06"
    assert attrs["gen_ai.response.id"] == "chatcmpl-123"
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["gen_ai.usage.input_tokens"] == 21
    assert attrs["gen_ai.usage.output_tokens"] == 9
    assert attrs["server.address"] == "api.openai.com"
    assert attrs["server.port"] == 443
    assert attrs["aio_llm.cache.hit"] is False
    assert attrs["aio_llm.cost_usd"] == pytest.approx(0.00042)
    assert "error.type" not in attrs
    assert "gen_ai.request.stream" not in attrs
    assert "gen_ai.response.time_to_first_chunk" not in attrs


@pytest.mark.anyio
async def test_chat_metrics_use_advised_buckets(otel: OTel, clock: FakeClock) -> None:
    mw = make_tracing(otel, clock)
    await mw(request(), answering(clock, response(), delay=0.5))

    (duration,) = otel.points("gen_ai.client.operation.duration")
    assert duration.count == 1
    assert duration.sum == pytest.approx(0.5)
    assert tuple(duration.explicit_bounds) == DURATION_BUCKETS
    assert duration.attributes["gen_ai.operation.name"] == "chat"
    assert duration.attributes["gen_ai.provider.name"] == "openai"
    assert duration.attributes["gen_ai.request.model"] == "gpt-4o"
    assert duration.attributes["gen_ai.response.model"] == "gpt-4o-2024-08-06"
    assert duration.attributes["server.address"] == "api.openai.com"
    assert duration.attributes["server.port"] == 443
    assert "error.type" not in duration.attributes

    tokens = {
        p.attributes["gen_ai.token.type"]: p for p in otel.points("gen_ai.client.token.usage")
    }
    assert set(tokens) == {"input", "output"}
    assert tokens["input"].sum == 21
    assert tokens["output"].sum == 9
    assert tuple(tokens["input"].explicit_bounds) == tuple(float(b) for b in TOKEN_BUCKETS)
    assert otel.points("gen_ai.client.operation.time_to_first_chunk") == []


@pytest.mark.anyio
async def test_stats_are_fed_and_reported(otel: OTel, clock: FakeClock) -> None:
    stats = RequestStats()
    mw = make_tracing(otel, clock, stats=stats)
    await mw(request(), answering(clock, response(), delay=0.2))
    await mw(request(), answering(clock, response(), delay=0.4))
    snap = mw.statistics()
    assert snap is not None and snap.requests == 2
    assert snap.avg_duration_ms == pytest.approx(300.0)
    assert snap.input_tokens == 42 and snap.output_tokens == 18
    assert snap.cost == pytest.approx(0.00084)
    m = mw.metrics()
    assert m["requests.total"] == 2
    duration = m["gen_ai.client.operation.duration"]
    assert isinstance(duration, dict) and duration["p50"] == pytest.approx(0.2)
    assert m == stats.metrics()


# -- streams -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_stream_records_ttft_and_ends_span_at_stream_end(
    otel: OTel, clock: FakeClock
) -> None:
    final = response(usage=Usage(input_tokens=5, output_tokens=3, total_tokens=8))
    chunks = [ChatChunk(delta="Car"), ChatChunk(delta="rots", finish_reason="stop")]
    mw = make_tracing(otel, clock)
    head = await mw(request(stream=True), streaming(clock, ListSource(chunks, final), ttft=0.25))

    assert otel.spans() == []  # still open while the caller reads
    stream = head.stream
    assert stream is not None
    received = []
    async for chunk in stream:
        clock.advance(0.5)
        received.append(chunk.delta)
    assert received == ["Car", "rots"]

    span = otel.span()
    attrs = dict(span.attributes or {})
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["gen_ai.response.time_to_first_chunk"] == pytest.approx(0.25)
    assert attrs["gen_ai.usage.input_tokens"] == 5
    assert attrs["gen_ai.usage.output_tokens"] == 3
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert "aio_llm.stream.closed_early" not in attrs
    assert span.status.status_code is StatusCode.UNSET
    assert span.end_time is not None and span.start_time is not None

    (ttfc,) = otel.points("gen_ai.client.operation.time_to_first_chunk")
    assert ttfc.sum == pytest.approx(0.25)
    (duration,) = otel.points("gen_ai.client.operation.duration")
    assert duration.sum == pytest.approx(1.25)
    snap = mw.statistics()
    assert snap.streams == 1
    assert snap.avg_ttft_ms == pytest.approx(250.0)
    assert snap.avg_duration_ms == pytest.approx(1250.0)


@pytest.mark.anyio
async def test_stream_that_breaks_marks_the_span_failed(otel: OTel, clock: FakeClock) -> None:
    source = ListSource([ChatChunk(delta="Car")], response(), error=StreamError("cut off"))
    mw = make_tracing(otel, clock)
    head = await mw(request(stream=True), streaming(clock, source, ttft=0.1))
    assert head.stream is not None
    with pytest.raises(StreamError):
        async for _ in head.stream:
            pass
    span = otel.span()
    assert span.status.status_code is StatusCode.ERROR
    assert dict(span.attributes or {})["error.type"] == "StreamError"
    (duration,) = otel.points("gen_ai.client.operation.duration")
    assert duration.attributes["error.type"] == "StreamError"
    assert mw.statistics().errors == 1


@pytest.mark.anyio
async def test_stream_closed_early_is_not_an_error(otel: OTel, clock: FakeClock) -> None:
    chunks = [ChatChunk(delta="a"), ChatChunk(delta="b"), ChatChunk(delta="c")]
    mw = make_tracing(otel, clock)
    head = await mw(request(stream=True), streaming(clock, ListSource(chunks, response()), 0.1))
    assert head.stream is not None
    await head.stream.__anext__()
    await head.stream.aclose()
    span = otel.span()
    attrs = dict(span.attributes or {})
    assert attrs["aio_llm.stream.closed_early"] is True
    assert span.status.status_code is StatusCode.UNSET
    assert mw.statistics().errors == 0


@pytest.mark.anyio
async def test_stream_already_finished_when_returned(otel: OTel, clock: FakeClock) -> None:
    mw = make_tracing(otel, clock)
    head = await mw(request(stream=True), streaming(clock, ListSource([], response()), 0.1))
    assert head.stream is not None and not head.stream.closed  # ended, reported when read
    await head.stream.aclose()
    assert head.stream.completed
    assert otel.span().name == "chat gpt-4o"


@pytest.mark.anyio
async def test_cached_stream_replay_is_a_cache_hit(otel: OTel, clock: FakeClock) -> None:
    replay = replay_as_stream(response(cached=True))
    mw = make_tracing(otel, clock)
    head = await mw(request(stream=True), answering(clock, replay, delay=0.001))
    assert head.stream is not None
    text = "".join([c.delta async for c in head.stream])
    assert text == ANSWER
    assert dict(otel.span().attributes or {})["aio_llm.cache.hit"] is True
    assert mw.statistics().cache_hits == 1


# -- errors, retries, cache ------------------------------------------------------------


@pytest.mark.anyio
async def test_error_sets_error_type_and_status(otel: OTel, clock: FakeClock) -> None:
    async def failing(req: ChatRequest) -> ChatResponse:
        clock.advance(0.3)
        raise RateLimitError(f"slow down: {PROMPT}", status_code=429, provider="openai")

    mw = make_tracing(otel, clock)
    with pytest.raises(RateLimitError):
        await mw(request(), failing)

    span = otel.span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "RateLimitError"  # the message may quote the prompt
    attrs = dict(span.attributes or {})
    assert attrs["error.type"] == "RateLimitError"
    assert attrs["http.response.status_code"] == 429
    (duration,) = otel.points("gen_ai.client.operation.duration")
    assert duration.attributes["error.type"] == "RateLimitError"
    assert duration.sum == pytest.approx(0.3)
    assert otel.points("gen_ai.client.token.usage") == []
    snap = mw.statistics()
    assert snap.errors == 1 and snap.error_rate == 1.0
    assert snap.errors_by_type == {"RateLimitError": 1}


@pytest.mark.anyio
async def test_cancelled_request_is_not_counted_as_error(otel: OTel, clock: FakeClock) -> None:
    async def hangs(req: ChatRequest) -> ChatResponse:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    mw = make_tracing(otel, clock)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await mw(request(), hangs)
    span = otel.span()
    assert dict(span.attributes or {})["error.type"] == "cancelled"
    assert span.status.status_code is StatusCode.UNSET
    snap = mw.statistics()
    assert snap.cancelled == 1 and snap.errors == 0 and snap.requests == 0


@pytest.mark.anyio
async def test_inner_middleware_events_reach_the_span(otel: OTel, clock: FakeClock) -> None:
    seen_inside: list[bool] = []

    async def fake_retry(req: ChatRequest, next: Next) -> ChatResponse:
        seen_inside.append(events_active())
        assert trace.get_current_span().get_span_context().is_valid
        for attempt in (1, 2):
            record_event(EVENT_RETRY, {"error.type": "ServerError"}, attempt=attempt, delay_s=0.5)
        record_event(EVENT_DEDUP_HIT)
        set_attribute("aio_llm.test.marker", "inner")
        return await next(req)

    mw = make_tracing(otel, clock)
    chain = build_chain([mw, fake_retry], answering(clock, response()))
    await chain(request())

    span = otel.span()
    events = [(e.name, dict(e.attributes or {})) for e in span.events]
    assert events[0] == (EVENT_RETRY, {"error.type": "ServerError", "attempt": 1, "delay_s": 0.5})
    assert events[1][0] == EVENT_RETRY and events[1][1]["attempt"] == 2
    assert events[2] == (EVENT_DEDUP_HIT, {})
    attrs = dict(span.attributes or {})
    assert attrs["aio_llm.retry.count"] == 2
    assert attrs["aio_llm.test.marker"] == "inner"
    assert seen_inside == [True]
    # outside the request nothing is current: the helpers are silent no-ops
    assert not events_active()
    record_event(EVENT_RETRY, attempt=9)
    set_attribute("x", 1)
    assert len(otel.span().events) == 3


@pytest.mark.anyio
async def test_cache_hit_is_an_attribute_and_spends_no_tokens(otel: OTel, clock: FakeClock) -> None:
    mw = make_tracing(otel, clock)
    await mw(request(), answering(clock, response(cached=True), delay=0.001))
    attrs = dict(otel.span().attributes or {})
    assert attrs["aio_llm.cache.hit"] is True
    assert otel.points("gen_ai.client.token.usage") == []
    (duration,) = otel.points("gen_ai.client.operation.duration")
    assert duration.count == 1
    snap = mw.statistics()
    assert snap.cache_hits == 1 and snap.cache_hit_rate == 1.0
    assert snap.input_tokens == 0 and snap.cost == 0.0


@pytest.mark.anyio
async def test_fallback_to_another_provider_updates_provider_and_server(
    otel: OTel, clock: FakeClock
) -> None:
    mw = make_tracing(
        otel,
        clock,
        providers={"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com"},
    )
    await mw(request(), answering(clock, response(provider="anthropic", model="claude-x")))
    attrs = dict(otel.span().attributes or {})
    assert attrs["gen_ai.provider.name"] == "anthropic"
    assert attrs["server.address"] == "api.anthropic.com"
    assert attrs["gen_ai.response.model"] == "claude-x"


@pytest.mark.anyio
async def test_provider_objects_give_kind_and_endpoint(otel: OTel, clock: FakeClock) -> None:
    class FakeProvider:
        name = "openai"
        base_url = "http://127.0.0.1:8123/v1"

    mw = make_tracing(otel, clock, provider="local", providers={"local": FakeProvider()})
    await mw(request(), answering(clock, response(provider="local")))
    attrs = dict(otel.span().attributes or {})
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["server.address"] == "127.0.0.1"
    assert attrs["server.port"] == 8123


# -- content capture ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_no_content_or_key_without_capture(
    otel: OTel, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    mw = make_tracing(otel, clock)
    assert mw.capture_content is False
    await mw(request(), answering(clock, response()))
    text = all_attribute_text(otel.spans())
    for secret in (PROMPT, ANSWER, "Be brief", API_KEY, "end-user-7"):
        assert secret not in text
    assert "gen_ai.input.messages" not in text


@pytest.mark.anyio
@pytest.mark.parametrize("via", ["argument", "environment"])
async def test_content_captured_when_enabled(
    otel: OTel, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, via: str
) -> None:
    if via == "environment":
        monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
        mw = make_tracing(otel, clock)
    else:
        monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
        mw = make_tracing(otel, clock, capture_content=True)
    assert mw.capture_content is True
    await mw(request(), answering(clock, response()))
    attrs = dict(otel.span().attributes or {})
    import json

    inputs = json.loads(str(attrs["gen_ai.input.messages"]))
    assert inputs == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": PROMPT}]},
    ]
    outputs = json.loads(str(attrs["gen_ai.output.messages"]))
    assert outputs == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": ANSWER}],
            "finish_reason": "stop",
        }
    ]
    assert API_KEY not in all_attribute_text(otel.spans())


@pytest.mark.anyio
async def test_capture_false_overrides_environment(
    otel: OTel, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    mw = make_tracing(otel, clock, capture_content=False)
    await mw(request(), answering(clock, response()))
    assert PROMPT not in all_attribute_text(otel.spans())


# -- no SDK, sampling ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_no_sdk_takes_the_fast_path_but_still_counts(clock: FakeClock) -> None:
    mw = Tracing(
        tracer_provider=trace.NoOpTracerProvider(),
        meter_provider=NoOpMeterProvider(),
        clock=clock,
    )
    seen: list[bool] = []

    async def inner(req: ChatRequest, next: Next) -> ChatResponse:
        seen.append(events_active())
        record_event(EVENT_RETRY, attempt=1)
        return await next(req)

    chain = build_chain([mw, inner], answering(clock, response(), delay=0.1))
    await chain(request())
    assert seen == [False]
    assert "stats-only" in repr(mw)
    snap = mw.statistics()
    assert snap.requests == 1 and snap.avg_duration_ms == pytest.approx(100.0)

    final = response()
    head = await mw(request(stream=True), streaming(clock, ListSource([ChatChunk()], final), 0.2))
    assert head.stream is not None
    async for _ in head.stream:
        clock.advance(0.3)
    snap = mw.statistics()
    assert snap.streams == 1 and snap.avg_ttft_ms == pytest.approx(200.0)

    async def failing(req: ChatRequest) -> ChatResponse:
        raise RateLimitError("no", status_code=429)

    with pytest.raises(RateLimitError):
        await mw(request(), failing)
    assert mw.statistics().errors_by_type == {"RateLimitError": 1}


@pytest.mark.anyio
async def test_sampled_out_span_still_records_metrics(clock: FakeClock) -> None:
    o = OTel(sampled=False)
    try:
        mw = make_tracing(o, clock)

        async def inner(req: ChatRequest, next: Next) -> ChatResponse:
            assert not events_active()
            record_event(EVENT_RETRY)
            return await next(req)

        await build_chain([mw, inner], answering(clock, response()))(request())
        assert o.spans() == []
        (duration,) = o.points("gen_ai.client.operation.duration")
        assert duration.count == 1
    finally:
        o.shutdown()


@pytest.mark.anyio
async def test_meter_only_records_metrics_without_spans(clock: FakeClock) -> None:
    o = OTel()
    try:
        mw = Tracing(
            provider="openai",
            tracer_provider=trace.NoOpTracerProvider(),
            meter_provider=o.meter_provider,
            clock=clock,
        )
        await mw(request(), answering(clock, response()))
        assert o.spans() == []
        assert len(o.points("gen_ai.client.token.usage")) == 2
    finally:
        o.shutdown()


@pytest.mark.anyio
async def test_global_providers_are_used_by_default(clock: FakeClock) -> None:
    mw = Tracing(clock=clock)
    await mw(request(), answering(clock, response()))
    no_tracer = isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    no_meter = type(otel_metrics.get_meter_provider()).__name__ == "_ProxyMeterProvider"
    assert ("stats-only" in repr(mw)) == (no_tracer and no_meter)
    assert mw.statistics().requests == 1


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("kind", "system", "host"),
    [
        ("openai-responses", "openai", "api.openai.com"),
        ("gemini", "gcp.gemini", "generativelanguage.googleapis.com"),
        ("azure-openai", "azure.ai.openai", "res.openai.azure.com"),
        ("bedrock", "aws.bedrock", "bedrock-runtime.eu-west-1.amazonaws.com"),
    ],
)
async def test_new_kinds_use_the_conventions_provider_names(
    otel: OTel, clock: FakeClock, kind: str, system: str, host: str
) -> None:
    from aio_llm.providers import create_provider

    env = {
        "AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com",
        "AWS_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "AKID",
        "AWS_SECRET_ACCESS_KEY": "secret",
    }
    key = None if kind == "bedrock" else "k"
    p = create_provider(kind, api_key=key, label="primary", environ=env)
    mw = make_tracing(otel, clock, provider="primary", providers={"primary": p})
    await mw(request(), answering(clock, response(provider="primary")))
    attrs = dict(otel.span().attributes or {})
    assert attrs["gen_ai.provider.name"] == system
    assert attrs["server.address"] == host and attrs["server.port"] == 443
