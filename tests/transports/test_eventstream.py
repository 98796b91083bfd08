"""AWS's binary event stream: decoding the recorded Bedrock bytes, any split, bad frames."""

from __future__ import annotations

import base64
import json
import struct
import uuid
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aio_llm import EventStreamError, StreamError
from aio_llm.transports.eventstream import (
    MAX_MESSAGE_LENGTH,
    EventStreamDecoder,
    EventStreamMessage,
    HeaderValue,
    encode_message,
)

RECORDED = Path(__file__).resolve().parent.parent / "fixtures" / "recorded-more"
STREAMS = sorted(p.name for p in RECORDED.glob("bedrock-stream-*.json"))


def recorded(name: str) -> tuple[bytes, list[dict[str, object]]]:
    fx = json.loads((RECORDED / name).read_text())
    return base64.b64decode(fx["response"]["body_b64"]), fx["response"]["events"]


def decoded(messages: list[EventStreamMessage]) -> list[dict[str, object]]:
    return [{"headers": m.headers, "payload": json.loads(m.payload)} for m in messages]


@pytest.mark.parametrize("name", STREAMS)
def test_recorded_bytes_decode_to_the_recorded_events(name: str) -> None:
    raw, events = recorded(name)
    d = EventStreamDecoder()
    assert decoded(d.feed(raw)) == events
    assert not d.pending and d.flush() == []


@pytest.mark.parametrize("name", STREAMS)
def test_byte_by_byte_gives_the_same_events(name: str) -> None:
    raw, events = recorded(name)
    d = EventStreamDecoder()
    out: list[EventStreamMessage] = []
    for i in range(len(raw)):
        out += d.feed(raw[i : i + 1])
    assert decoded(out) == events


@settings(max_examples=50, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=6616), max_size=30))
def test_any_split_gives_the_same_events(cuts: list[int]) -> None:
    raw, events = recorded(STREAMS[0])
    points = sorted({c % (len(raw) + 1) for c in cuts} | {0, len(raw)})
    d = EventStreamDecoder()
    out: list[EventStreamMessage] = []
    for a, b in zip(points, points[1:], strict=False):
        out += d.feed(raw[a:b])
    assert decoded(out) == events


def test_encode_then_decode_every_header_type() -> None:
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    headers: dict[str, HeaderValue] = {
        "s": "text",
        "b": b"\x00\x01",
        "t": True,
        "f": False,
        "i": -5,
        "u": ident,
    }
    frame = encode_message(headers, b'{"x": 1}')
    (message,) = EventStreamDecoder().feed(frame)
    assert message.headers == headers and message.payload == b'{"x": 1}'


def _long_headers() -> bytes:
    """Headers of the types the encoder does not write: byte, int16, int64, timestamp."""
    out = b""
    for name, kind, value in [("b", 2, b"\xff"), ("h", 3, b"\x01\x00"), ("l", 5, bytes(8))]:
        out += bytes([len(name)]) + name.encode() + bytes([kind]) + value
    out += b"\x02ts\x08" + struct.pack(">q", 1_700_000_000_000)
    return out


def test_decodes_byte_short_long_and_timestamp_headers() -> None:
    headers = _long_headers()
    total = 16 + len(headers)
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + headers
    frame = body + struct.pack(">I", zlib.crc32(body))
    (message,) = EventStreamDecoder().feed(frame)
    assert message.headers == {"b": -1, "h": 256, "l": 0, "ts": 1_700_000_000_000}


def _frame() -> bytearray:
    return bytearray(encode_message({":event-type": "metadata"}, b"{}"))


@pytest.mark.parametrize(
    ("what", "corrupt"),
    [
        ("prelude CRC", lambda f: f.__setitem__(9, f[9] ^ 1)),
        ("message CRC", lambda f: f.__setitem__(-1, f[-1] ^ 1)),
        ("payload byte", lambda f: f.__setitem__(-6, f[-6] ^ 1)),
        ("header byte", lambda f: f.__setitem__(14, f[14] ^ 1)),
    ],
)
def test_a_corrupt_frame_is_a_typed_error(what: str, corrupt: object) -> None:
    frame = _frame()
    corrupt(frame)  # type: ignore[operator]
    d = EventStreamDecoder()
    with pytest.raises(EventStreamError, match="CRC") as info:
        d.feed(bytes(frame))
    assert isinstance(info.value, StreamError) and info.value.should_retry is True
    assert not d.pending  # nothing after a bad frame is trusted


def _with_prelude(total: int, headers: int) -> bytes:
    prelude = struct.pack(">II", total, headers)
    return prelude + struct.pack(">I", zlib.crc32(prelude))


@pytest.mark.parametrize(
    ("total", "headers"),
    [(8, 0), (MAX_MESSAGE_LENGTH + 1, 0), (100, 90), (200_000, 140_000)],
    ids=["too-short", "too-long", "headers-past-end", "headers-too-long"],
)
def test_impossible_lengths_are_refused_before_reading_on(total: int, headers: int) -> None:
    with pytest.raises(EventStreamError, match="impossible"):
        EventStreamDecoder().feed(_with_prelude(total, headers))


def test_headers_running_past_their_block_are_refused() -> None:
    headers = b"\x05short\x07\x00\x10ab"  # a string header claiming 16 bytes, holding 2
    total = 16 + len(headers)
    prelude = _with_prelude(total, len(headers))
    body = prelude + headers
    frame = body + struct.pack(">I", zlib.crc32(body))
    with pytest.raises(EventStreamError, match="headers"):
        EventStreamDecoder().feed(frame)


def test_a_cut_message_waits_and_stays_pending() -> None:
    frame = bytes(_frame())
    d = EventStreamDecoder()
    assert d.feed(frame[:-3]) == [] and d.pending
    assert len(d.feed(frame[-3:])) == 1 and not d.pending
