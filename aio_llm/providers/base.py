"""The provider interface: a sans-I/O codec plus the shared glue that does the I/O.

A provider turns a ``ChatRequest`` into an ``HTTPRequest`` (``encode_chat``)
and an HTTP answer into a ``ChatResponse`` (``decode_chat``), or into chunks
through a ``StreamDecoder`` fed with the events of its stream framing
(``Provider.framing``: server-sent events by default, AWS's binary event
stream for Bedrock). Those methods are pure and tested on recorded bytes.
``Provider.send`` joins them to an ``HTTPTransport``; it is the innermost
handler of the middleware chain.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from logging import DEBUG
from typing import Any, ClassVar, Protocol

from .._media import check_media as _check_media
from .._redact import redact_text, scrub_error
from ..errors import (
    APIConnectionError,
    APIError,
    APIResponseError,
    StreamError,
    redirect_error,
)
from ..streaming import ChunkAccumulator
from ..transports.base import HTTPTransport, StreamingHTTPResponse
from ..transports.sse import SSEDecoder
from ..types import ChatChunk, ChatRequest, ChatResponse, ChunkStream, EmbeddingResponse
from . import _wirelog
from ._params import check_parameters, with_query

__all__ = ["Framing", "HTTPRequest", "Provider", "StreamDecoder", "redact"]


@dataclass(slots=True)
class HTTPRequest:
    """What a codec asks the transport to send."""

    method: str
    url: str
    headers: dict[str, str]
    content: bytes

    def __repr__(self) -> str:
        # headers hold the API key: never print them
        return f"HTTPRequest({self.method} {self.url}, {len(self.content)} bytes)"


class Framing(Protocol):
    """Splits a streamed body into events: ``SSEDecoder``, ``EventStreamDecoder``."""

    def feed(self, chunk: bytes) -> list[Any]:
        """The events that ``chunk`` completes."""
        ...

    def flush(self) -> list[Any]:
        """The events the end of input completes."""
        ...


class StreamDecoder(Protocol):
    """Turns a provider's stream events into chunks and rebuilds the response.

    The events are what the provider's ``framing()`` yields (``SSEEvent`` by
    default). A decoder may also say ``complete``: the stream may end here
    without an end marker (Gemini has none); it is read to its end.
    """

    accumulator: ChunkAccumulator

    def feed(self, event: Any) -> list[ChatChunk]:
        """Chunks carried by ``event``; raises ``StreamError``/``APIError`` on in-band errors."""
        ...

    @property
    def done(self) -> bool:
        """True once the provider's end-of-stream marker was read (reading stops)."""
        ...

    def build_response(self) -> ChatResponse:
        """The response rebuilt from the events seen so far."""
        ...


def _clean_key(api_key: str | None, label: str) -> str | None:
    """The key without surrounding whitespace (a key read from a file ends in a newline).

    A key with control characters inside would be refused by the HTTP
    library with the header, key included, in its message: refuse it here,
    without quoting it.
    """
    if api_key is None:
        return None
    key = api_key.strip()
    if not key:
        return None
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
        from ..errors import ConfigurationError

        raise ConfigurationError(f"the API key for {label} contains control characters")
    return key


def redact(text: str, secret: str | None) -> str:
    """``text`` with ``secret`` (an API key) blanked out where it stands as a key."""
    return redact_text(text, (secret,))


_AUTH_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key"}
)
"""Headers whose values are credentials (blanked from errors like the key)."""
_KEPT_KEYS = 8
"""Rotated-out keys still blanked from errors (a late error may quote one)."""


