"""The glue every provider shares: API keys as read from files and the environment, error bodies."""

from __future__ import annotations

import json

import pytest

from aio_llm import (
    ConfigurationError,
)
from aio_llm.providers import OpenAIProvider
from aio_llm.testing import FakeLLMServer
from tests.conftest import HI, openai_client


@pytest.mark.anyio
async def test_a_key_read_from_a_file_with_its_newline_works(
    server: FakeLLMServer, transport: str
) -> None:
    async with openai_client(server, transport, api_key="sk-from-file\n") as c:
        assert (await c.chat(HI)).content == "Echo: hi"
    assert server.requests[-1].headers["authorization"] == "Bearer sk-from-file"


def test_a_key_with_control_characters_is_refused_without_quoting_it() -> None:
    with pytest.raises(ConfigurationError) as info:
        OpenAIProvider(api_key="sk-bad\x00key")
    assert "sk-bad" not in str(info.value)


def test_received_data_with_lone_surrogates_is_quoted_not_crashed_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by fuzzing: a JSON parser that accepts ``"\\ud800"`` yields a lone surrogate."""
    from aio_llm import _json

    assert _json.dumps_text({"id": {"\ud800": None}}) == '{"id":{"\\ud800":null}}'
    # the standard library's parser (the fallback) accepts lone surrogates
    monkeypatch.setattr(_json, "loads", json.loads)
    body = json.dumps({"message": {"id": {"\ud800": None}}}).encode()
    error = OpenAIProvider(api_key="sk-x").decode_error(500, {}, body)
    assert error.status_code == 500 and "\\ud800" in str(error)
