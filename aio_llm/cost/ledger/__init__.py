"""Ledgers: where budgets keep spend and reservations (memory, SQLite, Redis).

``RedisLedger`` needs the ``redis`` extra; it is imported only when used.
"""

import typing

from ..._exports import lazy_exports as _lazy_exports

if typing.TYPE_CHECKING:
    from ._base import Ledger as Ledger
    from ._base import LedgerUnavailableError as LedgerUnavailableError
    from ._base import Reservation as Reservation
    from ._base import UsageRecord as UsageRecord
    from ._memory import MemoryLedger as MemoryLedger
    from ._redis import RedisLedger as RedisLedger
    from ._sqlite import SQLiteLedger as SQLiteLedger
    from ._url import ledger_from_url as ledger_from_url

__all__, __getattr__, __dir__ = _lazy_exports(__name__)