class Provider:
    """Base class of every provider adapter.

    Subclasses implement the codec methods; ``send``, ``open_stream`` and
    ``embed`` are the I/O glue they share. ``name`` is the provider's kind
    ("openai", "anthropic", ...); ``label`` is how responses and errors name
    it (the key in a client's ``providers`` mapping).
    """

    name: ClassVar[str] = "base"
    supported_parameters: ClassVar[frozenset[str]] = frozenset()
    """Which of the checked parameters (``_params.CHECKED_PARAMETERS``: the SDK parameters,
    ``response_format``, ``prompt_cache_key``) this provider honours."""
    samples_by_default: ClassVar[bool] = True
    """Whether a request without a temperature draws a sample (every real model does)."""
    api_key_env: ClassVar[str | None] = None
    api_key_alt_envs: ClassVar[tuple[str, ...]] = ()
    """More variables the key is read from when ``api_key_env`` is unset."""
    base_url_env: ClassVar[str | None] = None
    default_base_url: ClassVar[str] = ""
    genai_system: ClassVar[str | None] = None
    """``gen_ai.provider.name`` in traces when the GenAI conventions name it (else ``name``)."""

    base_url: str
    label: str

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        label: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.label = label or self.name
        self._api_key = _clean_key(api_key, self.label)
        self._old_keys: tuple[str, ...] = ()
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        self.extra_headers = dict(headers or {})
        self._secrets = self._collect_secrets()
        if not self.base_url.startswith(("http://", "https://")):
            from ..errors import ConfigurationError

            raise ConfigurationError(
                f"base_url for {self.label} must be an http:// or https:// URL"
            )

    # -- the key ------------------------------------------------------------
    @property
    def api_key(self) -> str | None:
        """The API key sent with every request.

        Assigning a new key rotates it end to end: requests sent from then on
        carry it (those in flight finish with the old one), cache entries are
        keyed to it, and the old key is still blanked out of any error.
        """
        return self._api_key

    @api_key.setter
    def api_key(self, value: str | None) -> None:
        new = _clean_key(value, self.label)
        old = self._api_key
        if new == old:
            return
        if old:
            self._old_keys = (old, *self._old_keys)[:_KEPT_KEYS]
        self._api_key = new
        self._auth_changed()
        self._secrets = self._collect_secrets()

    def _auth_changed(self) -> None:
        """Rebuild whatever holds the key (a subclass's prepared headers)."""

    def _collect_secrets(self) -> tuple[str, ...]:
        found = [self._api_key, *self._old_keys]
        for name, value in self.extra_headers.items():
            if name.lower() in _AUTH_HEADERS and isinstance(value, str):
                found += [value, value.partition(" ")[2]]  # "Bearer <token>": the token too
        return tuple(s for s in dict.fromkeys(found) if s and s.strip())

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every credential this provider sends (current and recent keys, auth headers)."""
        return self._secrets

    def scrub(self, exc: BaseException) -> None:
        """Blank this provider's credentials out of ``exc`` and its whole cause chain."""
        if isinstance(exc, APIError) and exc.provider is None:
            exc.provider = self.label
        scrub_error(exc, self.secrets)

    def __repr__(self) -> str:
        key = "set" if self.api_key else "missing"
        return f"<{type(self).__name__} {self.label} base_url={self.base_url!r} api_key={key}>"

    @classmethod
    def settings_from_env(cls, env: Mapping[str, str]) -> dict[str, Any]:
        """Constructor settings this kind reads from ``env`` beside the key and base URL.

        ``create_provider`` passes them on (``None`` values are left out;
        settings given explicitly win).
        """
        return {}

    @classmethod
    def has_credentials(cls, settings: Mapping[str, Any]) -> bool:
        """True when ``settings`` hold a credential other than an API key (a token)."""
        return False

    # -- the codec (pure) -------------------------------------------------
    def encode_chat(self, request: ChatRequest) -> HTTPRequest:
        raise NotImplementedError

    def decode_chat(
        self, request: ChatRequest, status: int, headers: Mapping[str, str], body: bytes
    ) -> ChatResponse:
        raise NotImplementedError

    def stream_decoder(self, request: ChatRequest) -> StreamDecoder:
        raise NotImplementedError

    def framing(self) -> Framing:
        """A fresh splitter of a streamed body into events (server-sent events by default)."""
        return SSEDecoder()

    def decode_error(self, status: int, headers: Mapping[str, str], body: bytes) -> APIError:
        raise NotImplementedError

    def encode_count(self, request: ChatRequest) -> HTTPRequest | None:
        """The request that asks the provider to count ``request``'s prompt tokens.

        ``None`` (the default): the provider offers no count; the client counts
        locally (``aio_llm.tokens.count_request_tokens``).
        """
        return None

    def decode_count(self, status: int, headers: Mapping[str, str], body: bytes) -> int:
        """The token count in a counting endpoint's answer."""
        raise NotImplementedError

    def encode_embed(self, texts: list[str], model: str, **params: Any) -> HTTPRequest:
        raise APIError(f"{self.label} does not offer embeddings", provider=self.label)

    def decode_embed(
        self, model: str, status: int, headers: Mapping[str, str], body: bytes
    ) -> EmbeddingResponse:
        raise NotImplementedError

    # -- the glue (I/O) ----------------------------------------------------
    def _log_answer(
        self,
        http: HTTPRequest,
        status: int,
        headers: Mapping[str, str],
        start: float,
        body: bytes | None,
    ) -> None:
        seconds = time.perf_counter() - start
        _wirelog.received(
            self.label, http.method, http.url, status, headers, seconds, self.secrets, body
        )

    def _log_failure(self, http: HTTPRequest, exc: BaseException, start: float) -> None:
        seconds = time.perf_counter() - start
        _wirelog.failed(self.label, http.method, http.url, exc, seconds, self.secrets)

    def check_media(self, request: ChatRequest) -> None:
        """Refuse media this provider's documented limits would refuse (``MediaError``).

        Runs before every send; a request of plain text costs one type check per
        message.
        """
        for m in request.messages:
            if isinstance(m.content, list):
                _check_media(request, self.name)
                return

    def _encode(self, request: ChatRequest) -> HTTPRequest:
        """``encode_chat`` after checking the parameters and the media, plus the request's own
        headers and query."""
        check_parameters(request, self.label, self.supported_parameters)
        self.check_media(request)
        http = self.encode_chat(request)
        if request.extra_headers or request.extra_query:
            http = HTTPRequest(
                http.method,
                with_query(http.url, request.extra_query),
                {**http.headers, **request.extra_headers},
                http.content,
            )
        return http

    def _status_error(
        self, status: int, headers: Mapping[str, str], body: bytes, url: str
    ) -> APIError:
        """The error for a status that is not 2xx; a redirect is never followed."""
        if status < 400:
            return redirect_error(status, headers, provider=self.label, request_url=url)
        return self.decode_error(status, headers, body)

    async def send(self, request: ChatRequest, transport: HTTPTransport) -> ChatResponse:
        """Send ``request``; a streaming one returns at its first chunk with ``.stream`` set."""
        if request.stream:
            return await self.open_stream(request, transport)
        http = self._encode(request)
        log = _wirelog.http.isEnabledFor(DEBUG)
        answered = False
        if log:
            _wirelog.sent(self.label, http.method, http.url, http.content, self.secrets)
        start = time.perf_counter()
        try:
            status, headers, body = await transport.request(
                http.method, http.url, http.headers, http.content
            )
            if log:
                answered = True
                self._log_answer(http, status, headers, start, body)
            if status >= 300:
                raise self._status_error(status, headers, body, http.url)
            response = self.decode_chat(request, status, headers, body)
        except APIError as exc:
            self.scrub(exc)
            if log and not answered:
                self._log_failure(http, exc, start)
            raise
        response.latency_ms = (time.perf_counter() - start) * 1000.0
        response.headers = headers
        return response

    async def open_stream(self, request: ChatRequest, transport: HTTPTransport) -> ChatResponse:
        http = self._encode(request)
        log = _wirelog.http.isEnabledFor(DEBUG)
        answered = False
        if log:
            _wirelog.sent(self.label, http.method, http.url, http.content, self.secrets)
        start = time.perf_counter()
        try:
            resp = await transport.stream(http.method, http.url, http.headers, http.content)
            if log:
                answered = True
                self._log_answer(http, resp.status, resp.headers, start, None)
            if resp.status >= 300:
                try:
                    body = await resp.aread() if resp.status >= 400 else b""
                finally:
                    await resp.aclose()
                raise self._status_error(resp.status, resp.headers, body, http.url)
        except APIError as exc:
            self.scrub(exc)
            if log and not answered:
                self._log_failure(http, exc, start)
            raise
        source = _StreamSource(self, resp, self.stream_decoder(request), start)
        stream = ChunkStream(source)
        await stream.prefetch()
        response = source.build_response()
        response.stream = stream
        response.headers = resp.headers
        return response

    async def count_tokens(self, request: ChatRequest, transport: HTTPTransport) -> int | None:
        """The provider's count of ``request``'s prompt, or ``None`` if it offers none."""
        http = self.encode_count(request)
        if http is None:
            return None
        self.check_media(request)
        try:
            status, headers, body = await transport.request(
                http.method, http.url, http.headers, http.content
            )
            if status >= 300:
                raise self._status_error(status, headers, body, http.url)
            try:
                return self.decode_count(status, headers, body)
            except (KeyError, TypeError, ValueError) as exc:
                raise APIResponseError(
                    f"{self.label} sent a token count aio_llm cannot read ({exc!r})",
                    provider=self.label,
                    status_code=status,
                ) from None
        except APIError as exc:
            self.scrub(exc)
            raise

    async def embed(
        self, texts: list[str], model: str, transport: HTTPTransport, **params: Any
    ) -> EmbeddingResponse:
        http = self.encode_embed(texts, model, **params)
        log = _wirelog.http.isEnabledFor(DEBUG)
        answered = False
        if log:
            _wirelog.sent(self.label, http.method, http.url, http.content, self.secrets)
        start = time.perf_counter()
        try:
            status, headers, body = await transport.request(
                http.method, http.url, http.headers, http.content
            )
            if log:
                answered = True
                self._log_answer(http, status, headers, start, body)
            if status >= 300:
                raise self._status_error(status, headers, body, http.url)
            response = self.decode_embed(model, status, headers, body)
            if len(response.vectors) != len(texts):
                raise APIResponseError(
                    f"{self.label} returned {len(response.vectors)} vectors for {len(texts)} texts",
                    provider=self.label,
                    status_code=status,
                )
            return response
        except APIError as exc:
            self.scrub(exc)
            if log and not answered:
                self._log_failure(http, exc, start)
            raise


