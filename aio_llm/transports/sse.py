"""Server-sent events over byte chunks, independent of the HTTP library.

Follows the WHATWG event-stream rules: lines end in LF, CRLF or CR (also when
a CRLF pair is split across two chunks, with empty reads between), one
UTF-8 byte-order mark at the start of the stream is dropped, ``:`` starts a
comment, ``data`` lines of one event are joined with LF, a blank line
dispatches, and a field value loses one leading space.
"""

from __future__ import annotations

__all__ = ["MAX_EVENT_SIZE", "SSEDecoder", "SSEEvent"]

_BOM = b"\xef\xbb\xbf"
MAX_EVENT_SIZE = 16 * 1024 * 1024
"""The largest event (or line) a stream may send: bounds the decoder's memory."""


class SSEEvent:
    """One dispatched event."""

    __slots__ = ("data", "event", "id", "retry")

    def __init__(self, event: str, data: str, id: str | None = None, retry: int | None = None):
        self.event = event
        self.data = data
        self.id = id
        self.retry = retry

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SSEEvent):
            return NotImplemented
        return (self.event, self.data, self.id, self.retry) == (
            other.event,
            other.data,
            other.id,
            other.retry,
        )

    def __repr__(self) -> str:
        return f"SSEEvent(event={self.event!r}, data={self.data!r})"


class SSEDecoder:
    """Incremental decoder: ``feed(bytes) -> events``; ``flush()`` at end of input.

    Memory and work stay linear in the input whatever its splits: the pieces
    of an unfinished line are kept, not joined at each read, and an event
    (or a line) larger than ``max_event_size`` bytes raises ``StreamError``
    instead of growing without bound.
    """

    __slots__ = (
        "_cr",
        "_data",
        "_event",
        "_event_size",
        "_id",
        "_max",
        "_parts",
        "_retry",
        "_size",
        "_start",
    )

    def __init__(self, *, max_event_size: int = MAX_EVENT_SIZE) -> None:
        self._parts: list[bytes] = []  # the unfinished line, as it arrived
        self._size = 0
        self._event = ""
        self._data: list[str] = []
        self._event_size = 0
        self._id: str | None = None
        self._cr = False
        self._retry: int | None = None
        self._start = True  # no byte read yet: a leading BOM is still possible
        self._max = max_event_size

    @property
    def pending(self) -> bool:
        """True when bytes or fields of an undispatched event are buffered."""
        return any(p.strip() for p in self._parts) or bool(self._data)

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if not chunk:  # an empty read must not forget a CR that may precede an LF
            return []
        if self._start:
            chunk = self._skip_bom(chunk)
            if not chunk:
                return []
        if self._cr and chunk[:1] == b"\n":
            chunk = chunk[1:]
        self._cr = False
        if b"\n" not in chunk and b"\r" not in chunk:  # the middle of a line
            if chunk:
                self._parts.append(chunk)
                self._size += len(chunk)
                self._check(self._size)
            return []
        if self._parts:
            self._parts.append(chunk)
            buf = b"".join(self._parts)
        else:
            buf = chunk
        if b"\r" in buf:
            self._cr = buf.endswith(b"\r")
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buf.split(b"\n")
        rest = lines.pop()
        self._parts = [rest] if rest else []
        self._size = len(rest)
        events = self._lines(lines)
        self._check(self._size)
        return events

    def _check(self, line: int) -> None:
        if line + self._event_size > self._max:
            from ..errors import StreamError

            raise StreamError(f"a server-sent event exceeds {self._max} bytes")

    def _skip_bom(self, chunk: bytes) -> bytes:
        """``chunk`` without the stream's leading BOM (which may arrive a byte at a time)."""
        head = b"".join(self._parts) + chunk
        if len(head) < 3 and _BOM.startswith(head):
            self._parts, self._size = [head], len(head)  # not enough bytes to tell yet
            return b""
        self._start = False
        self._parts, self._size = [], 0
        return head[3:] if head.startswith(_BOM) else head

    def _lines(self, lines: list[bytes]) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        for raw in lines:
            if not raw:
                if self._data:
                    events.append(
                        SSEEvent(
                            self._event or "message", "\n".join(self._data), self._id, self._retry
                        )
                    )
                self._event = ""
                self._data = []
                self._event_size = 0
                self._retry = None
                continue
            if raw[0] == 58:  # b":" comment
                continue
            line = raw.decode("utf-8", errors="replace")
            name, sep, value = line.partition(":")
            if sep and value.startswith(" "):
                value = value[1:]
            if name == "data":
                self._data.append(value)
                self._event_size += len(raw)
                self._check(0)
            elif name == "event":
                self._event = value
            elif name == "id":
                if "\0" not in value:
                    self._id = value
            elif name == "retry":
                if value.isdigit():
                    self._retry = int(value)
        return events

    def flush(self) -> list[SSEEvent]:
        """Dispatch what the end of input completes (a last line without newline)."""
        rest = b"".join(self._parts)
        self._parts, self._size = [], 0
        events = self._lines([rest]) if rest else []
        if self._data:
            events.append(SSEEvent(self._event or "message", "\n".join(self._data), self._id))
            self._data = []
            self._event = ""
            self._event_size = 0
        return events
