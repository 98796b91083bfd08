"""Fixtures of the adversarial suite: both transports, every provider kind, a raw server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from aio_llm import AsyncLLMClient, ClientConfig
from aio_llm.providers import PROVIDER_KINDS, Provider, create_provider

from .rawserver import Handler, RawServer

KEY = "sk-adv-" + uuid.uuid4().hex
"""The API key every client of this suite sends: it must never leave for another host."""
PROMPT = "the secret plan " + uuid.uuid4().hex
"""A prompt whose text must not reach another host or any telemetry channel."""

WIRE_KINDS = sorted(kind for kind in PROVIDER_KINDS if kind != "mock")
"""Every provider kind that talks HTTP (new providers join these tests by existing)."""

NOT_YET_COVERED = frozenset(
    {"azure-openai", "azure-openai-responses", "bedrock", "gemini", "openai-responses"}
)
"""Kinds whose wire format the raw server does not write yet (it answers in OpenAI's chat and
Anthropic's Messages formats): Gemini's, the Responses API's and Bedrock's bodies and streams,
Azure's deployment URLs. Tests that need a readable answer run over ``FORMAT_KINDS``; teaching
the raw server those formats is open work."""

FORMAT_KINDS = [kind for kind in WIRE_KINDS if kind not in NOT_YET_COVERED]
"""The kinds whose answers the raw server writes in their own format."""

_PROVIDER_ARGS: dict[str, dict[str, Any]] = {}
"""Extra constructor arguments a provider kind needs beyond ``api_key``/``base_url``."""


def base_url_for(kind: str, origin: str) -> str:
    """The ``base_url`` a provider of ``kind`` takes for a server at ``origin``."""
    return origin if kind == "anthropic" else origin + "/v1"


def make_provider(kind: str, origin: str, *, key: str = KEY, label: str | None = None) -> Provider:
    return create_provider(
        kind,
        api_key=key,
        base_url=base_url_for(kind, origin),
        label=label,
        **_PROVIDER_ARGS.get(kind, {}),
    )


def bare_config(transport: str, **overrides: Any) -> ClientConfig:
    """No retries, no cache, no breaker trips: each attack meets the wire once."""
    settings: dict[str, Any] = {
        "transport": transport,
        "model": "gpt-4o-mini",
        "max_retries": 0,
        "timeout": 30.0,  # generous: a loaded CI machine must not fail these on time
        "dedup_enabled": False,
        "circuit_failure_threshold": 1000,
    }
    settings.update(overrides)
    return ClientConfig(**settings)


@pytest.fixture(params=["aiohttp", "httpx"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=WIRE_KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[RawServer]:
    async with RawServer(handler) as server:
        yield server


ClientFactory = Callable[..., AsyncLLMClient]


def client_for(
    kind: str, server: RawServer, transport: str, *, key: str = KEY, **config: Any
) -> AsyncLLMClient:
    provider = make_provider(kind, server.url, key=key)
    return AsyncLLMClient(provider, config=bare_config(transport, **config))


# -- budget ledgers ----------------------------------------------------------------------

LEDGERS = ["memory", "sqlite", "redis"]


@pytest.fixture(params=LEDGERS)
def ledger_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_ledger(
    ledger_kind: str, tmp_path: Any, request: pytest.FixtureRequest
) -> AsyncIterator[Callable[[], Any]]:
    """A factory of fresh ledgers of ``ledger_kind`` (a Redis key prefix of the test's own)."""
    from aio_llm.cost.ledger import MemoryLedger

    made: list[Any] = []

    def make() -> Any:
        if ledger_kind == "memory":
            ledger: Any = MemoryLedger()
        elif ledger_kind == "sqlite":
            from aio_llm.cost.ledger import SQLiteLedger

            ledger = SQLiteLedger(tmp_path / f"ledger-{len(made)}.db")
        else:
            from aio_llm.cost.ledger import RedisLedger

            url = request.getfixturevalue("redis_url")
            ledger = RedisLedger(url, key_prefix=f"adv-{uuid.uuid4().hex}")
        made.append(ledger)
        return ledger

    yield make
    for ledger in made:
        await ledger.aclose()


# -- giving up ---------------------------------------------------------------------------

CANCELLATIONS = ("wait_for", "task.cancel", "scope", "timeout")
"""The ways a caller gives up: asyncio.wait_for, task.cancel(), an anyio scope, timeout=."""


async def give_up(how: str, when: float, call: Callable[..., Awaitable[object]]) -> str:
    """Run ``call()`` and give up on it after ``when`` seconds in the way ``how`` names.

    ``call`` takes an optional ``timeout`` (used for ``how="timeout"``). Returns
    "completed" or the name of the error the caller saw (a cancellation
    delivered as ``TimeoutError`` or the client's ``APITimeoutError``).
    """
    import asyncio

    import anyio

    from aio_llm import LLMError

    try:
        if how == "wait_for":
            await asyncio.wait_for(call(), when)
        elif how == "task.cancel":
            task = asyncio.ensure_future(call())
            await asyncio.sleep(when)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        elif how == "scope":
            with anyio.move_on_after(when):
                await call()
        else:
            await call(timeout=max(when, 1e-4))
    except (TimeoutError, LLMError) as exc:
        return type(exc).__name__
    return "completed"
