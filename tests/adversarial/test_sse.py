"""Server-sent events at every edge: byte-order marks, line endings, splits, empty reads.

The decoder is fed directly (every split point, empty reads between CR and
LF), then whole streams cross the wire from the raw server in random
splits (seeded), on both transports and every provider dialect.
"""

from __future__ import annotations

import random

import anyio
import pytest

from aio_llm.transports.sse import SSEEvent
from tests.transports.test_sse import decode_all

from .conftest import FORMAT_KINDS, client_for
from .rawserver import Conn, RawServer, Seen, sse_events

BOM = b"\xef\xbb\xbf"
EOLS = {"lf": b"\n", "crlf": b"\r\n", "cr": b"\r"}
STREAM = b"event: e1\nid: 7\ndata: Hello\ndata:  world\n\n: comment\ndata:x\nretry: 10\n\n"
EXPECTED = [SSEEvent("e1", "Hello\n world", "7"), SSEEvent("message", "x", "7", 10)]


def _with_eol(data: bytes, eol: bytes) -> bytes:
    return data.replace(b"\n", eol)


@pytest.mark.parametrize("eol", sorted(EOLS))
@pytest.mark.parametrize("bom", [False, True], ids=["no-bom", "bom"])
def test_every_two_way_split(eol: str, bom: bool) -> None:
    data = (BOM if bom else b"") + _with_eol(STREAM, EOLS[eol])
    for cut in range(len(data) + 1):
        assert decode_all([data[:cut], data[cut:]]) == EXPECTED, cut


@pytest.mark.parametrize("eol", sorted(EOLS))
def test_one_byte_at_a_time_with_empty_reads(eol: str) -> None:
    data = BOM + _with_eol(STREAM, EOLS[eol])
    parts: list[bytes] = []
    for i in range(len(data)):
        parts += [data[i : i + 1], b""]
    assert decode_all(parts) == EXPECTED


def test_an_empty_read_between_cr_and_lf_does_not_split_an_event() -> None:
    assert decode_all([b"data: a\r", b"", b"\ndata: b\r\n\r\n"]) == [SSEEvent("message", "a\nb")]


def test_only_one_leading_bom_is_stripped() -> None:
    # the second BOM is part of the first line's name: not a data field any more
    assert decode_all([BOM + BOM + b"data: a\n\ndata: b\n\n"]) == [SSEEvent("message", "b")]
    assert decode_all([b"data: a\n\n" + BOM + b"data: b\n\n"]) == [SSEEvent("message", "a")]
    # a BOM split across reads, and a stream shorter than a BOM
    assert decode_all([b"\xef", b"\xbb", b"\xbfdata: a\n\n"]) == [SSEEvent("message", "a")]
    assert decode_all([b"\xef\xbb"]) == []


EDGES: dict[str, tuple[bytes, list[SSEEvent]]] = {
    # a field name alone is the field with an empty value: an event of empty data
    "field-without-colon": (b"data\n\n", [SSEEvent("message", "")]),
    # empty data lines join with a newline; the last one's newline is dropped
    "empty-data-lines": (b"data:\ndata:\n\n", [SSEEvent("message", "\n")]),
    # an event with no data dispatches nothing, and its type does not carry over
    "event-without-data": (b"event: only\n\ndata: x\n\n", [SSEEvent("message", "x")]),
    "comments-only": (b": keep-alive\n\n:\n\ndata: x\n\n", [SSEEvent("message", "x")]),
    "unknown-field": (b"foo: bar\ndata: x\n\n", [SSEEvent("message", "x")]),
    # names are case-sensitive and end at the colon: these are unknown fields
    "field-name-case": (b"DATA: x\n\ndata: y\n\n", [SSEEvent("message", "y")]),
    "space-before-colon": (b"data : x\n\ndata: y\n\n", [SSEEvent("message", "y")]),
    # only the one space after the colon goes; trailing spaces stay
    "spaces-in-value": (b"data:  x \n\n", [SSEEvent("message", " x ")]),
    "id-with-nul-ignored": (b"data: a\nid: x\x00y\n\n", [SSEEvent("message", "a")]),
    "retry-not-digits-ignored": (b"data: a\nretry: 1x\n\n", [SSEEvent("message", "a")]),
    "many-blank-lines": (
        b"data: a\n\n\n\n\ndata: b\n\n",
        [SSEEvent("message", "a"), SSEEvent("message", "b")],
    ),
    # a BOM anywhere but the very start is text
    "bom-inside-data": (b"data: " + BOM + b"x\n\n", [SSEEvent("message", "\ufeffx")]),
    "json-with-colons": (
        b'data: {"a": "b:c"}\n\n',
        [SSEEvent("message", '{"a": "b:c"}')],
    ),
}


@pytest.mark.parametrize("eol", sorted(EOLS))
@pytest.mark.parametrize("edge", sorted(EDGES))
def test_every_sse_edge_in_every_split(edge: str, eol: str) -> None:
    stream, expected = EDGES[edge]
    data = _with_eol(stream, EOLS[eol])
    for cut in range(len(data) + 1):
        assert decode_all([data[:cut], data[cut:]]) == expected, cut
        assert decode_all([data[:cut], b"", data[cut:]]) == expected, cut


def test_random_splits_and_mixed_line_endings() -> None:
    rng = random.Random(1313)
    for _ in range(300):
        data, previous = BOM, b""
        for line in STREAM.split(b"\n")[:-1]:
            # CR then an empty line's LF would read as one CRLF: not a mix a server can mean
            choices = [b"\r", b"\r\n"] if previous == b"\r" and not line else list(EOLS.values())
            previous = rng.choice(choices)
            data += line + previous
        cuts = sorted(rng.sample(range(len(data) + 1), rng.randint(0, 12)))
        parts = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        assert decode_all(parts) == EXPECTED


# -- over the wire ---------------------------------------------------------------------

PIECES = ["Hel", "lo", ", ", "wörld", " 🌍", "!"]


@pytest.mark.parametrize("kind", FORMAT_KINDS)
@pytest.mark.anyio
@pytest.mark.parametrize("eol", sorted(EOLS))
async def test_streams_over_the_wire_in_random_splits(kind: str, transport: str, eol: str) -> None:
    rng = random.Random(f"{kind}-{transport}-{eol}")

    async def handler(req: Seen, conn: Conn) -> None:
        data = BOM + b"".join(sse_events(req, PIECES, eol=EOLS[eol]))
        cuts = sorted(rng.sample(range(1, len(data)), 8))
        parts = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        await conn.chunked(200, parts, pause=0.001)

    async with RawServer(handler) as srv:
        async with client_for(kind, srv, transport) as client:
            for _ in range(3):
                async with client.stream([{"role": "user", "content": "hi"}], max_tokens=8) as s:
                    assert await s.text() == "".join(PIECES)
                assert s.response is not None
                assert s.response.usage.output_tokens == 2
                assert s.response.usage.input_tokens == 5  # the first event was not lost


@pytest.mark.anyio
async def test_a_bom_stream_is_complete_and_cached_whole(transport: str) -> None:
    async def handler(req: Seen, conn: Conn) -> None:
        await conn.chunked(200, [BOM, *sse_events(req, ["Hello", " there"])])

    async with RawServer(handler) as srv:
        async with client_for("openai", srv, transport, cache_enabled=True) as client:
            for _ in range(2):  # the second answer comes from the cache
                async with client.stream([{"role": "user", "content": "hi"}]) as s:
                    assert await s.text() == "Hello there"
            assert len(srv.requests) == 1
        await anyio.sleep(0)
