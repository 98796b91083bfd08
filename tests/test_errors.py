"""Issue 15, point 13: errors as the SDKs name and shape them, short, and without keys.

``InternalServerError`` (``ServerError`` is the same class); status errors
carry ``status_code``, ``request_id``, ``headers``, ``body`` and
``response`` as the official SDKs' do (compared side by side with the
``openai`` and ``anthropic`` SDKs on the same answer); a wrong port and an
HTML error page give one actionable line, the page itself on the exception;
the API key appears in none of it. Over loopback HTTP on both transports.
"""

from __future__ import annotations

import json
import pickle
import socket
from typing import Any

import httpx
import pytest

from aio_llm import (
    APIConnectionError,
    APIStatusError,
    AsyncLLMClient,
    BadRequestError,
    ClientConfig,
    InternalServerError,
    NotFoundError,
    OverloadedError,
    RateLimitError,
    ServerError,
)
from aio_llm.testing import FakeLLMServer, Fault

HELLO = [{"role": "user", "content": "Hello"}]
KEY = "sk-errors-SECRET-0123456789abcdef"


def make(url: str, kind: str, transport: str) -> AsyncLLMClient:
    return AsyncLLMClient(
        kind,
        api_key=KEY,
        base_url=url,
        model="gpt-4o-mini",
        config=ClientConfig(transport=transport, max_retries=0),
    )


async def ours(srv: FakeLLMServer, kind: str, transport: str) -> APIStatusError:
    url = srv.url if kind == "anthropic" else srv.openai_url
    async with make(url, kind, transport) as c:
        with pytest.raises(APIStatusError) as info:
            await c.chat(HELLO)
    return info.value


def assert_no_key(exc: BaseException) -> None:
    seen = [str(exc), repr(exc.args), repr(vars(exc)), repr(exc.__cause__), repr(exc.__context__)]
    assert not any(KEY in text for text in seen), seen


def test_internal_server_error_is_the_sdks_name_and_server_error_still_works() -> None:
    assert ServerError is InternalServerError
    assert issubclass(OverloadedError, InternalServerError)
    err = InternalServerError("down", status_code=503, headers={"X-Request-Id": "r"}, raw=b"x")
    try:
        raise err
    except ServerError as caught:  # code written for ServerError keeps catching
        assert caught is err
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is InternalServerError and again.headers == {"x-request-id": "r"}
    assert again.raw == b"x" and again.status_code == 503


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("fault", "cls"),
    [
        (
            Fault.status(400, message="bad thing", error_type="invalid_request_error"),
            BadRequestError,
        ),
        (Fault.status(404, message="no such model"), NotFoundError),
        (Fault.status(429, message="slow down", retry_after=7), RateLimitError),
        (Fault.status(503, message="upstream down"), InternalServerError),
    ],
)
async def test_openai_errors_look_like_the_openai_sdks(
    server: FakeLLMServer, transport: str, fault: Fault, cls: type[APIStatusError]
) -> None:
    import openai

    server.enqueue(fault, fault)
    mine = await ours(server, "openai", transport)
    async with openai.AsyncOpenAI(
        api_key=KEY, base_url=server.openai_url, max_retries=0
    ) as official:
        with pytest.raises(openai.APIStatusError) as info:
            await official.chat.completions.create(model="gpt-4o-mini", messages=HELLO)  # type: ignore[arg-type]
    theirs = info.value
    assert isinstance(mine, cls)
    assert type(mine).__name__ == type(theirs).__name__
    assert mine.status_code == theirs.status_code
    assert mine.request_id and theirs.request_id  # each answer has its own
    assert mine.request_id.startswith("req_") and theirs.request_id.startswith("req_")
    assert mine.body == theirs.body  # the error object
    assert mine.code == theirs.code
    assert mine.response.status_code == theirs.response.status_code
    assert mine.response.json() == theirs.response.json()
    assert mine.response.headers["x-request-id"] == mine.headers["x-request-id"]
    assert mine.headers.keys() == {k.lower() for k in theirs.response.headers}
    if cls is RateLimitError:
        assert mine.retry_after == 7.0 and mine.headers["retry-after"] == "7"
    assert_no_key(mine)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("fault", "cls"),
    [
        (Fault.status(400, message="bad", error_type="invalid_request_error"), BadRequestError),
        (Fault.status(529, message="busy", error_type="overloaded_error"), OverloadedError),
        (Fault.status(500, message="oops", error_type="api_error"), InternalServerError),
    ],
)
async def test_anthropic_errors_look_like_the_anthropic_sdks(
    server: FakeLLMServer, transport: str, fault: Fault, cls: type[APIStatusError]
) -> None:
    import anthropic

    server.enqueue(fault, fault)
    mine = await ours(server, "anthropic", transport)
    async with anthropic.AsyncAnthropic(
        api_key=KEY, base_url=server.url, max_retries=0
    ) as official:
        with pytest.raises(anthropic.APIStatusError) as info:
            await official.messages.create(model="claude", max_tokens=10, messages=HELLO)  # type: ignore[arg-type]
    theirs = info.value
    assert isinstance(mine, cls)
    assert type(mine).__name__ == type(theirs).__name__
    assert mine.status_code == theirs.status_code
    assert mine.request_id and theirs.request_id
    assert mine.request_id == mine.body["request_id"]
    same_id = {**theirs.body, "request_id": mine.request_id}  # type: ignore[dict-item]
    assert mine.body == same_id  # the whole body, as the anthropic SDK keeps it
    assert mine.response.json() == mine.body
    assert_no_key(mine)


