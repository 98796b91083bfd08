"""The 47 recordings of the Responses API, Gemini, Azure OpenAI and Bedrock, replayed.

Each case (tests/fixtures/recorded-more, README there) is served over loopback
by FakeLLMServer from the recorded bytes, on both transports, to a client of
the matching kind sending a request of the same shape (same path, same
structured-output request). What the client read is checked against values
worked out here with plain dict access on the recorded body, independently of
the codecs: for Bedrock streams, from the ``events`` the recorder decoded.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import pytest

from aio_llm import (
    APIStatusError,
    AsyncLLMClient,
    BadRequestError,
    ChatResponse,
    ClientConfig,
    NotFoundError,
)
from aio_llm.providers import Provider, create_provider
from aio_llm.testing import FakeLLMServer, Fault
from aio_llm.transports.sse import SSEDecoder
from tests.providers.test_fixture_replay import assert_complete

DIR = Path(__file__).resolve().parent.parent / "fixtures" / "recorded-more"
CASES = sorted(p.name for p in DIR.glob("*.json"))
KEY = "sk-replay-more-key-0123456789"
ERRORS = {400: BadRequestError, 404: NotFoundError}


def load(name: str) -> dict[str, Any]:
    fixture: dict[str, Any] = json.loads((DIR / name).read_text())
    return fixture


def test_all_47_cases_are_here() -> None:
    assert len(CASES) == 47


@pytest.fixture(params=["aiohttp", "httpx"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def server() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer() as srv:
        yield srv


# -- which client a case needs -----------------------------------------------------


def api_of(fx: dict[str, Any]) -> str:
    """The wire format of a case: responses, gemini, bedrock, chat or anthropic."""
    path = fx["request"]["path"]
    if path.endswith("/responses"):
        return "responses"
    return {"gemini": "gemini", "bedrock": "bedrock", "anthropic": "anthropic"}.get(
        fx["provider"], "chat"
    )


def model_of(fx: dict[str, Any]) -> str:
    path = fx["request"]["path"].partition("?")[0]
    if fx["provider"] == "gemini":
        return str(path.rpartition("/models/")[2].partition(":")[0])
    if fx["provider"] == "bedrock":
        return unquote(path.split("/")[2])
    if "/deployments/" in path:
        return str(path.split("/")[3])
    return str(fx["request"]["body"]["model"])


def provider_for(fx: dict[str, Any], srv: FakeLLMServer) -> Provider:
    path = fx["request"]["path"]
    kind = fx["provider"]
    if kind == "azure-openai":
        query = parse_qs(path.partition("?")[2])
        version = query.get("api-version", [None])[0]
        azure_kind = "azure-openai-responses" if path.endswith("/responses") else "azure-openai"
        return create_provider(
            azure_kind, api_key=KEY, base_url=srv.url, api_version=version, environ={}
        )
    if kind == "gemini":
        return create_provider("gemini", api_key=KEY, base_url=srv.url + "/v1beta", environ={})
    if kind == "bedrock":
        env = {"AWS_ACCESS_KEY_ID": "AKIDREPLAY", "AWS_SECRET_ACCESS_KEY": KEY}
        return create_provider("bedrock", base_url=srv.url, region="us-east-1", environ=env)
    base = srv.url if kind == "anthropic" else srv.openai_url
    return create_provider(kind, api_key=KEY, base_url=base, environ={})


def response_format_of(fx: dict[str, Any]) -> dict[str, Any] | None:
    """The recorded request's structured-output ask, as aio_llm's ``response_format``."""
    body = fx["request"]["body"]
    if "response_format" in body:
        return dict(body["response_format"])
    text = body.get("text")
    if isinstance(text, dict) and text.get("format", {}).get("type") in (
        "json_schema",
        "json_object",
    ):
        spec = text["format"]
        if spec["type"] == "json_object":
            return {"type": "json_object"}
        return {
            "type": "json_schema",
            "json_schema": {"name": spec["name"], "schema": spec["schema"], "strict": True},
        }
    config = body.get("generationConfig") or {}
    if "responseJsonSchema" in config:
        return {
            "type": "json_schema",
            "json_schema": {"name": "CityLocation", "schema": config["responseJsonSchema"]},
        }
    output = body.get("outputConfig")
    if output:
        spec = output["textFormat"]["structure"]["jsonSchema"]
        schema = json.loads(spec["schema"])
        return {"type": "json_schema", "json_schema": {"name": spec["name"], "schema": schema}}
    return None


# -- what each case must read, from the recording alone -------------------------------

FINISH = {
    "responses": {"completed": "stop"},
    "gemini": {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter"},
    "bedrock": {"end_turn": "stop", "max_tokens": "length", "tool_use": "tool_calls"},
    "chat": {"stop": "stop", "length": "length", "tool_calls": "tool_calls"},
    "anthropic": {"end_turn": "stop", "max_tokens": "length", "tool_use": "tool_calls"},
}


def expect(
    content: str = "",
    reasoning: str | None = None,
    tools: list[tuple[str | None, str, Any]] | None = None,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cached: int = 0,
    reasoning_tokens: int = 0,
    finish: str | None = None,
    signatures: list[str | None] | None = None,
    thinking: int = 0,
) -> dict[str, Any]:
    tools = tools or []
    return {
        "content": content,
        "reasoning": reasoning,
        "tools": tools,
        "input": input_tokens,
        "output": output_tokens,
        "cached": cached,
        "reasoning_tokens": reasoning_tokens,
        "finish": "tool_calls" if tools else finish,
        "signatures": signatures if signatures is not None else [None] * len(tools),
        "thinking": thinking,
    }


def sse_data(body: str) -> list[tuple[str, str]]:
    d = SSEDecoder()
    return [(e.event, e.data) for e in d.feed(body.encode()) + d.flush()]


def expected_responses(response: dict[str, Any]) -> dict[str, Any]:
    text, calls, thoughts, items = [], [], [], 0
    for item in response["output"]:
        if item["type"] == "message":
            text += [p["text"] for p in item["content"] if p["type"] == "output_text"]
        elif item["type"] == "function_call":
            calls.append((item["call_id"], item["name"], json.loads(item["arguments"])))
        elif item["type"] == "reasoning":
            items += 1
            thoughts += [s["text"] for s in item.get("summary") or []]
    usage = response["usage"]
    return expect(
        "".join(text),
        "\n\n".join(thoughts) or None,
        calls,
        usage["input_tokens"],
        usage["output_tokens"],
        usage["input_tokens_details"]["cached_tokens"],
        usage["output_tokens_details"]["reasoning_tokens"],
        FINISH["responses"][response["status"]],
        thinking=items,
    )


def expected_responses_stream(body: str) -> dict[str, Any]:
    text, calls, arguments = [], {}, {}
    final: dict[str, Any] = {}
    for _, data in sse_data(body):
        ev = json.loads(data)
        if ev["type"] == "response.output_text.delta":
            text.append(ev["delta"])
        elif ev["type"] == "response.output_item.added" and ev["item"]["type"] == "function_call":
            calls[ev["item"]["id"]] = (ev["item"]["call_id"], ev["item"]["name"])
            arguments[ev["item"]["id"]] = ""
        elif ev["type"] == "response.function_call_arguments.delta":
            arguments[ev["item_id"]] += ev["delta"]
        elif ev["type"] == "response.completed":
            final = ev["response"]
    usage = final["usage"]
    reasoning_items = sum(1 for item in final["output"] if item["type"] == "reasoning")
    return expect(
        "".join(text),
        None,
        [(cid, name, json.loads(arguments[i])) for i, (cid, name) in calls.items()],
        usage["input_tokens"],
        usage["output_tokens"],
        usage["input_tokens_details"]["cached_tokens"],
        usage["output_tokens_details"]["reasoning_tokens"],
        "stop",
        thinking=reasoning_items,
    )


def _gemini_usage(u: dict[str, Any]) -> tuple[int, int, int, int]:
    prompt = u.get("promptTokenCount", 0) + u.get("toolUsePromptTokenCount", 0)
    thoughts = u.get("thoughtsTokenCount", 0)
    output = u.get("candidatesTokenCount", 0) + thoughts
    return prompt, output, u.get("cachedContentTokenCount", 0), thoughts


def expected_gemini(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    text, thoughts, calls, sigs = [], [], [], []
    finish = None
    usage: dict[str, Any] = {}
    thinking = 0
    for chunk in chunks:
        usage = chunk.get("usageMetadata") or usage
        candidate = chunk["candidates"][0]
        finish = candidate.get("finishReason") or finish
        for part in candidate.get("content", {}).get("parts", []):
            if "functionCall" in part:
                call = part["functionCall"]
                calls.append((call.get("id"), call["name"], call.get("args", {})))
                sigs.append(part.get("thoughtSignature"))
            elif part.get("thought"):
                thoughts.append(part["text"])
            elif "text" in part:
                text.append(part["text"])
                thinking += "thoughtSignature" in part
    thinking += 1 if thoughts else 0
    prompt, output, cached, reasoning = _gemini_usage(usage)
    return expect(
        "".join(text),
        "".join(thoughts) or None,
        calls,
        prompt,
        output,
        cached,
        reasoning,
        FINISH["gemini"][finish] if finish else None,
        sigs,
        thinking,
    )


def _bedrock_usage(u: dict[str, Any]) -> tuple[int, int, int]:
    read = u.get("cacheReadInputTokens", 0)
    prompt = u["inputTokens"] + read + u.get("cacheWriteInputTokens", 0)
    return prompt, u["outputTokens"], read


def expected_bedrock(body: dict[str, Any]) -> dict[str, Any]:
    text, thoughts, calls, thinking = [], [], [], 0
    for block in body["output"]["message"]["content"]:
        if "text" in block:
            text.append(block["text"])
        elif "toolUse" in block:
            use = block["toolUse"]
            calls.append((use["toolUseId"], use["name"], use["input"]))
        elif "reasoningContent" in block:
            thinking += 1
            thoughts.append(block["reasoningContent"].get("reasoningText", {}).get("text", ""))
    prompt, output, cached = _bedrock_usage(body["usage"])
    return expect(
        "".join(text),
        "".join(thoughts) or None,
        calls,
        prompt,
        output,
        cached,
        0,
        FINISH["bedrock"][body["stopReason"]],
        thinking=thinking,
    )


def expected_bedrock_stream(events: list[dict[str, Any]]) -> dict[str, Any]:
    text, thoughts, tools, reasoning_blocks = [], [], {}, set()
    usage: dict[str, Any] = {}
    stop = ""
    for ev in events:
        kind, payload = ev["headers"][":event-type"], ev["payload"]
        if kind == "contentBlockStart" and "toolUse" in payload["start"]:
            use = payload["start"]["toolUse"]
            tools[payload["contentBlockIndex"]] = [use["toolUseId"], use["name"], ""]
        elif kind == "contentBlockDelta":
            delta = payload["delta"]
            if "text" in delta:
                text.append(delta["text"])
            elif "toolUse" in delta:
                tools[payload["contentBlockIndex"]][2] += delta["toolUse"]["input"]
            elif "reasoningContent" in delta:
                reasoning_blocks.add(payload["contentBlockIndex"])
                thoughts.append(delta["reasoningContent"].get("text", ""))
        elif kind == "messageStop":
            stop = payload["stopReason"]
        elif kind == "metadata":
            usage = payload["usage"]
    prompt, output, cached = _bedrock_usage(usage)
    calls = [(i, n, json.loads(a)) for i, n, a in (tools[k] for k in sorted(tools))]
    return expect(
        "".join(text),
        "".join(thoughts) or None,
        calls,
        prompt,
        output,
        cached,
        0,
        FINISH["bedrock"][str(stop)],
        thinking=len(reasoning_blocks),
    )


def expected_chat(body: dict[str, Any]) -> dict[str, Any]:
    choice = body["choices"][0]
    msg = choice["message"]
    calls = [
        (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
        for c in msg.get("tool_calls") or []
    ]
    u = body["usage"]
    return expect(
        msg.get("content") or "",
        None,
        calls,
        u["prompt_tokens"],
        u["completion_tokens"],
        (u.get("prompt_tokens_details") or {}).get("cached_tokens", 0),
        (u.get("completion_tokens_details") or {}).get("reasoning_tokens", 0),
        FINISH["chat"][choice["finish_reason"]],
    )


def expected_anthropic(body: dict[str, Any]) -> dict[str, Any]:
    blocks = body["content"]
    calls = [(b["id"], b["name"], b["input"]) for b in blocks if b["type"] == "tool_use"]
    u = body["usage"]
    read = u.get("cache_read_input_tokens") or 0
    prompt = u["input_tokens"] + read + (u.get("cache_creation_input_tokens") or 0)
    return expect(
        "".join(b["text"] for b in blocks if b["type"] == "text"),
        None,
        calls,
        prompt,
        u["output_tokens"],
        read,
        0,
        FINISH["anthropic"][body["stop_reason"]],
    )


def expected(fx: dict[str, Any]) -> dict[str, Any]:
    api = api_of(fx)
    response = fx["response"]
    if api == "bedrock":
        if fx["kind"] == "stream":
            return expected_bedrock_stream(response["events"])
        return expected_bedrock(json.loads(response["body_text"]))
    if api == "gemini":
        if fx["kind"] == "stream":
            return expected_gemini([json.loads(d) for _, d in sse_data(response["body_text"])])
        return expected_gemini([json.loads(response["body_text"])])
    if api == "responses":
        if fx["kind"] == "stream":
            return expected_responses_stream(response["body_text"])
        return expected_responses(json.loads(response["body_text"]))
    if api == "anthropic":
        return expected_anthropic(json.loads(response["body_text"]))
    return expected_chat(json.loads(response["body_text"]))


# -- the replay -----------------------------------------------------------------------------


def check(r: ChatResponse, exp: dict[str, Any], api: str) -> None:
    assert r.content == exp["content"]
    assert r.reasoning == exp["reasoning"]
    got = [(t.id, t.name, json.loads(t.arguments)) for t in r.tool_calls]
    if api == "gemini":  # Gemini gave no ids: aio_llm made them up, distinct
        want = [(i, n, a) for i, n, a in exp["tools"]]
        assert [g[1:] for g in got] == [w[1:] for w in want]
        assert len({g[0] for g in got}) == len(got)
        assert all(w[0] is None or w[0] == g[0] for g, w in zip(got, want, strict=True))
    else:
        assert got == exp["tools"]
    assert [t.signature for t in r.tool_calls] == exp["signatures"]
    assert r.message.tool_calls == (r.tool_calls or None)
    assert len(r.message.thinking or []) == exp["thinking"]
    assert r.usage.input_tokens == exp["input"]
    assert r.usage.output_tokens == exp["output"]
    assert r.usage.cached_input_tokens == exp["cached"]
    assert r.usage.reasoning_tokens == exp["reasoning_tokens"]
    assert r.finish_reason == exp["finish"]


@pytest.mark.parametrize("name", CASES)
@pytest.mark.anyio
async def test_replay(name: str, server: FakeLLMServer, transport: str) -> None:
    fx = load(name)
    api = api_of(fx)
    server.enqueue(Fault.from_recording(fx))
    provider = provider_for(fx, server)
    model = model_of(fx)
    messages = [{"role": "user", "content": "replayed"}]
    params: dict[str, Any] = {}
    fmt = response_format_of(fx)
    if fmt is not None and api != "anthropic":
        params["response_format"] = fmt
    streamed = fx["kind"] == "stream" or fx["request"]["path"].endswith("converse-stream")
    config = ClientConfig(transport=transport)
    async with AsyncLLMClient(provider, config=config, middleware=[]) as client:
        if fx["kind"] == "error":
            status = fx["response"]["status"]
            with pytest.raises(APIStatusError) as info:
                if streamed:
                    async with client.stream(messages, model=model, **params) as s:
                        async for _ in s:
                            pass
                else:
                    await client.chat(messages, model=model, **params)
            assert type(info.value) is ERRORS[status]
            assert info.value.status_code == status
            body = json.loads(fx["response"]["body_text"])
            message = body["error"]["message"] if "error" in body else body["message"]
            assert message[:40] in str(info.value)
            assert KEY not in str(info.value)
        elif streamed:
            async with client.stream(messages, model=model, **params) as s:
                chunks = [c async for c in s]
            final = s.response
            assert final is not None and s.completed
            assert_complete([final, *chunks])
            assert "".join(c.delta for c in chunks) == final.content
            assert "".join(c.reasoning for c in chunks) == (final.reasoning or "")
            check(final, expected(fx), api)
        else:
            r = await client.chat(messages, model=model, **params)
            assert_complete(r)
            check(r, expected(fx), api)
            assert r.raw == json.loads(fx["response"]["body_text"])
            if api == "chat" and fx["provider"] == "azure-openai":
                assert r.request_id == fx["response"]["headers"]["apim-request-id"]
            if fx["kind"] == "structured":
                assert json.loads(r.content) == json.loads(expected(fx)["content"])
    sent = server.last_request
    assert sent.path == fx["request"]["path"].partition("?")[0].replace("?beta=true", "")
    assert KEY not in sent.path and KEY not in sent.query
    assert "key=" not in sent.query
    if fmt is not None and api != "anthropic":
        assert_format_on_the_wire(api, sent.json(), fx["request"]["body"])


def assert_format_on_the_wire(api: str, sent: dict[str, Any], recorded: dict[str, Any]) -> None:
    """The structured-output ask reached the provider's native field, schema and all."""
    if api == "responses":
        assert sent["text"]["format"]["type"] == recorded["text"]["format"]["type"]
        if "schema" in recorded["text"]["format"]:
            assert sent["text"]["format"]["schema"] == recorded["text"]["format"]["schema"]
    elif api == "gemini":
        config = recorded["generationConfig"]
        assert sent["generationConfig"]["responseMimeType"] == config["responseMimeType"]
        assert sent["generationConfig"]["responseJsonSchema"] == config["responseJsonSchema"]
    elif api == "bedrock":
        got = sent["outputConfig"]["textFormat"]
        want = recorded["outputConfig"]["textFormat"]
        assert got["type"] == want["type"] == "json_schema"
        schema = json.loads(got["structure"]["jsonSchema"]["schema"])
        assert schema == json.loads(want["structure"]["jsonSchema"]["schema"])
    else:
        assert sent["response_format"] == recorded["response_format"]
