"""The SQLite ledger: an embedded, durable budget ledger shared by the processes of one host.

It uses the standard library's ``sqlite3`` in a worker thread
(``anyio.to_thread``), one operation at a time, in WAL mode. Every change
is one ``BEGIN IMMEDIATE`` transaction, so reserve/settle/release are
atomic across processes that share the file, and a settle (with its usage
record) is committed before the middleware returns the response: a
process killed afterwards loses nothing it reported.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from ._base import Balances, Claim, LedgerUnavailableError, Refusal, Reservation, UsageRecord

__all__ = ["SQLiteLedger"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS budget_keys (
    key TEXT PRIMARY KEY,
    spent INTEGER NOT NULL DEFAULT 0,
    reserved INTEGER NOT NULL DEFAULT 0,
    expires_at REAL
);
CREATE TABLE IF NOT EXISTS reservations (
    id TEXT PRIMARY KEY,
    amount INTEGER NOT NULL,
    expires_at REAL NOT NULL,
    live INTEGER NOT NULL,
    keys TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reservations_live_expiry ON reservations (live, expires_at);
CREATE TABLE IF NOT EXISTS usage_records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    response_id TEXT,
    model TEXT NOT NULL,
    provider TEXT,
    user_id TEXT,
    project TEXT,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cached_input_tokens INTEGER NOT NULL,
    cache_creation_input_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    cost_nanos INTEGER,
    estimated INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS usage_records_response ON usage_records (response_id);
"""


