"""Bedrock's codec without the network: SigV4 against AWS's vectors, credentials, the body."""

from __future__ import annotations

import calendar
import json
import sys
from typing import Any

import pytest

from aio_llm import (
    APIStatusError,
    BadRequestError,
    ChatRequest,
    ConfigurationError,
    InvalidRequestError,
    RateLimitError,
    ServerError,
    StreamError,
)
from aio_llm.providers import BedrockProvider, create_provider
from aio_llm.providers._aws_credentials import StaticCredentials
from aio_llm.providers._sigv4 import AWSCredentials, canonical_request, sign_headers
from aio_llm.testing.clock import FakeClock
from aio_llm.transports.eventstream import EventStreamMessage, encode_message

# -- SigV4: AWS's published test suite (credentials, region and service of the suite) ----

SUITE = AWSCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
SUITE_TOKEN = AWSCredentials(
    "AKIDEXAMPLE",
    "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267",
)
SUITE_TIME = calendar.timegm((2015, 8, 30, 12, 36, 0))
HOST = "https://example.amazonaws.com"

# (vector, method, url, headers, body, credentials, signed headers, signature)
VECTORS: list[tuple[str, str, str, dict[str, str], bytes, AWSCredentials, str, str]] = [
    (
        "get-vanilla",
        "GET",
        HOST + "/",
        {},
        b"",
        SUITE,
        "host;x-amz-date",
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    ),
    (
        "post-vanilla",
        "POST",
        HOST + "/",
        {},
        b"",
        SUITE,
        "host;x-amz-date",
        "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
    ),
    (
        "get-vanilla-query-order-key-case",
        "GET",
        HOST + "/?Param2=value2&Param1=value1",
        {},
        b"",
        SUITE,
        "host;x-amz-date",
        "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
    ),
    (
        "post-x-www-form-urlencoded",
        "POST",
        HOST + "/",
        {"Content-Type": "application/x-www-form-urlencoded"},
        b"Param1=value1",
        SUITE,
        "content-type;host;x-amz-date",
        "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
    ),
    (
        "get-vanilla-with-session-token",
        "GET",
        HOST + "/",
        {},
        b"",
        SUITE_TOKEN,
        "host;x-amz-date;x-amz-security-token",
        "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8",
    ),
    (
        "get-utf8",
        "GET",
        HOST + "/\u1234",
        {},
        b"",
        SUITE,
        "host;x-amz-date",
        "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
    ),
    (
        "get-header-value-trim",
        "GET",
        HOST + "/",
        {"My-Header1": " value1", "My-Header2": ' "a   b   c"'},
        b"",
        SUITE,
        "host;my-header1;my-header2;x-amz-date",
        "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
    ),
]


