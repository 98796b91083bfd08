"""Talking to a provider's batch API: submit, retrieve, cancel, download results.

``batch_api(provider, transport)`` picks the adapter for a provider
(``OpenAIBatchAPI`` for OpenAI and OpenAI-compatible servers,
``AnthropicBatchAPI`` for Anthropic). Control-plane calls are retried on
429, 5xx and connection errors with capped exponential backoff and jitter on
the injected clock and rng; a create is retried only when the provider
certainly did not create the batch (an error status), or, for OpenAI, after
looking the batch up by its metadata.
"""

from __future__ import annotations

import logging
import random
import sys
from collections.abc import Iterator, Mapping
from typing import IO, Any, Protocol
from urllib.parse import urljoin, urlsplit

from .. import _json
from ..clock import Clock
from ..errors import APIConnectionError, APIError, APIStatusError, InvalidRequestError
from ..providers.base import Provider
from ..transports.base import DEFAULT_MAX_BODY_SIZE, HTTPTransport
from . import _wire
from ._wire import LineResult, RemoteStatus

__all__ = ["AnthropicBatchAPI", "BatchAPI", "OpenAIBatchAPI", "batch_api"]

logger = logging.getLogger("aio_llm.batch")

_ATTEMPTS = 5
_MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_ERROR_BODY_LIMIT = 1 << 20
_FIND_PAGES = 50
"""At most this many pages of 100 batches are searched for a lost create."""
_FIND_SLACK = 3600.0
"""Seconds of clock difference tolerated between this host and the provider."""


class BatchAPI(Protocol):
    """What a job needs from a provider's batch service."""

    limits: _wire.Limits
    one_model_per_batch: bool

    def entry(self, custom_id: str, body: bytes) -> bytes:
        """One request, encoded for the batch (its size counts against ``limits``)."""
        ...

    async def create(self, entries: list[bytes], metadata: dict[str, str]) -> RemoteStatus: ...

    async def find(
        self, metadata: dict[str, str], *, since: float | None = None
    ) -> RemoteStatus | None:
        """A batch created (after ``since``, epoch seconds) with ``metadata``, if the
        provider can tell."""
        ...

    async def retrieve(self, remote_id: str) -> RemoteStatus: ...

    async def cancel(self, remote_id: str) -> RemoteStatus: ...

    async def results(self, status: RemoteStatus, spool: IO[bytes]) -> Iterator[LineResult]:
        """The result lines of an ended batch, downloaded into ``spool`` and read from it.

        The files go to disk as they arrive, so their size is not limited by
        ``max_response_bytes`` (which bounds each line instead): read the
        iterator before closing ``spool``.
        """
        ...


