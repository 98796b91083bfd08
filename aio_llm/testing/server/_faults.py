"""Scripted misbehaviour for ``FakeLLMServer``: one immutable ``Fault`` value per request.

Faults compose with ``+``: ``Fault.latency(0.5) + Fault.status(503)`` waits
half a second, then answers 503. Build them with the class methods; the
fields are the data the server reads.
"""

from __future__ import annotations

import base64
import random
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from ..._json import dumps

__all__ = ["DEFAULT_RANDOM_FAULTS", "Fault", "FaultSchedule"]

_KINDS = frozenset(
    {"ok", "status", "reset", "hang", "truncate", "malformed", "stream_error", "raw"}
)

HeaderItems = tuple[tuple[str, str], ...]


def _header_items(headers: Mapping[str, str] | Iterable[tuple[str, str]] | None) -> HeaderItems:
    if headers is None:
        return ()
    items = headers.items() if isinstance(headers, Mapping) else headers
    return tuple((str(k).lower(), str(v)) for k, v in items)


def _body_bytes(body: bytes | str | Mapping[str, Any] | None) -> bytes | None:
    if body is None or isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return dumps(dict(body))


@dataclass(frozen=True, slots=True)
class Fault:
    """What to do instead of (or before) the normal answer to one request.

    Kinds: ``ok`` (normal answer, maybe delayed), ``status`` (an error
    answer), ``reset`` (drop the connection), ``hang`` (never answer),
    ``truncate`` (cut the body short), ``malformed`` (invalid JSON),
    ``stream_error`` (an in-band error event) and ``raw`` (exact bytes).
    """

    kind: str = "ok"
    delay: float = 0.0
    """Seconds to wait before acting (added to the server's ``latency``)."""
    code: int = 200
    """HTTP status for ``status`` and ``raw``."""
    headers: HeaderItems = ()
    """Extra response headers (lower-case names)."""
    body: bytes | None = None
    """Exact body for ``raw``; body override for ``status``."""
    error_type: str | None = None
    """Error ``type`` inside the envelope (default: derived from the status)."""
    message: str | None = None
    retry_after: float | None = None
    retry_after_ms: int | None = None
    after_chunks: int = 0
    """For ``truncate`` / ``stream_error``: content chunks sent before the cut."""
    clean: bool = False
    """For ``truncate``: end the HTTP body properly (just without the end marker)."""

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if self.delay < 0:
            raise ValueError("delay must not be negative")
        if self.after_chunks < 0:
            raise ValueError("after_chunks must not be negative")
        if not 100 <= self.code <= 599:
            raise ValueError(f"invalid HTTP status {self.code}")

    # -- constructors -----------------------------------------------------------

    @classmethod
    def status(
        cls,
        code: int,
        *,
        retry_after: float | None = None,
        retry_after_ms: int | None = None,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        body: bytes | str | Mapping[str, Any] | None = None,
        error_type: str | None = None,
        message: str | None = None,
    ) -> Fault:
        """Answer ``code`` with the route's error envelope (OpenAI or Anthropic).

        ``retry_after`` sets ``Retry-After`` (seconds), ``retry_after_ms`` sets
        ``retry-after-ms``; ``body`` replaces the envelope entirely. On
        ``/v1/messages`` a 529 is Anthropic's ``overloaded_error``.
        """
        if code < 400:
            raise ValueError("Fault.status needs an error status (>= 400)")
        return cls(
            "status",
            code=code,
            headers=_header_items(headers),
            body=_body_bytes(body),
            error_type=error_type,
            message=message,
            retry_after=retry_after,
            retry_after_ms=retry_after_ms,
        )

    @classmethod
    def latency(cls, seconds: float) -> Fault:
        """Answer normally after ``seconds``; stops early if the client goes away."""
        return cls("ok", delay=seconds)

    @classmethod
    def reset(cls) -> Fault:
        """Close the TCP connection with a RST, without answering."""
        return cls("reset")

    @classmethod
    def hang(cls) -> Fault:
        """Never answer, until the client disconnects or the server closes."""
        return cls("hang")

    @classmethod
    def truncate(cls, after_chunks: int = 1, *, clean: bool = False) -> Fault:
        """Cut the answer short.

        Streams stop after ``after_chunks`` content chunks without the end
        marker (``[DONE]`` / ``message_stop``), then the connection is closed
        mid-body, or with ``clean=True`` the chunked body ends properly. A JSON
        answer sends half its body under the full ``Content-Length`` and closes.
        """
        return cls("truncate", after_chunks=after_chunks, clean=clean)

    @classmethod
    def malformed(cls) -> Fault:
        """Answer 200 with a body that is not valid JSON (streams: one bad ``data:`` event)."""
        return cls("malformed")

    @classmethod
    def stream_error(
        cls,
        after_chunks: int = 1,
        *,
        message: str = "The server had an error while processing your request.",
        error_type: str | None = None,
    ) -> Fault:
        """Send an in-band error event after ``after_chunks`` content chunks, then end.

        OpenAI routes get a ``data: {"error": ...}`` chunk followed by
        ``[DONE]``; Anthropic routes an ``event: error`` (``overloaded_error`` by
        default). A non-streaming request gets a 500 with the same error.
        """
        return cls(
            "stream_error", after_chunks=after_chunks, message=message, error_type=error_type
        )

    @classmethod
    def raw(
        cls,
        status: int,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None,
        body: bytes | str,
    ) -> Fault:
        """Serve exactly ``body`` with ``status`` and ``headers``.

        A ``text/event-stream`` body is sent chunked, one HTTP chunk per event,
        paced by the server's ``chunk_delay``; anything else with a
        ``Content-Length``.
        """
        return cls("raw", code=status, headers=_header_items(headers), body=_body_bytes(body))

    @classmethod
    def from_recording(cls, recording: Mapping[str, Any]) -> Fault:
        """A ``raw`` fault replaying a recorded exchange (``tests/fixtures/recorded`` format).

        A binary body (a Bedrock event stream) comes from ``body_b64``.
        """
        response = recording["response"]
        body: bytes | str = response.get("body_text") or ""
        if response.get("body_text") is None and response.get("body_b64"):
            body = base64.b64decode(response["body_b64"])
        return cls.raw(int(response["status"]), response.get("headers"), body)

    # -- composition ------------------------------------------------------------

    def __add__(self, other: object) -> Fault:
        if not isinstance(other, Fault):
            return NotImplemented
        if self.kind != "ok" and other.kind != "ok":
            raise ValueError(f"cannot combine {self.kind!r} with {other.kind!r}")
        base = other if self.kind == "ok" else self
        return replace(base, delay=self.delay + other.delay)

    def __repr__(self) -> str:
        parts = [] if self.kind == "ok" else [repr(self.kind)]
        if self.delay:
            parts.append(f"delay={self.delay:g}")
        if self.kind in ("status", "raw"):
            parts.append(f"code={self.code}")
        if self.kind in ("truncate", "stream_error"):
            parts.append(f"after_chunks={self.after_chunks}")
        if self.retry_after is not None:
            parts.append(f"retry_after={self.retry_after:g}")
        if self.body is not None:
            parts.append(f"body=<{len(self.body)} bytes>")
        return f"Fault({', '.join(parts)})"


