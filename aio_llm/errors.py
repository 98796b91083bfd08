"""Every exception aio_llm raises.

The hierarchy::

    LLMError
    ├── ConfigurationError (+ ValueError)   bad settings, a missing API key: before any request
    ├── InvalidRequestError (+ ValueError)  the caller's input is invalid: nothing was sent
    ├── BudgetExceededError                 a hard budget would be exceeded: nothing was sent
    ├── CircuitOpenError                    the breaker is open: nothing was sent
    │                                       (alias CircuitBreakerOpenError)
    ├── RateLimitExceededError              the local limiter could not admit it in time
    └── APIError                            anything that went wrong talking to a provider
        ├── APIConnectionError              connect failed, connection reset, DNS
        │   └── APITimeoutError (+ TimeoutError)  a read timed out or the deadline passed
        ├── APIResponseError                a 2xx answer that could not be read (bad JSON)
        │   └── StreamError                 a stream that broke off or sent an in-band error
        └── APIStatusError                  the provider answered with an error status
            ├── RedirectError               3xx: never followed (see its docstring)
            ├── BadRequestError             400
            │   └── ContextWindowExceededError  the prompt does not fit the model
            ├── AuthenticationError         401
            ├── PermissionDeniedError       403
            ├── NotFoundError               404
            ├── RequestTimeoutError         408
            ├── ConflictError               409
            ├── UnprocessableEntityError    422
            ├── RateLimitError              429
            └── ServerError                 5xx
                └── OverloadedError         529 (and Anthropic's overloaded_error)

``APIError`` carries ``status_code``, ``provider``, ``request_id`` and
``retry_after`` (seconds, from ``Retry-After``/``retry-after-ms``), plus
``should_retry`` when the provider sent ``x-should-retry``. Messages never
contain API keys: providers' error bodies are quoted, request headers never.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "CircuitBreakerOpenError",
    "CircuitOpenError",
    "ConfigurationError",
    "ConflictError",
    "ContextWindowExceededError",
    "InvalidRequestError",
    "LLMError",
    "NotFoundError",
    "OverloadedError",
    "PermissionDeniedError",
    "RateLimitError",
    "RateLimitExceededError",
    "RedirectError",
    "RequestTimeoutError",
    "ServerError",
    "StreamError",
    "UnprocessableEntityError",
    "error_for_status",
    "parse_retry_after",
    "redirect_error",
]


class LLMError(Exception):
    """Base class of every aio_llm error."""


class ConfigurationError(LLMError, ValueError):
    """The client's settings are invalid or incomplete (e.g. a missing API key)."""


class InvalidRequestError(LLMError, ValueError):
    """The caller's request is invalid; it was rejected before anything was sent."""


class BudgetExceededError(LLMError):
    """Sending the request could exceed a hard budget; nothing was sent."""

    def __init__(
        self,
        message: str,
        *,
        budget: str | None = None,
        limit: float | None = None,
        spent: float | None = None,
        reserved: float | None = None,
        requested: float | None = None,
    ) -> None:
        super().__init__(message)
        self.budget = budget
        self.limit = limit
        self.spent = spent
        self.reserved = reserved
        self.requested = requested


class CircuitOpenError(LLMError):
    """The circuit breaker for this target is open; the request was not sent."""

    def __init__(self, message: str, *, name: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.retry_after = retry_after


CircuitBreakerOpenError = CircuitOpenError


class RateLimitExceededError(LLMError):
    """The local rate limiter could not admit the request before its deadline."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


MAX_MESSAGE = 1000
"""Characters of a provider's message an ``APIError`` quotes; ``exc.body`` keeps the rest."""


class APIError(LLMError):
    """A failure while talking to a provider."""

    status_code: int | None = None

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status_code: int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        should_retry: bool | None = None,
        code: str | None = None,
        body: Any = None,
    ) -> None:
        if len(message) > MAX_MESSAGE:  # a server's page or a megabyte of text: quote the start
            # the result is at most MAX_MESSAGE long, so a pickled error comes back unchanged
            keep = MAX_MESSAGE - 40
            message = f"{message[:keep]}... ({len(message) - keep} more characters)"
        super().__init__(message)
        self.message = message
        self.provider = provider
        if status_code is not None:
            self.status_code = status_code
        self.request_id = request_id
        self.retry_after = retry_after
        self.should_retry = should_retry
        self.code = code
        self.body = body

    def __str__(self) -> str:
        parts = [self.message]
        if self.status_code is not None:
            parts.append(f"status={self.status_code}")
        if self.provider:
            parts.append(f"provider={self.provider}")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        return " | ".join(parts)

    def __reduce__(self) -> tuple[Any, ...]:
        kwargs = {
            "provider": self.provider,
            "status_code": self.status_code,
            "request_id": self.request_id,
            "retry_after": self.retry_after,
            "should_retry": self.should_retry,
            "code": self.code,
            "body": self.body,
        }
        return (_rebuild_api_error, (type(self), self.message, kwargs))


