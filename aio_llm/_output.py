"""Whether an answer fits the ``response_format`` it was asked for.

- a pydantic class: ``model_validate_json`` of the answer's text;
- a raw JSON schema: the decoded JSON, checked against the schema
  (``aio_llm._schema.check``, errors in pydantic's shape);
- ``json_object``: the decoded JSON, which must be an object.

Text wrapped in a Markdown code fence (some OpenAI-compatible servers answer
so in JSON mode) is read inside the fence. A refusal leaves ``parsed`` at
``None`` and is not an error; neither is an answer that is only calls of
the caller's own tools. The client validates every answer with this (see
``aio_llm.client._structured``); the caches use it to keep answers that do
not fit out of the cache.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from pydantic import TypeAdapter, ValidationError

from ._conversation import OutputFormat, output_format
from ._schema import check
from .errors import OutputValidationError
from .types import ChatRequest, ChatResponse

__all__ = ["fits", "parse_output", "where"]

_FENCE = re.compile(r"^\s*```[a-zA-Z0-9_-]*\s*\n(.*?)\n?```\s*$", re.DOTALL)


@functools.lru_cache(maxsize=1)
def _any_json() -> TypeAdapter[Any]:
    return TypeAdapter(Any)


def _fenced(text: str) -> str | None:
    m = _FENCE.match(text)
    return m.group(1) if m else None


def _decode(fmt: OutputFormat, text: str) -> tuple[Any, list[dict[str, Any]]]:
    """The value of ``text`` for ``fmt`` and the errors (``[]`` when it fits)."""
    try:
        if fmt.model is not None:
            return fmt.model.model_validate_json(text), []
        value = _any_json().validate_json(text)
    except ValidationError as exc:
        inner = _fenced(text)
        if inner is not None:
            return _decode(fmt, inner)
        return None, [dict(e) for e in exc.errors(include_url=False)]
    if fmt.kind == "json_object":
        if isinstance(value, dict):
            return value, []
        return None, [
            {"type": "dict_type", "loc": (), "msg": "Input should be a JSON object", "input": value}
        ]
    assert fmt.schema is not None
    return value, check(value, fmt.schema)


def parse_output(request: ChatRequest, response: ChatResponse) -> OutputValidationError | None:
    """Set ``response.parsed`` for ``request``'s format; the error if it does not fit.

    The error is returned, not raised: the caller decides (re-ask or raise).
    """
    fmt = output_format(request.response_format)
    if fmt is None or fmt.kind == "text":
        return None
    if response.refusal is not None or (response.tool_calls and not response.content.strip()):
        response.parsed = None
        return None
    text = response.content
    value, errors = _decode(fmt, text)
    if not errors:
        response.parsed = value
        return None
    response.parsed = None
    what = fmt.model.__name__ if fmt.model is not None else fmt.kind
    cut = " (the answer was cut off at max_tokens)" if response.finish_reason == "length" else ""
    return OutputValidationError(
        f"the answer of {request.model!r} does not fit {what}{cut}: {_summary(errors)}",
        raw=text,
        errors=errors,
        response=response,
    )


def where(error: dict[str, Any]) -> str:
    loc = error.get("loc") or ()
    return ".".join(str(p) for p in loc) or "(the whole answer)"


def _summary(errors: list[dict[str, Any]]) -> str:
    shown = [f"{where(e)}: {e.get('msg')}" for e in errors[:3]]
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(shown) + more


def fits(request: ChatRequest, response: ChatResponse) -> bool:
    """True unless ``request`` asked for a format that ``response`` does not fit."""
    return request.response_format is None or parse_output(request, response) is None
