"""``ChatResponse.choices`` from an OpenAI-style answer: ``n`` answers, and logprobs.

Most answers have one choice and no logprobs; for them nothing is stored
and ``choices`` is built from the response itself. Otherwise each choice is
decoded as a response of its own (the same decoder, so the same rules).
"""

from __future__ import annotations

from typing import Any

from ..types import ChatResponse, Choice, TokenLogprob, TopLogprob

__all__ = ["attach_choices", "logprobs_from_wire"]


def _top(item: dict[str, Any]) -> dict[str, Any]:
    raw_bytes = item.get("bytes")
    return {
        "token": str(item.get("token", "")),
        "logprob": float(item.get("logprob", 0.0)),
        "bytes": raw_bytes if isinstance(raw_bytes, list) else None,
    }


def logprobs_from_wire(items: object) -> list[TokenLogprob]:
    """The ``logprobs.content`` list of a choice (or a stream chunk) as ``TokenLogprob``s."""
    out: list[TokenLogprob] = []
    if not isinstance(items, list):
        return out
    for item in items:
        if not isinstance(item, dict):
            continue
        tops = item.get("top_logprobs")
        out.append(
            TokenLogprob(
                **_top(item),
                top_logprobs=[TopLogprob(**_top(t)) for t in tops or () if isinstance(t, dict)],
            )
        )
    return out


def _logprobs_of(choice: object) -> list[TokenLogprob] | None:
    lp = choice.get("logprobs") if isinstance(choice, dict) else None
    if not isinstance(lp, dict) or lp.get("content") is None:
        return None
    return logprobs_from_wire(lp["content"])


def attach_choices(
    response: ChatResponse, data: dict[str, Any], parse: Any, **parse_kwargs: Any
) -> ChatResponse:
    """Store every choice of ``data`` on ``response`` when there is more than its first.

    ``parse(data, **parse_kwargs)`` decodes one answer (``parse_chat``).
    """
    wire = data.get("choices")
    if not isinstance(wire, list) or not wire:
        return response
    first_logprobs = _logprobs_of(wire[0])
    if len(wire) == 1 and first_logprobs is None:
        return response
    choices = [
        Choice(
            index=0,
            message=response.message,
            finish_reason=response.finish_reason,
            logprobs=first_logprobs,
        )
    ]
    for i, item in enumerate(wire[1:], start=1):
        one = parse({**data, "choices": [item]}, **parse_kwargs)
        index = item.get("index", i) if isinstance(item, dict) else i
        choices.append(
            Choice(
                index=index if isinstance(index, int) else i,
                message=one.message,
                finish_reason=one.finish_reason,
                logprobs=_logprobs_of(item),
            )
        )
    choices.sort(key=lambda c: c.index)
    response.all_choices = choices
    return response
