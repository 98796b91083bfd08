"""Cost management: the price table, ``CostManager`` and budgets.

The ledgers that budgets keep their spend in are in ``aio_llm.cost.ledger``.
"""

import typing

from .._exports import lazy_exports as _lazy_exports

if typing.TYPE_CHECKING:
    from .budgets import BudgetAlert as BudgetAlert
    from .budgets import BudgetConfig as BudgetConfig
    from .budgets import BudgetPeriod as BudgetPeriod
    from .budgets import BudgetScope as BudgetScope
    from .budgets import period_bounds as period_bounds
    from .manager import CostManager as CostManager
    from .metrics import CostMetrics as CostMetrics
    from .pricing import ModelPrice as ModelPrice
    from .pricing import PricingTable as PricingTable
    from .pricing import default_pricing as default_pricing
    from .recommend import Recommendation as Recommendation

__all__, __getattr__, __dir__ = _lazy_exports(__name__)
