"""A hard budget is never overshot: not by many concurrent calls, on any path, on any ledger.

The server is the adversary: it reports the usage a real provider would
(a prompt of 4,000 space-separated digits really is about 4,000 tokens,
not the 2,000 that bytes/4 guesses) and always answers with ``max_tokens``
of output. Hundreds of concurrent calls go through streams, plain chats,
a fallback to a pricier model, retries, dedup and the cache, against the
in-process, SQLite and Redis ledgers. At the end the ledger's spend is at
most the limit, nothing is left reserved, and what the responses say they
cost adds up to what was charged.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from aio_llm import AsyncLLMClient, BudgetExceededError, ChatResponse, LLMError
from aio_llm.cost import BudgetConfig, BudgetPeriod, CostManager

from .conftest import bare_config, make_provider
from .rawserver import Conn, Handler, RawServer, Seen, answer

LIMIT = 0.05
"""USD: a few dozen of these calls at most."""
DIGITS = " ".join(str(i % 10) for i in range(4000))
"""About 4,000 real tokens in 8,000 bytes: twice what bytes/4 estimates."""
MAX_TOKENS = 200
CALLS = 160


def _usage_of(req: Seen) -> tuple[int, int]:
    """What a real tokenizer would count: a token per digit, plus the template."""
    body = req.json()
    words = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
    return words + 10, int(body.get("max_tokens") or body.get("max_completion_tokens") or 0)


async def _honest(req: Seen, conn: Conn) -> None:
    inp, out = _usage_of(req)
    await answer(req, conn, "ok", input_tokens=inp, output_tokens=out)


def _manager(ledger: object) -> CostManager:
    manager = CostManager(ledger=ledger)  # type: ignore[arg-type]
    manager.set_budget("daily", BudgetConfig(LIMIT, BudgetPeriod.DAILY))
    return manager


async def _run(
    client: AsyncLLMClient, prompts: list[str], *, stream: bool = False
) -> list[ChatResponse | BaseException]:
    """One call per prompt, all at once; each ends in a response or an ``LLMError``."""
    results: list[ChatResponse | BaseException] = []

    async def one(text: str) -> None:
        messages = [{"role": "user", "content": text}]
        kwargs: dict[str, Any] = {"max_tokens": MAX_TOKENS, "temperature": 0}
        try:
            if stream:
                async with client.stream(messages, **kwargs) as s:
                    await s.text()
                assert s.response is not None
                results.append(s.response)
            else:
                results.append(await client.chat(messages, **kwargs))
        except LLMError as exc:
            results.append(exc)

    async with anyio.create_task_group() as tg:
        for text in prompts:
            tg.start_soon(one, text)
    return results


async def _check(
    manager: CostManager, results: list[ChatResponse | BaseException], *, reach_limit: bool = True
) -> None:
    status = await manager.aget_budget_status("daily")
    answered = [r for r in results if isinstance(r, ChatResponse)]
    refused = [r for r in results if isinstance(r, BudgetExceededError)]
    others = [r for r in results if isinstance(r, BaseException) and r not in refused]
    assert not others, others[:3]
    if reach_limit:
        assert answered and refused, (len(answered), len(refused))  # the limit was reached
    assert status["spent"] <= LIMIT + 1e-9, (status["spent"], LIMIT, len(answered))
    assert status["reserved"] == 0
    charged = math.fsum(r.cost or 0.0 for r in answered)
    assert charged == pytest.approx(status["spent"])


@contextlib.asynccontextmanager
async def _budgeted(
    ledger: object, handler: Handler, **config: Any
) -> AsyncIterator[tuple[CostManager, AsyncLLMClient, RawServer]]:
    """A client under the hard ``LIMIT`` on ``ledger``, talking to ``handler``."""
    manager = _manager(ledger)
    async with RawServer(handler) as srv:
        provider = make_provider("openai", srv.url)
        settings = bare_config("aiohttp", **{"model": "gpt-4o-mini", **config})
        async with AsyncLLMClient(provider, config=settings, cost_manager=manager) as client:
            yield manager, client, srv


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
async def test_usage_above_the_estimate_never_overshoots(
    make_ledger: object, ledger_kind: str, stream: bool
) -> None:
    async with _budgeted(make_ledger(), _honest) as (manager, client, _):  # type: ignore[operator]
        results = await _run(client, [DIGITS] * CALLS, stream=stream)
    await _check(manager, results)


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
async def test_a_fallback_to_a_pricier_model_never_overshoots(
    make_ledger: object, ledger_kind: str, stream: bool
) -> None:
    async def cheap_model_down(req: Seen, conn: Conn) -> None:
        if req.json().get("model") == "gpt-4o-mini":
            await conn.full(503, b'{"error": {"message": "overloaded"}}')
        else:
            await _honest(req, conn)

    ledger = make_ledger()  # type: ignore[operator]
    fallbacks = [{"model": "gpt-4o"}]
    async with _budgeted(ledger, cheap_model_down, fallbacks=fallbacks) as (manager, client, _):
        results = await _run(client, ["short question"] * CALLS, stream=stream)
    await _check(manager, results)
    assert all(r.model == "gpt-4o" for r in results if isinstance(r, ChatResponse))


@pytest.mark.anyio
async def test_retries_never_overshoot(make_ledger: object, ledger_kind: str) -> None:
    failed: set[str] = set()

    async def fail_first(req: Seen, conn: Conn) -> None:
        # one call in four meets a 500 first: its retry must not be charged twice
        if int(req.prompt.split()[0]) % 4 == 0 and req.prompt not in failed:
            failed.add(req.prompt)
            await conn.full(500, b'{"error": {"message": "try again"}}')
            return
        await _honest(req, conn)

    retries = {"max_retries": 2, "retry_base_delay": 0.001, "retry_strategy": "exponential"}
    async with _budgeted(make_ledger(), fail_first, **retries) as (manager, client, _):  # type: ignore[operator]
        results = await _run(client, [f"{i} {DIGITS}" for i in range(CALLS)])
    await _check(manager, results)


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["dedup", "cache"])
async def test_dedup_and_cache_never_overshoot(
    make_ledger: object, ledger_kind: str, path: str
) -> None:
    paths = {"dedup_enabled": path == "dedup", "cache_enabled": path == "cache"}
    async with _budgeted(make_ledger(), _honest, **paths) as (manager, client, _):  # type: ignore[operator]
        results: list[ChatResponse | BaseException] = []
        for _ in range(4):  # the same few prompts again and again, three at once
            prompts = [f"{k} {DIGITS}" for k in range(CALLS // 12) for _ in range(3)]
            results += await _run(client, prompts)
    await _check(manager, results, reach_limit=False)


@pytest.mark.anyio
async def test_an_unpriced_model_is_refused_by_a_hard_budget() -> None:
    async with _budgeted(None, _honest, model="acme/unpriced-model") as (_, client, srv):
        with pytest.raises(BudgetExceededError, match="no price"):
            await client.chat([{"role": "user", "content": "hi"}])
    assert srv.requests == []


async def _embeddings(req: Seen, conn: Conn) -> None:
    texts = req.json()["input"]
    tokens = sum(len(t.split()) for t in texts)  # a token per digit: twice bytes/4
    data = [{"index": i, "embedding": [0.5, 0.5]} for i in range(len(texts))]
    body = {"data": data, "model": "text-embedding-3-large", "usage": {"prompt_tokens": tokens}}
    await conn.full(200, json.dumps(body).encode())


@pytest.mark.anyio
async def test_embeddings_never_overshoot(make_ledger: object, ledger_kind: str) -> None:
    async with _budgeted(make_ledger(), _embeddings) as (manager, client, _):  # type: ignore[operator]
        manager.set_budget("daily", BudgetConfig(0.002, BudgetPeriod.DAILY))
        results: list[Any] = []

        async def one(i: int) -> None:
            try:
                results.append(
                    await client.embed([f"{i} {DIGITS}"], model="text-embedding-3-large")
                )
            except LLMError as exc:
                results.append(exc)

        async with anyio.create_task_group() as tg:
            for i in range(CALLS):
                tg.start_soon(one, i)
        status = await manager.aget_budget_status("daily")
    assert any(isinstance(r, BudgetExceededError) for r in results)
    assert not [
        r for r in results if isinstance(r, LLMError) and not isinstance(r, BudgetExceededError)
    ]
    assert status["spent"] <= 0.002 + 1e-12 and status["reserved"] == 0
