"""AWS's binary event stream (``application/vnd.amazon.eventstream``), over byte chunks.

Bedrock's ConverseStream answers with it instead of SSE. Each message is::

    prelude   total length (uint32 BE) | headers length (uint32 BE) | prelude CRC (uint32 BE)
    headers   name length (uint8) | name (UTF-8) | value type (uint8) | value
    payload   total length - headers length - 16 bytes
    trailer   message CRC (uint32 BE)

Both CRCs are CRC-32 (ISO-HDLC, the one ``zlib.crc32`` computes): the prelude
CRC covers the first 8 bytes, the message CRC everything before it. Header
values are typed: 0 true, 1 false, 2 byte, 3 int16, 4 int32, 5 int64, 6 bytes
(uint16 length), 7 string (uint16 length), 8 timestamp (int64 milliseconds),
9 UUID (16 bytes); integers are big-endian and signed.

``EventStreamDecoder`` checks every length and both CRCs and raises
``EventStreamError`` on a bad frame: after one, no later byte can be trusted.
``encode_message`` writes messages (``FakeLLMServer`` and the tests use it).
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Mapping

from ..errors import EventStreamError

__all__ = [
    "MAX_HEADERS_LENGTH",
    "MAX_MESSAGE_LENGTH",
    "EventStreamDecoder",
    "EventStreamMessage",
    "HeaderValue",
    "encode_message",
]

MAX_MESSAGE_LENGTH = 16 * 1024 * 1024
"""The largest message AWS sends (16 MiB); a longer prelude is a corrupt frame."""
MAX_HEADERS_LENGTH = 128 * 1024
"""The largest header block AWS sends (128 KiB)."""

_PRELUDE = struct.Struct(">III")
_UINT32 = struct.Struct(">I")
_MIN_LENGTH = _PRELUDE.size + 4  # prelude + message CRC, no headers, no payload

HeaderValue = bool | int | bytes | str | uuid.UUID


class EventStreamMessage:
    """One decoded message: typed ``headers`` and the raw ``payload`` bytes."""

    __slots__ = ("headers", "payload")

    def __init__(self, headers: dict[str, HeaderValue], payload: bytes) -> None:
        self.headers = headers
        self.payload = payload

    @property
    def message_type(self) -> str:
        """``:message-type``: ``event``, ``exception`` or ``error``."""
        value = self.headers.get(":message-type", "event")
        return value if isinstance(value, str) else "event"

    @property
    def event_type(self) -> str:
        """``:event-type`` of an event, ``:exception-type`` of an exception, else ``""``."""
        value = self.headers.get(":event-type") or self.headers.get(":exception-type")
        return value if isinstance(value, str) else ""

    def __repr__(self) -> str:
        return f"EventStreamMessage({self.message_type} {self.event_type!r}, {len(self.payload)} B)"


class EventStreamDecoder:
    """Incremental decoder: ``feed(bytes) -> messages``; ``flush()`` at the end of input.

    Bytes of an incomplete message wait for the next ``feed``; ``pending``
    says whether any are left when the input ends (a cut-off stream).
    """

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def pending(self) -> bool:
        return bool(self._buf)

    def feed(self, chunk: bytes) -> list[EventStreamMessage]:
        buf = self._buf
        buf += chunk
        out: list[EventStreamMessage] = []
        start = 0
        size = len(buf)
        while size - start >= _PRELUDE.size:
            total, headers_len, prelude_crc = _PRELUDE.unpack_from(buf, start)
            if zlib.crc32(memoryview(buf)[start : start + 8]) != prelude_crc:
                self._fail("prelude CRC mismatch")
            if not _MIN_LENGTH <= total <= MAX_MESSAGE_LENGTH:
                self._fail(f"impossible message length {total}")
            if headers_len > MAX_HEADERS_LENGTH or headers_len > total - _MIN_LENGTH:
                self._fail(f"impossible headers length {headers_len}")
            end = start + total
            if end > size:
                break
            view = memoryview(buf)[start:end]
            (message_crc,) = _UINT32.unpack_from(view, total - 4)
            if zlib.crc32(view[: total - 4]) != message_crc:
                view.release()
                self._fail("message CRC mismatch")
            headers_end = _PRELUDE.size + headers_len
            headers = _decode_headers(view[_PRELUDE.size : headers_end])
            out.append(EventStreamMessage(headers, bytes(view[headers_end : total - 4])))
            view.release()
            start = end
        if start:
            del buf[:start]
        return out

    def flush(self) -> list[EventStreamMessage]:
        """Nothing more to decode at the end of input (a partial message stays ``pending``)."""
        return []

    def _fail(self, what: str) -> None:
        self._buf.clear()
        # damaged in transit: a new request may well get it whole (retried only
        # before the first chunk, like any stream)
        raise EventStreamError(f"corrupt event-stream frame: {what}", should_retry=True)


def _decode_headers(data: memoryview) -> dict[str, HeaderValue]:
    headers: dict[str, HeaderValue] = {}
    pos = 0
    end = len(data)
    try:
        while pos < end:
            name_len = data[pos]
            name = bytes(data[pos + 1 : pos + 1 + name_len]).decode("utf-8")
            pos += 1 + name_len
            kind = data[pos]
            pos += 1
            value: HeaderValue
            if kind == 0:
                value = True
            elif kind == 1:
                value = False
            elif kind == 2:
                value = struct.unpack_from(">b", data, pos)[0]
                pos += 1
            elif kind == 3:
                value = struct.unpack_from(">h", data, pos)[0]
                pos += 2
            elif kind == 4:
                value = struct.unpack_from(">i", data, pos)[0]
                pos += 4
            elif kind in (5, 8):
                value = struct.unpack_from(">q", data, pos)[0]
                pos += 8
            elif kind in (6, 7):
                (length,) = struct.unpack_from(">H", data, pos)
                raw = bytes(data[pos + 2 : pos + 2 + length])
                if len(raw) != length:
                    raise ValueError("a header value runs past the header block")
                value = raw.decode("utf-8") if kind == 7 else raw
                pos += 2 + length
            elif kind == 9:
                raw = bytes(data[pos : pos + 16])
                if len(raw) != 16:
                    raise ValueError("a UUID header runs past the header block")
                value = uuid.UUID(bytes=raw)
                pos += 16
            else:
                raise ValueError(f"unknown header value type {kind}")
            if pos > end:
                raise ValueError("a header runs past the header block")
            headers[name] = value
    except (IndexError, struct.error, UnicodeDecodeError, ValueError) as exc:
        raise EventStreamError(
            f"corrupt event-stream frame: bad headers ({exc})", should_retry=True
        ) from None
    return headers


def _encode_header(name: str, value: HeaderValue) -> bytes:
    raw_name = name.encode("utf-8")
    head = bytes([len(raw_name)]) + raw_name
    if isinstance(value, bool):
        return head + bytes([0 if value else 1])
    if isinstance(value, int):
        return head + b"\x04" + struct.pack(">i", value)
    if isinstance(value, uuid.UUID):
        return head + b"\x09" + value.bytes
    if isinstance(value, str):
        data = value.encode("utf-8")
        return head + b"\x07" + struct.pack(">H", len(data)) + data
    return head + b"\x06" + struct.pack(">H", len(value)) + value


def encode_message(headers: Mapping[str, HeaderValue], payload: bytes) -> bytes:
    """One event-stream message with correct lengths and CRCs (ints are written as int32)."""
    header_bytes = b"".join(_encode_header(k, v) for k, v in headers.items())
    total = _MIN_LENGTH + len(header_bytes) + len(payload)
    prelude = struct.pack(">II", total, len(header_bytes))
    prelude += _UINT32.pack(zlib.crc32(prelude))
    body = prelude + header_bytes + payload
    return body + _UINT32.pack(zlib.crc32(body))
