"""Structured output on the client side: validate answers, re-ask when they do not fit.

Codecs ask each provider for the ``response_format`` in its own way (see
``aio_llm._conversation.output_format``); whatever comes back is checked
here (``aio_llm._output.parse_output``), above the middleware chain, so a
cached or deduplicated answer is validated like a fresh one.

``max_validation_retries`` re-asks, as instructor does: the invalid answer
goes back as the assistant's turn, followed by a user turn listing the
validation errors. Every attempt runs through the whole middleware chain,
so each is traced, budgeted, rate-limited and cached on its own; the
response returned (or the error raised) carries the cost of all attempts.
"""

from __future__ import annotations

from .._output import parse_output, where
from ..errors import OutputValidationError
from ..pipeline import Next
from ..types import ChatRequest, ChatResponse, Message

__all__ = ["ATTEMPT_KEY", "parse_output", "send_structured"]

_ERRORS_SHOWN = 20


ATTEMPT_KEY = "aio_llm.validation_attempt"
"""The ``metadata`` key a re-ask carries: which attempt it is (2 for the first re-ask).
Tracing records it as ``aio_llm.validation.attempt``; metadata is never part of a key."""


def _reask(request: ChatRequest, error: OutputValidationError, attempt: int) -> ChatRequest:
    """``request`` with the invalid answer and its errors appended, instructor-style."""
    lines = [f"- {where(e)}: {e.get('msg')}" for e in error.errors[:_ERRORS_SHOWN]]
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
    metadata = {**request.metadata, ATTEMPT_KEY: attempt}
    return request.model_copy(update={"messages": messages, "metadata": metadata})


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
        attempt += 1
        request = _reask(request, error, attempt)
        response = await handler(request)
