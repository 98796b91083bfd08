"""Looking for a secret in everything a user can see: exceptions and their chains, logs, spans."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterable, Iterator

__all__ = ["assert_clean", "exception_texts", "log_texts"]


def exception_texts(exc: BaseException) -> Iterator[str]:
    """str/repr of ``exc``, its attributes, notes and traceback, then of its causes and contexts."""
    yield "".join(traceback.format_exception(exc))  # what logger.exception prints
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield str(e)
        yield repr(e)
        yield repr(getattr(e, "__notes__", None))
        yield repr(vars(e)) if hasattr(e, "__dict__") else ""
        yield repr(e.args)
        for nxt in (e.__cause__, e.__context__):
            if nxt is not None:
                todo.append(nxt)
        group = getattr(e, "exceptions", None)
        if isinstance(group, tuple):
            todo.extend(x for x in group if isinstance(x, BaseException))


def log_texts(records: Iterable[logging.LogRecord]) -> Iterator[str]:
    formatter = logging.Formatter()
    for record in records:
        yield formatter.format(record)
        yield repr(record.args)
        yield repr(getattr(record, "__dict__", {}))


def assert_clean(
    what: BaseException | Iterable[str], *, secrets: Iterable[str], where: str = ""
) -> None:
    """Fail if any of ``secrets`` appears in ``what`` (an exception, or texts)."""
    texts = exception_texts(what) if isinstance(what, BaseException) else what
    secrets = [s for s in secrets if s]
    for text in texts:
        for secret in secrets:
            assert secret not in text, (
                f"{secret[:12]}... found in {where or 'output'}: {text[:400]}"
            )
