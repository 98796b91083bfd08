"""From a provider's result line to what the store keeps, and back to a response or an error.

The store keeps each request's result as JSON: ``{"ok": <ChatResponse>,
"full_cost": usd}`` for an answer (``cost`` is what was charged at the
batch discount, ``full_cost`` what it would have cost live), ``{"ok": ...,
"cached": true, "saved": usd}`` for a cache hit, and ``{"error": {...}}``
for a request that failed, expired or was cancelled. Errors are rebuilt
into the same typed exceptions a live call raises (``BadRequestError``,
``RateLimitError``...), or ``BatchExpiredError`` / ``BatchCancelledError`` /
``BatchError``.
"""

from __future__ import annotations

from typing import Any

from .. import _json
from ..cost.pricing import PricingTable
from ..errors import (
    APIError,
    BatchCancelledError,
    BatchError,
    BatchExpiredError,
)
from ..providers.base import Provider
from ..types import ChatRequest, ChatResponse
from ._wire import LineResult

__all__ = ["error_result", "ok_result", "price", "rebuild", "result_for_line"]


def price(
    pricing: PricingTable, request: ChatRequest, response: ChatResponse, discount: float
) -> tuple[float | None, float | None]:
    """``(cost at the batch discount, cost at the live price)`` of ``response``, USD."""
    usage = response.usage
    if usage.provider_cost is not None:
        return usage.provider_cost, usage.provider_cost
    found = pricing.get(response.model) if response.model else None
    full = found.cost(usage) if found is not None else pricing.cost(request.model, usage)
    if full is None:
        return None, None
    return full * (1.0 - discount), full


def ok_result(response: ChatResponse, full_cost: float | None) -> dict[str, Any]:
    return {"ok": response.model_dump(mode="json"), "full_cost": full_cost}


def error_result(
    kind: str,
    message: str,
    *,
    batch_id: str | None,
    status: int | None = None,
    body: bytes | None = None,
    code: str | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    return {
        "error": {
            "kind": kind,
            "message": message,
            "batch": batch_id,
            "status": status,
            "body": body.decode("utf-8", "replace") if body is not None else None,
            "code": code,
            "request_id": request_id,
        }
    }


def result_for_line(
    provider: Provider,
    request: ChatRequest,
    line: LineResult,
    batch_id: str,
    pricing: PricingTable,
    discount: float,
) -> tuple[dict[str, Any], ChatResponse | None]:
    """What to store for one ``succeeded`` or ``errored`` line (and the response, if any)."""
    if line.kind == "succeeded" and line.body is not None:
        try:
            response = provider.decode_chat(request, line.status or 200, {}, line.body)
        except APIError as exc:
            return error_result("response", exc.message, batch_id=batch_id), None
        cost, full = price(pricing, request, response, discount)
        response.cost = cost
        if line.request_id and not response.id:
            response.id = line.request_id
        return ok_result(response, full), response
    status = line.status
    if status is None and line.body is not None:
        status = _anthropic_status(line.body)
    if status is not None and line.body is not None:
        return (
            error_result(
                "status",
                "",
                batch_id=batch_id,
                status=status,
                body=line.body,
                request_id=line.request_id,
            ),
            None,
        )
    message = line.message or f"the request failed in batch {batch_id} ({line.code})"
    return error_result("failed", message, batch_id=batch_id, code=line.code), None


def _anthropic_status(body: bytes) -> int:
    from ..providers.anthropic import _STATUS_OF_TYPE

    try:
        data = _json.loads(body)
    except ValueError:
        return 500
    err = data.get("error") if isinstance(data, dict) else None
    kind = err.get("type") if isinstance(err, dict) else None
    return _STATUS_OF_TYPE.get(str(kind), 500)


def rebuild(provider: Provider | None, stored: dict[str, Any]) -> ChatResponse | BaseException:
    """The response or exception a stored result stands for."""
    if "ok" in stored:
        return ChatResponse.model_validate(stored["ok"])
    err = stored["error"]
    kind = err.get("kind")
    batch_id = err.get("batch")
    label = provider.label if provider is not None else None
    if kind == "status" and provider is not None:
        exc = provider.decode_error(int(err["status"]), {}, (err.get("body") or "").encode())
        if err.get("request_id") and not exc.request_id:
            exc.request_id = err["request_id"]
        return exc
    message = err.get("message") or "the request failed in a provider batch"
    if kind == "expired":
        return BatchExpiredError(message, batch_id=batch_id, provider=label, code=err.get("code"))
    if kind == "cancelled":
        return BatchCancelledError(message, batch_id=batch_id, provider=label, code=err.get("code"))
    return BatchError(message, batch_id=batch_id, provider=label, code=err.get("code"))
