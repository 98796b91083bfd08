"""Budget reservations survive cancellation at any point, on every ledger.

Hundreds of calls are cancelled at random moments (a seeded ``random.Random``
picks the moment and the way): ``asyncio.wait_for``, ``task.cancel()``, an
anyio scope, and the client's own ``timeout=``; chats and streams; against
the in-process, SQLite and Redis ledgers. Afterwards nothing is left
reserved: a reservation stuck for its TTL (an hour) would refuse later
requests with a false ``BudgetExceededError``.
"""

from __future__ import annotations

import asyncio
import functools
import random
from typing import Any

import anyio
import pytest

from aio_llm import AsyncLLMClient
from aio_llm.cost import BudgetConfig, BudgetPeriod, CostManager

from .conftest import CANCELLATIONS, bare_config, give_up, make_provider
from .rawserver import Conn, RawServer, Seen, answer

CALLS = 240


def _manager(ledger: object) -> CostManager:
    manager = CostManager(ledger=ledger)  # type: ignore[arg-type]
    manager.set_budget("daily", BudgetConfig(1000.0, BudgetPeriod.DAILY))
    return manager


@pytest.mark.anyio
async def test_random_cancellations_leave_nothing_reserved(
    make_ledger: object, ledger_kind: str, transport: str
) -> None:
    rng = random.Random(f"cancel-{ledger_kind}-{transport}")
    delays = [rng.uniform(0, 0.004) for _ in range(CALLS)]

    async def handler(req: Seen, conn: Conn) -> None:
        await anyio.sleep(delays[len(srv.requests) % CALLS])
        await answer(req, conn, "ok", input_tokens=10, output_tokens=10)

    manager = _manager(make_ledger())  # type: ignore[operator]
    outcomes: dict[str, int] = {}
    async with RawServer(handler) as srv:
        provider = make_provider("openai", srv.url)
        config = bare_config(transport, model="gpt-4o-mini")
        async with AsyncLLMClient(provider, config=config, cost_manager=manager) as client:

            async def call(stream: bool, timeout: float | None = None) -> None:
                messages = [{"role": "user", "content": "hi"}]
                kwargs: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
                if stream:
                    async with client.stream(messages, max_tokens=20, **kwargs) as s:
                        await s.text()
                else:
                    await client.chat(messages, max_tokens=20, **kwargs)

            async def one(i: int) -> None:
                how = rng.choice(CANCELLATIONS)
                stream = rng.random() < 0.4
                when = rng.choice([rng.uniform(0, 0.002), rng.uniform(0, 0.01)])
                outcome = await give_up(how, when, functools.partial(call, stream))
                outcomes[outcome] = outcomes.get(outcome, 0) + 1

            async with anyio.create_task_group() as tg:
                for i in range(CALLS):
                    tg.start_soon(one, i)
                    if i % 16 == 15:
                        await anyio.sleep(0.003)
            status = await manager.aget_budget_status("daily")
    assert sum(outcomes.values()) <= CALLS
    assert status["reserved"] == 0, (status, outcomes)


@pytest.mark.anyio
@pytest.mark.parametrize("how", ["task.cancel", "wait_for", "scope"])
async def test_reserve_settle_release_are_cancel_safe(
    make_ledger: object, ledger_kind: str, how: str
) -> None:
    """A caller using the ledger as the budget middleware does, cancelled after 0..6 loop turns.

    Once ``settle`` or ``release`` is called it finishes, and a ``reserve``
    cancelled half-way leaves nothing reserved.
    """
    from aio_llm.cost.ledger import UsageRecord

    rng = random.Random(f"ops-{ledger_kind}-{how}")
    manager = _manager(make_ledger())  # type: ignore[operator]
    started = {"settle": 0}

    async def caller(i: int) -> None:
        reservation = await manager.reserve("gpt-4o-mini", 0.001)
        try:
            await asyncio.sleep(0)  # the request
        except BaseException:
            with anyio.CancelScope(shield=True):
                await manager.release(reservation)
            raise
        if i % 2:
            started["settle"] += 1
            record = UsageRecord("gpt-4o-mini", 10, 10, 0.0005, manager.clock.time())
            await manager.settle(reservation, record)
        else:
            await manager.release(reservation)

    for i in range(150):
        turns = rng.randint(0, 6)
        if how == "wait_for":
            try:
                await asyncio.wait_for(caller(i), timeout=turns * 0.0003)
            except TimeoutError:
                pass
        elif how == "scope":
            with anyio.move_on_after(turns * 0.0003):
                await caller(i)
        else:
            task = asyncio.ensure_future(caller(i))
            for _ in range(turns):
                await asyncio.sleep(0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    status = await manager.aget_budget_status("daily")
    assert status["reserved"] == 0, status
    # every settle that was started is counted, cancelled or not
    assert status["spent"] == pytest.approx(started["settle"] * 0.0005)
