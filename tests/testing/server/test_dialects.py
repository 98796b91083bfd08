"""FakeLLMServer's Responses, Gemini, Azure and Bedrock dialects: routes, answers, refusals."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from aio_llm.testing import FakeLLMServer, Fault
from aio_llm.testing.server._dialects import route_of
from aio_llm.transports.eventstream import EventStreamDecoder


@pytest.fixture
async def server() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer(stream_chunks=3) as srv:
        yield srv


@pytest.mark.parametrize(
    ("path", "dialect", "model", "stream"),
    [
        ("/v1/responses", "openai-responses", None, None),
        ("/openai/v1/responses", "openai-responses", None, None),
        ("/v1beta/models/gemini-2.5-flash:generateContent", "gemini", "gemini-2.5-flash", False),
        ("/v1beta/models/g:streamGenerateContent", "gemini", "g", True),
        (
            "/model/us.amazon.nova-micro-v1%3A0/converse",
            "bedrock",
            "us.amazon.nova-micro-v1:0",
            False,
        ),
        ("/model/m/converse-stream", "bedrock", "m", True),
        ("/openai/deployments/my%20gpt/chat/completions", "openai", "my gpt", None),
        ("/openai/v1/chat/completions", "openai", None, None),
    ],
)
def test_routes(path: str, dialect: str, model: str | None, stream: bool | None) -> None:
    route = route_of(path)
    assert route is not None
    assert (route.dialect.name, route.model, route.stream) == (dialect, model, stream)
    assert route_of("/v1beta/models/g:embedContent") is None
    counting = route_of("/v1beta/models/g:countTokens")
    assert counting is not None and counting.dialect.name == "gemini" and counting.model == "g"


@pytest.mark.anyio
async def test_rate_limit_refusals_speak_each_dialect() -> None:
    async with FakeLLMServer(rate_limit_rpm=1) as srv, httpx.AsyncClient() as http:
        gemini = f"{srv.url}/v1beta/models/g:generateContent"
        body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
        assert (await http.post(gemini, json=body)).status_code == 200
        refused = await http.post(gemini, json=body)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert refused.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
        bedrock = await http.post(
            f"{srv.url}/model/m/converse",
            json={"messages": [{"role": "user", "content": [{"text": "hi"}]}]},
        )
        assert bedrock.status_code == 429
        assert bedrock.headers["x-amzn-errortype"].startswith("ThrottlingException")
        assert "message" in bedrock.json()


@pytest.mark.anyio
async def test_bad_requests_and_faults_in_the_bedrock_stream(server: FakeLLMServer) -> None:
    async with httpx.AsyncClient() as http:
        bad = await http.post(f"{server.url}/model/m/converse", json={"messages": "no"})
        assert bad.status_code == 400 and bad.headers["x-amzn-errortype"].startswith(
            "ValidationException"
        )
        server.enqueue(Fault.stream_error(1, message="boom", error_type="throttlingException"))
        body = {"messages": [{"role": "user", "content": [{"text": "one two three"}]}]}
        streamed = await http.post(f"{server.url}/model/m/converse-stream", json=body)
        assert streamed.headers["content-type"] == "application/vnd.amazon.eventstream"
        messages = EventStreamDecoder().feed(streamed.content)
        kinds = [(m.message_type, m.event_type) for m in messages]
        assert kinds == [
            ("event", "messageStart"),
            ("event", "contentBlockDelta"),
            ("exception", "throttlingException"),
        ]
        assert json.loads(messages[-1].payload) == {"message": "boom"}


@pytest.mark.anyio
async def test_gemini_stream_uses_crlf_and_ends_with_the_finish_chunk(
    server: FakeLLMServer,
) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "one two three"}]}]}
    async with httpx.AsyncClient() as http:
        r = await http.post(
            f"{server.url}/v1beta/models/g:streamGenerateContent?alt=sse", json=body
        )
    events = [e for e in r.text.split("\r\n\r\n") if e]
    chunks = [json.loads(e.removeprefix("data: ")) for e in events]
    text = "".join(p["text"] for c in chunks for p in c["candidates"][0]["content"]["parts"])
    assert text == "Echo: one two three"
    assert [c["candidates"][0].get("finishReason") for c in chunks][-1] == "STOP"
    assert chunks[-1]["usageMetadata"]["candidatesTokenCount"] == 4
