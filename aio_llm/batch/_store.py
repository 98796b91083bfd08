"""Where batch jobs live between processes: one SQLite file.

A job is its requests (``items``), the provider batches they were sent in
(``parts``) and, once known, each request's result. Every change is
committed before the job acts on it, so a job picks up after a crash
exactly where it was: a part recorded as ``submitting`` had its create call
in flight (OpenAI batches are found again by their metadata), an ``active``
part is polled, a ``collected`` part is done.

The default file is ``$LLM_BATCH_STORE``, else
``$XDG_STATE_HOME/aio_llm/batches.sqlite3`` (``~/.local/state/...``).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import _json
from ._sqlite import open_sqlite

__all__ = ["BatchStore", "PartRow", "default_store_path", "lease_owner"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    state TEXT NOT NULL,
    options TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    job TEXT NOT NULL,
    idx INTEGER NOT NULL,
    request TEXT NOT NULL,
    state TEXT NOT NULL,
    part TEXT,
    result TEXT,
    PRIMARY KEY (job, idx)
);
CREATE INDEX IF NOT EXISTS items_part ON items (job, part);
CREATE TABLE IF NOT EXISTS parts (
    job TEXT NOT NULL,
    key TEXT NOT NULL,
    provider TEXT NOT NULL,
    remote_id TEXT,
    state TEXT NOT NULL,
    created REAL NOT NULL,
    attempt INTEGER NOT NULL,
    reservations TEXT NOT NULL,
    PRIMARY KEY (job, key)
);
CREATE TABLE IF NOT EXISTS leases (
    job TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until REAL NOT NULL
);
"""


_TOTALS = """
SELECT
    SUM(answered), SUM(NOT answered), SUM(cached),
    TOTAL(CASE WHEN answered AND NOT cached THEN cost END),
    TOTAL(CASE WHEN answered AND NOT cached
          THEN MAX(COALESCE(NULLIF(full, 0), cost) - cost, 0) END),
    TOTAL(CASE WHEN cached THEN saved END)
FROM (
    SELECT
        json_type(result, '$.ok') IS NOT NULL AS answered,
        COALESCE(json_extract(result, '$.cached'), 0) = 1 AS cached,
        COALESCE(json_extract(result, '$.ok.cost'), 0.0) AS cost,
        json_extract(result, '$.full_cost') AS full,
        COALESCE(json_extract(result, '$.saved'), 0.0) AS saved
    FROM items WHERE job = ? AND result IS NOT NULL
)
"""


