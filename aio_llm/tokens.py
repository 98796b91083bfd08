"""Token estimates before a request is sent (budgets, rate limits, the optimizer).

Exact counts come back in ``Usage``; before sending, aio_llm estimates. With
``tiktoken`` installed and the model's encoding known, the count is exact for
OpenAI models; otherwise it is ``ceil(len(utf8 bytes) / 4)`` per text plus a
fixed overhead per message: close for English prose, but a prompt of digits
or CJK text has twice that or more. Rate limits use the estimate.

A hard budget needs a bound instead: ``max_request_tokens`` is one no real
tokenizer exceeds. Every token of a byte-level BPE or a byte-fallback
SentencePiece vocabulary (OpenAI, Anthropic, Gemini, Llama, Mistral...)
stands for at least one byte of text, so a text costs at most its UTF-8
length; to that come generous allowances for each message's template, tool
definitions (with the system prompt a provider adds for them) and every
part that is not text (an image costs a fixed number of tokens whatever its
bytes: up to ~48,000 on some models).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from .types import ChatRequest, Message

__all__ = [
    "estimate_message_tokens",
    "estimate_request_tokens",
    "estimate_tokens",
    "max_request_tokens",
]

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


_BOUND_PER_REQUEST = 64
_BOUND_PER_MESSAGE = 16
_BOUND_TOOLS = 2048
"""The tool-use system prompt a provider adds (Anthropic documents up to ~900 tokens)."""
_BOUND_NON_TEXT_PART = 50_000
"""An image, audio clip or document part: more than any provider charges for one image."""


def _bytes(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    import json

    return len(json.dumps(value, separators=(",", ":"), default=str).encode("utf-8"))


def max_request_tokens(request: ChatRequest) -> int:
    """An upper bound on the prompt tokens of ``request`` (see the module docstring)."""
    total = _BOUND_PER_REQUEST
    for m in request.messages:
        total += _BOUND_PER_MESSAGE + _bytes(m.name or "")
        content = m.content
        if isinstance(content, str):
            total += _bytes(content)
        elif content is not None:
            for part in content:
                if isinstance(part, dict) and part.get("type") == "text":
                    total += _bytes(str(part.get("text", ""))) + _BOUND_PER_MESSAGE
                else:
                    total += _BOUND_NON_TEXT_PART + _bytes(part)
        if m.tool_calls:
            for tc in m.tool_calls:
                total += _BOUND_PER_MESSAGE + _bytes(tc.id) + _bytes(tc.name) + _bytes(tc.arguments)
        if m.tool_call_id:
            total += _bytes(m.tool_call_id)
    if request.tools:
        total += _BOUND_TOOLS + _bytes(request.tools)
    if request.tool_choice is not None:
        total += _bytes(request.tool_choice)
    if request.response_format is not None:
        total += _BOUND_PER_MESSAGE + _bytes(request.response_format)
    if request.stop is not None:
        total += _bytes(request.stop)
    if request.extra:  # e.g. Anthropic's ``system`` or a prediction passed through
        total += _bytes(request.extra)
    return total
