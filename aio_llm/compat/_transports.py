"""The ``app.ai`` "transports": one provider behind ``chat_completion(messages=..., model=...)``.

In aio_llm's own words these are thin provider adapters, not HTTP
transports: each holds one provider (``OpenAIProvider``,
``AnthropicProvider``, ``OpenRouterProvider``, ``MockProvider``) and sends
through a client with no middleware, so a call is exactly one provider
request. ``chat_completion`` blocks (through ``LLMClient``'s event-loop
thread, so it also works inside a running loop); ``achat_completion`` is
the async twin. Inside ``async with transport:`` the async calls share one
connection pool; outside it each async call opens and closes its own.

``LLM_FORCE_MOCK=1`` turns every one of them into the mock.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import anyio

from ..client._client import AsyncLLMClient
from ..client._sync import LLMClient
from ..config import ClientConfig
from ..providers import MockProvider, Provider, create_provider
from ..types import ChatRequest, ChatResponse, MessageInput

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["AnthropicTransport", "MockLLMTransport", "OpenAITransport", "OpenRouterTransport"]


class _ProviderTransport:
    """One provider; a blocking client opened on first use, an async one in ``async with``."""

    kind: ClassVar[str] = ""

    def __init__(
        self,
        provider: Provider,
        *,
        model: str | None = None,
        config: ClientConfig | None = None,
        http_client: object = None,
    ) -> None:
        self.config = config if config is not None else ClientConfig.from_env()
        self.provider = provider
        self.model = model
        self._http_client = http_client
        self._sync: LLMClient | None = None
        self._async: AsyncLLMClient | None = None
        self._lock = threading.Lock()

    @classmethod
    def _build(
        cls, api_key: str | None, base_url: str | None, config: ClientConfig | None
    ) -> tuple[Provider, ClientConfig]:
        cfg = config if config is not None else ClientConfig.from_env()
        if cfg.force_mock:
            return MockProvider(), cfg
        return create_provider(cls.kind, api_key=api_key, base_url=base_url), cfg

    def _new_async(self) -> AsyncLLMClient:
        return AsyncLLMClient(
            self.provider,
            model=self.model,
            config=self.config,
            middleware=[],
            http_client=self._http_client,
        )

    def _blocking(self) -> LLMClient:
        if self._http_client is not None:
            raise TypeError(
                "this transport was given an HTTP session, which belongs to its event loop: "
                "use `await transport.achat_completion(...)` in that loop"
            )
        with self._lock:
            if self._sync is None:
                self._sync = LLMClient(
                    self.provider, model=self.model, config=self.config, middleware=[]
                )
            return self._sync

    # -- the ``app.ai`` client's API ---------------------------------------------------------
    def chat_completion(
        self, messages: Sequence[MessageInput], model: str | None = None, **params: Any
    ) -> ChatResponse:
        """One chat completion, blocking; ``params`` are ``ChatRequest`` fields."""
        return self._blocking().chat(messages, model=model, **params)

    async def achat_completion(
        self, messages: Sequence[MessageInput], model: str | None = None, **params: Any
    ) -> ChatResponse:
        """One chat completion in the caller's event loop."""
        if self._async is not None:
            return await self._async.chat(messages, model=model, **params)
        async with self._new_async() as client:
            return await client.chat(messages, model=model, **params)

    # -- lifetime ---------------------------------------------------------------
    def close(self) -> None:
        """Close the blocking client, if one was opened (idempotent)."""
        with self._lock:
            client, self._sync = self._sync, None
        if client is not None:
            client.close()

    def __enter__(self) -> _ProviderTransport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> _ProviderTransport:
        if self._async is not None:
            raise RuntimeError("this transport is already open")
        client = self._new_async()
        await client.__aenter__()
        self._async = client
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        client, self._async = self._async, None
        if client is not None:
            await client.aclose()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} provider={self.provider.label!r}>"


