"""``ledger_from_url``: the ledger a ``budget_backend`` setting names."""

from __future__ import annotations

from ._base import Ledger
from ._memory import MemoryLedger

__all__ = ["ledger_from_url"]


def ledger_from_url(
    url: str, *, key_prefix: str = "aio_llm:budget", connect_timeout: float = 2.0
) -> Ledger:
    """The ledger for ``budget_backend``: ``memory``, a ``redis://`` URL or a SQLite path.

    SQLite paths may be written ``sqlite:///path/to.db`` or as a plain path.
    """
    if url in ("", "memory"):
        return MemoryLedger()
    if url.startswith(("redis://", "rediss://", "unix://")):
        from ._redis import RedisLedger

        return RedisLedger(url, key_prefix=key_prefix, connect_timeout=connect_timeout)
    from ._sqlite import SQLiteLedger

    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
    return SQLiteLedger(path)
