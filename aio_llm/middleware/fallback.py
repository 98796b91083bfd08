"""Fallback: when the target fails for good, try the next (provider, model).

The primary target is the request as it came; then each ``FallbackTarget``
in order, built with ``request.model_copy(update=...)`` (a ``None`` provider
or model keeps the request's own). A target that resolves to one already
tried is skipped. The answering provider sets ``response.provider`` and
``response.model``, so the caller sees who answered.

Fallback sits outside Retry, so each target gets its own retries and a
fallback happens only once they ran out. What moves on to the next target
(``should_fall_back``): an open circuit, a context-window error (a larger
model may fit), any transient error (``is_transient``: 408/409/429/5xx/529,
connection errors and timeouts; the provider's ``x-should-retry: false`` is
about retrying the same target, so it does not stop a fallback), and the
target-specific refusals 401, 403 and 404 (a missing key or an unknown model
for that target). Never a budget refusal, an invalid request, any other 4xx,
or cancellation: those would fail the same way anywhere.

When every target failed, the last target's error is raised, with a note
per earlier failure (``add_note``) naming the target and its error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from .. import log as _log
from ..config import FallbackTarget
from ..errors import (
    AuthenticationError,
    BudgetExceededError,
    CircuitOpenError,
    ContextWindowExceededError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
)
from ..pipeline import Next
from ..types import ChatRequest, ChatResponse
from .budget import cover_request
from .events import EVENT_FALLBACK, record_event
from .retry._strategies import is_transient

__all__ = ["Fallback", "FallbackStatistics", "should_fall_back"]

_TARGET_ERRORS = (
    CircuitOpenError,
    ContextWindowExceededError,
    AuthenticationError,
    PermissionDeniedError,
    NotFoundError,
)


def should_fall_back(exc: BaseException) -> bool:
    """The default ``on=`` predicate of ``Fallback`` (see the module doc)."""
    if isinstance(exc, (BudgetExceededError, InvalidRequestError)):
        return False
    return isinstance(exc, _TARGET_ERRORS) or is_transient(exc)


def _label(provider: str | None, model: str) -> str:
    return f"{provider or 'default'}:{model}"


@dataclass(frozen=True)
class FallbackStatistics:
    """Counters of a ``Fallback`` middleware."""

    calls: int
    triggered: int
    """Calls whose primary target failed with a fallback error."""
    attempts: int
    """Fallback targets tried, over all calls."""
    successful: int
    """Calls answered by a fallback target."""
    failed: int
    """Calls where the fallback targets failed too."""
    tried: Mapping[str, int]
    """Per ``provider:model`` label: times tried as a fallback."""
    answered: Mapping[str, int]
    """Per ``provider:model`` label: times it answered as a fallback."""


class Fallback:
    """Middleware: on a fallback error, retry the call on the next target in order.

    ``targets``: ``FallbackTarget`` objects or mappings with ``provider`` and
    ``model`` (as in ``ClientConfig.fallbacks``). ``on``: which errors move
    on to the next target (default ``should_fall_back``).
    """

    __slots__ = (
        "_answered",
        "_attempts",
        "_calls",
        "_failed",
        "_on",
        "_tried",
        "_triggered",
        "targets",
    )

    def __init__(
        self,
        targets: Iterable[FallbackTarget | Mapping[str, str | None]],
        *,
        on: Callable[[BaseException], bool] | None = None,
    ) -> None:
        resolved: list[FallbackTarget] = []
        for t in targets:
            target = t if isinstance(t, FallbackTarget) else FallbackTarget.model_validate(t)
            if target.provider is None and target.model is None:
                raise ValueError("a fallback target needs a provider, a model or both")
            resolved.append(target)
        self.targets: tuple[FallbackTarget, ...] = tuple(resolved)
        self._on = on if on is not None else should_fall_back
        self._calls = self._triggered = self._attempts = self._failed = 0
        self._tried: dict[str, int] = {}
        self._answered: dict[str, int] = {}

    async def __call__(self, request: ChatRequest, next: Next) -> ChatResponse:
        self._calls += 1
        try:
            return await next(request)
        except Exception as exc:
            if not self.targets or not self._on(exc):
                raise
            first = exc
        return await self._fall_back(request, next, first)

    async def _fall_back(self, request: ChatRequest, next: Next, error: Exception) -> ChatResponse:
        self._triggered += 1
        seen = {(request.provider, request.model)}
        failures = [(_label(request.provider, request.model), error)]
        for target in self.targets:
            provider = target.provider if target.provider is not None else request.provider
            model = target.model if target.model is not None else request.model
            if (provider, model) in seen:
                continue
            seen.add((provider, model))
            label = _label(provider, model)
            record_event(
                EVENT_FALLBACK,
                {"from": failures[-1][0], "to": label, "error.type": type(error).__qualname__},
            )
            _log.fallback.info(
                "Falling back from %s to %s after %s: %s",
                failures[-1][0],
                label,
                type(error).__name__,
                error,
            )
            self._attempts += 1
            self._tried[label] = self._tried.get(label, 0) + 1
            attempt = request.model_copy(update={"provider": provider, "model": model})
            try:
                # a budget's reservation was made for the first model: move it to this one
                await cover_request(attempt)
            except BudgetExceededError as exc:  # not affordable: nothing sent, try the next
                failures.append((label, exc))
                error = exc
                continue
            try:
                response = await next(attempt)
            except Exception as exc:
                failures.append((label, exc))
                error = exc
                if not self._on(exc):
                    break
                continue
            self._answered[label] = self._answered.get(label, 0) + 1
            return response
        self._failed += 1
        for label, earlier in failures[:-1]:
            if earlier is not error:
                error.add_note(
                    f"aio_llm fallback: {label} failed: {type(earlier).__name__}: {earlier}"
                )
        raise error

    def statistics(self) -> FallbackStatistics:
        return FallbackStatistics(
            calls=self._calls,
            triggered=self._triggered,
            attempts=self._attempts,
            successful=sum(self._answered.values()),
            failed=self._failed,
            tried=dict(self._tried),
            answered=dict(self._answered),
        )

    def metrics(self) -> dict[str, object]:
        return {
            "fallback.calls": self._calls,
            "fallback.triggered": self._triggered,
            "fallback.attempts": self._attempts,
            "fallback.successful": sum(self._answered.values()),
            "fallback.failed": self._failed,
            "fallback.tried": dict(self._tried),
            "fallback.answered": dict(self._answered),
        }

    def __repr__(self) -> str:
        targets = ", ".join(f"{t.provider or '(same)'}:{t.model or '(same)'}" for t in self.targets)
        return (
            f"<Fallback [{targets}] calls={self._calls} triggered={self._triggered} "
            f"successful={sum(self._answered.values())} failed={self._failed}>"
        )
