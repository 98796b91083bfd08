"""Response bodies on both transports: compressed ones are decoded, and limited once decoded."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest

from aio_llm import (
    APIResponseError,
    AsyncLLMClient,
    ClientConfig,
)
from aio_llm.testing import FakeLLMServer, Fault

HELLO = [{"role": "user", "content": "hi"}]
ANSWER = {
    "id": "x",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


def client(srv: FakeLLMServer, transport: str, **kwargs: Any) -> AsyncLLMClient:
    config = kwargs.pop("config", None) or ClientConfig(transport=transport, max_retries=0)
    return AsyncLLMClient(
        "openai",
        api_key=kwargs.pop("api_key", "sk-edge"),
        base_url=srv.openai_url,
        model="gpt-4o-mini",
        config=config,
        **kwargs,
    )


@pytest.mark.anyio
async def test_compressed_bodies_are_decoded(server: FakeLLMServer, transport: str) -> None:
    body = gzip.compress(json.dumps(ANSWER).encode())
    server.enqueue(
        Fault.raw(200, {"content-type": "application/json", "content-encoding": "gzip"}, body)
    )
    async with client(server, transport) as c:
        assert (await c.chat(HELLO)).content == "hello"


@pytest.mark.anyio
async def test_the_size_limit_applies_after_decompression(
    server: FakeLLMServer, transport: str
) -> None:
    big = dict(ANSWER, choices=[{"index": 0, "message": {"content": "a" * 5_000_000}}])
    bomb = gzip.compress(json.dumps(big).encode())
    assert len(bomb) < 100_000
    server.enqueue(
        Fault.raw(200, {"content-type": "application/json", "content-encoding": "gzip"}, bomb)
    )
    config = ClientConfig(transport=transport, max_response_bytes=1_000_000, max_retries=0)
    async with client(server, transport, config=config) as c:
        with pytest.raises(APIResponseError, match="limit"):
            await c.chat(HELLO)
