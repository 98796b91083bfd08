"""Counting prompt tokens before a request is sent (budgets, rate limits, ``count_tokens``).

Exact counts come back in ``Usage``; before sending, aio_llm counts with the
best means at hand, in this order:

1. a tokenizer registered for the model (``register_tokenizer``: a local
   Hugging Face tokenizer for a Llama served by vLLM, say);
2. ``tiktoken`` (the ``tokens`` extra) for OpenAI models, when its encoding
   files are available, with OpenAI's per-message overhead;
3. an estimate: ``ceil(utf8 bytes / 4)`` per text, a fixed overhead per
   message, tool schemas as JSON, the system prompt a provider adds for
   tools (Anthropic documents ~350 tokens), and each image, document and
   audio part by its provider's formula (``aio_llm._media``).

``count_request_tokens`` returns a ``TokenCount``: an ``int`` that says
whether it is ``exact`` and where it came from (``source``).
``AsyncLLMClient.count_tokens`` asks the provider itself where it offers a
count (Anthropic, Gemini, the Responses API, Bedrock) and otherwise returns
this local count. How far the estimate is from the real count is measured on
the recorded provider answers (docs/token-counting.md).

The estimate is close for English prose, but a prompt of digits or CJK text
has twice that or more. Rate limits use the best count above.

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
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from .types import ChatRequest, Message

__all__ = [
    "TokenCount",
    "count_request_tokens",
    "estimate_message_tokens",
    "estimate_request_tokens",
    "estimate_tokens",
    "max_request_tokens",
    "register_tokenizer",
]

_PER_MESSAGE = 4
_PER_REQUEST = 3

Counter = Callable[[str], int]


class TokenCount(int):
    """A token count: an ``int`` that knows whether it is ``exact`` and its ``source``.

    ``source`` is ``"provider"`` (the provider counted), ``"tokenizer"`` (a
    local tokenizer that is the model's own) or ``"estimate"``.
    """

    exact: bool
    source: str

    def __new__(cls, value: int, *, exact: bool, source: str) -> TokenCount:
        obj = super().__new__(cls, value)
        obj.exact = exact
        obj.source = source
        return obj

    def __repr__(self) -> str:
        kind = "exact" if self.exact else "estimated"
        return f"TokenCount({int(self)}, {kind}, source={self.source!r})"


_registered: dict[str, Counter] = {}


def register_tokenizer(model_prefix: str, count: Counter | None) -> None:
    """Count ``model_prefix*`` models' text with ``count`` (``None`` removes it).

    ``count`` takes a text and returns its tokens; counts made with it are
    ``exact`` (per-message framing is estimated as for OpenAI's chat format).
    The longest matching prefix wins.
    """
    if count is None:
        _registered.pop(model_prefix, None)
    else:
        _registered[model_prefix] = count
    _counter_for.cache_clear()


@functools.lru_cache(maxsize=16)
def _tiktoken_counter(model: str) -> Counter | None:
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


@functools.lru_cache(maxsize=64)
def _counter_for(model: str) -> Counter | None:
    """An exact local counter for ``model``: a registered tokenizer, else tiktoken."""
    name = model.rpartition("/")[2]
    best = max(
        (p for p in _registered if name.startswith(p) or model.startswith(p)),
        key=len,
        default=None,
    )
    if best is not None:
        return _registered[best]
    return _tiktoken_counter(name)


def estimate_tokens(text: str, model: str | None = None) -> int:
    """Tokens in ``text``: exact with the model's tokenizer, else bytes/4."""
    if not text:
        return 0
    if model is not None:
        counter = _counter_for(model)
        if counter is not None:
            return counter(text)
    return (len(text.encode("utf-8")) + 3) // 4


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    out: list[str] = []
    for p in content:
        if not isinstance(p, dict):
            continue
        if isinstance(p.get("text"), str):
            out.append(p["text"])
        elif p.get("type") == "tool_result":
            out.append(_content_text(p.get("content")))
        elif p.get("type") == "tool_use":
            out.append(json.dumps(p.get("input"), separators=(",", ":")))
    return " ".join(out)


def _media_tokens(content: Any, model: str | None) -> int:
    if not isinstance(content, list):
        return 0
    from ._media import media_tokens, part_media

    total = 0
    for p in content:
        for media in part_media(p):
            total += media_tokens(media, model or "")[0]
    return total


def estimate_message_tokens(messages: Iterable[Message], model: str | None = None) -> int:
    """Prompt tokens of ``messages``: text, tool calls and media (see the module docstring).

    With the model's tokenizer the framing is OpenAI's (3 tokens a message, 1
    for a name, 3 to prime the reply); without, a slightly larger allowance.
    """
    exact = model is not None and _counter_for(model) is not None
    per_message = 3 if exact else _PER_MESSAGE
    total = _PER_REQUEST
    for m in messages:
        content = m.content
        total += per_message + estimate_tokens(_content_text(content), model)
        if exact and m.name:
            total += 1
        if isinstance(content, list):
            total += _media_tokens(content, model)
        if m.tool_calls:
            for tc in m.tool_calls:
                total += estimate_tokens(tc.name + tc.arguments, model)
    return total


# the system prompt Anthropic adds when tools are present (docs: tool use, pricing)
_ANTHROPIC_TOOL_PROMPT = {"auto": 346, "none": 346, "any": 313, "tool": 313}
_CLAUDE = re.compile(r"claude", re.IGNORECASE)


def _tools_overhead(request: ChatRequest) -> int:
    if not request.tools or not _CLAUDE.search(request.model):
        return 0
    choice = request.tool_choice
    kind = choice if isinstance(choice, str) else (choice or {}).get("type", "auto")
    return _ANTHROPIC_TOOL_PROMPT.get("any" if kind in ("any", "required", "tool") else "auto", 346)


def _format_tokens(request: ChatRequest, model: str | None) -> int:
    from ._conversation import output_format

    try:
        fmt = output_format(request.response_format)
    except ValueError:
        return 0
    if fmt is None or fmt.schema is None:
        return 0
    return estimate_tokens(json.dumps(fmt.schema, separators=(",", ":")), model)


def estimate_request_tokens(request: ChatRequest) -> int:
    """Prompt tokens of ``request`` (messages, media, tool schemas, response format)."""
    model = request.model
    total = estimate_message_tokens(request.messages, model)
    if request.tools:
        total += estimate_tokens(json.dumps(request.tools, separators=(",", ":")), model)
        total += _tools_overhead(request)
    if request.response_format is not None:
        total += _format_tokens(request, model)
    return total


def count_request_tokens(request: ChatRequest) -> TokenCount:
    """The best local count of ``request``'s prompt (see the module docstring).

    ``exact`` is true when the model's own tokenizer counted every part: a
    registered tokenizer or tiktoken, and no tools, response format or media
    (whose framing only the provider knows).
    """
    value = estimate_request_tokens(request)
    counted = _counter_for(request.model) is not None
    plain = (
        not request.tools
        and request.response_format is None
        and not any(isinstance(m.content, list) for m in request.messages)
    )
    if counted:
        return TokenCount(value, exact=plain, source="tokenizer")
    return TokenCount(value, exact=False, source="estimate")


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


def _part_bound(part: Any, model: str) -> int:
    """The most one non-text part can cost: an image, document or audio clip by the model's
    own formula's bound (its base64 is not text: its length says nothing), anything else
    ``_BOUND_NON_TEXT_PART`` plus its bytes."""
    from ._media import media_tokens, part_media

    if isinstance(part, dict) and part.get("type") != "tool_result":
        media = list(part_media(part))
        if media:
            return sum(media_tokens(m, model)[1] for m in media)
    return _BOUND_NON_TEXT_PART + _bytes(part)


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
                    total += _part_bound(part, request.model) + _BOUND_PER_MESSAGE
        if m.tool_calls:
            for tc in m.tool_calls:
                total += _BOUND_PER_MESSAGE + _bytes(tc.id) + _bytes(tc.name) + _bytes(tc.arguments)
        if m.tool_call_id:
            total += _bytes(m.tool_call_id)
    if request.tools:
        total += _BOUND_TOOLS + _bytes(request.tools)
    if request.tool_choice is not None:
        total += _bytes(request.tool_choice)
    fmt = request.response_format
    if fmt is not None:  # a pydantic class is sent as its JSON schema
        total += _BOUND_PER_MESSAGE + _bytes(
            fmt.model_json_schema() if isinstance(fmt, type) else fmt
        )
    if request.stop is not None:
        total += _bytes(request.stop)
    if request.extra:  # e.g. Anthropic's ``system`` or a prediction passed through
        total += _bytes(request.extra)
    return total
