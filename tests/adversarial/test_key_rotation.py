"""Rotating a provider's key (``provider.api_key = new``) works end to end.

The next request carries the new key (on every provider kind and both
transports), the cache no longer serves what the old key's tenant
cached, and an error that quotes the old key is still redacted.
"""

from __future__ import annotations

import json

import pytest

from aio_llm import APIError, ConfigurationError

from .conftest import FORMAT_KINDS, KEY, client_for
from .leakcheck import assert_clean
from .rawserver import Conn, RawServer, Seen, answer

NEW_KEY = "sk-rotated-" + "9" * 24


def _sent_key(req: Seen) -> str:
    return (req.headers.get("authorization") or req.headers.get("x-api-key") or "").removeprefix(
        "Bearer "
    )


@pytest.mark.parametrize("kind", FORMAT_KINDS)
@pytest.mark.anyio
async def test_a_rotated_key_is_what_is_sent(kind: str, transport: str) -> None:
    async def handler(req: Seen, conn: Conn) -> None:
        await answer(req, conn, f"answer for {_sent_key(req)[-6:]}")

    async with RawServer(handler) as srv:
        async with client_for(kind, srv, transport, cache_enabled=True) as client:
            messages = [{"role": "user", "content": "same question"}]
            first = await client.chat(messages, max_tokens=8)
            provider = next(iter(client.providers.values()))
            provider.api_key = NEW_KEY
            assert provider.api_key == NEW_KEY
            second = await client.chat(messages, max_tokens=8)
            for stream in (False, True):  # both paths carry the new key
                if stream:
                    async with client.stream([{"role": "user", "content": "s"}]) as s:
                        await s.text()
                else:
                    await client.chat([{"role": "user", "content": "c"}], max_tokens=8)
    assert [_sent_key(r) for r in srv.requests] == [KEY, NEW_KEY, NEW_KEY, NEW_KEY]
    # the new key's tenant does not see the old key's cached answer
    assert first.content.endswith(KEY[-6:]) and second.content.endswith(NEW_KEY[-6:])
    assert not second.cached


@pytest.mark.anyio
async def test_the_old_key_is_still_redacted_after_rotation(transport: str) -> None:
    async def handler(req: Seen, conn: Conn) -> None:
        body = {"error": {"message": f"key {KEY} was revoked; you sent {_sent_key(req)}"}}
        await conn.full(401, json.dumps(body).encode())

    async with RawServer(handler) as srv:
        async with client_for("openai", srv, transport) as client:
            client.providers["openai"].api_key = NEW_KEY
            with pytest.raises(APIError) as info:
                await client.chat([{"role": "user", "content": "hi"}], max_tokens=8)
    assert_clean(info.value, secrets=(KEY, NEW_KEY))
    assert str(info.value).count("[REDACTED]") == 2


def test_an_invalid_new_key_is_refused_and_the_old_one_kept() -> None:
    from aio_llm.providers import create_provider

    provider = create_provider("openai", api_key=KEY, base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ConfigurationError) as info:
        provider.api_key = "sk-new\r\nX-Injected: 1"
    assert "sk-new" not in str(info.value)
    assert provider.api_key == KEY
    request = provider.encode_chat(
        __import__("aio_llm").ChatRequest(model="m", messages=[{"role": "user", "content": "x"}])
    )
    assert request.headers["Authorization"] == f"Bearer {KEY}"
