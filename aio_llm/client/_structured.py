"""Structured output on the client side: validate answers, re-ask when they do not fit.

Codecs ask each provider for the ``response_format`` in its own way (see
``aio_llm._conversation.output_format``); whatever comes back is checked
here, above the middleware chain, so a cached or deduplicated answer is
validated like a fresh one:

- a pydantic class: ``model_validate_json`` of the answer's text;
- a raw JSON schema: the decoded JSON, checked against the schema
  (``aio_llm._schema.check``, errors in pydantic's shape);
- ``json_object``: the decoded JSON, which must be an object.

Text wrapped in a Markdown code fence (some OpenAI-compatible servers answer
so in JSON mode) is read inside the fence. A refusal leaves ``parsed`` at
``None`` and is not an error; neither is an answer that is only calls of
the caller's own tools.

``max_validation_retries`` re-asks, as instructor does: the invalid answer
goes back as the assistant's turn, followed by a user turn listing the
validation errors. Every attempt runs through the whole middleware chain,
so each is traced, budgeted, rate-limited and cached on its own; the
response returned (or the error raised) carries the cost of all attempts.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from pydantic import TypeAdapter, ValidationError

from .._conversation import OutputFormat, output_format
from .._schema import check
from ..errors import OutputValidationError
from ..pipeline import Next
from ..types import ChatRequest, ChatResponse, Message

__all__ = ["parse_output", "send_structured"]

_FENCE = re.compile(r"^\s*```[a-zA-Z0-9_-]*\s*\n(.*?)\n?```\s*$", re.DOTALL)
_ERRORS_SHOWN = 20


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
        return None, exc.errors(include_url=False)
    if fmt.kind == "json_object":
        if isinstance(value, dict):
            return value, []
        return None, [
            {"type": "dict_type", "loc": (), "msg": "Input should be a JSON object", "input": value}
        ]
    assert fmt.schema is not None
    return value, check(value, fmt.schema)


def parse_output(request: ChatRequest, response: ChatResponse) -> OutputValidationError | None:
    """Set ``response.parsed`` for ``request``'s format; the error (not raised) if it does not fit."""
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


def _where(error: dict[str, Any]) -> str:
    loc = error.get("loc") or ()
    return ".".join(str(p) for p in loc) or "(the whole answer)"


def _summary(errors: list[dict[str, Any]]) -> str:
    shown = [f"{_where(e)}: {e.get('msg')}" for e in errors[:3]]
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(shown) + more


def _reask(request: ChatRequest, error: OutputValidationError) -> ChatRequest:
    """``request`` with the invalid answer and its errors appended, instructor-style."""
    lines = [f"- {_where(e)}: {e.get('msg')}" for e in error.errors[:_ERRORS_SHOWN]]
    if len(error.errors) > _ERRORS_SHOWN:
        lines.append(f"- ... and {len(error.errors) - _ERRORS_SHOWN} more")
    feedback = (
        "Your answer does not match the required JSON format. Validation errors:\n"
        + "\n".join(lines)
        + "\nAnswer again with only the corrected JSON."
    )
    messages = [
        *request.messages,
        Message(role="assistant", content=error.raw or " "),
        Message(role="user", content=feedback),
    ]
    return request.model_copy(update={"messages": messages})


def _add_cost(response: ChatResponse, spent: float | None) -> None:
    if spent:
        response.cost = (response.cost or 0.0) + spent


async def send_structured(
    handler: Next, request: ChatRequest, default_retries: int
) -> ChatResponse:
    """Send ``request`` through ``handler`` and validate the answer, re-asking if allowed."""
    response = await handler(request)
    retries = request.max_validation_retries
    if retries is None:
        retries = default_retries
    spent = 0.0
    attempt = 1
    while True:
        error = parse_output(request, response)
        if error is None:
            _add_cost(response, spent)
            return response
        if attempt > retries:
            _add_cost(response, spent)
            error.attempts = attempt
            raise error
        spent += response.cost or 0.0
        request = _reask(request, error)
        attempt += 1
        response = await handler(request)
