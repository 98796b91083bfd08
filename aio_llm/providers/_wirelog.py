"""The DEBUG lines of ``aio_llm.http``: one per request sent, one per answer or failure.

Callers check ``http.isEnabledFor(DEBUG)`` first (inline: it is on every request's
path), so a disabled logger costs one cached lookup. Headers are never logged (they
hold the API key); a key found in the URL or a body is masked; bodies only with
content capture on.
"""

from __future__ import annotations

from collections.abc import Mapping

from .._redact import redact_text
from ..log import content_enabled, http

__all__ = ["failed", "http", "received", "request_id", "sent"]

_REQUEST_ID_HEADERS = (
    "x-request-id",
    "request-id",
    "x-amzn-requestid",
    "x-generation-id",
    "cf-ray",
)
_BODY_LIMIT = 4096


Secrets = tuple[str, ...]


def _mask(text: str, secrets: Secrets) -> str:
    return redact_text(text, secrets)


def _body(data: bytes, secrets: Secrets) -> str:
    text = data[:_BODY_LIMIT].decode("utf-8", "replace")
    more = f" ... ({len(data)} bytes)" if len(data) > _BODY_LIMIT else ""
    return _mask(text, secrets) + more


def request_id(headers: Mapping[str, str]) -> str:
    """The provider's id of one exchange (what its support asks for), or ``-``."""
    for name in _REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return value
    return "-"


def sent(label: str, method: str, url: str, body: bytes, secrets: Secrets) -> None:
    url = _mask(url, secrets)
    if content_enabled():
        http.debug("%s %s (%s, %d bytes): %s", method, url, label, len(body), _body(body, secrets))
    else:
        http.debug("%s %s (%s, %d bytes)", method, url, label, len(body))


def received(
    label: str,
    method: str,
    url: str,
    status: int,
    headers: Mapping[str, str],
    seconds: float,
    secrets: Secrets,
    body: bytes | None = None,
) -> None:
    """An answer arrived (its head, for a stream: ``body`` is then None)."""
    url = _mask(url, secrets)
    rid = _mask(request_id(headers), secrets)  # a hostile server may echo the key
    ms = seconds * 1000.0
    if body is not None and content_enabled():
        http.debug(
            "%s %s -> %d in %.1f ms (%s, request id %s): %s",
            method,
            url,
            status,
            ms,
            label,
            rid,
            _body(body, secrets),
        )
    else:
        kind = " (stream)" if body is None else ""
        http.debug(
            "%s %s -> %d%s in %.1f ms (%s, request id %s)",
            method,
            url,
            status,
            kind,
            ms,
            label,
            rid,
        )


def failed(
    label: str, method: str, url: str, exc: BaseException, seconds: float, secrets: Secrets
) -> None:
    http.debug(
        "%s %s -> %s after %.1f ms (%s): %s",
        method,
        _mask(url, secrets),
        type(exc).__name__,
        seconds * 1000.0,
        label,
        _mask(str(exc), secrets),
    )