PAGE = (
    "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>"
    + "<center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center>" * 40
    + f"<!-- upstream said: key {KEY} --></body></html>"
)


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_an_html_error_page_is_summarised_not_pasted(
    server: FakeLLMServer, transport: str, kind: str
) -> None:
    server.enqueue(Fault.raw(502, {"content-type": "text/html"}, PAGE))
    err = await ours(server, kind, transport)
    assert isinstance(err, InternalServerError) and err.status_code == 502
    assert err.message == (
        'HTTP 502 Bad Gateway: the server sent an HTML page titled "502 Bad Gateway", not an '
        "API error; a proxy or a wrong base_url answered (the page is on exc.body)"
    )
    assert "<" not in str(err) and len(str(err)) < 250
    assert isinstance(err.body, str) and err.body.startswith("<!DOCTYPE html>")
    assert err.raw is not None and b"nginx" in err.raw
    assert err.response.text.startswith("<!DOCTYPE html>")
    assert "[REDACTED]" in err.body and b"[REDACTED]" in err.raw  # the echoed key is blanked
    assert_no_key(err)


@pytest.mark.anyio
async def test_a_plain_text_error_is_one_short_line(server: FakeLLMServer) -> None:
    server.enqueue(Fault.raw(503, {"content-type": "text/plain"}, "upstream\nconnect error " * 50))
    err = await ours(server, "openai", "aiohttp")
    assert err.message.startswith("HTTP 503 Service Unavailable: upstream connect error")
    assert "\n" not in err.message and len(err.message) <= 240
    assert err.body == "upstream\nconnect error " * 50


@pytest.mark.anyio
async def test_a_key_echoed_in_a_json_error_is_blanked(
    server: FakeLLMServer, transport: str
) -> None:
    body = json.dumps({"error": {"message": f"Incorrect API key provided: {KEY}", "code": "k"}})
    server.enqueue(Fault.raw(401, {"content-type": "application/json"}, body))
    err = await ours(server, "openai", transport)
    assert "[REDACTED]" in err.message
    assert_no_key(err)
    assert KEY not in err.response.text


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends: nothing listens


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_a_wrong_port_says_where_and_what_to_check(transport: str, kind: str) -> None:
    port = _closed_port()
    url = f"http://127.0.0.1:{port}" + ("" if kind == "anthropic" else "/v1")
    async with make(url, kind, transport) as c:
        with pytest.raises(APIConnectionError) as info:
            await c.chat(HELLO)
        with pytest.raises(APIConnectionError) as streamed:
            async with c.stream(HELLO):
                pass
    for err in (info.value, streamed.value):
        text = str(err)
        assert text.startswith(
            f"cannot connect to http://127.0.0.1:{port}: connection refused; "
            "is the server running there, and is base_url right?"
        ), text
        assert "ssl" not in text.lower() and "ConnectionKey" not in text
        assert err.__suppress_context__ and err.__cause__ is None
        assert_no_key(err)


def test_the_connection_message_never_shows_credentials_or_paths() -> None:
    from aio_llm.transports._connect import connect_error, origin_of

    assert origin_of("https://user:pw@api.example.com/v1/chat?key=abc") == (
        "https://api.example.com:443"
    )
    assert origin_of("http://[::1]:8080/v1") == "http://[::1]:8080"
    err = connect_error("https://u:p@h.example/v1?key=s", OSError(111, "refused"))
    assert "u:p" not in str(err) and "key=s" not in str(err)
    gai = socket.gaierror(-2, "Name or service not known")
    assert "host name could not be resolved" in str(connect_error("http://nowhere/", gai))


def test_a_status_error_without_a_body_still_has_a_response() -> None:
    err = APIStatusError("x", status_code=418)
    response: Any = err.response
    assert isinstance(response, httpx.Response)
    assert response.status_code == 418 and response.content == b"" and err.headers == {}


def test_each_provider_names_a_503_as_its_sdk_does() -> None:
    from aio_llm import ServiceUnavailableError
    from aio_llm.providers import AnthropicProvider, OpenAIProvider

    body = b'{"type": "error", "error": {"type": "api_error", "message": "unavailable"}}'
    claude = AnthropicProvider(api_key="sk-ant-x").decode_error(503, {}, body)
    assert type(claude) is ServiceUnavailableError  # anthropic.ServiceUnavailableError
    assert isinstance(claude, OverloadedError) and isinstance(claude, InternalServerError)
    gpt = OpenAIProvider(api_key="sk-x").decode_error(503, {}, b'{"error": {"message": "busy"}}')
    assert type(gpt) is InternalServerError  # openai.InternalServerError