@pytest.mark.parametrize(
    ("method", "url", "headers", "body", "creds", "signed", "signature"),
    [v[1:] for v in VECTORS],
    ids=[v[0] for v in VECTORS],
)
def test_sigv4_matches_aws_test_suite(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    creds: AWSCredentials,
    signed: str,
    signature: str,
) -> None:
    out = sign_headers(
        method, url, headers, body, creds, region="us-east-1", service="service", now=SUITE_TIME
    )
    assert out["x-amz-date"] == "20150830T123600Z"
    assert out["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
    if creds.session_token:
        assert out["x-amz-security-token"] == creds.session_token


def test_canonical_request_of_the_query_order_vector() -> None:
    request, signed = canonical_request(
        "GET",
        HOST + "/?Param2=value2&Param1=value1",
        {"host": "example.amazonaws.com", "x-amz-date": "20150830T123600Z"},
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    )
    assert request == (
        "GET\n/\nParam1=value1&Param2=value2\n"
        "host:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
        "host;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert signed == "host;x-amz-date"


def test_bedrock_model_id_is_encoded_twice_in_the_canonical_uri() -> None:
    """The wire path has ``%3A``; AWS signs the path URI-encoded again (``%253A``)."""
    url = (
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/us.amazon.nova-micro-v1%3A0/converse"
    )
    request, _ = canonical_request("POST", url, {"host": "x"}, "0" * 64)
    assert request.split("\n")[1] == "/model/us.amazon.nova-micro-v1%253A0/converse"


def test_credentials_repr_hides_the_secret() -> None:
    shown = repr(SUITE_TOKEN)
    assert "wJalr" not in shown and "6e8629" not in shown and "AKID" in shown


# -- the provider --------------------------------------------------------------------------

ENV = {
    "AWS_ACCESS_KEY_ID": "AKIDTEST",
    "AWS_SECRET_ACCESS_KEY": "secret-key",
    "AWS_REGION": "eu-west-3",
}


def req(**fields: Any) -> ChatRequest:
    fields.setdefault("model", "anthropic.claude-sonnet-4-5-20250929-v1:0")
    fields.setdefault("messages", [{"role": "user", "content": "Hi"}])
    return ChatRequest(**fields)


def test_env_contract_url_and_signed_headers() -> None:
    clock = FakeClock(wall_start=SUITE_TIME)
    p = create_provider("bedrock", environ={**ENV, "AWS_SESSION_TOKEN": "tok"}, clock=clock)
    http = p.encode_chat(req(stream=True))
    assert http.url == (
        "https://bedrock-runtime.eu-west-3.amazonaws.com/model/"
        "anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream"
    )
    h = http.headers
    assert h["Accept"] == "application/vnd.amazon.eventstream"
    assert h["x-amz-date"] == "20150830T123600Z" and h["x-amz-security-token"] == "tok"
    assert h["authorization"].startswith(
        "AWS4-HMAC-SHA256 Credential=AKIDTEST/20150830/eu-west-3/bedrock/aws4_request, "
        "SignedHeaders=accept;content-type;host;x-amz-date;x-amz-security-token, Signature="
    )
    assert "secret-key" not in json.dumps(h) and "secret-key" not in repr(p)


def test_endpoint_variables_and_bearer_token() -> None:
    env = {"AWS_BEARER_TOKEN_BEDROCK": "bedrock-api-key", "AWS_DEFAULT_REGION": "us-west-2"}
    p = create_provider("bedrock", environ=env)
    assert p.base_url == "https://bedrock-runtime.us-west-2.amazonaws.com"
    http = p.encode_chat(req())
    assert http.headers["Authorization"] == "Bearer bedrock-api-key"
    assert "x-amz-date" not in http.headers
    env2 = {**ENV, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    assert create_provider("bedrock", environ=env2).base_url == "http://127.0.0.1:9"
    env3 = {**env2, "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": "http://127.0.0.1:8"}
    assert create_provider("bedrock", environ=env3).base_url == "http://127.0.0.1:8"


def test_missing_region_and_credentials_are_configuration_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigurationError, match="AWS_REGION"):
        create_provider("bedrock", environ={"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"})
    with pytest.raises(ConfigurationError, match="set together"):
        create_provider("bedrock", environ={"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "a"})
    monkeypatch.setitem(sys.modules, "botocore", None)  # not installed
    monkeypatch.setattr("aio_llm.providers.bedrock.botocore_available", lambda: False)
    with pytest.raises(ConfigurationError, match=r"aio-llm\[bedrock\]") as info:
        create_provider("bedrock", environ={"AWS_REGION": "us-east-1"})
    assert "AWS_ACCESS_KEY_ID" in str(info.value) and "AWS_BEARER_TOKEN_BEDROCK" in str(info.value)


def test_importing_aio_llm_does_not_import_botocore() -> None:
    import subprocess

    code = (
        "import sys, aio_llm; aio_llm.AsyncLLMClient; "
        "from aio_llm.providers import create_provider; "
        "create_provider('bedrock', environ={'AWS_REGION': 'us-east-1', "
        "'AWS_ACCESS_KEY_ID': 'a', 'AWS_SECRET_ACCESS_KEY': 'b'}); "
        "print(any(m.startswith(('botocore', 'boto3')) for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    code = (
        "import sys, aio_llm; "
        "print(sorted(m for m in sys.modules if 'bedrock' in m or 'sigv4' in m))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


class Rotating:
    """A credential source whose credentials change on every refresh."""

    def __init__(self) -> None:
        self.refreshes = 0
        self.current: AWSCredentials | None = None

    def needs_refresh(self, now: float) -> bool:
        return self.current is None

    async def refresh(self, now: float) -> None:
        self.refreshes += 1
        self.current = AWSCredentials(f"AKID{self.refreshes}", "s")


@pytest.mark.anyio
async def test_a_credential_source_is_refreshed_before_signing() -> None:
    source = Rotating()
    p = BedrockProvider(region="us-east-1", credentials=source)
    with pytest.raises(ConfigurationError, match="no AWS credentials loaded"):
        p.encode_chat(req())  # nothing loaded yet: send() refreshes first
    assert source.needs_refresh(0)
    await source.refresh(0)
    assert "Credential=AKID1/" in p.encode_chat(req()).headers["authorization"]
    static = BedrockProvider(region="us-east-1", credentials=AWSCredentials("AKIDX", "s"))
    assert "StaticCredentials" in repr(static) and isinstance(static._source, StaticCredentials)


def body(**fields: Any) -> dict[str, Any]:
    p = create_provider("bedrock", environ=ENV)
    return dict(json.loads(p.encode_chat(req(**fields)).content))


def test_body_maps_parameters_system_and_cache_points() -> None:
    b = body(
        messages=[
            {
                "role": "system",
                "content": [
                    {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}
                ],
            },
            {"role": "user", "content": "Hi"},
        ],
        max_tokens=50,
        temperature=0.2,
        top_p=0.9,
        stop=["END"],
        extra={"additionalModelRequestFields": {"thinking": {"type": "enabled"}}},
    )
    assert b["system"] == [{"text": "Be brief."}, {"cachePoint": {"type": "default"}}]
    assert b["messages"] == [{"role": "user", "content": [{"text": "Hi"}]}]
    assert b["inferenceConfig"] == {
        "maxTokens": 50,
        "temperature": 0.2,
        "topP": 0.9,
        "stopSequences": ["END"],
    }
    assert b["additionalModelRequestFields"] == {"thinking": {"type": "enabled"}}


def test_images_and_documents_go_inline() -> None:
    parts = [
        {"type": "text", "text": "Compare"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw=="}},
        {
            "type": "document",
            "title": "Q3: report!",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
        },
        {
            "type": "document",
            "source": {"type": "text", "media_type": "text/plain", "data": "plain words"},
        },
        {"type": "image", "source": {"type": "url", "url": "s3://bucket/cat.jpeg"}},
    ]
    content = body(messages=[{"role": "user", "content": parts}])["messages"][0]["content"]
    assert content == [
        {"text": "Compare"},
        {"image": {"format": "png", "source": {"bytes": "iVBORw=="}}},
        {"document": {"format": "pdf", "name": "Q3 report", "source": {"bytes": "JVBERi0="}}},
        {"document": {"format": "txt", "name": "document", "source": {"text": "plain words"}}},
        {"image": {"format": "jpeg", "source": {"s3Location": {"uri": "s3://bucket/cat.jpeg"}}}},
    ]
    bare = [{"type": "image", "source": {"type": "url", "url": "s3://bucket/cat"}}]
    with pytest.raises(InvalidRequestError, match="image of type None"):
        body(messages=[{"role": "user", "content": bare}])
    with pytest.raises(InvalidRequestError, match="s3://"):
        body(
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
                }
            ]
        )


def test_refused_parameters_are_clear() -> None:
    with pytest.raises(InvalidRequestError, match="seed"):
        body(seed=1)
    # json_object has no closed schema for outputConfig: it is asked for by a forced tool
    config = body(response_format={"type": "json_object"})["toolConfig"]
    assert config["toolChoice"] == {"tool": {"name": "json_output"}}
    assert config["tools"][0]["toolSpec"]["inputSchema"] == {"json": {"type": "object"}}
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    assert "toolConfig" not in body(tools=[tool], tool_choice="none")
    history = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "tool_calls": [{"id": "t1", "name": "f", "arguments": "{}"}]},
        {"role": "tool", "tool_call_id": "t1", "content": "done"},
    ]
    with pytest.raises(InvalidRequestError, match="tool_choice 'none'"):
        body(messages=history, tools=[tool], tool_choice="none")
    assert body(tools=[tool], tool_choice="required")["toolConfig"]["toolChoice"] == {"any": {}}
    assert body(tools=[tool], tool_choice="auto")["toolConfig"]["toolChoice"] == {"auto": {}}


def test_tool_results_and_errors_become_tool_result_blocks() -> None:
    history = [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": "On it.",
            "tool_calls": [{"id": "t1", "name": "f", "arguments": '{"a": 1}'}],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "boom", "is_error": True},
                {"type": "text", "text": "and?"},
            ],
        },
    ]
    b = body(messages=history)
    assert b["messages"][1] == {
        "role": "assistant",
        "content": [
            {"text": "On it."},
            {"toolUse": {"toolUseId": "t1", "name": "f", "input": {"a": 1}}},
        ],
    }
    assert b["messages"][2] == {
        "role": "user",
        "content": [
            {"toolResult": {"toolUseId": "t1", "content": [{"text": "boom"}], "status": "error"}},
            {"text": "and?"},
        ],
    }


