"""An independently written OpenAI- and Anthropic-compatible server, started on 127.0.0.1.

The server is LLMock (``llmock`` on PyPI, the ``interop`` extra): a FastAPI
app that answers the OpenAI Chat Completions API under ``/v1`` and
Anthropic's Messages API under ``/anthropic/v1``, with each provider's own
error envelopes and ``Retry-After`` headers, tool calls when tools are
offered, SSE streaming, and an ``x-llmock-force-status`` request header that
makes it answer with that HTTP error. Its answers echo the prompt, so the
same request gets the same text whoever sends it.

The tests send the same request through aio_llm and through the official
``openai`` / ``anthropic`` SDK and compare what each returns.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anthropic
import openai
import pytest

from aio_llm import AsyncLLMClient, ClientConfig

EXTRA = "pip install 'aio-llm[interop]' (scripts/setup installs it)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _llmock_command() -> list[str]:
    exe = Path(sys.executable).parent / "llmock"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("llmock")
    if found is None:
        pytest.fail(f"the interop suite needs the LLMock server: {EXTRA}")
    return [found]


class LLMock:
    """A running LLMock process on 127.0.0.1."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.openai_url = self.url + "/v1"
        self.anthropic_url = self.url + "/anthropic"


@pytest.fixture(scope="session")
def llmock() -> Iterator[LLMock]:
    port = _free_port()
    log_dir = tempfile.mkdtemp(prefix="llmock-")
    log_path = Path(log_dir) / "llmock.log"
    own = ("LLMOCK_", "OPENAI_", "ANTHROPIC_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(own)}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [
                *_llmock_command(),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--response-style",
                "echo",
                "--tool-mode",
                "auto",
                "--log-level",
                "warning",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=log_dir,
        )
    server = LLMock(port)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llmock exited with {proc.returncode}: {log_path.read_text()}")
            try:
                with urllib.request.urlopen(server.openai_url + "/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"llmock did not start within 60 s: {log_path.read_text()}")
                time.sleep(0.1)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(log_dir, ignore_errors=True)


KEY = "sk-interop-not-a-real-key"


def _config(transport: str) -> ClientConfig:
    # no retries on either side: an error is compared as the server sent it
    return ClientConfig(transport=transport, cache_enabled=False, max_retries=0)


@pytest.fixture
async def aio_openai(llmock: LLMock, transport: str) -> AsyncIterator[AsyncLLMClient]:
    async with AsyncLLMClient(
        "openai", api_key=KEY, base_url=llmock.openai_url, config=_config(transport)
    ) as client:
        yield client


@pytest.fixture
async def aio_anthropic(llmock: LLMock, transport: str) -> AsyncIterator[AsyncLLMClient]:
    async with AsyncLLMClient(
        "anthropic", api_key=KEY, base_url=llmock.anthropic_url, config=_config(transport)
    ) as client:
        yield client


@pytest.fixture
async def sdk_openai(llmock: LLMock) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(api_key=KEY, base_url=llmock.openai_url, max_retries=0)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def sdk_anthropic(llmock: LLMock) -> AsyncIterator[anthropic.AsyncAnthropic]:
    client = anthropic.AsyncAnthropic(api_key=KEY, base_url=llmock.anthropic_url, max_retries=0)
    try:
        yield client
    finally:
        await client.close()