class _Base:
    def __init__(
        self,
        provider: Provider,
        transport: HTTPTransport,
        clock: Clock,
        rng: random.Random,
        line_limit: int = DEFAULT_MAX_BODY_SIZE,
    ):
        self.provider = provider
        self.transport = transport
        self.clock = clock
        self.rng = rng
        self.line_limit = line_limit

    def _headers(self, **extra: str) -> dict[str, str]:
        headers = dict(getattr(self.provider, "_headers", {}))
        headers.update(extra)
        return headers

    async def _call(
        self,
        method: str,
        url: str,
        content: bytes = b"",
        *,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
    ) -> bytes:
        """Send, retrying transient failures; the body of a 2xx answer, else a typed error."""
        hdrs = dict(headers) if headers is not None else self._headers()
        if method == "GET":
            hdrs.pop("Content-Type", None)
            hdrs.pop("content-type", None)
        for attempt in range(_ATTEMPTS):
            try:
                status, resp_headers, body = await self.transport.request(
                    method, url, hdrs, content
                )
            except APIConnectionError as exc:
                exc.provider = self.provider.label
                if not idempotent or attempt == _ATTEMPTS - 1:
                    raise
                await self.clock.sleep(self._backoff(attempt, None))
                continue
            if status < 400:
                return body
            error = self.provider.decode_error(status, resp_headers, body)
            if not _transient(status) or attempt == _ATTEMPTS - 1:
                raise error
            await self.clock.sleep(self._backoff(attempt, error.retry_after))
        raise AssertionError("unreachable")

    async def _download(self, url: str, spool: IO[bytes]) -> None:
        """Append the body of ``GET url`` to ``spool`` as it arrives, retrying transient failures.

        A redirect to the same origin keeps the headers; one to another
        origin is followed without any of them (the API key stays home).
        """
        start = spool.tell()
        for attempt in range(_ATTEMPTS):
            spool.seek(start)
            spool.truncate()
            try:
                error = await self._download_once(url, spool)
            except APIConnectionError as exc:
                exc.provider = self.provider.label
                if attempt == _ATTEMPTS - 1:
                    raise
                await self.clock.sleep(self._backoff(attempt, None))
                continue
            if error is None:
                return
            if not _transient(error.status_code or 0) or attempt == _ATTEMPTS - 1:
                raise error
            await self.clock.sleep(self._backoff(attempt, error.retry_after))
        raise AssertionError("unreachable")

    async def _download_once(self, url: str, spool: IO[bytes]) -> APIError | None:
        headers = {k: v for k, v in self._headers().items() if k.lower() != "content-type"}
        origin = _origin(url)
        for _ in range(_MAX_REDIRECTS + 1):
            resp = await self.transport.stream("GET", url, headers, b"", max_body_size=sys.maxsize)
            try:
                if resp.status in _REDIRECTS and resp.headers.get("location"):
                    url = urljoin(url, resp.headers["location"])
                    if _origin(url) != origin:
                        headers = {}
                    continue
                if resp.status >= 400:
                    body = bytearray()
                    async for chunk in resp.aiter_bytes():
                        body += chunk
                        if len(body) > _ERROR_BODY_LIMIT:
                            break
                    return self.provider.decode_error(resp.status, resp.headers, bytes(body))
                async for chunk in resp.aiter_bytes():
                    spool.write(chunk)
                spool.write(b"\n")  # the next file starts on a line of its own
                return None
            finally:
                await resp.aclose()
        raise APIError(
            f"the batch results were redirected more than {_MAX_REDIRECTS} times",
            provider=self.provider.label,
        )

    def _lines(self, spool: IO[bytes]) -> Iterator[bytes]:
        """The lines of ``spool`` from its start; one longer than ``line_limit`` is skipped."""
        spool.seek(0)
        limit = self.line_limit
        while raw := spool.readline(limit + 1):
            if len(raw) > limit and not raw.endswith(b"\n"):
                while raw and not raw.endswith(b"\n"):
                    raw = spool.readline(1 << 20)
                logger.warning(
                    "a %s batch result line is longer than max_response_bytes (%d): skipped",
                    self.provider.label,
                    limit,
                )
                continue
            yield raw

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, 60.0)
        return min(0.5 * 2.0**attempt, 30.0) * (1 - 0.5 * self.rng.random())


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.netloc.rpartition("@")[2]).lower()


def _transient(status: int) -> bool:
    return status in (408, 409, 429) or status >= 500


def _loads(body: bytes) -> Any:
    try:
        return _json.loads(body)
    except ValueError:
        raise APIError("the batch API sent a body that is not JSON") from None


