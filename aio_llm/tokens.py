"""Token estimates before a request is sent (budgets, rate limits, the optimizer).

Exact counts come back in ``Usage``; before sending, aio_llm estimates. With
``tiktoken`` installed and the model's encoding known, the count is exact for
OpenAI models; otherwise it is ``ceil(len(utf8 bytes) / 4)`` per text plus a
fixed overhead per message, which over-estimates English prose slightly and
so errs on the side of the budget.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from .types import ChatRequest, Message

__all__ = ["estimate_message_tokens", "estimate_request_tokens", "estimate_tokens"]

_PER_MESSAGE = 4
_PER_REQUEST = 3


@functools.lru_cache(maxsize=16)
def _tiktoken_counter(model: str) -> Callable[[str], int] | None:
    try:
        import tiktoken
    except ImportError:
        return None
    try:
        enc = tiktoken.encoding_for_model(model)
    except KeyError:
        return None
    except Exception:  # no encoding files offline
        return None

    def count(text: str) -> int:
        return len(enc.encode(text, disallowed_special=()))

    return count


def estimate_tokens(text: str, model: str | None = None) -> int:
    """Tokens in ``text``: exact with tiktoken for known OpenAI models, else bytes/4."""
    if not text:
        return 0
    if model is not None:
        counter = _tiktoken_counter(model)
        if counter is not None:
            return counter(text)
    return (len(text.encode("utf-8")) + 3) // 4


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))


def estimate_message_tokens(messages: Iterable[Message], model: str | None = None) -> int:
    total = _PER_REQUEST
    for m in messages:
        total += _PER_MESSAGE + estimate_tokens(_content_text(m.content), model)
        if m.tool_calls:
            for tc in m.tool_calls:
                total += estimate_tokens(tc.name + tc.arguments, model)
    return total


def estimate_request_tokens(request: ChatRequest) -> int:
    """Prompt tokens of ``request`` (messages and tool schemas), estimated."""
    total = estimate_message_tokens(request.messages, None)
    if request.tools:
        import json

        total += estimate_tokens(json.dumps(request.tools, separators=(",", ":")))
    return total
