"""Every exception aio_llm raises.

The hierarchy::

    LLMError
    ├── ConfigurationError (+ ValueError)   bad settings, a missing API key: before any request
    ├── ClientStateError (+ RuntimeError)   a client or stream used outside its lifetime
    ├── InvalidRequestError (+ ValueError)  the caller's input is invalid: nothing was sent
    │   ├── UnsupportedParameterError       the provider cannot honour a parameter
    │   └── MediaError                      an image, document or audio part the provider refuses
    │       ├── UnsupportedMediaTypeError   a media type the provider does not take
    │       └── MediaTooLargeError          over the provider's size, pixel or count limit
    ├── OutputValidationError               the answer does not fit the requested response_format
    ├── BudgetExceededError                 a hard budget would be exceeded: nothing was sent
    ├── CircuitOpenError                    the breaker is open: nothing was sent
    │                                       (alias CircuitBreakerOpenError)
    ├── RateLimitExceededError              the local limiter could not admit it in time
    └── APIError                            anything that went wrong talking to a provider
        ├── APIConnectionError              connect failed, connection reset, DNS
        │   └── APITimeoutError (+ TimeoutError)  a read timed out or the deadline passed
        ├── APIResponseError                a 2xx answer that could not be read (bad JSON)
        │   └── StreamError                 a stream that broke off or sent an in-band error
        │       └── EventStreamError        a binary event-stream frame failed a length or CRC check
        ├── BatchError                      a provider batch refused or did not run a request
        │   ├── BatchExpiredError           the batch expired before the request ran
        │   └── BatchCancelledError         the batch was cancelled before the request ran
        └── APIStatusError                  the provider answered with an error status
            ├── RedirectError               3xx: never followed (see its docstring)
            ├── BadRequestError             400
            │   ├── ContextWindowExceededError  the prompt does not fit the model
            │   └── ContentFilterError      the provider's content filter refused the prompt
            ├── AuthenticationError         401
            ├── PermissionDeniedError       403
            ├── NotFoundError               404
            ├── RequestTimeoutError         408
            ├── ConflictError               409
            ├── UnprocessableEntityError    422
            ├── RateLimitError              429
            └── InternalServerError         5xx (alias ServerError)
                └── OverloadedError         529, and Anthropic's overloaded_error on any 5xx
                    └── ServiceUnavailableError  Anthropic's 503

``APIError`` carries ``status_code``, ``provider``, ``request_id`` and
``retry_after`` (seconds, from ``Retry-After``/``retry-after-ms``), plus
``should_retry`` when the provider sent ``x-should-retry``. Messages never
contain API keys: providers' error bodies are quoted, request headers never.

A status error has what the official SDKs' errors have: ``status_code``,
``request_id``, ``headers`` (the response's), ``body`` (the parsed error as
the provider's own SDK presents it: OpenAI's ``error`` object, Anthropic's
whole body, or the raw text when it is not JSON) and ``response`` (an
``httpx.Response`` rebuilt from them). Its message stays short: a page of
HTML or a long text is summarised, and the whole of it is on ``body``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BatchCancelledError",
    "BatchError",
    "BatchExpiredError",
    "BudgetExceededError",
    "CircuitBreakerOpenError",
    "CircuitOpenError",
    "ClientStateError",
    "ConfigurationError",
    "ConflictError",
    "ContentFilterError",
    "ContextWindowExceededError",
    "EventStreamError",
    "InternalServerError",
    "InvalidRequestError",
    "LLMError",
    "MediaError",
    "MediaTooLargeError",
    "MissingExtraError",
    "NotFoundError",
    "OutputValidationError",
    "OverloadedError",
    "PermissionDeniedError",
    "RateLimitError",
    "RateLimitExceededError",
    "RedirectError",
    "RequestTimeoutError",
    "ServerError",
    "ServiceUnavailableError",
    "StreamError",
    "UnprocessableEntityError",
    "UnsupportedMediaTypeError",
    "UnsupportedParameterError",
    "error_for_status",
    "parse_retry_after",
    "redirect_error",
]


class LLMError(Exception):
    """Base class of every aio_llm error."""


class ConfigurationError(LLMError, ValueError):
    """The client's settings are invalid or incomplete (e.g. a missing API key)."""


class MissingExtraError(ConfigurationError, ImportError):
    """A feature needs an optional dependency that is not installed; the message names
    the extra to install (``pip install 'aio-llm[semantic]'``)."""


class ClientStateError(LLMError, RuntimeError):
    """A client or a stream was used outside its lifetime; the message says what to do.

    A client not opened yet (``async with AsyncLLMClient() as c`` or ``await
    c.open()``), one already closed (make a new one), a stream iterated
    without ``async with client.stream(...) as s``.
    """


class InvalidRequestError(LLMError, ValueError):
    """The caller's request is invalid; it was rejected before anything was sent."""


class MediaError(InvalidRequestError):
    """A content part (image, document, audio) the provider would refuse; nothing was sent.

    ``provider`` names the provider kind whose documented limits apply,
    ``media_type`` the part's type (``image/png``...), ``index`` where the
    part is (``messages.<i>.content.<j>``, when known).
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        media_type: str | None = None,
        index: str | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.media_type = media_type
        self.index = index


class UnsupportedMediaTypeError(MediaError):
    """The provider does not take this media type (or this kind of part at all)."""


class MediaTooLargeError(MediaError):
    """Over the provider's limit: bytes per part or request, pixels, pages or parts.

    ``size`` is what the request has, ``limit`` what the provider takes
    (in ``unit``: ``"bytes"``, ``"pixels"``, ``"parts"``).
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        media_type: str | None = None,
        index: str | None = None,
        size: int | None = None,
        limit: int | None = None,
        unit: str = "bytes",
    ) -> None:
        super().__init__(message, provider=provider, media_type=media_type, index=index)
        self.size = size
        self.limit = limit
        self.unit = unit