class _KeyedTransport(_ProviderTransport):
    """An ``app.ai`` transport built from an API key (and optionally a base URL)."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        model: str | None = None,
        config: ClientConfig | None = None,
        http_client: object = None,
    ) -> None:
        provider, cfg = self._build(api_key, base_url, config)
        super().__init__(provider, model=model, config=cfg, http_client=http_client)


class OpenAITransport(_KeyedTransport):
    """OpenAI chat completions: ``OpenAITransport(api_key="sk-...").chat_completion(...)``.

    ``api_key`` and ``base_url`` default to ``OPENAI_API_KEY`` and
    ``OPENAI_BASE_URL`` (any OpenAI-compatible server that ends in ``/v1``).
    """

    kind = "openai"


class AnthropicTransport(_KeyedTransport):
    """Anthropic Messages: ``AnthropicTransport(api_key="sk-ant-...").chat_completion(...)``.

    ``api_key`` and ``base_url`` default to ``ANTHROPIC_API_KEY`` and
    ``ANTHROPIC_BASE_URL`` (the host, without ``/v1``).
    """

    kind = "anthropic"


class OpenRouterTransport(_ProviderTransport):
    """OpenRouter, ``app.ai``'s default: ``OpenRouterTransport(client).chat_completion(...)``.

    ``client`` may be:

    - an ``LLMClient`` or ``AsyncLLMClient``: calls go through it, its chain
      and its default provider (an ``AsyncLLMClient`` serves only
      ``achat_completion``, in its own event loop);
    - an ``httpx.AsyncClient`` or ``aiohttp.ClientSession``: the OpenRouter
      provider sends over it (async calls only, in the session's loop);
    - ``None``: an OpenRouter provider with its own connection pool, the key
      from ``api_key`` or ``OPENROUTER_API_KEY``.
    """

    kind = "openrouter"

    def __init__(
        self,
        client: object = None,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        model: str | None = None,
        config: ClientConfig | None = None,
    ) -> None:
        self._llm_client: LLMClient | AsyncLLMClient | None = None
        if isinstance(client, (LLMClient, AsyncLLMClient)):
            self._llm_client = client
            inner = client.async_client if isinstance(client, LLMClient) else client
            default = next(iter(inner.providers.values()))  # the default provider comes first
            super().__init__(default, model=model, config=inner.config)
            return
        provider, cfg = self._build(api_key, base_url, config)
        super().__init__(provider, model=model, config=cfg, http_client=client)

    def chat_completion(
        self, messages: Sequence[MessageInput], model: str | None = None, **params: Any
    ) -> ChatResponse:
        target = self._llm_client
        if isinstance(target, LLMClient):
            return target.chat(messages, model=model or self.model, **params)
        if isinstance(target, AsyncLLMClient):
            raise TypeError(
                "an AsyncLLMClient lives in its event loop: use "
                "`await transport.achat_completion(...)`, or pass an LLMClient"
            )
        return super().chat_completion(messages, model, **params)

    async def achat_completion(
        self, messages: Sequence[MessageInput], model: str | None = None, **params: Any
    ) -> ChatResponse:
        target = self._llm_client
        if isinstance(target, AsyncLLMClient):
            return await target.chat(messages, model=model or self.model, **params)
        if isinstance(target, LLMClient):
            call: Callable[[], ChatResponse] = functools.partial(
                target.chat, messages, model=model or self.model, **params
            )
            return await anyio.to_thread.run_sync(call)
        return await super().achat_completion(messages, model, **params)


class MockLLMTransport(_ProviderTransport):
    """No network: answers ``default_response`` (or the next of ``responses``).

    ``MockLLMTransport("Mock response")``; ``calls`` lists the requests it got.
    """

    kind = "mock"

    def __init__(
        self,
        default_response: str = "Test response",
        *,
        responses: Iterable[str] | None = None,
        latency: float = 0.0,
        model: str | None = None,
    ) -> None:
        self._mock = MockProvider(default_response, responses=responses, latency=latency)
        super().__init__(self._mock, model=model, config=ClientConfig())

    @property
    def default_response(self) -> str:
        return str(self._mock.default_response)

    @property
    def calls(self) -> list[ChatRequest]:
        """The requests received so far, oldest first."""
        return self._mock.calls
