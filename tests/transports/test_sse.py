"""The SSE decoder against the event-stream rules and arbitrary chunking."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from aio_llm.transports.sse import SSEDecoder, SSEEvent
from tests.conftest import all_fixtures, load_fixture


def decode_all(chunks: list[bytes]) -> list[SSEEvent]:
    d = SSEDecoder()
    out: list[SSEEvent] = []
    for c in chunks:
        out.extend(d.feed(c))
    out.extend(d.flush())
    return out


def test_basic_fields_and_comments() -> None:
    body = b": comment\nevent: ping\ndata: {}\n\ndata: a\ndata: b\nid: 7\n\ndata:no-space\n\n"
    events = decode_all([body])
    assert events == [
        SSEEvent("ping", "{}"),
        SSEEvent("message", "a\nb", "7"),
        SSEEvent("message", "no-space", "7"),
    ]


def test_line_endings_crlf_and_cr() -> None:
    events = decode_all([b"data: x\r\n\r\ndata: y\r\rdata: z\n\n"])
    assert [e.data for e in events] == ["x", "y", "z"]


def test_crlf_split_across_chunks() -> None:
    events = decode_all([b"data: x\r", b"\n\r", b"\ndata: y\r", b"\r"])
    assert [e.data for e in events] == ["x", "y"]


def test_blank_event_is_not_dispatched_and_retry_is_parsed() -> None:
    events = decode_all([b"event: nothing\n\nretry: 150\ndata: q\n\n"])
    assert events == [SSEEvent("message", "q", None, 150)]


def test_utf8_split_inside_a_character() -> None:
    raw = "data: température °C\n\n".encode()
    cut = raw.index("°".encode()) + 1
    assert [e.data for e in decode_all([raw[:cut], raw[cut:]])] == ["température °C"]


def test_flush_dispatches_an_unterminated_last_event() -> None:
    assert [e.data for e in decode_all([b"data: [DONE]"])] == ["[DONE]"]


STREAMS = [
    load_fixture(n)["response"]["body_text"].encode()
    for n in all_fixtures()
    if load_fixture(n)["kind"] == "stream"
]


@given(st.sampled_from(STREAMS), st.lists(st.integers(min_value=0, max_value=1 << 16), max_size=12))
def test_any_chunking_gives_the_same_events(body: bytes, cuts: list[int]) -> None:
    points = sorted({c % (len(body) + 1) for c in cuts})
    pieces = [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=False)]
    assert decode_all(pieces) == decode_all([body])


def test_every_recorded_stream_yields_events() -> None:
    for body in STREAMS:
        events = decode_all([body])
        assert events, body[:80]
        assert all(e.data for e in events)