DEFAULT_RANDOM_FAULTS = (
    Fault.status(500),
    Fault.status(503),
    Fault.status(429, retry_after=0),
    Fault.reset(),
)
"""What ``fault_rate`` draws from when no ``kinds`` are given: all safe to retry."""


class FaultSchedule:
    """Which fault (if any) the next request gets; deterministic given the random seed.

    Order of precedence: the queue for the request's path, the global queue,
    the standing fault for the path, the standing global fault, then a random
    draw (``rate``).
    """

    __slots__ = ("_path_queues", "_queue", "_random", "_sticky")

    def __init__(self) -> None:
        self._queue: deque[Fault] = deque()
        self._path_queues: dict[str, deque[Fault]] = {}
        self._sticky: dict[str | None, Fault] = {}
        self._random: tuple[float, tuple[Fault, ...], random.Random, str | None] | None = None

    def __bool__(self) -> bool:
        """False when no request can get a fault (the server's fast check)."""
        return bool(self._queue or self._path_queues or self._sticky or self._random)

    def enqueue(self, faults: Iterable[Fault], path: str | None = None) -> None:
        faults = list(faults)
        for fault in faults:
            if not isinstance(fault, Fault):
                raise TypeError(f"expected a Fault, got {type(fault).__name__}")
        if path is None:
            self._queue.extend(faults)
        else:
            self._path_queues.setdefault(path, deque()).extend(faults)

    def set(self, fault: Fault | None, path: str | None = None) -> None:
        if fault is None:
            self._sticky.pop(path, None)
        elif not isinstance(fault, Fault):
            raise TypeError(f"expected a Fault, got {type(fault).__name__}")
        else:
            self._sticky[path] = fault

    def rate(
        self, rate: float, kinds: Iterable[Fault] | None, seed: int, path: str | None = None
    ) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be within [0, 1]")
        choices = tuple(DEFAULT_RANDOM_FAULTS if kinds is None else kinds)
        if rate and not choices:
            raise ValueError("kinds must not be empty")
        self._random = (rate, choices, random.Random(seed), path) if rate else None

    def clear(self) -> None:
        self._queue.clear()
        self._path_queues.clear()
        self._sticky.clear()
        self._random = None

    @property
    def pending(self) -> int:
        """Scripted faults not consumed yet (all queues)."""
        return len(self._queue) + sum(map(len, self._path_queues.values()))

    def next(self, path: str) -> Fault | None:
        """The fault for the next request to ``path`` (consuming a scripted one)."""
        queue = self._path_queues.get(path)
        if queue:
            return queue.popleft()
        if self._queue:
            return self._queue.popleft()
        if self._sticky:
            fault = self._sticky.get(path) or self._sticky.get(None)
            if fault is not None:
                return fault
        if self._random is not None:
            rate, choices, rng, only = self._random
            if (only is None or only == path) and rng.random() < rate:
                return rng.choice(choices)
        return None
