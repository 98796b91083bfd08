"""Blanking API keys out of errors: their text, their fields and their whole cause chain.

A server may echo the key back: in an error body, in an in-band stream
error, in a status line that the HTTP library then quotes in its own
exception, or in a header it reflects. ``scrub_error`` is applied to every
error a provider raises, so none of that reaches ``str(exc)``, ``exc.body``,
the notes, or what ``logger.exception`` prints of the cause chain: an
exception of another library whose text or attributes hold a secret is
replaced in the chain by a ``RedactedException`` that keeps its type name
and its redacted text.

Which occurrences are blanked: a secret of ``WHOLE_TOKEN_BELOW`` characters
or more is blanked wherever it appears (it cannot occur in text by
chance); a shorter one only where it stands as a whole token, so a
one-letter key never turns "API key" into "API [REDACTED]ey".
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["REDACTED", "RedactedException", "redact_text", "redact_value", "scrub_error"]

REDACTED = "[REDACTED]"
WHOLE_TOKEN_BELOW = 12
"""Secrets shorter than this are blanked only as whole tokens."""
_TOKEN_CHARS = r"A-Za-z0-9_\-"


class RedactedException(Exception):
    """Stands in, in a cause chain, for another library's exception that quoted a secret."""


@functools.lru_cache(maxsize=128)
def _pattern(secrets: tuple[str, ...]) -> re.Pattern[str] | None:
    parts = []
    for secret in sorted(set(secrets), key=len, reverse=True):
        if not secret:
            continue
        escaped = re.escape(secret)
        if len(secret) < WHOLE_TOKEN_BELOW:
            escaped = rf"(?<![{_TOKEN_CHARS}]){escaped}(?![{_TOKEN_CHARS}])"
        parts.append(escaped)
    return re.compile("|".join(parts)) if parts else None


def redact_text(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every key-shaped occurrence of ``secrets`` blanked out."""
    pattern = _pattern(tuple(s for s in secrets if s))
    if pattern is None or not text:
        return text
    return pattern.sub(REDACTED, text)


def redact_value(value: Any, secrets: Iterable[str | None]) -> Any:
    """``value`` (str, or JSON-like dicts and lists of them) with ``secrets`` blanked out."""
    pattern = _pattern(tuple(s for s in secrets if s))
    return value if pattern is None else _redact(value, pattern)


def _redact(value: Any, pattern: re.Pattern[str]) -> Any:
    if isinstance(value, str):
        return pattern.sub(REDACTED, value)
    if isinstance(value, dict):
        return {_redact(k, pattern): _redact(v, pattern) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact(v, pattern) for v in value)
    if isinstance(value, bytes | bytearray):
        text = bytes(value).decode("utf-8", errors="replace")
        return pattern.sub(REDACTED, text).encode() if pattern.search(text) else value
    return value


def _mentions(exc: BaseException, pattern: re.Pattern[str]) -> bool:
    """Whether ``exc``'s text, args, notes or attributes hold a secret."""
    texts = [str(exc), repr(exc.args), repr(getattr(exc, "__notes__", None))]
    try:
        texts.append(repr(vars(exc)))
    except TypeError:  # no __dict__
        pass
    return any(pattern.search(t) for t in texts)


def scrub_error(exc: BaseException, secrets: Iterable[str | None]) -> None:
    """Blank ``secrets`` out of ``exc`` (an aio_llm error) and every exception it chains to."""
    pattern = _pattern(tuple(s for s in secrets if s))
    if pattern is None:
        return
    from .errors import LLMError

    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, LLMError):
            _scrub_fields(e, pattern)
        for link in ("__cause__", "__context__"):
            nxt = getattr(e, link)
            if nxt is None:
                continue
            if not isinstance(nxt, LLMError) and _mentions(nxt, pattern):
                nxt = _stand_in(nxt, pattern)
                setattr(e, link, nxt)
            todo.append(nxt)


def _scrub_fields(exc: BaseException, pattern: re.Pattern[str]) -> None:
    exc.args = tuple(_redact(a, pattern) for a in exc.args)
    for name, value in list(vars(exc).items()):
        if name != "__traceback__" and isinstance(value, str | dict | list | tuple | bytes):
            setattr(exc, name, _redact(value, pattern))


def _stand_in(exc: BaseException, pattern: re.Pattern[str]) -> RedactedException:
    kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
    stand_in = RedactedException(f"{kind}: {pattern.sub(REDACTED, str(exc))}")
    stand_in.__cause__ = exc.__cause__
    stand_in.__context__ = exc.__context__
    stand_in.__suppress_context__ = exc.__suppress_context__
    stand_in.__traceback__ = exc.__traceback__
    return stand_in