# -- decoding errors and in-band exceptions --------------------------------------------------


def test_error_type_header_becomes_the_code_and_status_the_class() -> None:
    p = create_provider("bedrock", environ=ENV)
    headers = {
        "x-amzn-errortype": "ThrottlingException:http://internal.amazon.com/coral/",
        "x-amzn-requestid": "rid-1",
    }
    err = p.decode_error(429, headers, b'{"message":"Too many requests"}')
    assert isinstance(err, RateLimitError) and err.code == "ThrottlingException"
    assert err.request_id == "rid-1" and "Too many requests" in str(err)
    err = p.decode_error(400, {}, b'{"Message":"Input is too long for requested model."}')
    assert isinstance(err, BadRequestError) and type(err).__name__ == "ContextWindowExceededError"
    err = p.decode_error(503, {}, b"<html>unavailable</html>")
    assert isinstance(err, ServerError) and "unavailable" in str(err)


def _exception(kind: str, message: str) -> EventStreamMessage:
    headers = {
        ":message-type": "exception",
        ":exception-type": kind,
        ":content-type": "application/json",
    }
    frame = encode_message(headers, json.dumps({"message": message}).encode())
    from aio_llm.transports.eventstream import EventStreamDecoder

    (m,) = EventStreamDecoder().feed(frame)
    return m


