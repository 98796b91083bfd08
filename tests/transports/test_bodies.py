"""Response bodies on both transports: compressed ones are decoded, and limited once decoded."""

from __future__ import annotations

import gzip
import json

import pytest

from aio_llm import (
    APIResponseError,
    ClientConfig,
)
from aio_llm.testing import FakeLLMServer, Fault
from tests.conftest import HI, OPENAI_ANSWER, openai_client


@pytest.mark.anyio
async def test_compressed_bodies_are_decoded(server: FakeLLMServer, transport: str) -> None:
    body = gzip.compress(json.dumps(OPENAI_ANSWER).encode())
    server.enqueue(
        Fault.raw(200, {"content-type": "application/json", "content-encoding": "gzip"}, body)
    )
    async with openai_client(server, transport) as c:
        assert (await c.chat(HI)).content == "hello"


@pytest.mark.anyio
async def test_the_size_limit_applies_after_decompression(
    server: FakeLLMServer, transport: str
) -> None:
    big = dict(OPENAI_ANSWER, choices=[{"index": 0, "message": {"content": "a" * 5_000_000}}])
    bomb = gzip.compress(json.dumps(big).encode())
    assert len(bomb) < 100_000
    server.enqueue(
        Fault.raw(200, {"content-type": "application/json", "content-encoding": "gzip"}, bomb)
    )
    config = ClientConfig(transport=transport, max_response_bytes=1_000_000, max_retries=0)
    async with openai_client(server, transport, config=config) as c:
        with pytest.raises(APIResponseError, match="limit"):
            await c.chat(HI)