def _rebuild_api_error(cls: type[APIError], message: str, kwargs: dict[str, Any]) -> APIError:
    return cls(message, **kwargs)


class APIConnectionError(APIError):
    """The connection failed, was reset, or the host could not be reached."""


class APITimeoutError(APIConnectionError, TimeoutError):
    """A read timed out, or the request's deadline passed."""


class APIResponseError(APIError):
    """The provider answered 2xx but the body could not be read."""


class StreamError(APIResponseError):
    """A stream broke off before its end or carried an in-band error."""


class APIStatusError(APIError):
    """The provider answered with an error status code."""


class RedirectError(APIStatusError):
    """The provider answered with a redirect (3xx); aio_llm does not follow it.

    Following it would send the API key and the prompt to wherever
    ``Location`` points, and re-send a paid POST; a base URL that redirects
    is a configuration to fix (often ``http://`` for ``https://`` or a
    missing ``/v1``). ``location_origin`` is the origin
    (``scheme://host:port``) the provider pointed at, or ``None``.
    """

    def __init__(self, message: str, *, location_origin: str | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.location_origin = location_origin

    def __reduce__(self) -> tuple[Any, ...]:
        rebuild, (cls, message, kwargs) = super().__reduce__()
        return (rebuild, (cls, message, {**kwargs, "location_origin": self.location_origin}))


def redirect_error(
    status: int, headers: Mapping[str, str], *, provider: str, request_url: str
) -> RedirectError:
    """The error for a 3xx answer to ``request_url``: names the ``Location``'s origin only."""
    from urllib.parse import urljoin, urlsplit

    location = headers.get("location") or headers.get("Location")
    origin: str | None = None
    if location:
        try:
            parts = urlsplit(urljoin(request_url, location.strip()))
            host = parts.netloc.rpartition("@")[2]  # never userinfo
            origin = f"{parts.scheme}://{host}" if parts.scheme and host else None
        except ValueError:
            origin = None
    where = f"to {origin}" if origin else "without a usable Location"
    return RedirectError(
        f"{provider} answered HTTP {status}, a redirect {where}; aio_llm does not follow "
        "redirects (the API key and the prompt stay with the configured base_url): "
        "check base_url",
        provider=provider,
        status_code=status,
        request_id=headers.get("x-request-id") or headers.get("request-id"),
        location_origin=origin,
    )


class BadRequestError(APIStatusError):
    status_code = 400


class ContextWindowExceededError(BadRequestError):
    """The prompt (plus ``max_tokens``) does not fit the model's context window."""


class AuthenticationError(APIStatusError):
    status_code = 401


class PermissionDeniedError(APIStatusError):
    status_code = 403


class NotFoundError(APIStatusError):
    status_code = 404


class RequestTimeoutError(APIStatusError):
    status_code = 408


class ConflictError(APIStatusError):
    status_code = 409


class UnprocessableEntityError(APIStatusError):
    status_code = 422


class RateLimitError(APIStatusError):
    status_code = 429


class ServerError(APIStatusError):
    status_code = 500


class OverloadedError(ServerError):
    status_code = 529


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: RequestTimeoutError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    529: OverloadedError,
}

_CONTEXT_MARKERS = (
    "context_length_exceeded",
    "context length",
    "context window",
    "maximum context",
    "prompt is too long",
    "too many tokens",
)


def error_for_status(
    status: int,
    message: str,
    *,
    provider: str | None = None,
    headers: Mapping[str, str] | None = None,
    code: str | None = None,
    error_type: str | None = None,
    body: Any = None,
) -> APIStatusError:
    """Build the typed error for an HTTP error status."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else APIStatusError
    if error_type == "overloaded_error":
        cls = OverloadedError
    if cls is BadRequestError:
        haystack = f"{code or ''} {message}".lower()
        if any(marker in haystack for marker in _CONTEXT_MARKERS):
            cls = ContextWindowExceededError
    request_id = retry_after = should_retry = None
    if headers is not None:
        request_id = headers.get("x-request-id") or headers.get("request-id")
        retry_after = parse_retry_after(headers)
        flag = headers.get("x-should-retry")
        if flag is not None:
            should_retry = flag.strip().lower() == "true"
    return cls(
        message,
        provider=provider,
        status_code=status,
        request_id=request_id,
        retry_after=retry_after,
        should_retry=should_retry,
        code=code,
        body=body,
    )


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or HTTP date).

    Always finite and not negative (``None`` when absent or unusable): see
    ``aio_llm._waits.server_wait``; callers apply their own cap.
    """
    from ._waits import server_wait

    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            wait = server_wait(float(value) / 1000.0)
        except ValueError:
            wait = None
        if wait is not None:
            return wait
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return server_wait(float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    import datetime as _dt

    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.UTC)
    return server_wait(max(0.0, (when - _dt.datetime.now(_dt.UTC)).total_seconds()))
