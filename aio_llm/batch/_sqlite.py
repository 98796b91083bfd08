"""Opening the SQLite files of batch jobs, with a clear error when one is not usable."""

from __future__ import annotations

import sqlite3

from ..errors import ConfigurationError

__all__ = ["open_sqlite"]


def open_sqlite(path: str, schema: str, *, what: str) -> sqlite3.Connection:
    """A connection to ``path`` (WAL, autocommit) with ``schema`` applied.

    A file that is not a SQLite database (damaged, or something else) raises
    ``ConfigurationError`` naming it; the file is left as it is.
    """
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout = 10000")
        if path != ":memory:":
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        conn.executescript(schema)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise ConfigurationError(
            f"the {what} {path} cannot be used ({exc}); it is left untouched: "
            "restore it, or move it away to start over"
        ) from None
    return conn
