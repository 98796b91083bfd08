"""Shared set-up of the migration suite: a FakeLLMServer and an environment that names only it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from aio_llm.testing import FakeLLMServer

_OURS = ("LLM_", "OPENAI_", "ANTHROPIC_", "OPENROUTER_", "GEMINI_", "GOOGLE_", "AZURE_", "AWS_")


@pytest.fixture
async def server() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer(stream_chunks=4) as srv:
        yield srv


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No provider variable set: each test sets only what its program's users set."""
    for name in list(os.environ):
        if name.startswith(_OURS):
            monkeypatch.delenv(name)
    return monkeypatch