@pytest.mark.parametrize(
    ("kind", "cls", "status"),
    [
        ("throttlingException", RateLimitError, 429),
        ("validationException", BadRequestError, 400),
        ("internalServerException", ServerError, 500),
        ("serviceUnavailableException", ServerError, 503),
        ("modelStreamErrorException", APIStatusError, 424),
    ],
)
def test_in_band_exceptions_raise_the_status_class(
    kind: str, cls: type[Exception], status: int
) -> None:
    p = create_provider("bedrock", environ=ENV)
    decoder = p.stream_decoder(req(stream=True))
    with pytest.raises(cls) as info:
        decoder.feed(_exception(kind, "it broke"))
    assert info.value.status_code == status and "it broke" in str(info.value)  # type: ignore[attr-defined]


def test_unknown_exception_and_error_messages_are_stream_errors() -> None:
    p = create_provider("bedrock", environ=ENV)
    decoder = p.stream_decoder(req(stream=True))
    with pytest.raises(StreamError, match="odd"):
        decoder.feed(_exception("someNewException", "odd"))
    error = EventStreamMessage(
        {":message-type": "error", ":error-code": "E", ":error-message": "bad"}, b""
    )
    with pytest.raises(StreamError, match="bad"):
        decoder.feed(error)


# -- botocore's credential chain (the `bedrock` extra), on files only ---------------------------


@pytest.fixture
def aws_files(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Shared credential and config files, and no other source botocore could reach."""
    for var in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask the network
    credentials = tmp_path / "credentials"
    config = tmp_path / "config"
    config.write_text("")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    return credentials


@pytest.mark.anyio
async def test_profiles_come_from_botocore(aws_files: Any) -> None:
    from aio_llm import AsyncLLMClient
    from aio_llm.testing import FakeLLMServer

    aws_files.write_text(
        "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = file-secret\n"
        "[work]\naws_access_key_id = AKIDWORK\naws_secret_access_key = work-secret\n"
        "aws_session_token = work-token\n"
    )
    async with FakeLLMServer() as server:
        for env, key_id in [({}, "AKIDFILE"), ({"AWS_PROFILE": "work"}, "AKIDWORK")]:
            p = create_provider(
                "bedrock", base_url=server.url, environ={"AWS_REGION": "us-east-1", **env}
            )
            assert "BotocoreCredentials" in repr(p)
            async with AsyncLLMClient(p, middleware=[]) as c:
                r = await c.chat([{"role": "user", "content": "Hi"}], model="amazon.nova-lite-v1:0")
            assert r.content == "Echo: Hi"
            headers = server.last_request.headers
            assert f"Credential={key_id}/" in headers["authorization"]
            assert headers.get("x-amz-security-token") == (
                "work-token" if key_id == "AKIDWORK" else None
            )


@pytest.mark.anyio
async def test_no_credentials_anywhere_is_a_configuration_error(aws_files: Any) -> None:
    p = create_provider("bedrock", environ={"AWS_REGION": "us-east-1"})
    from aio_llm.transports.httpx import HttpxTransport

    transport = HttpxTransport()
    try:
        with pytest.raises(ConfigurationError, match="no AWS credentials found"):
            await p.send(req(), transport)
    finally:
        await transport.aclose()
