"""JSON in one place: orjson when installed (several times faster), else the stdlib."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["JSONDecodeError", "dumps", "loads"]

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
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()

    def loads(data: bytes | str) -> Any:
        return json.loads(data)
