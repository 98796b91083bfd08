"""The checkpoint of a JSONL job: which lines have a recorded result, in SQLite beside the output.

``<out>.checkpoint.sqlite3`` holds one row per input line (its number,
``custom_id`` and a digest of its text) and, once known, its result. A
result is committed the moment it arrives, before the job moves on: a line
with a result is never sent again, and a crash loses at most the answers
in flight. The provider-batch mode keeps its ``BatchStore`` tables in the
same file.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from .. import _json
from ..errors import InvalidRequestError
from ._sqlite import open_sqlite

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: runs are not locked against each other
    fcntl = None  # type: ignore[assignment]

__all__ = ["Checkpoint", "checkpoint_path"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS lines (
    n INTEGER PRIMARY KEY,
    custom_id TEXT NOT NULL,
    digest TEXT NOT NULL,
    result TEXT,
    ok INTEGER,
    cost REAL,
    saved_cache REAL,
    saved_batch REAL
);
"""


def checkpoint_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".checkpoint.sqlite3")


def _lock_job(path: Path) -> IO[bytes]:
    """Hold ``<checkpoint>.lock`` while a run goes on; ``InvalidRequestError`` if another has it.

    Two runs of one job at once would send the same lines twice. The OS
    drops the lock when its process ends, however it ends, so a killed run
    never blocks the next one.
    """
    f = open(path.with_name(path.name + ".lock"), "a+b")  # held until close()
    if fcntl is not None:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise InvalidRequestError(
                f"another run of this job is in progress ({path} is locked); wait for it "
                "to end, or use another --out"
            ) from None
    return f


class Checkpoint:
    """One job's checkpoint file (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._run_lock = _lock_job(self.path)
        try:
            self._conn = open_sqlite(str(self.path), _SCHEMA, what="checkpoint")
        except BaseException:
            self._run_lock.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._conn.close()
        self._run_lock.close()

    def get(self, key: str) -> Any:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else _json.loads(row[0])

    def set(self, key: str, value: Any) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                (key, _json.dumps_text(value)),
            )

    def register(self, lines: Iterable[tuple[int, str, str]]) -> list[int]:
        """Record ``(n, custom_id, digest)`` of every input line; lines whose text changed.

        Lines already known keep their results; a changed line, or a known
        line the input no longer has, is reported (the caller refuses to mix
        two inputs in one output).
        """
        changed: list[int] = []
        with self._lock:
            known = dict(self._conn.execute("SELECT n, digest FROM lines").fetchall())
            fresh = []
            given = set()
            for n, cid, digest in lines:
                given.add(n)
                old = known.get(n)
                if old is None:
                    fresh.append((n, cid, digest))
                elif old != digest:
                    changed.append(n)
            changed = sorted(changed + [n for n in known if n not in given])
            if fresh and not changed:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.executemany(
                    "INSERT INTO lines (n, custom_id, digest) VALUES (?, ?, ?)", fresh
                )
                self._conn.execute("COMMIT")
        return changed

    def unanswered(self, *, retry_failed: bool = False) -> list[int]:
        query = "SELECT n FROM lines WHERE result IS NULL"
        if retry_failed:
            query += " OR ok = 0"
        with self._lock:
            return [r[0] for r in self._conn.execute(query + " ORDER BY n")]

    def record(self, rows: Iterable[tuple[int, dict[str, Any], bool, float, float, float]]) -> None:
        """Commit results: ``(n, result, ok, cost, saved_by_cache, saved_by_batch)``."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany(
                "UPDATE lines SET result = ?, ok = ?, cost = ?, saved_cache = ?, saved_batch = ?"
                " WHERE n = ?",
                (
                    (_json.dumps_text(r), int(ok), cost, sc, sb, n)
                    for n, r, ok, cost, sc, sb in rows
                ),
            )
            self._conn.execute("COMMIT")

    def results(self) -> list[tuple[int, str, dict[str, Any] | None]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT n, custom_id, result FROM lines ORDER BY n"
            ).fetchall()
        return [(n, cid, None if r is None else _json.loads(r)) for n, cid, r in rows]

    def totals(self) -> dict[str, float]:
        with self._lock:
            row = self._conn.execute(
                "SELECT COUNT(*), SUM(result IS NOT NULL AND ok = 1), SUM(ok = 0),"
                " TOTAL(cost), TOTAL(saved_cache), TOTAL(saved_batch) FROM lines"
            ).fetchone()
        return {
            "lines": row[0],
            "succeeded": row[1] or 0,
            "failed": row[2] or 0,
            "cost": row[3],
            "saved_by_cache": row[4],
            "saved_by_batch": row[5],
        }
