"""The blocking twin, LLMClient, and the facade's invoke_chat: in plain code and in a loop."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aio_llm import ClientConfig, LLMClient, invoke_chat
from aio_llm.testing import FakeLLMServer

HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    """A FakeLLMServer in another process (a blocking call must not stall its loop)."""
    handle = FakeLLMServer.spawn()
    try:
        yield handle.url
    finally:
        handle.close()


def test_llmclient_from_plain_code(served: str) -> None:
    with LLMClient(
        "openai",
        api_key="sk-x",
        base_url=served + "/v1",
        model="gpt-4o-mini",
        config=ClientConfig(),
    ) as c:
        assert c.chat(HELLO).content == "Echo: Hello"
        chunks = list(c.stream(HELLO))
        assert "".join(ch.delta for ch in chunks) == "Echo: Hello"
        results = c.gather([{"messages": HELLO}] * 5, concurrency=2)
        assert len(results) == 5
        assert c.metrics()["requests.total"] >= 7
    with pytest.raises(RuntimeError):
        c.chat(HELLO)


@pytest.mark.anyio
async def test_llmclient_inside_a_running_loop(served: str) -> None:
    c = LLMClient("openai", api_key="sk-x", base_url=served + "/v1", config=ClientConfig())
    try:
        assert c.chat(HELLO, model="gpt-4o-mini").content == "Echo: Hello"
    finally:
        c.close()


@pytest.mark.anyio
async def test_invoke_chat_inside_a_running_loop(
    served: str, monkeypatch: pytest.MonkeyPatch, fresh_defaults: None
) -> None:
    monkeypatch.setenv("LLM_PROVIDER", "openai")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    monkeypatch.setenv("OPENAI_BASE_URL", served + "/v1")
    r = invoke_chat(model="gpt-4", messages=HELLO)
    assert r.content == "Echo: Hello" and r.model == "gpt-4"


def test_invoke_chat_with_forced_mock(
    monkeypatch: pytest.MonkeyPatch, fresh_defaults: None
) -> None:
    monkeypatch.setenv("LLM_FORCE_MOCK", "1")
    assert invoke_chat(model="gpt-4", messages=HELLO).content == "Test response"
