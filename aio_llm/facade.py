"""``aio_llm.facade``, the import path of code written against the ``app.ai`` client (DESIGN §7).

It is another name for ``aio_llm.compat.facade``: importing it installs that
module under this name, so both names give the very same objects.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from .compat import facade as _facade

if TYPE_CHECKING:
    from .compat.facade import *  # noqa: F403 - what type checkers see under this name

sys.modules[__name__] = _facade
