"""Reserve / settle / release in any interleaving, on the memory and SQLite ledgers.

Invariants after every step: ``spent + reserved <= limit`` for every key (a
settle never charges more than was reserved here), and the ledger agrees
with a simple model: nothing lost, nothing counted twice.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any, Protocol

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    multiple,
    rule,
)

from aio_llm.cost.ledger import MemoryLedger, Reservation
from aio_llm.cost.ledger._base import Claim
from aio_llm.cost.ledger._sqlite import SQLiteLedger

LIMITS = {"global|2026-01-01|*": 1_000, "user|2026-01-01|ann": 600}
KEYS = list(LIMITS)
NOW = 1_767_225_600.0


class _Ops(Protocol):
    """The sync operations of one ledger backend."""

    def reserve(self, res: Reservation) -> Any: ...
    def settle(self, res: Reservation, actual: int) -> Any: ...
    def release(self, res: Reservation) -> Any: ...
    def balances(self) -> dict[str, tuple[int, int]]: ...
    def close(self) -> None: ...


class _MemoryOps(_Ops):
    def __init__(self) -> None:
        self.ledger = MemoryLedger()

    def reserve(self, res: Reservation) -> Any:
        return self.ledger.reserve_nowait(res, NOW)

    def settle(self, res: Reservation, actual: int) -> Any:
        return self.ledger.settle_nowait(res, actual, NOW)

    def release(self, res: Reservation) -> Any:
        return self.ledger.release_nowait(res, NOW)

    def balances(self) -> dict[str, tuple[int, int]]:
        return self.ledger.balances_nowait(KEYS, NOW)

    def close(self) -> None:
        pass


class _SQLiteOps(_Ops):
    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="aio-llm-ledger-")
        self.ledger = SQLiteLedger(os.path.join(self.dir, "budget.db"))

    def reserve(self, res: Reservation) -> Any:
        return self.ledger._reserve(res, NOW)

    def settle(self, res: Reservation, actual: int) -> Any:
        return self.ledger._settle(res, actual, NOW, None)

    def release(self, res: Reservation) -> Any:
        return self.ledger._release(res, NOW)

    def balances(self) -> dict[str, tuple[int, int]]:
        return self.ledger._balances(KEYS, NOW)

    def close(self) -> None:
        conn = self.ledger._conn
        if conn is not None:
            conn.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class LedgerMachine(RuleBasedStateMachine):
    ops_factory: type[_Ops] = _MemoryOps

    open_res = Bundle("open_res")
    done_res = Bundle("done_res")

    def __init__(self) -> None:
        super().__init__()
        self.ops = self.ops_factory()
        self.spent = dict.fromkeys(KEYS, 0)
        self.reserved = dict.fromkeys(KEYS, 0)
        self.counter = 0

    def teardown(self) -> None:
        self.ops.close()

    def _fits(self, keys: list[str], amount: int) -> bool:
        for k in keys:
            s, r, lim = self.spent[k], self.reserved[k], LIMITS[k]
            if s + r + amount > lim or s >= lim > 0:
                return False
        return True

    @rule(
        target=open_res,
        amount=st.integers(min_value=0, max_value=700),
        which=st.sampled_from([[KEYS[0]], [KEYS[1]], KEYS]),
    )
    def reserve(self, amount: int, which: list[str]) -> Any:
        self.counter += 1
        claims = tuple(Claim(k, LIMITS[k], None) for k in which)
        res = Reservation(f"r{self.counter}", claims, amount, NOW + 3600)
        refusal = self.ops.reserve(res)
        if self._fits(which, amount):
            assert refusal is None
            for k in which:
                self.reserved[k] += amount
            return multiple(res)
        assert refusal is not None
        assert refusal.claim.key in which
        return multiple()

    @rule(target=done_res, res=consumes(open_res), fraction=st.floats(0.0, 1.0))
    def settle(self, res: Reservation, fraction: float) -> Reservation:
        actual = int(res.amount * fraction)
        balances = self.ops.settle(res, actual)
        for c in res.claims:
            self.reserved[c.key] -= res.amount
            self.spent[c.key] += actual
            assert balances[c.key] == (self.spent[c.key], self.reserved[c.key])
        return res

    @rule(target=done_res, res=consumes(open_res))
    def release(self, res: Reservation) -> Reservation:
        self.ops.release(res)
        for c in res.claims:
            self.reserved[c.key] -= res.amount
        return res

    @rule(res=done_res, actual=st.integers(0, 500))
    def settle_finished_again_changes_nothing(self, res: Reservation, actual: int) -> None:
        self.ops.settle(res, actual)
        self.ops.release(res)

    @invariant()
    def matches_model_and_stays_within_limits(self) -> None:
        balances = self.ops.balances()
        for k in KEYS:
            assert balances[k] == (self.spent[k], self.reserved[k])
            assert self.spent[k] + self.reserved[k] <= LIMITS[k]
            assert self.reserved[k] >= 0


class SQLiteLedgerMachine(LedgerMachine):
    ops_factory = _SQLiteOps


TestMemoryLedger = LedgerMachine.TestCase
TestMemoryLedger.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSQLiteLedger = SQLiteLedgerMachine.TestCase
TestSQLiteLedger.settings = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_expired_reservation_stops_counting_but_a_late_settle_still_charges() -> None:
    for ops in (_MemoryOps(), _SQLiteOps()):
        try:
            claim = Claim(KEYS[0], 1000, None)
            res = Reservation("late", (claim,), 800, NOW - 1)  # already expired
            assert ops.reserve(res) is None
            assert ops.balances()[KEYS[0]] == (0, 0)  # the dead process's hold is gone
            other = Reservation("other", (claim,), 900, NOW + 60)
            assert ops.reserve(other) is None
            assert ops.settle(res, 300)[KEYS[0]] == (300, 900)  # spent counted, once
            assert ops.settle(res, 300)[KEYS[0]] == (300, 900)
            assert ops.release(other)[KEYS[0]] == (300, 0)
        finally:
            ops.close()


def test_a_reservation_id_cannot_be_reused() -> None:
    for ops in (_MemoryOps(), _SQLiteOps()):
        try:
            res = Reservation("dup", (Claim(KEYS[0], 1000, None),), 1, NOW + 60)
            assert ops.reserve(res) is None
            with pytest.raises(ValueError):
                ops.reserve(res)
        finally:
            ops.close()
