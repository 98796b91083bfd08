"""Small readers every codec shares: typed fields of parsed JSON, one stream event's JSON."""

from __future__ import annotations

from typing import Any

from .. import _json
from ..errors import StreamError

__all__ = ["int_field", "json_event", "str_field"]


def int_field(value: Any) -> int:
    """``value`` when it is an int (a bool is not), else 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def str_field(value: Any) -> str:
    """``value`` when it is a string, else ``""``."""
    return value if isinstance(value, str) else ""


def json_event(data: str, label: str) -> dict[str, Any] | None:
    """The JSON object in an event's data (``None`` for a blank one); ``StreamError`` otherwise."""
    if not data.strip():
        return None
    try:
        obj = _json.loads(data)
    except _json.JSONDecodeError:
        text = data.strip()
        shown = text if len(text) <= 200 else text[:200] + "..."
        raise StreamError(f"malformed JSON in the stream: {shown}", provider=label) from None
    if not isinstance(obj, dict):
        raise StreamError("a stream event is not a JSON object", provider=label)
    return obj
