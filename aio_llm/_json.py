"""JSON in one place: orjson when installed (several times faster), else the stdlib."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["JSONDecodeError", "dumps", "dumps_text", "loads"]

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised where orjson is absent
    _orjson = None  # type: ignore[assignment]

JSONDecodeError: tuple[type[Exception], ...]

if _orjson is not None:
    JSONDecodeError = (_orjson.JSONDecodeError, UnicodeDecodeError)

    def dumps(obj: Any) -> bytes:
        """Compact UTF-8 JSON bytes."""
        return _orjson.dumps(obj)

    def loads(data: bytes | str) -> Any:
        return _orjson.loads(data)

else:  # pragma: no cover
    JSONDecodeError = (json.JSONDecodeError, UnicodeDecodeError)

    def dumps(obj: Any) -> bytes:
        try:
            return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
        except UnicodeEncodeError as exc:  # a lone surrogate: refuse it as orjson does
            raise TypeError(f"str is not valid UTF-8: {exc.reason}") from None

    def loads(data: bytes | str) -> Any:
        return json.loads(data)


def dumps_text(obj: Any) -> str:
    """JSON text of data received from a provider, whatever it holds.

    Unlike ``dumps`` this never fails on lone surrogates or integers beyond
    64 bits (the standard library escapes them).
    """
    try:
        return dumps(obj).decode()
    except (TypeError, ValueError, UnicodeError):
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=True, default=repr)