class OpenAIBatchAPI(_Base):
    """OpenAI's Files + Batches API (also OpenAI-compatible servers that offer it)."""

    limits = _wire.OPENAI_LIMITS
    one_model_per_batch = True
    endpoint = "/v1/chat/completions"

    def entry(self, custom_id: str, body: bytes) -> bytes:
        return _wire.openai_line(custom_id, self.endpoint, body)

    async def create(self, entries: list[bytes], metadata: dict[str, str]) -> RemoteStatus:
        base = self.provider.base_url
        ctype, form = _wire.multipart_file(
            b"".join(entries), filename="batch.jsonl", fields={"purpose": "batch"}
        )
        uploaded = _loads(
            await self._call(
                "POST", f"{base}/files", form, headers=self._headers(**{"Content-Type": ctype})
            )
        )
        file_id = uploaded.get("id") if isinstance(uploaded, dict) else None
        if not isinstance(file_id, str):
            raise APIError("the files API answered without a file id", provider=self.provider.label)
        body = _json.dumps(
            {
                "input_file_id": file_id,
                "endpoint": self.endpoint,
                "completion_window": "24h",
                "metadata": metadata,
            }
        )
        started = self.clock.time()
        for attempt in range(_ATTEMPTS):
            try:
                data = _loads(await self._call("POST", f"{base}/batches", body, idempotent=False))
                return _wire.parse_openai_batch(data)
            except APIConnectionError:
                # the batch may exist: look for it before sending the create again
                found = await self.find(metadata, since=started)
                if found is not None:
                    return found
                if attempt == _ATTEMPTS - 1:
                    raise
                await self.clock.sleep(self._backoff(attempt, None))
        raise AssertionError("unreachable")

    async def find(
        self, metadata: dict[str, str], *, since: float | None = None
    ) -> RemoteStatus | None:
        # the list is newest first: page back until the batches are older than ``since``
        oldest = None if since is None else since - _FIND_SLACK
        after = ""
        for _ in range(_FIND_PAGES):
            url = f"{self.provider.base_url}/batches?limit=100{after}"
            data = _loads(await self._call("GET", url))
            items = data.get("data") if isinstance(data, dict) else None
            if not isinstance(items, list) or not items:
                return None
            for item in items:
                status = _wire.parse_openai_batch(item)
                if all(status.metadata.get(k) == v for k, v in metadata.items()):
                    return status
            created = items[-1].get("created_at") if isinstance(items[-1], dict) else None
            if not data.get("has_more") or (
                oldest is not None and isinstance(created, int | float) and created < oldest
            ):
                return None
            after = f"&after={items[-1].get('id')}"
        return None

    async def retrieve(self, remote_id: str) -> RemoteStatus:
        data = _loads(await self._call("GET", f"{self.provider.base_url}/batches/{remote_id}"))
        return _wire.parse_openai_batch(data)

    async def cancel(self, remote_id: str) -> RemoteStatus:
        url = f"{self.provider.base_url}/batches/{remote_id}/cancel"
        return _wire.parse_openai_batch(_loads(await self._call("POST", url)))

    async def results(self, status: RemoteStatus, spool: IO[bytes]) -> Iterator[LineResult]:
        for file_id in (status.output_file_id, status.error_file_id):
            if file_id:
                await self._download(f"{self.provider.base_url}/files/{file_id}/content", spool)
        return _wire.parse_openai_results(self._lines(spool))


class AnthropicBatchAPI(_Base):
    """Anthropic's Message Batches API."""

    limits = _wire.ANTHROPIC_LIMITS
    one_model_per_batch = False

    @property
    def _url(self) -> str:
        base = self.provider.base_url
        root = base[:-3] if base.endswith("/v1") else base
        return f"{root}/v1/messages/batches"

    def entry(self, custom_id: str, body: bytes) -> bytes:
        return _wire.anthropic_entry(custom_id, body)

    async def create(self, entries: list[bytes], metadata: dict[str, str]) -> RemoteStatus:
        # the API keeps no metadata: a create that may have gone through is not sent again
        body = _wire.anthropic_create_body(entries)
        data = _loads(await self._call("POST", self._url, body, idempotent=False))
        return _wire.parse_anthropic_batch(data)

    async def find(
        self, metadata: dict[str, str], *, since: float | None = None
    ) -> RemoteStatus | None:
        return None

    async def retrieve(self, remote_id: str) -> RemoteStatus:
        return _wire.parse_anthropic_batch(
            _loads(await self._call("GET", f"{self._url}/{remote_id}"))
        )

    async def cancel(self, remote_id: str) -> RemoteStatus:
        data = _loads(await self._call("POST", f"{self._url}/{remote_id}/cancel"))
        return _wire.parse_anthropic_batch(data)

    async def results(self, status: RemoteStatus, spool: IO[bytes]) -> Iterator[LineResult]:
        url = status.results_url or f"{self._url}/{status.id}/results"
        if _origin(url) != _origin(self._url):
            # never send the API key to another host than the provider's own
            url = f"{self._url}/{status.id}/results"
        await self._download(url, spool)
        return _wire.parse_anthropic_results(self._lines(spool))


def batch_api(
    provider: Provider,
    transport: HTTPTransport,
    clock: Clock,
    rng: random.Random,
    line_limit: int = DEFAULT_MAX_BODY_SIZE,
) -> BatchAPI:
    """The batch adapter for ``provider``; ``InvalidRequestError`` if it has no batch API.

    ``line_limit`` bounds one line of a results file (the client's ``max_response_bytes``).
    """
    from ..providers.anthropic import AnthropicProvider
    from ..providers.openai import OpenAIProvider

    if isinstance(provider, AnthropicProvider):
        return AnthropicBatchAPI(provider, transport, clock, rng, line_limit)
    if isinstance(provider, OpenAIProvider) and provider.name in ("openai", "openai-compatible"):
        return OpenAIBatchAPI(provider, transport, clock, rng, line_limit)
    raise InvalidRequestError(
        f"provider {provider.label!r} ({provider.name}) has no batch API aio_llm can use; "
        "use via='live'"
    )


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, APIStatusError) and exc.status_code == 404
