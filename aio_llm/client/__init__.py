"""The client: ``AsyncLLMClient`` and its blocking twin ``LLMClient``."""

from __future__ import annotations

from ._client import (
    USE_CLIENT_DEFAULT,
    AsyncLLMClient,
    UseClientDefault,
)
from ._stream import (
    ChatStream,
)
from ._sync import (
    LLMClient,
)

__all__ = [
    "AsyncLLMClient",
    "ChatStream",
    "LLMClient",
    "USE_CLIENT_DEFAULT",
    "UseClientDefault",
]
