"""Tracing of provider batches: one span per batch, one event per request.

The span (``batch {provider}``, kind CLIENT) opens when the batch is created
(or first seen by a resumed job) and ends when its results are recorded. It
carries the GenAI attributes ``gen_ai.operation.name = "batch"`` and
``gen_ai.provider.name``, plus ``aio_llm.batch.id``, ``aio_llm.job.id`` and
the request counts; each request adds an event ``aio_llm.batch.request``
with its index, outcome and token counts (never its content). Spans go to
the tracer provider of the client's ``Tracing`` middleware; a client
without one records none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry.trace import Span, SpanKind, StatusCode, Tracer

from ..middleware.tracing._tracing import Tracing
from ..providers.base import Provider
from ..types import ChatRequest
from ._store import PartRow
from ._wire import RemoteStatus

if TYPE_CHECKING:
    from ._host import BatchClient

__all__ = ["PartSpans"]


class PartSpans:
    """The open span of each provider batch of one job."""

    def __init__(self, client: BatchClient, job_id: str) -> None:
        tracing = next((m for m in client.middleware if isinstance(m, Tracing)), None)
        self._tracer: Tracer | None = (
            tracing.tracer_provider.get_tracer("aio_llm") if tracing is not None else None
        )
        self._job = job_id
        self._spans: dict[str, Span] = {}

    def start(self, part: PartRow, requests: int, provider: Provider) -> None:
        if self._tracer is None or part.key in self._spans:
            return
        self._spans[part.key] = self._tracer.start_span(
            f"batch {provider.name}",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "batch",
                "gen_ai.provider.name": provider.name,
                "aio_llm.job.id": self._job,
                "aio_llm.batch.id": part.remote_id or "",
                "aio_llm.batch.requests": requests,
                "aio_llm.batch.attempt": part.attempt,
            },
        )

    def finish(
        self,
        part: PartRow,
        status: RemoteStatus,
        requests: dict[int, ChatRequest],
        usage: dict[int, tuple[int, int]],
        outcomes: dict[int, str],
    ) -> None:
        if self._tracer is None:
            return
        span = self._spans.pop(part.key, None)
        if span is None:  # resumed in this process: open it now
            self.start_for(part, len(outcomes), status)
            span = self._spans.pop(part.key)
        for i in sorted(outcomes):
            attrs: dict[str, str | int] = {"aio_llm.batch.index": i, "outcome": outcomes[i]}
            attrs["gen_ai.request.model"] = requests[i].model
            tokens = usage.get(i)
            if tokens is not None:
                attrs["gen_ai.usage.input_tokens"] = tokens[0]
                attrs["gen_ai.usage.output_tokens"] = tokens[1]
            span.add_event("aio_llm.batch.request", attributes=attrs)
        span.set_attribute("aio_llm.batch.status", status.status)
        span.set_attribute("aio_llm.batch.succeeded", status.counts.succeeded)
        span.set_attribute("aio_llm.batch.failed", status.counts.failed)
        if status.outcome != "completed":
            span.set_status(StatusCode.ERROR, f"batch {status.status}")
            span.set_attribute("error.type", f"batch_{status.status}")
        span.end()

    def start_for(self, part: PartRow, requests: int, status: RemoteStatus) -> None:
        if self._tracer is None:
            return
        self._spans[part.key] = self._tracer.start_span(
            "batch",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "batch",
                "aio_llm.job.id": self._job,
                "aio_llm.batch.id": status.id,
                "aio_llm.batch.requests": requests,
            },
        )
