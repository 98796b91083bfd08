"""Server-sent events over byte chunks, independent of the HTTP library.

Follows the WHATWG event-stream rules: lines end in LF, CRLF or CR (also when
a CRLF pair is split across two chunks, with empty reads between), one
UTF-8 byte-order mark at the start of the stream is dropped, ``:`` starts a
comment, ``data`` lines of one event are joined with LF, a blank line
dispatches, and a field value loses one leading space.
"""

from __future__ import annotations

__all__ = ["SSEDecoder", "SSEEvent"]

_BOM = b"\xef\xbb\xbf"


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
    """Incremental decoder: ``feed(bytes) -> events``; ``flush()`` at end of input."""

    __slots__ = ("_buf", "_cr", "_data", "_event", "_id", "_retry", "_start")

    def __init__(self) -> None:
        self._buf = b""
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self._cr = False
        self._retry: int | None = None
        self._start = True  # no byte read yet: a leading BOM is still possible

    @property
    def pending(self) -> bool:
        """True when bytes or fields of an undispatched event are buffered."""
        return bool(self._buf.strip()) or bool(self._data)

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
        buf = self._buf + chunk if self._buf else chunk
        if b"\r" in buf:
            self._cr = buf.endswith(b"\r")
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buf.split(b"\n")
        self._buf = lines.pop()
        return self._lines(lines) if lines else []

    def _skip_bom(self, chunk: bytes) -> bytes:
        """``chunk`` without the stream's leading BOM (which may arrive a byte at a time)."""
        head = self._buf + chunk
        if len(head) < 3 and _BOM.startswith(head):
            self._buf = head  # not enough bytes to tell yet
            return b""
        self._start = False
        self._buf = b""
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
        rest, self._buf = self._buf, b""
        events = self._lines([rest]) if rest else []
        if self._data:
            events.append(SSEEvent(self._event or "message", "\n".join(self._data), self._id))
            self._data = []
            self._event = ""
        return events
