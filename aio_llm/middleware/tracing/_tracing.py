"""Tracing: an OpenTelemetry span and the GenAI client metrics for every request.

``Tracing`` is the outermost middleware. Per request it opens one CLIENT
span named ``chat {model}`` carrying the GenAI semantic-convention
attributes (``gen_ai.*``, ``server.*``, ``error.type``), records the
``gen_ai.client.operation.duration``, ``gen_ai.client.token.usage`` and, for
streams, ``gen_ai.client.operation.time_to_first_chunk`` histograms, and
feeds a ``RequestStats`` (which it does even with no OpenTelemetry SDK, so
``client.metrics()`` and the dashboard always have figures).

With no SDK configured (the global providers are the API's proxies) it
takes a fast path that does no span or metric work at all; it looks at the
global providers again at most once a second, so an SDK installed later is
picked up. Message content is recorded only with ``capture_content=True``
or ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``.

Inner middleware report what they did with
``aio_llm.middleware.events.record_event`` (retries, dedup hits, breaker
rejections): while ``next`` runs, the span's recorder listens to them and
turns them into span events; with tracing off nobody listens, and a report
is one context-variable read.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

import anyio
from opentelemetry import context as otel_context
from opentelemetry import metrics as otel_metrics
from opentelemetry import trace
from opentelemetry.metrics import MeterProvider, NoOpMeterProvider
from opentelemetry.trace import Span, SpanKind, StatusCode, Tracer, TracerProvider

from ...clock import SYSTEM_CLOCK, Clock
from ...pipeline import EmbedNext, Next
from ...types import ChatRequest, ChatResponse, ChunkStream, EmbeddingRequest, EmbeddingResponse
from ..events import EVENT_RETRY, AttributeValue, listening
from ._genai import (
    CAPTURE_ENV,
    DURATION_BUCKETS,
    OPERATION,
    TOKEN_BUCKETS,
    Endpoint,
    Instruments,
    ProviderLike,
    endpoint,
    messages_json,
    metric_attributes,
    operation_attributes,
    output_json,
    request_attributes,
    response_attributes,
)
from ._stats import RequestStats, StatsSnapshot

__all__ = ["CAPTURE_ENV", "DURATION_BUCKETS", "TOKEN_BUCKETS", "Tracing"]

_RECHECK_SECONDS = 1.0


class _Recorder:
    """The span's listener for the middleware events of its request (``aio_llm.middleware.events``).

    It stops listening (``open``) when the span ends: a stream read later
    must not add events to a finished span.
    """

    __slots__ = ("open", "retries", "span")

    def __init__(self, span: Span) -> None:
        self.span = span
        self.open = True
        self.retries = 0

    def add_event(self, name: str, attributes: Mapping[str, AttributeValue] | None) -> None:
        if not self.open:
            return
        if name == EVENT_RETRY:
            self.retries += 1
        self.span.add_event(name, attributes)

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        if self.open:
            self.span.set_attribute(key, value)


class Tracing:
    """OpenTelemetry GenAI spans and metrics, and ``RequestStats``, for every request.

    ``provider`` is the label requests without ``request.provider`` go to;
    ``providers`` maps labels to provider objects (their ``name`` and
    ``base_url`` give ``gen_ai.provider.name``, ``server.address`` and
    ``server.port``) or to base URLs. ``capture_content=None`` reads
    ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``. Without
    ``tracer_provider``/``meter_provider`` the global ones are used.
    """

    __slots__ = (
        "_active",
        "_capture",
        "_clock",
        "_default",
        "_endpoints",
        "_instruments",
        "_meter_provider",
        "_mp_seen",
        "_next_check",
        "_stats",
        "_tp_seen",
        "_tracer",
        "_tracer_provider",
    )

    def __init__(
        self,
        *,
        provider: str | None = None,
        providers: Mapping[str, ProviderLike | str] | None = None,
        capture_content: bool | None = None,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        stats: RequestStats | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._default = provider
        self._endpoints: dict[str, Endpoint] = {}
        for label, p in (providers or {}).items():
            if isinstance(p, str):
                self._endpoints[label] = endpoint(label, p)
            else:
                system = getattr(p, "genai_system", None) or p.name
                self._endpoints[label] = endpoint(system, p.base_url)
        if capture_content is None:
            capture_content = os.environ.get(CAPTURE_ENV, "").strip().lower() == "true"
        self._capture = capture_content
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._stats = stats if stats is not None else RequestStats()
        self._clock = clock or SYSTEM_CLOCK
        self._tp_seen: object = None
        self._mp_seen: object = None
        self._tracer: Tracer | None = None
        self._instruments: Instruments | None = None
        self._active = False
        self._next_check = -math.inf

    @property
    def stats(self) -> RequestStats:
        return self._stats

    @property
    def capture_content(self) -> bool:
        return self._capture

    @property
    def tracer_provider(self) -> TracerProvider:
        """The tracer provider spans go to (the global one unless one was given)."""
        return self._tracer_provider or trace.get_tracer_provider()

    def statistics(self) -> StatsSnapshot:
        """A ``StatsSnapshot`` of the requests seen so far."""
        return self._stats.snapshot()

    def metrics(self) -> dict[str, object]:
        """The ``requests.*`` figures for ``client.metrics()``."""
        return self._stats.metrics()

    def _refresh(self, now: float) -> None:
        """Pick up the tracer and meter; the fast path runs while both are no-ops."""
        fixed = self._tracer_provider is not None and self._meter_provider is not None
        self._next_check = math.inf if fixed else now + _RECHECK_SECONDS
        tp = self._tracer_provider or trace.get_tracer_provider()
        if tp is not self._tp_seen:
            self._tp_seen = tp
            tracer = None
            if not isinstance(tp, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
                tracer = tp.get_tracer("aio_llm")
                if isinstance(tracer, trace.NoOpTracer):
                    tracer = None
            self._tracer = tracer
        mp = self._meter_provider or otel_metrics.get_meter_provider()
        if mp is not self._mp_seen:
            self._mp_seen = mp
            noop = isinstance(mp, NoOpMeterProvider) or type(mp).__name__ == "_ProxyMeterProvider"
            self._instruments = None if noop else Instruments(mp.get_meter("aio_llm"))
        self._active = self._tracer is not None or self._instruments is not None

    async def __call__(self, request: ChatRequest, next: Next) -> ChatResponse:
        start = self._clock.now()
        if start >= self._next_check:
            self._refresh(start)
        if self._active:
            return await self._traced(request, next, start)
        try:
            response = await next(request)
        except BaseException as exc:
            self._failed(request, None, start, exc, None, None, None)
            raise
        stream = response.stream
        if stream is None:
            self._succeeded(request, None, start, response, None, None, None)
        else:
            await self._watch(stream, request, None, start, None, None, response.cached)
        return response

    async def embed(self, request: EmbeddingRequest, next: EmbedNext) -> EmbeddingResponse:
        """An ``embeddings {model}`` CLIENT span around an embedding request (with an SDK)."""
        start = self._clock.now()
        if start >= self._next_check:
            self._refresh(start)
        tracer = self._tracer
        if tracer is None:
            return await next(request)
        attributes = operation_attributes(
            "embeddings", request.model, self._endpoint_for(request.provider)
        )
        span = tracer.start_span(
            f"embeddings {request.model}", kind=SpanKind.CLIENT, attributes=attributes
        )
        recorder = _Recorder(span) if span.is_recording() else None
        ctx = otel_context.attach(trace.set_span_in_context(span))
        try:
            with listening(recorder):
                response = await next(request)
        except BaseException as exc:
            span.set_attribute("error.type", type(exc).__qualname__)
            span.set_status(StatusCode.ERROR, type(exc).__qualname__)
            raise
        else:
            span.set_attribute("gen_ai.response.model", response.model)
            span.set_attribute("gen_ai.usage.input_tokens", response.usage.input_tokens)
            if recorder is not None and recorder.retries:
                span.set_attribute("aio_llm.retry.count", recorder.retries)
            return response
        finally:
            if recorder is not None:
                recorder.open = False
            otel_context.detach(ctx)
            span.end()

    async def _traced(self, request: ChatRequest, next: Next, start: float) -> ChatResponse:
        ep = self._endpoint_for(request.provider)
        span = recorder = None
        if self._tracer is not None:
            span = self._tracer.start_span(
                f"{OPERATION} {request.model}",
                kind=SpanKind.CLIENT,
                attributes=request_attributes(request, ep),
            )
            if span.is_recording():
                recorder = _Recorder(span)
                if self._capture:
                    span.set_attribute("gen_ai.input.messages", messages_json(request.messages))
        ctx = otel_context.attach(trace.set_span_in_context(span)) if span is not None else None
        try:
            with listening(recorder):
                response = await next(request)
        except BaseException as exc:
            self._failed(request, ep, start, exc, span, recorder, None)
            raise
        finally:
            if ctx is not None:
                otel_context.detach(ctx)
        stream = response.stream
        if stream is None:
            self._succeeded(request, ep, start, response, None, span, recorder)
        else:
            await self._watch(stream, request, ep, start, span, recorder, response.cached)
        return response

    async def _watch(
        self,
        stream: ChunkStream,
        request: ChatRequest,
        ep: Endpoint | None,
        start: float,
        span: Span | None,
        recorder: _Recorder | None,
        cached: bool,
    ) -> None:
        ttft = self._clock.now() - start
        if span is not None:
            span.set_attribute("gen_ai.response.time_to_first_chunk", ttft)
        if self._instruments is not None and ep is not None:
            self._instruments.ttfc.record(ttft, metric_attributes(request, ep, None, None))
        await stream.on_close(_StreamEnd(self, request, ep, start, ttft, span, recorder, cached))

    def _endpoint_for(self, label: str | None) -> Endpoint:
        label = label or self._default
        if label is None:
            return Endpoint(None, None, None)
        ep = self._endpoints.get(label)
        return ep if ep is not None else Endpoint(label, None, None)

    def _succeeded(
        self,
        request: ChatRequest,
        ep: Endpoint | None,
        start: float,
        response: ChatResponse,
        ttft: float | None,
        span: Span | None,
        recorder: _Recorder | None,
        *,
        cached: bool = False,
        closed_early: bool = False,
    ) -> None:
        duration = self._clock.now() - start
        cached = cached or response.cached
        usage = response.usage
        if cached:  # a cache hit spent no tokens and cost nothing
            self._stats.record(request.model, duration, cached=True, ttft=ttft)
        elif ttft is None:
            self._stats.record(
                request.model, duration, usage.input_tokens, usage.output_tokens, response.cost
            )
        else:
            self._stats.record(
                request.model,
                duration,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cost=response.cost,
                ttft=ttft,
            )
        if ep is None:
            return
        if response.provider and response.provider != (request.provider or self._default):
            ep = self._endpoint_for(response.provider)
        if recorder is not None:
            recorder.open = False
            attrs = response_attributes(response, ep, cached)
            if recorder.retries:
                attrs["aio_llm.retry.count"] = recorder.retries
            if closed_early:
                attrs["aio_llm.stream.closed_early"] = True
            if self._capture:
                attrs["gen_ai.output.messages"] = output_json(response)
            recorder.span.set_attributes(attrs)
        if span is not None:
            span.end()
        inst = self._instruments
        if inst is not None:
            m_attrs = metric_attributes(request, ep, response.model or None, None)
            inst.duration.record(duration, m_attrs)
            if not cached:
                inst.tokens.record(usage.input_tokens, {**m_attrs, "gen_ai.token.type": "input"})
                inst.tokens.record(usage.output_tokens, {**m_attrs, "gen_ai.token.type": "output"})

    def _failed(
        self,
        request: ChatRequest,
        ep: Endpoint | None,
        start: float,
        exc: BaseException,
        span: Span | None,
        recorder: _Recorder | None,
        ttft: float | None,
    ) -> None:
        duration = self._clock.now() - start
        if isinstance(exc, Exception):
            error_type = type(exc).__qualname__
            self._stats.record(request.model, duration, ttft=ttft, error_type=error_type)
        else:  # cancelled by its caller: not the request's failure
            error_type = "cancelled"
            self._stats.record_cancelled()
        if ep is None:
            return
        if recorder is not None:
            recorder.open = False
            attrs: dict[str, AttributeValue] = {"error.type": error_type}
            status = getattr(exc, "status_code", None)
            if isinstance(status, int):
                attrs["http.response.status_code"] = status
            if recorder.retries:
                attrs["aio_llm.retry.count"] = recorder.retries
            recorder.span.set_attributes(attrs)
            if error_type != "cancelled":
                # the message may quote the prompt back: only with content capture
                detail = str(exc) if self._capture else error_type
                recorder.span.set_status(StatusCode.ERROR, detail)
        if span is not None:
            span.end()
        if self._instruments is not None:
            self._instruments.duration.record(
                duration, metric_attributes(request, ep, None, error_type)
            )

    def __repr__(self) -> str:
        mode = "otel" if self._active else "stats-only"
        s = self._stats
        return f"<Tracing {mode} capture_content={self._capture} {s!r}>"


class _StreamEnd:
    """The ``on_close`` callback that ends a stream's span and records its figures."""

    __slots__ = ("cached", "ep", "owner", "recorder", "request", "span", "start", "ttft")

    def __init__(
        self,
        owner: Tracing,
        request: ChatRequest,
        ep: Endpoint | None,
        start: float,
        ttft: float,
        span: Span | None,
        recorder: _Recorder | None,
        cached: bool,
    ) -> None:
        self.owner = owner
        self.request = request
        self.ep = ep
        self.start = start
        self.ttft = ttft
        self.span = span
        self.recorder = recorder
        self.cached = cached

    def __call__(self, stream: ChunkStream) -> None:
        o = self.owner
        error: BaseException | None = stream.error
        if error is None and stream.cancelled:  # its deadline passed, or its task was cancelled
            error = anyio.get_cancelled_exc_class()()
        if error is not None:
            o._failed(self.request, self.ep, self.start, error, self.span, self.recorder, self.ttft)
            return
        o._succeeded(
            self.request,
            self.ep,
            self.start,
            stream.response or ChatResponse.model_construct(),
            self.ttft,
            self.span,
            self.recorder,
            cached=self.cached,
            closed_early=not stream.completed,
        )
