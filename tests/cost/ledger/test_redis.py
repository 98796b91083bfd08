"""Redis ledger: atomic Lua reserve/settle/release shared by processes; fail closed or open."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from aio_llm.config import ClientConfig
from aio_llm.cost import BudgetConfig, BudgetPeriod, CostManager
from aio_llm.cost.ledger import LedgerUnavailableError, Reservation
from aio_llm.cost.ledger._base import Claim
from aio_llm.cost.ledger._redis import RedisLedger
from aio_llm.errors import BudgetExceededError
from aio_llm.middleware.budget import BudgetMiddleware
from aio_llm.testing.clock import FakeClock
from aio_llm.types import ChatRequest, ChatResponse, Message, Usage

pytestmark = pytest.mark.redis
ROOT = Path(__file__).resolve().parents[3]
NOW = 1_767_225_600.0


@pytest.fixture
async def ledger(redis_url: str) -> AsyncIterator[RedisLedger]:
    led = RedisLedger(redis_url, key_prefix=f"test:{uuid.uuid4().hex}")
    yield led
    await led.aclose()


def _res(rid: str, amount: int, *claims: Claim, ttl: float = 60.0) -> Reservation:
    return Reservation(rid, claims, amount, NOW + ttl)


@pytest.mark.anyio
async def test_reserve_settle_release_are_atomic_and_exact(ledger: RedisLedger) -> None:
    a, b = Claim("a", 1000, NOW + 86400), Claim("b", 500, None)
    assert await ledger.reserve(_res("r1", 400, a, b), NOW) is None
    refusal = await ledger.reserve(_res("r2", 200, a, b), NOW)  # b: 400 + 200 > 500
    assert refusal is not None and refusal.claim == b and refusal.reserved == 400
    assert await ledger.balances(["a", "b"], NOW) == {"a": (0, 400), "b": (0, 400)}
    assert await ledger.settle(_res("r1", 400, a, b), 250, NOW) == {"a": (250, 0), "b": (250, 0)}
    assert await ledger.settle(_res("r1", 400, a, b), 250, NOW) == {"a": (250, 0), "b": (250, 0)}
    assert await ledger.reserve(_res("r3", 250, a, b), NOW) is None
    assert await ledger.release(_res("r3", 250, a, b), NOW) == {"a": (250, 0), "b": (250, 0)}
    assert await ledger.charge([a], 10, NOW) == {"a": (260, 0)}
    with pytest.raises(ValueError):
        await ledger.reserve(_res("r4", 1, a), NOW)
        await ledger.reserve(_res("r4", 1, a), NOW)


@pytest.mark.anyio
async def test_expired_reservations_are_purged_and_late_settles_still_count(
    ledger: RedisLedger,
) -> None:
    a = Claim("a", 1000, None)
    assert await ledger.reserve(_res("dead", 900, a, ttl=5), NOW) is None
    assert await ledger.balances(["a"], NOW + 10) == {"a": (0, 0)}
    assert await ledger.reserve(_res("next", 900, a), NOW + 10) is None
    assert await ledger.settle(_res("dead", 900, a), 100, NOW + 11) == {"a": (100, 900)}
    assert await ledger.release(_res("dead", 900, a), NOW + 11) == {"a": (100, 900)}


def _request(i: int) -> ChatRequest:
    return ChatRequest(
        model="gpt-4o",
        max_tokens=300,
        messages=[Message(role="user", content=f"tell me about item {i}")],
    )


async def _answer(req: ChatRequest) -> ChatResponse:
    await anyio.lowlevel.checkpoint()
    return ChatResponse(
        id="r", model=req.model, usage=Usage(input_tokens=8, output_tokens=250, total_tokens=258)
    )


@pytest.mark.anyio
async def test_concurrent_middleware_requests_share_one_redis_budget(redis_url: str) -> None:
    prefix = f"test:{uuid.uuid4().hex}"
    managers = [
        CostManager(clock=FakeClock(), ledger=RedisLedger(redis_url, key_prefix=prefix))
        for _ in range(2)
    ]
    for m in managers:
        m.set_budget("shared", BudgetConfig(0.2, BudgetPeriod.DAILY))
    mws = [BudgetMiddleware(m) for m in managers]
    outcomes: list[ChatResponse | BudgetExceededError] = []

    async def one(i: int) -> None:
        try:
            outcomes.append(await mws[i % 2](_request(i), _answer))
        except BudgetExceededError as exc:
            outcomes.append(exc)

    async with anyio.create_task_group() as tg:
        for i in range(300):
            tg.start_soon(one, i)
    ok = [o for o in outcomes if isinstance(o, ChatResponse)]
    assert len(outcomes) == 300 and ok and len(ok) < 300
    status = await managers[0].aget_budget_status("shared")
    assert status["reserved"] == 0.0
    assert status["spent"] == pytest.approx(sum(o.cost or 0 for o in ok), abs=1e-6)
    assert status["spent"] <= 0.2
    for m in managers:
        await m.aclose()


CHILD = textwrap.dedent(
    """
    import sys
    import anyio, anyio.lowlevel
    from aio_llm.cost import BudgetConfig, BudgetPeriod, CostManager
    from aio_llm.cost.ledger._redis import RedisLedger
    from aio_llm.errors import BudgetExceededError
    from aio_llm.middleware.budget import BudgetMiddleware
    from aio_llm.types import ChatRequest, ChatResponse, Message, Usage

    async def main(url, prefix, n):
        manager = CostManager(ledger=RedisLedger(url, key_prefix=prefix))
        manager.set_budget("shared", BudgetConfig(0.5, BudgetPeriod.TOTAL))
        mw = BudgetMiddleware(manager)
        answered = refused = 0
        spent = 0.0

        async def next_(req):
            for _ in range(3):
                await anyio.lowlevel.checkpoint()
            return ChatResponse(id="x", model=req.model,
                                usage=Usage(input_tokens=9, output_tokens=280, total_tokens=289))

        async def one(i, limiter):
            nonlocal answered, refused, spent
            async with limiter:
                req = ChatRequest(model="gpt-4o", max_tokens=300,
                                  messages=[Message(role="user", content=f"item {i}")])
                try:
                    resp = await mw(req, next_)
                except BudgetExceededError:
                    refused += 1
                else:
                    answered += 1
                    spent += resp.cost

        limiter = anyio.CapacityLimiter(16)
        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(one, i, limiter)
        await manager.aclose()
        print(answered, refused, repr(spent), flush=True)

    anyio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]))
    """
)


@pytest.mark.anyio
async def test_two_processes_sharing_a_redis_budget_never_overshoot_together(
    redis_url: str, tmp_path: Path
) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    prefix = f"test:{uuid.uuid4().hex}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), redis_url, prefix, "250"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=90)
        assert p.returncode == 0, err
        answered, refused, spent = out.split()
        results.append((int(answered), int(refused), float(spent)))
    assert all(a + r == 250 for a, r, _ in results)
    total_answered = sum(a for a, _, _ in results)
    assert 0 < total_answered < 500
    ledger = RedisLedger(redis_url, key_prefix=prefix)
    try:
        (spent_n, reserved_n) = (await ledger.balances(["shared|total|*"], NOW))["shared|total|*"]
    finally:
        await ledger.aclose()
    assert reserved_n == 0
    assert spent_n / 1e9 == pytest.approx(sum(s for _, _, s in results), abs=1e-6)
    assert spent_n / 1e9 <= 0.5


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


@pytest.mark.anyio
async def test_unreachable_redis_fails_closed_by_default() -> None:
    config = ClientConfig(daily_budget=10.0, budget_backend=_closed_port_url())
    m = CostManager.from_config(config, clock=FakeClock())
    mw = BudgetMiddleware(m)
    sent = 0

    async def next_(req: ChatRequest) -> ChatResponse:
        nonlocal sent
        sent += 1
        return await _answer(req)

    with pytest.raises(LedgerUnavailableError, match="unreachable") as err:
        await mw(_request(1), next_)
    assert isinstance(err.value, BudgetExceededError)
    assert sent == 0
    assert m.metrics()["budget.ledger_errors"] == 1
    await m.aclose()


@pytest.mark.anyio
async def test_unreachable_redis_fails_open_when_configured() -> None:
    config = ClientConfig(
        daily_budget=10.0, budget_backend=_closed_port_url(), budget_fail_open=True
    )
    m = CostManager.from_config(config, clock=FakeClock())
    resp = await BudgetMiddleware(m)(_request(1), _answer)
    assert resp.cost == pytest.approx((8 * 2.5 + 250 * 10.0) / 1e6)
    assert m.get_metrics().total_requests == 1
    assert m.metrics()["budget.ledger_errors"] == 2  # reserve and the settle's charge
    await m.aclose()


def test_redis_ledger_validates_arguments_and_hides_the_url() -> None:
    with pytest.raises(ValueError):
        RedisLedger("redis://x", key_prefix="")
    led = RedisLedger("redis://:secret@127.0.0.1:6379/0")
    assert "secret" not in repr(led)