class _StreamSource:
    """Feeds a streaming HTTP body through the provider's framing into its decoder."""

    __slots__ = ("_decoder", "_frames", "_iter", "_provider", "_resp", "_start", "_ttft")

    def __init__(
        self,
        provider: Provider,
        resp: StreamingHTTPResponse,
        decoder: StreamDecoder,
        start: float,
    ) -> None:
        self._provider = provider
        self._resp = resp
        self._decoder = decoder
        self._frames = provider.framing()
        self._iter = resp.aiter_bytes().__aiter__()
        self._start = start
        self._ttft: float | None = None

    async def next_chunks(self) -> list[ChatChunk] | None:
        try:
            return await self._next_chunks()
        except APIError as exc:  # an in-band error may quote the key
            self._provider.scrub(exc)
            raise

    async def _next_chunks(self) -> list[ChatChunk] | None:
        decoder = self._decoder
        while True:
            if decoder.done:
                return None
            try:
                data = await self._iter.__anext__()
            except StopAsyncIteration:
                chunks: list[ChatChunk] = []
                for event in self._frames.flush():
                    chunks.extend(decoder.feed(event))
                if decoder.done or getattr(decoder, "complete", False):
                    return chunks or None
                raise StreamError(
                    "the stream ended before the provider's end-of-stream marker",
                    provider=self._provider.label,
                    # cut before anything arrived: as transient as a reset
                    should_retry=self._ttft is None or None,
                ) from None
            except APIConnectionError as exc:
                exc.provider = self._provider.label
                raise StreamError(
                    f"the stream broke off: {exc.message}", provider=self._provider.label
                ) from exc
            except APIResponseError as exc:
                exc.provider = self._provider.label
                raise
            out: list[ChatChunk] = []
            for event in self._frames.feed(data):
                out.extend(decoder.feed(event))
            if out:
                if self._ttft is None:
                    self._ttft = (time.perf_counter() - self._start) * 1000.0
                return out

    def build_response(self) -> ChatResponse:
        response = self._decoder.build_response()
        response.latency_ms = (time.perf_counter() - self._start) * 1000.0
        return response

    async def aclose(self) -> None:
        await self._resp.aclose()