class SQLiteLedger:
    """Budget ledger in a SQLite file (``budget_backend="/path/to/budget.db"``).

    ``synchronous`` is SQLite's durability setting: ``NORMAL`` (default)
    survives a killed process; ``FULL`` also survives power loss.
    """

    __slots__ = ("_conn", "_lock", "_limiter", "_path", "_synchronous", "_timeout")

    def __init__(self, path: str | Path, *, synchronous: str = "NORMAL", timeout: float = 30.0):
        if synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValueError("synchronous must be OFF, NORMAL, FULL or EXTRA")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self._path = str(path)
        self._synchronous = synchronous.upper()
        self._timeout = timeout
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._limiter = anyio.CapacityLimiter(1)

    @property
    def path(self) -> str:
        return self._path

    def _connection(self) -> sqlite3.Connection:
        conn = self._conn
        if conn is None:
            try:
                conn = sqlite3.connect(
                    self._path,
                    timeout=self._timeout,
                    isolation_level=None,
                    check_same_thread=False,
                )
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(f"PRAGMA synchronous={self._synchronous}")
                conn.executescript(_SCHEMA)
            except sqlite3.Error as exc:
                raise LedgerUnavailableError(
                    f"the SQLite budget ledger cannot be opened: {exc}"
                ) from exc
            self._conn = conn
        return conn

    def _tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                return result
            except sqlite3.OperationalError as exc:
                raise LedgerUnavailableError(f"the SQLite budget ledger failed: {exc}") from exc

    # -- the operations, run inside one transaction -------------------------------------------

    @staticmethod
    def _expire(conn: sqlite3.Connection, now: float) -> None:
        rows = conn.execute(
            "SELECT id, amount, keys FROM reservations WHERE live = 1 AND expires_at <= ?", (now,)
        ).fetchall()
        for rid, amount, keys in rows:
            for key in json.loads(keys):
                conn.execute(
                    "UPDATE budget_keys SET reserved = reserved - ? WHERE key = ?", (amount, key)
                )
            conn.execute("UPDATE reservations SET live = 0 WHERE id = ?", (rid,))

    @staticmethod
    def _slot(conn: sqlite3.Connection, claim: Claim) -> tuple[int, int]:
        conn.execute(
            "INSERT OR IGNORE INTO budget_keys (key, expires_at) VALUES (?, ?)",
            (claim.key, claim.expires_at),
        )
        row = conn.execute(
            "SELECT spent, reserved FROM budget_keys WHERE key = ?", (claim.key,)
        ).fetchone()
        return int(row[0]), int(row[1])

    @staticmethod
    def _read(conn: sqlite3.Connection, keys: Iterable[str]) -> Balances:
        out: Balances = {}
        for key in keys:
            row = conn.execute(
                "SELECT spent, reserved FROM budget_keys WHERE key = ?", (key,)
            ).fetchone()
            out[key] = (int(row[0]), int(row[1])) if row else (0, 0)
        return out

    @staticmethod
    def _record(conn: sqlite3.Connection, record: UsageRecord | None, actual: int) -> None:
        if record is None:
            return
        conn.execute(
            "INSERT INTO usage_records (ts, response_id, model, provider, user_id, project,"
            " input_tokens, output_tokens, cached_input_tokens, cache_creation_input_tokens,"
            " reasoning_tokens, cost_nanos, estimated) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                record.timestamp,
                record.response_id,
                record.model,
                record.provider,
                record.user_id,
                record.project,
                record.input_tokens,
                record.output_tokens,
                record.cached_input_tokens,
                record.cache_creation_input_tokens,
                record.reasoning_tokens,
                None if record.cost is None else actual,
                int(record.estimated),
            ),
        )

    def _reserve(self, reservation: Reservation, now: float) -> Refusal | None:
        def op(conn: sqlite3.Connection) -> Refusal | None:
            self._expire(conn, now)
            if conn.execute(
                "SELECT 1 FROM reservations WHERE id = ?", (reservation.id,)
            ).fetchone():
                raise ValueError(f"reservation {reservation.id!r} already exists")
            amount = reservation.amount
            for claim in reservation.claims:
                spent, reserved = self._slot(conn, claim)
                limit = claim.limit
                if limit is not None and (spent + reserved + amount > limit or spent >= limit > 0):
                    return Refusal(claim, spent, reserved)
            for claim in reservation.claims:
                conn.execute(
                    "UPDATE budget_keys SET reserved = reserved + ? WHERE key = ?",
                    (amount, claim.key),
                )
            conn.execute(
                "INSERT INTO reservations (id, amount, expires_at, live, keys) VALUES (?,?,?,1,?)",
                (
                    reservation.id,
                    amount,
                    reservation.expires_at,
                    json.dumps([c.key for c in reservation.claims]),
                ),
            )
            return None

        return self._tx(op)

    def _settle(
        self, reservation: Reservation, actual: int, now: float, record: UsageRecord | None
    ) -> Balances:
        def op(conn: sqlite3.Connection) -> Balances:
            self._expire(conn, now)
            row = conn.execute(
                "SELECT amount, live FROM reservations WHERE id = ?", (reservation.id,)
            ).fetchone()
            if row is not None:
                amount, live = int(row[0]), int(row[1])
                for claim in reservation.claims:
                    self._slot(conn, claim)
                    conn.execute(
                        "UPDATE budget_keys SET spent = spent + ?, reserved = reserved - ?"
                        " WHERE key = ?",
                        (max(actual, 0), amount if live else 0, claim.key),
                    )
                conn.execute("DELETE FROM reservations WHERE id = ?", (reservation.id,))
                self._record(conn, record, actual)
            return self._read(conn, [c.key for c in reservation.claims])

        return self._tx(op)

    def _release(self, reservation: Reservation, now: float) -> Balances:
        def op(conn: sqlite3.Connection) -> Balances:
            self._expire(conn, now)
            row = conn.execute(
                "SELECT amount, live FROM reservations WHERE id = ?", (reservation.id,)
            ).fetchone()
            if row is not None:
                if int(row[1]):
                    for claim in reservation.claims:
                        conn.execute(
                            "UPDATE budget_keys SET reserved = reserved - ? WHERE key = ?",
                            (int(row[0]), claim.key),
                        )
                conn.execute("DELETE FROM reservations WHERE id = ?", (reservation.id,))
            return self._read(conn, [c.key for c in reservation.claims])

        return self._tx(op)

    def _charge(
        self, claims: Sequence[Claim], amount: int, now: float, record: UsageRecord | None
    ) -> Balances:
        def op(conn: sqlite3.Connection) -> Balances:
            self._expire(conn, now)
            for claim in claims:
                self._slot(conn, claim)
                conn.execute(
                    "UPDATE budget_keys SET spent = spent + ? WHERE key = ?",
                    (max(amount, 0), claim.key),
                )
            self._record(conn, record, amount)
            return self._read(conn, [c.key for c in claims])

        return self._tx(op)

    def _balances(self, keys: Iterable[str], now: float) -> Balances:
        keys = list(keys)

        def op(conn: sqlite3.Connection) -> Balances:
            self._expire(conn, now)
            return self._read(conn, keys)

        return self._tx(op)

    # -- the async Ledger interface -----------------------------------------------------------

    async def reserve(self, reservation: Reservation, now: float) -> Refusal | None:
        return await anyio.to_thread.run_sync(
            self._reserve, reservation, now, limiter=self._limiter
        )

    async def settle(
        self, reservation: Reservation, actual: int, now: float, record: UsageRecord | None = None
    ) -> Balances:
        return await anyio.to_thread.run_sync(
            self._settle, reservation, actual, now, record, limiter=self._limiter
        )

    async def release(self, reservation: Reservation, now: float) -> Balances:
        return await anyio.to_thread.run_sync(
            self._release, reservation, now, limiter=self._limiter
        )

    async def charge(
        self, claims: Sequence[Claim], amount: int, now: float, record: UsageRecord | None = None
    ) -> Balances:
        return await anyio.to_thread.run_sync(
            self._charge, list(claims), amount, now, record, limiter=self._limiter
        )

    async def balances(self, keys: Iterable[str], now: float) -> Balances:
        return await anyio.to_thread.run_sync(
            self._balances, list(keys), now, limiter=self._limiter
        )

    async def records(self) -> list[dict[str, Any]]:
        """Every stored usage record, oldest first (for reports and audits)."""

        def op(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            cur = conn.execute("SELECT * FROM usage_records ORDER BY id")
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

        return await anyio.to_thread.run_sync(self._tx, op, limiter=self._limiter)

    async def aclose(self) -> None:
        def close() -> None:
            with self._lock:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None

        await anyio.to_thread.run_sync(close, limiter=self._limiter)

    def __repr__(self) -> str:
        return f"<SQLiteLedger path={self._path!r} open={self._conn is not None}>"
