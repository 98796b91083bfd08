"""Issue 15, point 3: the default provider comes from the environment.

``LLM_PROVIDER`` first; then the provider whose key is set (OpenRouter,
OpenAI, Anthropic, then the kinds added later, in that order); a
``ConfigurationError`` naming every choice when none is. Checked for
``AsyncLLMClient()``, ``LLMClient()``, ``invoke_chat`` and ``aio-llm chat``,
each over loopback HTTP against a FakeLLMServer that the provider's
``*_BASE_URL`` points at.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from aio_llm import AsyncLLMClient, ConfigurationError, LLMClient
from aio_llm.providers import PROVIDER_KINDS
from aio_llm.providers._detect import DETECTION_ORDER, detect_provider
from aio_llm.testing import FakeLLMServer
from tests.conftest import PROVIDER_VARIABLES

HELLO = [{"role": "user", "content": "Hello"}]
KEYS = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
}


@pytest.fixture
def served() -> Iterator[FakeLLMServer]:
    """A server in a child process, for the blocking clients."""
    with FakeLLMServer.spawn() as srv:
        yield srv  # type: ignore[misc]


def point_at(env: pytest.MonkeyPatch, srv: FakeLLMServer, *kinds: str) -> None:
    """Set the keys of ``kinds`` and point each provider's base URL at ``srv``."""
    urls = {
        "openai": ("OPENAI_BASE_URL", srv.openai_url),
        "anthropic": ("ANTHROPIC_BASE_URL", srv.url),
        "openrouter": ("OPENROUTER_BASE_URL", srv.url + "/api/v1"),
    }
    for kind in kinds:
        env.setenv(KEYS[kind], f"sk-{kind}-0123456789")
        env.setenv(*urls[kind])


@pytest.mark.parametrize("kind", ["openai", "anthropic", "openrouter"])
@pytest.mark.anyio
async def test_the_only_key_set_picks_its_provider(
    bare_env: pytest.MonkeyPatch, server: FakeLLMServer, kind: str
) -> None:
    point_at(bare_env, server, kind)
    async with AsyncLLMClient(model="gpt-4o-mini") as c:
        r = await c.chat(HELLO)
    assert r.provider == kind and r.content == "Echo: Hello"
    path = server.last_request.path
    assert path.endswith("/v1/messages" if kind == "anthropic" else "/chat/completions")


@pytest.mark.anyio
async def test_llm_provider_comes_first(
    bare_env: pytest.MonkeyPatch, server: FakeLLMServer
) -> None:
    point_at(bare_env, server, "openai", "anthropic", "openrouter")
    bare_env.setenv("LLM_PROVIDER", "anthropic")
    async with AsyncLLMClient(model="claude") as c:
        assert (await c.chat(HELLO)).provider == "anthropic"


@pytest.mark.parametrize(
    ("kinds", "chosen"),
    [
        (("openai", "openrouter"), "openrouter"),  # what worked before keeps working
        (("anthropic", "openrouter"), "openrouter"),
        (("openai", "anthropic"), "openai"),
        (("anthropic", "openai", "openrouter"), "openrouter"),
    ],
)
def test_the_precedence_when_several_keys_are_set(
    bare_env: pytest.MonkeyPatch, served: FakeLLMServer, kinds: tuple[str, ...], chosen: str
) -> None:
    point_at(bare_env, served, *kinds)
    assert AsyncLLMClient().providers.keys() == {chosen}


def test_no_provider_names_every_choice(bare_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError) as info:
        AsyncLLMClient()
    message = str(info.value)
    for name in ("LLM_PROVIDER", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENROUTER_API_KEY"):
        assert name in message
    for kind in ("openai", "anthropic", "openrouter", "mock"):
        assert kind in message
    with pytest.raises(ConfigurationError, match="no provider configured"):
        LLMClient()


def test_an_empty_key_does_not_count(bare_env: pytest.MonkeyPatch) -> None:
    bare_env.setenv("OPENAI_API_KEY", "  ")
    bare_env.setenv("ANTHROPIC_API_KEY", "sk-ant-0123456789")
    assert detect_provider() == "anthropic"
    bare_env.setenv("LLM_PROVIDER", "")  # empty: as if unset
    assert AsyncLLMClient().providers.keys() == {"anthropic"}


def test_force_mock_wins(bare_env: pytest.MonkeyPatch) -> None:
    bare_env.setenv("LLM_FORCE_MOCK", "1")
    assert AsyncLLMClient().providers.keys() == {"mock"}


def test_the_table_takes_the_providers_added_later() -> None:
    every = {kind for kind, _ in DETECTION_ORDER} | {"mock", "openai-compatible"}
    assert detect_provider({"GOOGLE_API_KEY": "g"}, kinds=every) == "gemini"
    # Azure needs its endpoint as well as its key; Bedrock the two AWS variables (or a token)
    azure = {"AZURE_OPENAI_API_KEY": "k"}
    with pytest.raises(ConfigurationError):
        detect_provider(azure, kinds=every)
    azure["AZURE_OPENAI_ENDPOINT"] = "https://x.openai.azure.com"
    assert detect_provider(azure, kinds=every) == "azure-openai"
    aws = {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "s"}
    assert detect_provider(aws, kinds=every) == "bedrock"
    assert detect_provider({**aws, "GEMINI_API_KEY": "g"}, kinds=every) == "gemini"
    # a kind this installation lacks is skipped, not chosen
    both = {"GEMINI_API_KEY": "g", "AWS_BEARER_TOKEN_BEDROCK": "t"}
    assert detect_provider(both, kinds=every - {"gemini"}) == "bedrock"
    # this installation has every kind of the table: each is found from its own variables
    assert {kind for kind, _ in DETECTION_ORDER} <= set(PROVIDER_KINDS)
    assert detect_provider({"GEMINI_API_KEY": "g"}) == "gemini"
    assert detect_provider(azure) == "azure-openai"
    assert detect_provider({"AWS_BEARER_TOKEN_BEDROCK": "t"}) == "bedrock"
    with pytest.raises(ConfigurationError) as info:
        detect_provider({}, kinds=every)
    assert "AZURE_OPENAI_API_KEY + AZURE_OPENAI_ENDPOINT" in str(info.value)


def test_the_sync_client_and_invoke_chat(
    bare_env: pytest.MonkeyPatch, served: FakeLLMServer, fresh_defaults: None
) -> None:
    from aio_llm.facade import invoke_chat

    point_at(bare_env, served, "anthropic")
    with LLMClient(model="claude") as c:
        assert c.chat(HELLO).provider == "anthropic"
    r = invoke_chat(model="claude", messages=HELLO)
    assert r.provider == "anthropic" and r.content == "Echo: Hello"


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(PROVIDER_VARIABLES)}
    return subprocess.run(
        [sys.executable, "-m", "aio_llm", "chat", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, **env},
        check=False,
    )


def test_the_chat_command(served: FakeLLMServer) -> None:
    env = {"OPENAI_API_KEY": "sk-cli-0123456789", "OPENAI_BASE_URL": served.openai_url}
    proc = _cli(env, "Hello", "-m", "gpt-4o-mini")
    assert proc.returncode == 0, proc.stderr
    assert "Echo: Hello" in proc.stdout and "[openai gpt-4o-mini" in proc.stderr
    proc = _cli({}, "Hello", "-m", "gpt-4o-mini")
    assert proc.returncode == 1
    assert "no provider configured" in proc.stderr and "OPENAI_API_KEY" in proc.stderr
