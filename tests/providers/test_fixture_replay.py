"""Every recorded provider exchange, replayed over loopback HTTP and read by the client.

The FakeLLMServer serves each fixture's recorded bytes; the client sends a
request of the same kind through the real transport (both transports) and
the test checks what it read against values worked out here, independently
of the codecs, from the recorded body.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from aio_llm import (
    APIStatusError,
    AsyncLLMClient,
    BadRequestError,
    ClientConfig,
    NotFoundError,
    RateLimitError,
)
from aio_llm.testing import FakeLLMServer, Fault
from aio_llm.transports.sse import SSEDecoder
from tests.conftest import all_fixtures, load_fixture

FIXTURES = all_fixtures()
ERROR_CLASSES = {400: BadRequestError, 404: NotFoundError, 429: RateLimitError}
FINISH = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
}


def client_for(provider: str, srv: FakeLLMServer, transport: str) -> AsyncLLMClient:
    base = {
        "openai": srv.openai_url,
        "anthropic": srv.url,
        "openrouter": srv.url + "/api/v1",
    }[provider]
    return AsyncLLMClient(
        provider,
        api_key="sk-replay-key",
        base_url=base,
        config=ClientConfig(transport=transport),
        middleware=[],
    )


def sse_events(body: str) -> list[tuple[str, str]]:
    d = SSEDecoder()
    events = d.feed(body.encode()) + d.flush()
    return [(e.event, e.data) for e in events]


def expected_openai_stream(body: str) -> dict[str, Any]:
    text: list[str] = []
    tools: dict[int, dict[str, Any]] = {}
    usage, finish, error = None, None, None
    for _, data in sse_events(body):
        if data == "[DONE]":
            continue
        chunk = json.loads(data)
        if chunk.get("error"):
            error = chunk["error"]
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                text.append(delta["content"])
            for tc in delta.get("tool_calls") or []:
                slot = tools.setdefault(tc["index"], {"id": "", "name": "", "arguments": ""})
                slot["id"] = slot["id"] or tc.get("id") or ""
                fn = tc.get("function") or {}
                slot["name"] = slot["name"] or fn.get("name") or ""
                slot["arguments"] += fn.get("arguments") or ""
            if choice.get("finish_reason"):
                finish = choice["finish_reason"]
    return {
        "text": "".join(text),
        "tools": [tools[i] for i in sorted(tools)],
        "input": usage["prompt_tokens"] if usage else None,
        "output": usage["completion_tokens"] if usage else None,
        "finish": FINISH.get(finish or ""),
        "error": error,
    }


def expected_anthropic_stream(body: str) -> dict[str, Any]:
    text, tools, kinds = [], [], {}
    usage: dict[str, int] = {}
    finish = None
    for _, data in sse_events(body):
        ev = json.loads(data)
        t = ev.get("type")
        if t == "message_start":
            usage.update({k: v for k, v in ev["message"]["usage"].items() if isinstance(v, int)})
        elif t == "content_block_start":
            block = ev["content_block"]
            kinds[ev["index"]] = block["type"]
            if block["type"] == "tool_use":
                tools.append({"id": block["id"], "name": block["name"], "arguments": ""})
        elif t == "content_block_delta":
            d = ev["delta"]
            if d["type"] == "text_delta":
                text.append(d["text"])
            elif d["type"] == "input_json_delta" and kinds.get(ev["index"]) == "tool_use":
                tools[-1]["arguments"] += d["partial_json"]
        elif t == "message_delta":
            usage.update({k: v for k, v in ev.get("usage", {}).items() if isinstance(v, int)})
            finish = ev["delta"].get("stop_reason")
    prompt = (
        usage.get("input_tokens", 0)
        + usage.get("cache_read_input_tokens", 0)
        + usage.get("cache_creation_input_tokens", 0)
    )
    return {
        "text": "".join(text),
        "tools": tools,
        "input": prompt,
        "output": usage.get("output_tokens"),
        "finish": FINISH.get(finish or ""),
        "error": None,
    }


def assert_complete(obj: object) -> None:
    """Every model the decoders build (``fast_construct``) has every field, all the way down."""
    if isinstance(obj, BaseModel):
        assert set(obj.__dict__) == set(type(obj).model_fields), type(obj).__name__
        for value in obj.__dict__.values():
            assert_complete(value)
    elif isinstance(obj, list):
        for item in obj:
            assert_complete(item)


def same_json(a: str, b: str) -> bool:
    return bool(json.loads(a or "{}") == json.loads(b or "{}"))


@pytest.mark.parametrize("name", FIXTURES)
@pytest.mark.anyio
async def test_replay(name: str, server: FakeLLMServer, transport: str) -> None:
    fx = load_fixture(name)
    provider, kind = fx["provider"], fx["kind"]
    status = fx["response"]["status"]
    body_text = fx["response"]["body_text"]
    server.enqueue(Fault.from_recording(fx))
    model = fx["request"]["body"].get("model") or "some-model"
    messages = [{"role": "user", "content": "replayed"}]
    async with client_for(provider, server, transport) as client:
        if kind == "embeddings" or fx["request"]["path"].startswith("/v1/embeddings"):
            if status >= 400:
                with pytest.raises(ERROR_CLASSES[status]) as info:
                    await client.embed(["q"], model=model)
                assert info.value.status_code == status
                return
            data = json.loads(body_text)["data"]
            e = await client.embed(["q"] * len(data), model=model)
            assert len(e.vectors) == len(data)
            dims = fx["request"]["body"].get("dimensions")
            if dims:
                assert all(len(v) == dims for v in e.vectors)
            assert all(any(x != 0 for x in v) for v in e.vectors)
            assert e.usage.input_tokens == json.loads(body_text)["usage"]["prompt_tokens"]
            return

        if kind == "error":
            with pytest.raises(APIStatusError) as info:
                await client.chat(messages, model=model)
            assert isinstance(info.value, ERROR_CLASSES[status])
            assert info.value.status_code == status
            assert info.value.provider == provider
            err = json.loads(body_text)["error"]
            assert err["message"][:40] in str(info.value)
            return

        if kind == "stream":
            exp = (
                expected_anthropic_stream(body_text)
                if provider == "anthropic"
                else expected_openai_stream(body_text)
            )
            if exp["error"] is not None:
                with pytest.raises(APIStatusError):
                    async with client.stream(messages, model=model) as s:
                        async for _ in s:
                            pass
                return
            async with client.stream(messages, model=model) as s:
                chunks = [c async for c in s]
            deltas = [c.delta for c in chunks]
            final = s.response
            assert final is not None and s.completed
            assert_complete([final, *chunks])
            assert "".join(deltas) == exp["text"] == final.content
            if exp["input"] is not None:
                assert final.usage.input_tokens == exp["input"]
            if exp["output"] is not None:
                assert final.usage.output_tokens == exp["output"]
            assert final.finish_reason == exp["finish"]
            assert [t.id for t in final.tool_calls] == [t["id"] for t in exp["tools"]]
            assert [t.name for t in final.tool_calls] == [t["name"] for t in exp["tools"]]
            for got, want in zip(final.tool_calls, exp["tools"], strict=False):
                assert same_json(got.arguments, want["arguments"])
            return

        r = await client.chat(messages, model=model)
        assert_complete(r)
        raw = json.loads(body_text)
        assert r.provider == provider
        if provider == "anthropic":
            blocks = raw["content"]
            assert r.content == "".join(b["text"] for b in blocks if b["type"] == "text")
            uses = [b for b in blocks if b["type"] == "tool_use"]
            assert [t.id for t in r.tool_calls] == [b["id"] for b in uses]
            assert [json.loads(t.arguments) for t in r.tool_calls] == [b["input"] for b in uses]
            u = raw["usage"]
            assert r.usage.output_tokens == u["output_tokens"]
            assert r.usage.cached_input_tokens == (u.get("cache_read_input_tokens") or 0)
            assert r.usage.cache_creation_input_tokens == (
                u.get("cache_creation_input_tokens") or 0
            )
            assert r.usage.input_tokens == (
                u["input_tokens"]
                + (u.get("cache_read_input_tokens") or 0)
                + (u.get("cache_creation_input_tokens") or 0)
            )
            assert r.finish_reason == FINISH[raw["stop_reason"]]
            assert r.id == raw["id"]
        else:
            msg = raw["choices"][0]["message"]
            assert r.content == (msg.get("content") or msg.get("refusal") or "")
            calls = msg.get("tool_calls") or []
            assert [t.id for t in r.tool_calls] == [c["id"] for c in calls]
            assert [t.name for t in r.tool_calls] == [c["function"]["name"] for c in calls]
            assert [t.arguments for t in r.tool_calls] == [
                c["function"]["arguments"] for c in calls
            ]
            u = raw["usage"]
            assert r.usage.input_tokens == u["prompt_tokens"]
            assert r.usage.output_tokens == u["completion_tokens"]
            details = u.get("prompt_tokens_details") or {}
            assert r.usage.cached_input_tokens == (details.get("cached_tokens") or 0)
            reasoning = (u.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
            assert r.usage.reasoning_tokens == reasoning
            if "cost" in u:
                assert r.usage.provider_cost == pytest.approx(u["cost"])
            assert r.finish_reason == FINISH[raw["choices"][0]["finish_reason"]]
            assert r.id == raw["id"]
        assert r.raw == raw


def test_every_fixture_is_replayed() -> None:
    assert len(FIXTURES) == 38