def default_store_path() -> Path:
    """``$LLM_BATCH_STORE``, else ``$XDG_STATE_HOME/aio_llm/batches.sqlite3``."""
    explicit = os.environ.get("LLM_BATCH_STORE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return Path(base) / "aio_llm" / "batches.sqlite3"


def lease_owner() -> str:
    """A name for one job driver: ``host:pid:token``."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"


def _holder_is_dead(owner: str) -> bool:
    """True when ``owner`` was a process on this host that no longer runs."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


class _Conflict(Exception):
    """Rolls back a transaction whose precondition no longer holds."""


@dataclass(slots=True)
class PartRow:
    """One provider batch of a job."""

    key: str
    provider: str
    remote_id: str | None
    state: str
    """``submitting`` (create in flight), ``active``, ``cancelling`` (cancel asked) or
    ``collected``."""
    created: float
    attempt: int
    reservations: list[dict[str, Any]]


class BatchStore:
    """The SQLite file behind batch jobs (``":memory:"`` keeps them in this process only).

    Calls are synchronous and short (one small transaction each, WAL mode);
    one connection is shared under a lock.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        if path is None:
            path = default_store_path()
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = open_sqlite(self.path, _SCHEMA, what="batch store")

    def __repr__(self) -> str:
        return f"<BatchStore {self.path!r}>"

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # -- jobs -----------------------------------------------------------------------

    def create_job(
        self, job_id: str, created: float, options: dict[str, Any], requests: Iterable[str]
    ) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT INTO jobs (id, created, state, options) VALUES (?, ?, 'open', ?)",
                (job_id, created, _json.dumps_text(options)),
            )
            c.executemany(
                "INSERT INTO items (job, idx, request, state) VALUES (?, ?, ?, 'pending')",
                ((job_id, i, r) for i, r in enumerate(requests)),
            )

    def job(self, job_id: str) -> tuple[str, dict[str, Any]] | None:
        """``(state, options)`` of a job, or ``None``."""
        with self._lock:
            row = self._conn.execute(
                "SELECT state, options FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
        if row is None:
            return None
        return row[0], _json.loads(row[1])

    def set_job_state(self, job_id: str, state: str) -> None:
        with self._tx() as c:
            c.execute("UPDATE jobs SET state = ? WHERE id = ?", (state, job_id))

    def job_ids(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._conn.execute("SELECT id FROM jobs ORDER BY created")]

    # -- items ----------------------------------------------------------------------

    def requests(self, job_id: str) -> list[str]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT request FROM items WHERE job = ? ORDER BY idx", (job_id,)
            ).fetchall()
        return [r[0] for r in rows]

    def items_in_state(self, job_id: str, state: str) -> list[int]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT idx FROM items WHERE job = ? AND state = ? ORDER BY idx", (job_id, state)
            ).fetchall()
        return [r[0] for r in rows]

    def items_of_part(self, job_id: str, part: str, state: str | None = None) -> list[int]:
        query = "SELECT idx FROM items WHERE job = ? AND part = ?"
        args: tuple[Any, ...] = (job_id, part)
        if state is not None:
            query += " AND state = ?"
            args += (state,)
        with self._lock:
            rows = self._conn.execute(query + " ORDER BY idx", args).fetchall()
        return [r[0] for r in rows]

    def counts(self, job_id: str) -> dict[str, int]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT state, COUNT(*) FROM items WHERE job = ? GROUP BY state", (job_id,)
            ).fetchall()
        return {r[0]: r[1] for r in rows}

    def results(self, job_id: str) -> list[dict[str, Any] | None]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT result FROM items WHERE job = ? ORDER BY idx", (job_id,)
            ).fetchall()
        return [None if r[0] is None else _json.loads(r[0]) for r in rows]

    def totals(self, job_id: str) -> tuple[int, int, int, float, float, float]:
        """``(succeeded, failed, cached, cost, saved_by_batch, saved_by_cache)`` of the
        recorded results, summed in SQLite (no result is loaded into Python)."""
        with self._lock:
            row = self._conn.execute(_TOTALS, (job_id,)).fetchone()
        ok, bad, cached, cost, saved_batch, saved_cache = row
        return int(ok or 0), int(bad or 0), int(cached or 0), cost, saved_batch, saved_cache

    def finish_items(self, job_id: str, results: Iterable[tuple[int, dict[str, Any]]]) -> None:
        """Record final results (``state`` becomes ``done``) in one transaction."""
        with self._tx() as c:
            c.executemany(
                "UPDATE items SET state = 'done', result = ? WHERE job = ? AND idx = ?",
                ((_json.dumps_text(r), job_id, i) for i, r in results),
            )

    def release_items(self, job_id: str, indices: Iterable[int]) -> None:
        """Put requests back to ``pending`` (their batch expired: send them again)."""
        with self._tx() as c:
            c.executemany(
                "UPDATE items SET state = 'pending', part = NULL WHERE job = ? AND idx = ?",
                ((job_id, i) for i in indices),
            )

    def cancel_pending(self, job_id: str, result: dict[str, Any]) -> None:
        """Give every request not sent yet ``result`` (the job was cancelled)."""
        with self._tx() as c:
            c.execute(
                "UPDATE items SET state = 'done', result = ? WHERE job = ? AND state = 'pending'",
                (_json.dumps_text(result), job_id),
            )

    # -- parts ----------------------------------------------------------------------

    def add_part(self, job_id: str, part: PartRow, indices: list[int]) -> bool:
        """Record a part about to be created and move its requests into it.

        Only requests still ``pending`` move; when any of ``indices`` is not
        (another driver took it, or the job was cancelled) nothing changes
        and the answer is ``False``.
        """
        try:
            with self._tx() as c:
                c.execute(
                    "INSERT INTO parts (job, key, provider, remote_id, state, created, attempt,"
                    " reservations) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        job_id,
                        part.key,
                        part.provider,
                        part.remote_id,
                        part.state,
                        part.created,
                        part.attempt,
                        _json.dumps_text(part.reservations),
                    ),
                )
                moved = 0
                for i in indices:
                    moved += c.execute(
                        "UPDATE items SET state = 'submitted', part = ?"
                        " WHERE job = ? AND idx = ? AND state = 'pending'",
                        (part.key, job_id, i),
                    ).rowcount
                if moved != len(indices):
                    raise _Conflict
        except _Conflict:
            return False
        return True

    def update_part(self, job_id: str, key: str, *, remote_id: str | None, state: str) -> None:
        with self._tx() as c:
            c.execute(
                "UPDATE parts SET remote_id = ?, state = ? WHERE job = ? AND key = ?",
                (remote_id, state, job_id, key),
            )

    def remove_part(self, job_id: str, key: str) -> None:
        """Forget a part whose create certainly failed; its requests become pending again."""
        with self._tx() as c:
            c.execute("DELETE FROM parts WHERE job = ? AND key = ?", (job_id, key))
            c.execute(
                "UPDATE items SET state = 'pending', part = NULL WHERE job = ? AND part = ?",
                (job_id, key),
            )

    def parts(self, job_id: str) -> list[PartRow]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT key, provider, remote_id, state, created, attempt, reservations"
                " FROM parts WHERE job = ? ORDER BY created, key",
                (job_id,),
            ).fetchall()
        return [PartRow(r[0], r[1], r[2], r[3], r[4], r[5], _json.loads(r[6])) for r in rows]

    def set_part_reservations(self, job_id: str, key: str, reservations: list[Any]) -> None:
        with self._tx() as c:
            c.execute(
                "UPDATE parts SET reservations = ? WHERE job = ? AND key = ?",
                (_json.dumps_text(reservations), job_id, key),
            )

    def close_part(
        self,
        job_id: str,
        key: str,
        remote_id: str,
        results: Iterable[tuple[int, dict[str, Any]]],
        again: Iterable[int],
    ) -> bool:
        """Record a collected part in one transaction: final results, requests to send
        again (``pending``), the part ``collected``. ``False`` (nothing changed) when the
        part was collected already."""
        try:
            with self._tx() as c:
                done = c.execute(
                    "UPDATE parts SET remote_id = ?, state = 'collected'"
                    " WHERE job = ? AND key = ? AND state != 'collected'",
                    (remote_id, job_id, key),
                ).rowcount
                if not done:
                    raise _Conflict
                c.executemany(
                    "UPDATE items SET state = 'done', result = ? WHERE job = ? AND idx = ?",
                    ((_json.dumps_text(r), job_id, i) for i, r in results),
                )
                c.executemany(
                    "UPDATE items SET state = 'pending', part = NULL"
                    " WHERE job = ? AND idx = ? AND part = ?",
                    ((job_id, i, key) for i in again),
                )
        except _Conflict:
            return False
        return True

    # -- who drives a job -------------------------------------------------------------

    def acquire_lease(self, job_id: str, owner: str, now: float, ttl: float) -> str | None:
        """Hold (or renew) the right to drive ``job_id`` until ``now + ttl``.

        ``None`` when ``owner`` holds it now; else the name of the driver that
        does. A lease that ran out, or whose holder was a process of this host
        that is gone, is taken over.
        """
        try:
            with self._tx() as c:
                row = c.execute(
                    "SELECT owner, until FROM leases WHERE job = ?", (job_id,)
                ).fetchone()
                if (
                    row is not None
                    and row[0] != owner
                    and row[1] > now
                    and not _holder_is_dead(row[0])
                ):
                    raise _Conflict(row[0])
                c.execute(
                    "INSERT OR REPLACE INTO leases (job, owner, until) VALUES (?, ?, ?)",
                    (job_id, owner, now + ttl),
                )
        except _Conflict as held:
            return str(held.args[0])
        return None

    def release_lease(self, job_id: str, owner: str) -> None:
        with self._tx() as c:
            c.execute("DELETE FROM leases WHERE job = ? AND owner = ?", (job_id, owner))
