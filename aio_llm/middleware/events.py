"""Middleware events: what happened inside one request (a retry, a dedup join, a wait...).

A middleware reports with ``record_event(EVENT_RETRY, attempt=2, delay_s=0.5)``
or ``set_attribute(key, value)``; whoever listens to the current request
receives them, and with nobody listening they cost a context-variable read.
The ``Tracing`` middleware listens while its span is open and turns them into
span events and attributes; this module knows nothing of OpenTelemetry, so a
middleware that reports does not depend on it.

A listener is anything with ``add_event(name, attributes)`` and
``set_attribute(key, value)`` (``EventListener``); ``listening(listener)``
installs one for the code inside it (the current task and what it awaits).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol

__all__ = [
    "EVENT_CIRCUIT_REJECTED",
    "EVENT_DEDUP_HIT",
    "EVENT_FALLBACK",
    "EVENT_RATE_LIMITED",
    "EVENT_RETRY",
    "AttributeValue",
    "EventListener",
    "events_active",
    "listening",
    "record_event",
    "set_attribute",
]

EVENT_RETRY = "aio_llm.retry"
EVENT_DEDUP_HIT = "aio_llm.dedup.hit"
EVENT_CIRCUIT_REJECTED = "aio_llm.circuit.rejected"
EVENT_FALLBACK = "aio_llm.fallback"
EVENT_RATE_LIMITED = "aio_llm.ratelimit.wait"

AttributeValue = (
    str | bool | int | float | Sequence[str] | Sequence[bool] | Sequence[int] | Sequence[float]
)
"""What an event attribute may be (the values OpenTelemetry accepts, without importing it)."""


class EventListener(Protocol):
    """Receives the events of the requests it listens to."""

    def add_event(self, name: str, attributes: Mapping[str, AttributeValue] | None) -> None: ...

    def set_attribute(self, key: str, value: AttributeValue) -> None: ...


_LISTENER: ContextVar[EventListener | None] = ContextVar("aio_llm_events", default=None)


@contextmanager
def listening(listener: EventListener | None) -> Iterator[None]:
    """Send the events recorded inside this block to ``listener`` (``None``: to nobody)."""
    token = _LISTENER.set(listener)
    try:
        yield
    finally:
        _LISTENER.reset(token)


def record_event(
    name: str, attributes: Mapping[str, AttributeValue] | None = None, /, **kwargs: AttributeValue
) -> None:
    """Report ``name`` (an ``EVENT_*``) for the current request; nothing if nobody listens."""
    listener = _LISTENER.get()
    if listener is None:
        return
    if kwargs:
        attributes = {**attributes, **kwargs} if attributes else kwargs
    listener.add_event(name, attributes)


def set_attribute(key: str, value: AttributeValue) -> None:
    """Report an attribute of the current request; nothing if nobody listens."""
    listener = _LISTENER.get()
    if listener is not None:
        listener.set_attribute(key, value)


def events_active() -> bool:
    """True when someone listens here: skip building costly event attributes if not."""
    return _LISTENER.get() is not None
