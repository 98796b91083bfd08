"""The migration suite's FakeLLMServer (``bare_env`` comes from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from aio_llm.testing import FakeLLMServer


@pytest.fixture
async def server() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer(stream_chunks=4) as srv:
        yield srv
