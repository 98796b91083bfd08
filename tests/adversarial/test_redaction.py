"""Servers that echo the key back: in an error body, an in-band stream error, a reflected header.

Whatever the provider kind and the transport, the key never appears in
``str``/``repr`` of the error, its attributes (``body`` included), its
notes or any exception of its cause chain, nor in what ``logger.exception``
prints; redaction blanks whole key-shaped tokens only, so a short key
never mangles the provider's text.
"""

from __future__ import annotations

import json
import logging

import pytest

from aio_llm import APIError, LLMError

from .conftest import FORMAT_KINDS, KEY, client_for
from .leakcheck import assert_clean, exception_texts, log_texts
from .rawserver import Conn, RawServer, Seen, sse_events


def _echo_body(key: str) -> bytes:
    return json.dumps(
        {
            "error": {
                "message": f"Incorrect API key provided: {key}.",
                "type": "authentication_error",
                "param": f"key={key}",
                "code": "invalid_api_key",
                "metadata": {"raw": {"echo": [key, {"nested": f"Bearer {key}"}]}},
            },
            "request_id": key,
        }
    ).encode()


def _reflected(req: Seen) -> bytes:
    """The request's own auth header value, as a server that reflects headers would."""
    value = req.headers.get("authorization") or req.headers.get("x-api-key") or ""
    return value.encode()


async def _error_body(req: Seen, conn: Conn) -> None:
    key = _reflected(req).decode().removeprefix("Bearer ")
    await conn.full(401, _echo_body(key), {"x-request-id": key})


async def _error_html(req: Seen, conn: Conn) -> None:
    key = _reflected(req).decode()
    await conn.full(
        502, f"<html><body>bad gateway for {key}</body></html>", content_type="text/html"
    )


async def _inband_stream_error(req: Seen, conn: Conn) -> None:
    key = _reflected(req).decode().removeprefix("Bearer ")
    events = sse_events(req, ["partial "])[:-3]  # cut before the end
    message = f"upstream rejected key {key}"
    if req.path.endswith("/messages"):
        err = {"type": "error", "error": {"type": "api_error", "message": message}}
        events.append(b"event: error\ndata: " + json.dumps(err).encode() + b"\n\n")
    else:
        err = {"error": {"message": message, "code": 502, "metadata": {"raw": key}}}
        events.append(b"data: " + json.dumps(err).encode() + b"\n\n")
    await conn.chunked(200, events)


async def _inband_first_event(req: Seen, conn: Conn) -> None:
    key = _reflected(req).decode().removeprefix("Bearer ")
    if req.path.endswith("/messages"):
        err = {"type": "error", "error": {"type": "overloaded_error", "message": key}}
        event = b"event: error\ndata: " + json.dumps(err).encode() + b"\n\n"
    else:
        event = b"data: " + json.dumps({"error": {"message": key, "code": 429}}).encode() + b"\n\n"
    await conn.chunked(200, [event])


async def _reflected_in_status_line(req: Seen, conn: Conn) -> None:
    # the HTTP library's parse error quotes the line, key included
    await conn.write(b"HTTP/1.1 2OO " + _reflected(req) + b"\r\n\r\n")
    conn.close()


async def _reflected_in_header_line(req: Seen, conn: Conn) -> None:
    await conn.write(b"HTTP/1.1 200 OK\r\nX-Echo " + _reflected(req) + b"\r\n\r\n")
    conn.close()


async def _malformed_json_echo(req: Seen, conn: Conn) -> None:
    await conn.full(200, b'{"echo": "' + _reflected(req) + b'", broken')


ATTACKS = {
    "error-body": _error_body,
    "html-error-page": _error_html,
    "in-band-stream-error": _inband_stream_error,
    "in-band-first-event": _inband_first_event,
    "reflected-status-line": _reflected_in_status_line,
    "reflected-header-line": _reflected_in_header_line,
    "malformed-json-echo": _malformed_json_echo,
}


@pytest.mark.anyio
@pytest.mark.parametrize("attack", sorted(ATTACKS))
async def test_an_echoed_key_never_reaches_the_error(
    kind: str, transport: str, attack: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    log = logging.getLogger("test.adversarial")
    async with RawServer(ATTACKS[attack]) as srv:
        async with client_for(kind, srv, transport) as client:
            for stream in (False, True):
                with pytest.raises(LLMError) as info:
                    messages = [{"role": "user", "content": "hi"}]
                    if stream:
                        async with client.stream(messages, max_tokens=8) as s:
                            await s.text()
                    else:
                        await client.chat(messages, max_tokens=8)
                log.exception("the call failed", exc_info=info.value)
                assert_clean(info.value, secrets=(KEY,), where=f"{attack} {stream=}")
    # httpcore's own DEBUG trace quotes the raw lines a server sent back (a reflected
    # key included): that is httpcore's logger, not aio_llm's (docs/reliability.md)
    ours = [r for r in caplog.records if not r.name.startswith("httpcore")]
    assert_clean(log_texts(ours), secrets=(KEY,), where="logs")


@pytest.mark.parametrize("kind", FORMAT_KINDS)
@pytest.mark.anyio
async def test_the_redacted_error_still_says_what_happened(transport: str, kind: str) -> None:
    async with RawServer(_error_body) as srv:
        async with client_for(kind, srv, transport) as client:
            with pytest.raises(APIError) as info:
                await client.chat([{"role": "user", "content": "hi"}], max_tokens=8)
    exc = info.value
    assert exc.status_code == 401
    assert "Incorrect API key provided: [REDACTED]." in str(exc)
    assert "[REDACTED]" in json.dumps(exc.body)


@pytest.mark.anyio
@pytest.mark.parametrize("key", ["k", "sk", "API", "provided", "Incorrect"])
async def test_a_short_key_does_not_mangle_the_text(transport: str, key: str) -> None:
    async def handler(req: Seen, conn: Conn) -> None:
        body = {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}
        await conn.full(401, json.dumps(body).encode())

    async with RawServer(handler) as srv:
        async with client_for("openai", srv, transport, key=key) as client:
            with pytest.raises(APIError) as info:
                await client.chat([{"role": "user", "content": "hi"}], max_tokens=8)
    message = info.value.message
    # a whole-word key is blanked where it stands; nothing inside another word is
    expected = " ".join(
        "[REDACTED]" if w == key else w for w in "Incorrect API key provided".split()
    )
    assert message == expected, message
    texts = list(exception_texts(info.value))
    assert not any("[REDACTED]ey" in t or "s[REDACTED]" in t for t in texts)
