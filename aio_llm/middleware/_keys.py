"""Canonical request keys: one stable hash of everything that changes the answer.

The exact cache, the semantic cache's partitions and the deduplicator all key
requests here, so "the same request" means the same thing everywhere.

What goes into a key: the provider (the request's, else the client's
default), the model, the messages, ``temperature``, ``top_p``,
``max_tokens``, ``stop``, ``tools``, ``tool_choice``, ``response_format`` (a
pydantic class as its name and JSON schema, so two classes that ask for the
same thing share answers and a changed class does not),
``seed``, ``extra``, the SDK parameters (``n``, penalties, ``logit_bias``,
``logprobs``, ``top_k``, ``service_tier``, ``extra_headers``, ``extra_query``,
...) and the tenant (``user`` plus whatever the ``tenant`` callable says,
e.g. a hash of the API key). What does not: ``timeout``, ``metadata``,
``cache``, ``cache_ttl``, ``dedup`` and ``stream`` (a streamed and a
non-streamed request share one answer: that is how a cached response
replays as a stream).

Equal requests built differently get equal keys: dict key order does not
matter (keys are sorted), defaults spelled out equal defaults left out (the
pydantic model fills them in), a ``Message`` equals its dict, ``stop="x"``
equals ``stop=["x"]`` and a content list holding one plain text part equals
that text. The serialised form is JSON and the key is its BLAKE2b hash, so no
key contains a raw prompt or an API key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from .._conversation import output_format
from ..errors import InvalidRequestError
from ..providers._params import SDK_PARAMETERS
from ..types import ChatRequest, Message

__all__ = ["RequestKeyer", "TenantFn", "api_key_fingerprint", "request_key"]

TenantFn = Callable[[ChatRequest], "str | None"]
"""Maps a request to its tenant id (e.g. ``user`` + a hash of the API key in use)."""

_VERSION = 1

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised where orjson is absent
    _orjson = None  # type: ignore[assignment]


def _fallback(obj: object) -> str:
    return repr(obj)


if _orjson is not None:
    _OPTIONS = _orjson.OPT_SORT_KEYS | _orjson.OPT_NON_STR_KEYS

    def _canonical_bytes(obj: object) -> bytes:
        return _orjson.dumps(obj, option=_OPTIONS, default=_fallback)

else:  # pragma: no cover

    def _canonical_bytes(obj: object) -> bytes:
        text = json.dumps(
            obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_fallback
        )
        return text.encode()


def api_key_fingerprint(api_key: str | None) -> str:
    """A one-way, non-reversible tag for ``api_key`` (``"-"`` for no key).

    Use it as (part of) a tenant id so cache entries are isolated per key
    without the key itself ever being stored.
    """
    if not api_key:
        return "-"
    return hashlib.sha256(b"aio_llm-tenant\x00" + api_key.encode()).hexdigest()[:32]


def _message(m: Message) -> list[Any]:
    content = m.content
    if isinstance(content, list) and len(content) == 1:
        part = content[0]
        if len(part) == 2 and part.get("type") == "text" and isinstance(part.get("text"), str):
            content = part["text"]
    calls = None
    if m.tool_calls:
        calls = [
            [c.id, c.name, c.arguments, *([c.signature] if c.signature else [])]
            for c in m.tool_calls
        ]
    out: list[Any] = [m.role, content, m.name, calls, m.tool_call_id]
    if m.thinking:  # reasoning sent back is context too
        out.append([[t.text, t.signature, t.redacted, t.id, t.provider] for t in m.thinking])
    return out


def _format(fmt: object) -> object:
    """A pydantic class as its name and JSON schema: what the provider is asked for."""
    if isinstance(fmt, type):
        parsed = output_format(fmt)
        assert parsed is not None
        return ["model", parsed.name, parsed.schema]
    return fmt


def _canonical(
    request: ChatRequest, provider: str | None, tenant: str | None, drop_last: bool
) -> list[Any]:
    messages = request.messages[:-1] if drop_last else request.messages
    stop = request.stop
    if isinstance(stop, str):
        stop = [stop]
    return [
        _VERSION,
        request.provider or provider,
        request.model,
        [_message(m) for m in messages],
        request.temperature,
        request.top_p,
        request.max_tokens,
        stop,
        request.tools,
        request.tool_choice,
        _format(request.response_format),
        request.seed,
        request.user,
        tenant,
        request.extra,
        drop_last,
        *_sdk_part(request),
    ]


_SET_ONLY = tuple(p for p in SDK_PARAMETERS if p != "seed") + ("extra_headers", "extra_query")
_SET_ONLY_FIELDS = frozenset(_SET_ONLY)


def _sdk_part(request: ChatRequest) -> list[dict[str, Any]]:
    """The SDK parameters a request sets, as one more key element (none: the key is unchanged).

    Keys of requests that set none of them stay what they were before these
    parameters existed, so a shared cache keeps its entries.
    """
    named = request.model_fields_set & _SET_ONLY_FIELDS  # most requests name none
    if not named:
        return []
    given = {}
    for name in _SET_ONLY:
        value = getattr(request, name) if name in named else None
        if value is not None and value != {}:
            given[name] = value
    return [given] if given else []


def request_key(
    request: ChatRequest,
    *,
    provider: str | None = None,
    tenant: str | None = None,
    drop_last_message: bool = False,
) -> str:
    """The hex key of ``request``; ``provider`` applies when the request names none.

    ``drop_last_message=True`` keys everything except the last message: the
    semantic cache's partition (same history and parameters, similar question).
    """
    try:
        data = _canonical_bytes(_canonical(request, provider, tenant, drop_last_message))
    except (TypeError, ValueError) as exc:  # an int beyond 64 bits, a lone surrogate...
        raise InvalidRequestError(f"the request cannot be encoded as JSON: {exc}") from None
    return hashlib.blake2b(data, digest_size=20).hexdigest()


class RequestKeyer:
    """Computes request keys for one client; shared by its cache and dedup middleware.

    ``tenant`` is a fixed tenant id or a callable of the request. The keyer
    remembers the last request it keyed, so when the cache and the
    deduplicator ask about the same request object one after the other the
    hash is computed once.
    """

    __slots__ = ("_last_key", "_last_request", "provider", "tenant")

    def __init__(
        self, *, provider: str | None = None, tenant: str | TenantFn | None = None
    ) -> None:
        if tenant is not None and not isinstance(tenant, str) and not callable(tenant):
            raise ValueError("tenant must be a string, a callable of the request, or None")
        self.provider = provider
        self.tenant = tenant
        self._last_request: ChatRequest | None = None
        self._last_key = ""

    def tenant_of(self, request: ChatRequest) -> str | None:
        tenant = self.tenant
        if tenant is None or isinstance(tenant, str):
            return tenant
        return tenant(request)

    def __call__(self, request: ChatRequest) -> str:
        """The exact key of ``request`` (memoised for the last request seen)."""
        if request is self._last_request:
            return self._last_key
        key = request_key(request, provider=self.provider, tenant=self.tenant_of(request))
        self._last_request = request
        self._last_key = key
        return key

    def partition(self, request: ChatRequest) -> str:
        """The key of everything but the last message (semantic cache partitions)."""
        return request_key(
            request,
            provider=self.provider,
            tenant=self.tenant_of(request),
            drop_last_message=True,
        )

    def __repr__(self) -> str:
        kind = "callable" if callable(self.tenant) else "fixed" if self.tenant else "none"
        return f"RequestKeyer(provider={self.provider!r}, tenant={kind})"
