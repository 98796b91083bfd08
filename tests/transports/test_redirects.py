"""A redirect is never followed: the API key must not travel to the host it points at."""

from __future__ import annotations

import pytest

from aio_llm import APIError, AsyncLLMClient, ClientConfig
from aio_llm.testing import FakeLLMServer, Fault


@pytest.mark.anyio
@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
@pytest.mark.parametrize("status", [302, 307, 308])
async def test_a_redirect_to_another_host_does_not_carry_the_key(
    transport: str, status: int
) -> None:
    async with FakeLLMServer() as home, FakeLLMServer() as elsewhere:
        target = f"{elsewhere.url}/v1/messages"
        home.enqueue(Fault.raw(status, {"Location": target}, b""), path="/v1/messages")
        async with AsyncLLMClient(
            "anthropic",
            api_key="sk-ant-never-leaves-home",
            base_url=home.url,
            model="claude-3-5-haiku-20241022",
            config=ClientConfig(transport=transport, max_retries=0),
        ) as c:
            with pytest.raises(APIError):
                await c.chat([{"role": "user", "content": "hi"}])
        assert elsewhere.request_count == 0
        assert not [r for r in elsewhere.requests if "x-api-key" in r.headers]
