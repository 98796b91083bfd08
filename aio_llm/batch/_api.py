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

import random
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from .. import _json
from ..clock import Clock
from ..errors import APIConnectionError, APIError, APIStatusError, InvalidRequestError
from ..providers.base import Provider
from ..transports.base import HTTPTransport
from . import _wire
from ._wire import LineResult, RemoteStatus

__all__ = ["AnthropicBatchAPI", "BatchAPI", "OpenAIBatchAPI", "batch_api"]

_ATTEMPTS = 5


class BatchAPI(Protocol):
    """What a job needs from a provider's batch service."""

    limits: _wire.Limits
    one_model_per_batch: bool

    def entry(self, custom_id: str, body: bytes) -> bytes:
        """One request, encoded for the batch (its size counts against ``limits``)."""
        ...

    async def create(self, entries: list[bytes], metadata: dict[str, str]) -> RemoteStatus: ...

    async def find(self, metadata: dict[str, str]) -> RemoteStatus | None:
        """A batch created earlier with exactly ``metadata``, if the provider can tell."""
        ...

    async def retrieve(self, remote_id: str) -> RemoteStatus: ...

    async def cancel(self, remote_id: str) -> RemoteStatus: ...

    async def results(self, status: RemoteStatus) -> Iterator[LineResult]: ...


class _Base:
    def __init__(
        self, provider: Provider, transport: HTTPTransport, clock: Clock, rng: random.Random
    ):
        self.provider = provider
        self.transport = transport
        self.clock = clock
        self.rng = rng

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

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, 60.0)
        return min(0.5 * 2.0**attempt, 30.0) * (1 - 0.5 * self.rng.random())


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
        for attempt in range(_ATTEMPTS):
            try:
                data = _loads(await self._call("POST", f"{base}/batches", body, idempotent=False))
                return _wire.parse_openai_batch(data)
            except APIConnectionError:
                # the batch may exist: look for it before sending the create again
                found = await self.find(metadata)
                if found is not None:
                    return found
                if attempt == _ATTEMPTS - 1:
                    raise
                await self.clock.sleep(self._backoff(attempt, None))
        raise AssertionError("unreachable")

    async def find(self, metadata: dict[str, str]) -> RemoteStatus | None:
        data = _loads(await self._call("GET", f"{self.provider.base_url}/batches?limit=100"))
        for item in data.get("data") or () if isinstance(data, dict) else ():
            status = _wire.parse_openai_batch(item)
            if all(status.metadata.get(k) == v for k, v in metadata.items()):
                return status
        return None

    async def retrieve(self, remote_id: str) -> RemoteStatus:
        data = _loads(await self._call("GET", f"{self.provider.base_url}/batches/{remote_id}"))
        return _wire.parse_openai_batch(data)

    async def cancel(self, remote_id: str) -> RemoteStatus:
        url = f"{self.provider.base_url}/batches/{remote_id}/cancel"
        return _wire.parse_openai_batch(_loads(await self._call("POST", url)))

    async def results(self, status: RemoteStatus) -> Iterator[LineResult]:
        contents = []
        for file_id in (status.output_file_id, status.error_file_id):
            if file_id:
                url = f"{self.provider.base_url}/files/{file_id}/content"
                contents.append(await self._call("GET", url))
        return (line for c in contents for line in _wire.parse_openai_results(c))


class AnthropicBatchAPI(_Base):
    """Anthropic's Message Batches API."""

    limits = _wire.ANTHROPIC_LIMITS
    one_model_per_batch = False

    def __init__(
        self, provider: Provider, transport: HTTPTransport, clock: Clock, rng: random.Random
    ) -> None:
        super().__init__(provider, transport, clock, rng)
        base = provider.base_url
        root = base[:-3] if base.endswith("/v1") else base
        self._url = f"{root}/v1/messages/batches"

    def entry(self, custom_id: str, body: bytes) -> bytes:
        return _wire.anthropic_entry(custom_id, body)

    async def create(self, entries: list[bytes], metadata: dict[str, str]) -> RemoteStatus:
        # the API keeps no metadata: a create that may have gone through is not sent again
        body = _wire.anthropic_create_body(entries)
        data = _loads(await self._call("POST", self._url, body, idempotent=False))
        return _wire.parse_anthropic_batch(data)

    async def find(self, metadata: dict[str, str]) -> RemoteStatus | None:
        return None

    async def retrieve(self, remote_id: str) -> RemoteStatus:
        return _wire.parse_anthropic_batch(
            _loads(await self._call("GET", f"{self._url}/{remote_id}"))
        )

    async def cancel(self, remote_id: str) -> RemoteStatus:
        data = _loads(await self._call("POST", f"{self._url}/{remote_id}/cancel"))
        return _wire.parse_anthropic_batch(data)

    async def results(self, status: RemoteStatus) -> Iterator[LineResult]:
        url = status.results_url or f"{self._url}/{status.id}/results"
        if not url.startswith(self._url):
            # never send the API key to another host than the provider's own
            url = f"{self._url}/{status.id}/results"
        return _wire.parse_anthropic_results(await self._call("GET", url))


def batch_api(
    provider: Provider, transport: HTTPTransport, clock: Clock, rng: random.Random
) -> BatchAPI:
    """The batch adapter for ``provider``; ``InvalidRequestError`` if it has no batch API."""
    from ..providers.anthropic import AnthropicProvider
    from ..providers.openai import OpenAIProvider

    if isinstance(provider, AnthropicProvider):
        return AnthropicBatchAPI(provider, transport, clock, rng)
    if isinstance(provider, OpenAIProvider) and provider.name in ("openai", "openai-compatible"):
        return OpenAIBatchAPI(provider, transport, clock, rng)
    raise InvalidRequestError(
        f"provider {provider.label!r} ({provider.name}) has no batch API aio_llm can use; "
        "use via='live'"
    )


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, APIStatusError) and exc.status_code == 404