class OutputValidationError(LLMError):
    """The model's answer does not fit the ``response_format`` that was asked for.

    ``raw`` is the text received, ``errors`` pydantic's ``errors()`` list
    (for a raw JSON schema or ``json_object``: the same shape, from
    aio_llm's own check), ``response`` the ``ChatResponse`` it came in (its
    cost was charged) and ``attempts`` how many answers were tried
    (``max_validation_retries`` + 1 at most). The message names the fields
    that failed, never the text itself.
    """

    def __init__(
        self,
        message: str,
        *,
        raw: str,
        errors: list[dict[str, Any]],
        response: Any = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.raw = raw
        self.errors = errors
        self.response = response
        self.attempts = attempts


class UnsupportedParameterError(InvalidRequestError):
    """The chosen provider cannot honour a parameter of the request; nothing was sent.

    ``parameter`` names it and ``provider`` is the provider's label. Drop the
    parameter, pick a provider that has it, or send it unchecked in
    ``extra_body``.
    """

    def __init__(self, message: str, *, parameter: str = "", provider: str = "") -> None:
        super().__init__(message)
        self.parameter = parameter
        self.provider = provider

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_unsupported,
            (type(self), str(self), self.parameter, self.provider),
        )


def _rebuild_unsupported(
    cls: type[UnsupportedParameterError], message: str, parameter: str, provider: str
) -> UnsupportedParameterError:
    return cls(message, parameter=parameter, provider=provider)


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
        headers: Mapping[str, str] | None = None,
        raw: bytes | None = None,
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
        self.headers: dict[str, str] = {k.lower(): v for k, v in headers.items()} if headers else {}
        """The provider's response headers, names in lower case (empty without a response)."""
        self.raw = raw
        """The response body as received (``None`` when there was no response)."""

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
            "headers": self.headers,
            "raw": self.raw,
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


class EventStreamError(StreamError):
    """A frame of a binary event stream (AWS ``vnd.amazon.eventstream``) is corrupt.

    Its prelude or message CRC does not match, or its lengths are impossible:
    the bytes cannot be trusted, so the stream stops here.
    """


class APIStatusError(APIError):
    """The provider answered with an error status code.

    ``response`` is that answer as an ``httpx.Response`` (status, headers and
    body; no request), as the official SDKs' errors carry it.
    """

    @property
    def response(self) -> httpx.Response:
        import httpx

        headers = {k: v for k, v in self.headers.items() if k.lower() not in _NOT_REPLAYED}
        return httpx.Response(self.status_code or 0, headers=headers, content=self.raw or b"")


_NOT_REPLAYED = frozenset({"content-encoding", "content-length", "transfer-encoding"})
"""Headers that describe the wire encoding of a body ``raw`` already holds decoded."""


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


class ContentFilterError(BadRequestError):
    """The provider's content filter refused the prompt (Azure OpenAI's ``content_filter``).

    ``body`` holds the provider's error, with the filter results. An answer
    the filter cut short is not an error: its ``finish_reason`` is
    ``"content_filter"``.
    """


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


class InternalServerError(APIStatusError):
    """The provider failed (5xx); the official SDKs' name. ``ServerError`` is the same class."""

    status_code = 500


ServerError = InternalServerError


class OverloadedError(InternalServerError):
    """The provider is overloaded: 529, a 503, or Anthropic's ``overloaded_error`` on any 5xx."""

    status_code = 529


class ServiceUnavailableError(OverloadedError):
    """A 503 from Anthropic, as the anthropic SDK names it.

    Each provider's errors carry the names of its own SDK: the openai SDK
    calls a 503 ``InternalServerError``, which this class also is (through
    ``OverloadedError``, since Anthropic signals overload with 503 too).
    """

    status_code = 503


class BatchError(APIError):
    """A provider batch refused the request or ended without running it (``batch_id``: which)."""

    def __init__(self, message: str, *, batch_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.batch_id = batch_id

    def __reduce__(self) -> tuple[Any, ...]:
        rebuild, (cls, message, kwargs) = super().__reduce__()
        return rebuild, (cls, message, {**kwargs, "batch_id": self.batch_id})


class BatchExpiredError(BatchError):
    """The provider batch expired (its completion window passed) before the request ran."""


class BatchCancelledError(BatchError):
    """The provider batch was cancelled before the request ran."""


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
    "input is too long",
    "exceeds the maximum number of tokens",
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
    raw: bytes | None = None,
    classes: Mapping[int, type[APIStatusError]] | None = None,
) -> APIStatusError:
    """Build the typed error for an HTTP error status (``raw``: the body as received).

    ``classes`` maps statuses to a provider's own classes, before the common ones.
    """
    cls = (classes.get(status) if classes else None) or _BY_STATUS.get(status)
    if cls is None:
        cls = InternalServerError if status >= 500 else APIStatusError
    if error_type == "overloaded_error" and not issubclass(cls, OverloadedError):
        cls = OverloadedError
    if cls is BadRequestError and code == "content_filter":
        cls = ContentFilterError
    elif cls is BadRequestError:
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
        headers=headers,
        raw=raw,
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
