"""SQLite ledger: durable records, WAL; a process killed with SIGKILL loses nothing it returned."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from aio_llm.cost import CostManager
from aio_llm.cost.budgets import BudgetConfig, BudgetPeriod
from aio_llm.cost.ledger import LedgerUnavailableError, MemoryLedger, SQLiteLedger, ledger_from_url
from aio_llm.testing.clock import FakeClock

ROOT = Path(__file__).resolve().parents[3]

CHILD = textwrap.dedent(
    """
    import sys
    import anyio
    from aio_llm.cost import BudgetConfig, BudgetPeriod, CostManager
    from aio_llm.cost.ledger import SQLiteLedger
    from aio_llm.middleware.budget import BudgetMiddleware
    from aio_llm.types import ChatRequest, ChatResponse, Message, Usage

    async def main(db, tag, n):
        manager = CostManager(ledger=SQLiteLedger(db))
        manager.set_budget("all", BudgetConfig(1000.0, BudgetPeriod.TOTAL))
        mw = BudgetMiddleware(manager)

        async def next_(req):
            await anyio.sleep(0.001)
            return ChatResponse(
                id=req.metadata["rid"], model=req.model,
                usage=Usage(input_tokens=40, output_tokens=60, total_tokens=100),
            )

        async def worker(w):
            for i in range(n):
                req = ChatRequest(
                    model="gpt-4o", max_tokens=100,
                    messages=[Message(role="user", content=f"question {w}-{i}")],
                    metadata={"rid": f"{tag}-{w}-{i}"},
                )
                resp = await mw(req, next_)
                print(resp.id, flush=True)

        async with anyio.create_task_group() as tg:
            for w in range(4):
                tg.start_soon(worker, w)
        await manager.aclose()

    anyio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]))
    """
)


def _spawn(script: Path, db: Path, tag: str, n: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(script), str(db), tag, str(n)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_sigkilled_process_has_a_record_for_every_response_it_returned(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    db = tmp_path / "budget.db"

    child = _spawn(script, db, "a", 10_000)
    assert child.stdout is not None
    returned: list[str] = []
    for line in child.stdout:
        returned.append(line.strip())
        if len(returned) >= 60:
            break
    os.kill(child.pid, signal.SIGKILL)
    rest, _ = child.communicate(timeout=30)
    returned += [x for x in rest.split() if x]
    assert child.returncode == -signal.SIGKILL

    restarted = _spawn(script, db, "b", 5)
    out, err = restarted.communicate(timeout=60)
    assert restarted.returncode == 0, err
    returned += out.split()

    conn = sqlite3.connect(db)
    try:
        ids = {row[0] for row in conn.execute("SELECT response_id FROM usage_records")}
        missing = [r for r in returned if r not in ids]
        assert missing == []
        assert len([r for r in returned if r.startswith("b-")]) == 20
        spent, reserved = conn.execute(
            "SELECT spent, reserved FROM budget_keys WHERE key = 'all|total|*'"
        ).fetchone()
        (recorded,) = conn.execute("SELECT SUM(cost_nanos) FROM usage_records").fetchone()
        (held,) = conn.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM reservations WHERE live = 1"
        ).fetchone()
        assert spent == recorded  # nothing lost, nothing counted twice
        assert reserved == held  # only the killed process's in-flight requests remain held
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


@pytest.mark.anyio
async def test_records_and_status_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    clock = FakeClock()
    m = CostManager(clock=clock, ledger=SQLiteLedger(path))
    m.set_budget("daily", BudgetConfig(5.0, BudgetPeriod.DAILY))
    rec = await m.atrack_usage("gpt-4o", 1000, 1000, user_id="ann", response_id="r1")
    await m.aclose()

    again = CostManager(clock=clock, ledger=SQLiteLedger(path))
    again.set_budget("daily", BudgetConfig(5.0, BudgetPeriod.DAILY))
    status = await again.aget_budget_status("daily")
    assert status["spent"] == pytest.approx(rec.cost or 0)
    assert again.get_budget_status("daily")["spent"] == pytest.approx(rec.cost or 0)
    ledger = again.ledger
    assert isinstance(ledger, SQLiteLedger)
    rows = await ledger.records()
    assert [(r["response_id"], r["user_id"], r["input_tokens"]) for r in rows] == [
        ("r1", "ann", 1000)
    ]
    await again.aclose()


@pytest.mark.anyio
async def test_unopenable_database_is_a_ledger_error(tmp_path: Path) -> None:
    ledger = SQLiteLedger(tmp_path / "missing-dir" / "b.db")
    m = CostManager(ledger=ledger)
    m.set_budget("d", BudgetConfig(1.0))
    with pytest.raises(LedgerUnavailableError):
        await m.reserve("gpt-4o", 0.1)
    await m.aclose()


def test_ledger_from_url_picks_the_backend(tmp_path: Path) -> None:
    assert isinstance(ledger_from_url("memory"), MemoryLedger)
    sqlite = ledger_from_url(f"sqlite:///{tmp_path}/x.db")
    assert isinstance(sqlite, SQLiteLedger) and sqlite.path == f"{tmp_path}/x.db"
    plain = ledger_from_url(str(tmp_path / "y.db"))
    assert isinstance(plain, SQLiteLedger)
    assert "y.db" in repr(plain)
    redis = ledger_from_url("redis://127.0.0.1:1/0")
    assert type(redis).__name__ == "RedisLedger"
    with pytest.raises(ValueError):
        SQLiteLedger(tmp_path / "z.db", synchronous="SOMETIMES")
