"""AWS Signature Version 4 for request headers (what Bedrock Runtime requires).

The algorithm, as AWS specifies it (and as its published test suite checks):

1. Canonical request, lines joined by LF::

       METHOD
       canonical URI      the URL's path as sent, URI-encoded again: every byte but
                          A-Z a-z 0-9 - _ . ~ and "/" becomes %XX (so Bedrock's
                          ``%3A`` in a model id is signed as ``%253A``); "" is "/"
       canonical query    name=value pairs, each side URI-encoded (also "/"),
                          sorted by name then value, joined by "&"
       canonical headers  "name:value\\n" for each signed header: lower-case name,
                          value trimmed with inner runs of spaces made one, sorted
       signed headers     the lower-case names joined by ";"
       payload hash       hex SHA-256 of the body

2. String to sign: ``AWS4-HMAC-SHA256\\n<X-Amz-Date>\\n<scope>\\n<hex SHA-256 of (1)>``,
   where the scope is ``<yyyymmdd>/<region>/<service>/aws4_request``.
3. Signing key: HMAC-SHA256 chained over the date, region, service and
   ``aws4_request``, starting from ``"AWS4" + secret key``.
4. ``Authorization: AWS4-HMAC-SHA256 Credential=<key id>/<scope>,
   SignedHeaders=<signed headers>, Signature=<hex HMAC of (2) with (3)>``.

Signed headers are ``host``, ``x-amz-date``, ``x-amz-security-token`` (with
temporary credentials) and every header the caller passes; headers a
transport adds later (``user-agent``, ``content-length``) stay unsigned,
which AWS allows.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit

__all__ = ["AWSCredentials", "SigV4Signer", "canonical_request", "sign_headers"]

_ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass(frozen=True, slots=True)
class AWSCredentials:
    """An access key, its secret and, for temporary credentials, a session token."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    expires_at: float | None = None
    """When temporary credentials expire (epoch seconds), if known."""

    def __repr__(self) -> str:
        token = ", session_token=set" if self.session_token else ""
        return f"AWSCredentials(access_key_id={self.access_key_id[:4]}..., secret=set{token})"


def _uri_encode(text: str, safe: str) -> str:
    return quote(text, safe=safe)


def _canonical_query(query: str) -> str:
    if not query:
        return ""
    pairs: list[tuple[str, str]] = []
    for item in query.split("&"):
        name, _, value = item.partition("=")
        pairs.append((_uri_encode(unquote(name), "-_.~"), _uri_encode(unquote(value), "-_.~")))
    pairs.sort()
    return "&".join(f"{n}={v}" for n, v in pairs)


def _canonical_value(value: str) -> str:
    return " ".join(value.split())


def canonical_request(
    method: str, url: str, headers: Mapping[str, str], payload_hash: str
) -> tuple[str, str]:
    """``(canonical request, signed headers)`` for ``headers`` (``host`` included by the caller)."""
    parts = urlsplit(url)
    path = _uri_encode(parts.path or "/", "/-_.~")
    merged: dict[str, list[str]] = {}
    for name, value in headers.items():
        merged.setdefault(name.lower(), []).append(_canonical_value(value))
    names = sorted(merged)
    lines = "".join(f"{n}:{','.join(merged[n])}\n" for n in names)
    signed = ";".join(names)
    request = "\n".join(
        [method.upper(), path, _canonical_query(parts.query), lines, signed, payload_hash]
    )
    return request, signed


def _host(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    default = 443 if parts.scheme == "https" else 80
    if parts.port is not None and parts.port != default:
        host = f"{host}:{parts.port}"
    return host


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


class SigV4Signer:
    """Signs requests for one ``region`` and ``service``; caches the day's signing key."""

    __slots__ = ("_key", "region", "service")

    def __init__(self, region: str, service: str) -> None:
        self.region = region
        self.service = service
        self._key: tuple[str, str, bytes] | None = None  # (secret digest, date, key)

    def _signing_key(self, secret: str, date: str) -> bytes:
        tag = hashlib.sha256(secret.encode("utf-8")).hexdigest()
        cached = self._key
        if cached is not None and cached[0] == tag and cached[1] == date:
            return cached[2]
        key = _hmac(("AWS4" + secret).encode("utf-8"), date)
        key = _hmac(key, self.region)
        key = _hmac(key, self.service)
        key = _hmac(key, "aws4_request")
        self._key = (tag, date, key)
        return key

    def sign(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        credentials: AWSCredentials,
        now: float | None = None,
    ) -> dict[str, str]:
        """``headers`` plus ``host``, ``x-amz-date``, the session token and ``authorization``."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
        date = stamp[:8]
        to_sign = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        if not any(k.lower() == "host" for k in to_sign):
            to_sign["host"] = _host(url)
        to_sign["x-amz-date"] = stamp
        if credentials.session_token:
            to_sign["x-amz-security-token"] = credentials.session_token
        payload_hash = hashlib.sha256(body).hexdigest()
        request, signed = canonical_request(method, url, to_sign, payload_hash)
        scope = f"{date}/{self.region}/{self.service}/aws4_request"
        string_to_sign = "\n".join(
            [_ALGORITHM, stamp, scope, hashlib.sha256(request.encode("utf-8")).hexdigest()]
        )
        key = self._signing_key(credentials.secret_access_key, date)
        signature = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
        out = dict(to_sign)
        out["authorization"] = (
            f"{_ALGORITHM} Credential={credentials.access_key_id}/{scope}, "
            f"SignedHeaders={signed}, Signature={signature}"
        )
        return out


def sign_headers(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    credentials: AWSCredentials,
    *,
    region: str,
    service: str,
    now: float | None = None,
) -> dict[str, str]:
    """One-off ``SigV4Signer(region, service).sign(...)``."""
    return SigV4Signer(region, service).sign(method, url, headers, body, credentials, now)
