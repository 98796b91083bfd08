"""``AsyncLLMClient``: one object that owns the transport, the chain and its lifetime."""

from __future__ import annotations

import enum
import hashlib
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import TYPE_CHECKING, Any, Literal, Self, overload

import anyio
import anyio.abc
from pydantic import ValidationError

from ..clock import SYSTEM_CLOCK, Clock
from ..config import ClientConfig
from ..errors import APITimeoutError, ClientStateError, InvalidRequestError
from ..pipeline import (
    MiddlewareLike,
    NeedsTaskGroup,
    SupportsMetrics,
    build_chain,
    build_embed_chain,
)
from ..providers import Provider, create_provider
from ..providers._detect import detect_provider
from ..tokens import TokenCount, count_request_tokens
from ..transports._create import create_transport
from ..transports.base import HTTPTransport
from ..types import ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, MessageInput
from . import _fanout
from ._host import Host
from ._options import check_headers, sdk_options
from ._progress import Progress
from ._session import Session
from ._stream import ChatStream
from ._timeout import (
    USE_CLIENT_DEFAULT,
    Timeout,
    TimeoutArg,
    UseClientDefault,
    call_timeout,
)

if TYPE_CHECKING:
    from ..batch import BatchJob, BatchStore
    from ..cost import CostManager
    from ..embeddings._embedders import EmbeddingBatcher
    from ..middleware.tracing._observability import Observability

__all__ = ["USE_CLIENT_DEFAULT", "AsyncLLMClient", "ChatStream", "UseClientDefault"]

if TYPE_CHECKING:
    from typing import TypeAlias

    import httpx

    ClientTimeout: TypeAlias = float | Timeout | httpx.Timeout | None | UseClientDefault
    """The constructor's ``timeout=``: seconds, ``Timeout``, ``httpx.Timeout``, None."""


RequestLike = ChatRequest | Mapping[str, Any]


class _State(enum.Enum):
    UNOPENED = 1
    OPENED = 2
    CLOSED = 3


class AsyncLLMClient:
    """An asyncio-native LLM client: ``async with AsyncLLMClient() as c`` (or ``open``/``aclose``).

    ``provider`` is the default provider kind: ``LLM_PROVIDER``, else the
    provider whose API key the environment sets (``LLM_FORCE_MOCK=1`` forces
    ``mock``; see docs/configuration.md). ``providers`` adds more by name, as
    instances or settings dicts (``{"api_key", "base_url", "kind"}``), so one
    client can route and fall back across providers. ``middleware=None``
    builds the default chain from ``config``; a list replaces it (first
    entry outermost).

    The official SDKs' constructor arguments work too: ``max_retries``
    (retries after the first attempt), ``timeout`` (seconds for the whole
    call, or a ``Timeout`` / ``httpx.Timeout`` with connect and read
    timeouts) and ``default_headers`` (sent with every request of the
    providers this client builds). They override ``config``.
    """

    def __init__(
        self,
        provider: str | Provider | None = None,
        *,
        model: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        middleware: Sequence[MiddlewareLike] | None = None,
        config: ClientConfig | None = None,
        http_client: object = None,
        providers: Mapping[str, Provider | Mapping[str, Any]] | None = None,
        cost_manager: CostManager | None = None,
        clock: Clock | None = None,
        observability: Observability | None = None,
        max_retries: int | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: ClientTimeout = USE_CLIENT_DEFAULT,
        default_headers: Mapping[str, str] | None = None,
    ) -> None:
        config = config if config is not None else ClientConfig.from_env()
        self.config = config = sdk_options(config, max_retries, timeout)
        headers = check_headers(default_headers, "default_headers")
        self.clock = clock or SYSTEM_CLOCK
        self.model = model or config.model
        self._providers: dict[str, Provider] = {}
        if isinstance(provider, Provider):
            default = provider
        else:
            kind = "mock" if config.force_mock else (provider or config.provider)
            if kind is None:
                kind = detect_provider()
            default = create_provider(
                kind, api_key=api_key, base_url=base_url or config.base_url, headers=headers
            )
        self._default_provider = default.label
        self._providers[default.label] = default
        for name, spec in (providers or {}).items():
            if isinstance(spec, Provider):
                spec.label = name
                self._providers[name] = spec
            else:
                settings = dict(spec)
                kind = str(settings.pop("kind", name))
                if config.force_mock:
                    kind = "mock"
                if headers:
                    settings["headers"] = {**headers, **settings.get("headers", {})}
                self._providers[name] = create_provider(kind, label=name, **settings)
        self._http_client = http_client
        self._user_middleware = list(middleware) if middleware is not None else None
        self._owns_cost_manager = cost_manager is None
        if cost_manager is None:
            from ..cost.manager import CostManager

            cost_manager = CostManager.from_config(config, clock=self.clock)
        self.cost_manager: CostManager = cost_manager
        self.observability = observability
        self._state = _State.UNOPENED
        self._host: Host | None = None
        self._exit_stack: AsyncExitStack | None = None
        """The host's stack while the client is open (batch jobs leave their clean-up on it)."""
        self._transport: HTTPTransport | None = None
        self._session: Session | None = None
        self._middleware: list[MiddlewareLike] = []
        self._metric_sources: list[SupportsMetrics] = []
        self._batchers: dict[str, EmbeddingBatcher] = {}
        self._key_digests: dict[str, tuple[str | None, str]] = {}

    # -- lifecycle -------------------------------------------------------------
    async def open(self) -> Self:
        """Open the client; it serves any task of this event loop until ``aclose()``.

        ``async with client:`` does this and ``aclose()``. Open and close
        explicitly when they happen in different places, such as a web app's
        startup and shutdown (a FastAPI lifespan): the client's resources
        live in a task of their own, so any task may close it.
        """
        if self._state is not _State.UNOPENED:
            raise ClientStateError(
                "this AsyncLLMClient is already open"
                if self._state is _State.OPENED
                else "this AsyncLLMClient is closed; create a new one"
            )
        self._state = _State.OPENED
        self._host = host = Host(self._setup, on_end=self._ended)
        try:
            await host.start()
        except BaseException:
            self._state = _State.CLOSED
            raise
        return self

    async def __aenter__(self) -> Self:
        return await self.open()

    async def _setup(self, stack: AsyncExitStack) -> None:
        """Open the transport, the task group and the middleware into ``stack`` (in the host)."""
        self._exit_stack = stack
        self._transport = create_transport(
            self.config.transport,
            self._http_client,
            max_connections=self.config.max_connections,
            max_body_size=self.config.max_response_bytes,
            connect_timeout=self.config.connect_timeout,
            read_timeout=self.config.read_timeout,
        )
        stack.push_async_callback(self._transport.aclose)
        task_group = await stack.enter_async_context(anyio.create_task_group())
        stack.callback(task_group.cancel_scope.cancel)
        if self._owns_cost_manager:
            stack.push_async_callback(self.cost_manager.aclose)
        self._middleware = self._build_middleware()
        # the lifecycle each middleware declares by its shape (see aio_llm.pipeline)
        observability = self.observability if self._user_middleware is None else None
        for mw in self._middleware:
            if isinstance(mw, SupportsMetrics):
                self._metric_sources.append(mw)
                if observability is not None:
                    unregister = observability.register_source(type(mw).__name__, mw.metrics)
                    stack.callback(unregister)
            if isinstance(mw, AbstractAsyncContextManager):
                await stack.enter_async_context(mw)
            if isinstance(mw, NeedsTaskGroup):
                mw.bind(task_group)
        self._session = Session(
            build_chain(self._middleware, self._dispatch),
            build_embed_chain(self._middleware, self._dispatch_embed),
            task_group,
            default_timeout=self.config.timeout,
            now=_event_loop_clock(),
            validation_retries=self.config.max_validation_retries,
        )

    def _ended(self) -> None:
        """The host ended (closed, or its background work failed): no more calls."""
        self._session = None
        self._exit_stack = None

    def _build_middleware(self) -> list[MiddlewareLike]:
        """The user's chain, or the default chain for ``config`` (first entry outermost)."""
        if self._user_middleware is not None:
            return list(self._user_middleware)
        from ..middleware._default import default_middleware

        if self.observability is None:
            from ..middleware.tracing._observability import Observability

            self.observability = Observability(name=f"client-{id(self):x}")
        return default_middleware(
            self.config,
            clock=self.clock,
            cost_manager=self.cost_manager,
            providers=self._providers,
            default_provider=self._default_provider,
            tenant=self.tenant_of,
            observability=self.observability,
            client=self,
        )

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Cancel background work and close every connection; from any task, idempotent.

        Returns once everything the client held is closed, even if the
        calling task is cancelled meanwhile. Raises what made the client's
        background work fail, if anything did.
        """
        self._state = _State.CLOSED
        self._session = None
        host, self._host = self._host, None
        if host is not None:
            await host.stop()

    @property
    def closed(self) -> bool:
        """True once ``aclose()`` was called (or the client's background work failed)."""
        return self._state is _State.CLOSED or (
            self._state is _State.OPENED and self._session is None
        )

    @property
    def middleware(self) -> tuple[MiddlewareLike, ...]:
        """The chain, outermost first (read-only once the client is open)."""
        return tuple(self._middleware if self._state is _State.OPENED else ())

    @property
    def providers(self) -> Mapping[str, Provider]:
        return dict(self._providers)

    def __repr__(self) -> str:
        session = self._session
        requests, in_flight = (session.requests, session.in_flight) if session else (0, 0)
        return (
            f"<AsyncLLMClient {self._state.name.lower()} provider={self._default_provider!r} "
            f"requests={requests} in_flight={in_flight}>"
        )

    # -- the innermost handler ------------------------------------------------
    async def _dispatch(self, request: ChatRequest) -> ChatResponse:
        """The innermost handler: the request's provider sends it over the transport."""
        name = request.provider or self._default_provider
        provider = self._providers.get(name)
        if provider is None:
            raise InvalidRequestError(
                f"unknown provider {name!r}; this client has {sorted(self._providers)}"
            )
        transport = self._transport
        assert transport is not None
        return await provider.send(request, transport)

    def _require_open(self) -> Session:
        session = self._session
        if session is None:
            raise self._state_error()
        return session

    def _state_error(self) -> ClientStateError:
        if self._state is _State.UNOPENED:
            return ClientStateError(
                "the client is not open: use `async with AsyncLLMClient() as client:`, "
                "or `await client.open()` first (and `await client.aclose()` at the end)"
            )
        host = self._host
        if self._state is _State.OPENED and host is not None and host.error is not None:
            return ClientStateError(
                f"the client's background work failed ({host.error!r}): close it and open a new one"
            )
        return ClientStateError("the client is closed: create a new AsyncLLMClient")

    # -- building requests ----------------------------------------------------
    def build_request(
        self,
        messages: Sequence[MessageInput] | None = None,
        *,
        model: str | None = None,
        request: RequestLike | None = None,
        **params: Any,
    ) -> ChatRequest:
        """Validate input into a ``ChatRequest``; ``InvalidRequestError`` if it is not one."""
        try:
            if request is not None:
                if messages is not None or params:
                    raise InvalidRequestError("pass either request= or messages and parameters")
                req = (
                    request
                    if isinstance(request, ChatRequest)
                    else ChatRequest.model_validate(request)
                )
                if model is not None:
                    req = req.model_copy(update={"model": model})
            else:
                if messages is None:
                    raise InvalidRequestError("messages are required")
                chosen = model or params.pop("model", None) or self.model
                if chosen is None:
                    raise InvalidRequestError("no model: pass model= or set LLM_MODEL")
                req = ChatRequest(model=chosen, messages=messages, **params)
        except ValidationError as exc:
            raise InvalidRequestError(_describe_validation(exc)) from None
        except TypeError as exc:
            raise InvalidRequestError(str(exc)) from None
        if req.provider is not None and req.provider not in self._providers:
            raise InvalidRequestError(
                f"unknown provider {req.provider!r}; this client has {sorted(self._providers)}"
            )
        return req

    def _coerce(self, item: RequestLike) -> ChatRequest:
        if isinstance(item, ChatRequest):
            return item
        if isinstance(item, Mapping):
            data = dict(item)
            if "model" not in data and self.model is not None:
                data["model"] = self.model
            return self.build_request(request=data)
        raise InvalidRequestError(
            f"requests must be ChatRequest objects or dicts, not {type(item).__name__}"
        )

    @staticmethod
    def _timeout(
        session: Session, request: ChatRequest | EmbeddingRequest, timeout: TimeoutArg
    ) -> float | None:
        """Seconds the call may take (``None``: no deadline)."""
        if timeout is USE_CLIENT_DEFAULT:
            return session.timeout_for(request)
        return call_timeout(timeout)

    # -- chat -----------------------------------------------------------------
    async def chat(
        self,
        messages: Sequence[MessageInput] | None = None,
        *,
        model: str | None = None,
        request: RequestLike | None = None,
        timeout: TimeoutArg = USE_CLIENT_DEFAULT,
        **params: Any,
    ) -> ChatResponse:
        """One chat completion through the whole chain.

        ``timeout`` (seconds) is one deadline over every retry and backoff;
        omitted, the request's or the client's default applies; ``None``
        disables it.
        """
        session = self._require_open()
        req = self.build_request(messages, model=model, request=request, **params)
        if req.stream:
            raise InvalidRequestError(
                "chat() returns the whole answer and cannot stream: use "
                "`async with client.stream(...) as s: async for chunk in s: ...`"
            )
        return await session.call(req, self._timeout(session, req, timeout))

    def stream(
        self,
        messages: Sequence[MessageInput] | None = None,
        *,
        model: str | None = None,
        request: RequestLike | None = None,
        timeout: TimeoutArg = USE_CLIENT_DEFAULT,
        **params: Any,
    ) -> ChatStream:
        """A streamed chat: ``async with client.stream(...) as s: async for chunk in s``.

        The deadline covers the whole ``async with`` block. Leaving the block
        early closes the HTTP response.
        """
        session = self._require_open()
        req = self.build_request(messages, model=model, request=request, **params)
        if not req.stream:
            req = req.model_copy(update={"stream": True})
        return ChatStream(session, req, self._timeout(session, req, timeout))

    # -- embeddings -------------------------------------------------------------
    async def embed(
        self,
        texts: str | Sequence[str],
        *,
        model: str | None = None,
        provider: str | None = None,
        timeout: TimeoutArg = USE_CLIENT_DEFAULT,
        **params: Any,
    ) -> EmbeddingResponse:
        """Embed ``texts`` (one string or a list) with an OpenAI-compatible provider.

        The request travels the embedding chain (tracing, budget, retry,
        breaker, rate limit; see ``aio_llm.pipeline.SupportsEmbeddings``);
        calls made at the same moment with no ``params`` share one upstream
        request. ``timeout`` as for ``chat``.
        """
        session = self._require_open()
        items = [texts] if isinstance(texts, str) else list(texts)
        if not items or not all(isinstance(t, str) for t in items):
            raise InvalidRequestError("texts must be a non-empty string or list of strings")
        chosen = model or self.model
        if not chosen:
            raise InvalidRequestError("no embedding model: pass model=")
        name = provider or self._default_provider
        if name not in self._providers:
            raise InvalidRequestError(f"unknown provider {name!r}")
        try:
            request = EmbeddingRequest(model=chosen, texts=items, provider=name, params=params)
        except ValidationError as exc:
            raise InvalidRequestError(_describe_validation(exc)) from None
        return await session.embed(request, self._timeout(session, request, timeout))

    async def _dispatch_embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        """The innermost embedding handler: the provider's batcher, or a request of its own."""
        name = request.provider or self._default_provider
        provider = self._providers[name]
        transport, session = self._transport, self._session
        assert transport is not None and session is not None
        if request.params:  # batches share one parameter set: send these on their own
            return await provider.embed(
                list(request.texts), request.model, transport, **request.params
            )
        return await self._batcher(session, name).embed(request.texts, request.model)

    # -- token counting ---------------------------------------------------------
    async def count_tokens(
        self,
        messages: Sequence[MessageInput] | None = None,
        *,
        model: str | None = None,
        request: RequestLike | None = None,
        timeout: TimeoutArg = USE_CLIENT_DEFAULT,
        local: bool = False,
        **params: Any,
    ) -> TokenCount:
        """The prompt tokens of a request, as ``chat`` would send it (an ``int``).

        Asks the provider where it offers a count (Anthropic's
        ``count_tokens``, Gemini's ``countTokens``, the Responses API's
        ``input_tokens``, Bedrock's ``CountTokens``): ``exact`` and free, one
        HTTP call, not through the middleware (no budget, cache or limiter).
        Otherwise, or with ``local=True``, counts here
        (``aio_llm.tokens.count_request_tokens``): exact with the model's
        tokenizer, else an estimate, ``exact=False``.
        """
        session = self._require_open()
        req = self.build_request(messages, model=model, request=request, **params)
        if not local:
            name = req.provider or self._default_provider
            provider = self._providers[name]
            transport = self._transport
            assert transport is not None
            scope = session.deadline_scope(self._timeout(session, req, timeout))
            scope = scope or anyio.CancelScope()
            counted: int | None = None
            with scope:
                counted = await provider.count_tokens(req, transport)
            if scope.cancelled_caught:
                raise APITimeoutError(
                    f"counting the tokens of a request to {req.model!r} did not finish "
                    "before its deadline",
                    provider=name,
                )
            if counted is not None:
                return TokenCount(counted, exact=True, source="provider")
        return count_request_tokens(req)

    def _batcher(self, session: Session, name: str) -> EmbeddingBatcher:
        """The embedding micro-batcher of provider ``name`` (calls within ~5 ms share one)."""
        batcher = self._batchers.get(name)
        if batcher is None:
            from ..embeddings._embedders import EmbeddingBatcher

            provider = self._providers[name]
            transport = self._transport
            assert transport is not None

            async def send(texts: list[str], model: str) -> EmbeddingResponse:
                return await provider.embed(texts, model, transport)

            batcher = self._batchers[name] = EmbeddingBatcher(send)
            batcher.bind(session.task_group)
        return batcher

    # -- fan-out --------------------------------------------------------------
    @overload
    async def gather(
        self,
        requests: Iterable[RequestLike],
        *,
        concurrency: int = ...,
        return_exceptions: Literal[False] = ...,
        progress: Progress = ...,
        via: str = ...,
    ) -> list[ChatResponse]: ...

    @overload
    async def gather(
        self,
        requests: Iterable[RequestLike],
        *,
        concurrency: int = ...,
        return_exceptions: bool,
        progress: Progress = ...,
        via: str = ...,
    ) -> list[ChatResponse | BaseException]: ...

    async def gather(
        self,
        requests: Iterable[RequestLike],
        *,
        concurrency: int = 16,
        return_exceptions: bool = False,
        progress: Progress = False,
        via: str = "live",
    ) -> list[ChatResponse] | list[ChatResponse | BaseException]:
        """Run ``requests`` with at most ``concurrency`` in flight; results in input order.

        Every request is validated before the first is sent. With
        ``return_exceptions=False`` the first failure cancels the others and
        is raised as itself; no task or connection outlives the call.
        ``via="batch"`` sends them through the provider's Batch API instead
        (``batch``): half the price, results within 24 hours.
        """
        if via == "batch":
            return await self.batch(
                requests, return_exceptions=return_exceptions, progress=progress
            )
        if via != "live":
            raise ValueError("via must be 'live' or 'batch'")
        session = self._require_open()
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        reqs = self._prepare(session, requests)
        return await _fanout.gather(session, reqs, concurrency, return_exceptions, progress)

    async def batch(
        self,
        requests: Iterable[RequestLike],
        *,
        return_exceptions: bool = False,
        progress: Progress = False,
        **options: Any,
    ) -> list[ChatResponse | BaseException]:
        """Send ``requests`` through the provider's Batch API and wait; results in input order.

        The cache answers what it can first; the budget reserves the rest at
        the batch price before anything is sent. Cancelling the call cancels
        the provider batches. ``options`` are those of ``batch_submit``.
        """
        from ..batch._run import gather_batch

        return await gather_batch(self, requests, return_exceptions, progress, options)

    async def batch_submit(
        self, requests: Iterable[RequestLike], *, store: Any = None, **options: Any
    ) -> BatchJob:
        """Submit ``requests`` to the provider's Batch API; a ``BatchJob`` to wait on.

        The job is kept in ``store`` (a ``BatchStore`` or a SQLite path;
        default ``$LLM_BATCH_STORE``), so ``batch_resume(job.id)`` finds it in
        another process. Options: ``poll_interval`` / ``max_poll_interval``
        (seconds), ``resubmit_expired`` (times), ``max_requests`` (per batch).
        """
        from ..batch import _job

        self._require_open()
        return await _job.submit(self, requests, store=self._batch_store(store), **options)

    async def batch_resume(self, job_id: str, *, store: Any = None) -> BatchJob:
        """The job ``job_id`` from ``store``, polled once; ``await job.results()`` to finish it."""
        from ..batch import _job

        self._require_open()
        job = _job.resume(self, job_id, store=self._batch_store(store))
        await job.refresh()
        return job

    def _batch_store(self, store: Any) -> BatchStore:
        from ..batch import BatchStore

        if isinstance(store, BatchStore):
            return store
        opened = BatchStore(store)
        assert self._exit_stack is not None
        self._exit_stack.callback(opened.close)
        return opened

    async def as_completed(
        self,
        requests: Iterable[RequestLike],
        *,
        concurrency: int = 16,
    ) -> AsyncGenerator[tuple[int, ChatResponse | BaseException], None]:
        """Yield ``(index, response or exception)`` as each request finishes.

        The requests run in the client's task group; leaving the loop early
        (or closing the iterator) cancels the ones still running.
        """
        session = self._require_open()
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        reqs = self._prepare(session, requests)
        async for item in _fanout.as_completed(session, reqs, concurrency):
            yield item

    def _prepare(
        self, session: Session, requests: Iterable[RequestLike]
    ) -> list[tuple[ChatRequest, float | None]]:
        """Every request validated with its timeout, before any is sent."""
        out = []
        for i, item in enumerate(requests):
            req = self._coerce(item)
            if req.stream:
                raise InvalidRequestError(
                    f"request {i} asks to stream, but gather() and as_completed() return "
                    "whole answers: stream it with client.stream(...)"
                )
            out.append((req, session.timeout_for(req)))
        return out

    # -- introspection -------------------------------------------------------------
    def metrics(self) -> dict[str, Any]:
        """A snapshot: requests, latency, tokens, cache/dedup hits, retries, breakers, cost.

        One name per figure (docs/observability.md, "Metric names"): the OpenTelemetry
        GenAI names where the conventions have one (``gen_ai.client.operation.duration``
        in seconds, ``gen_ai.client.token.usage``), else ``<component>.<figure>``.
        """
        session = self._session
        snapshot: dict[str, Any] = {"requests.in_flight": session.in_flight if session else 0}
        for source in self._metric_sources:
            snapshot.update(source.metrics())
        for batcher in self._batchers.values():
            for key, value in batcher.metrics().items():
                snapshot[key] = snapshot.get(key, 0) + value
        # without the Tracing middleware (a chain of the caller's own), the session counts
        snapshot.setdefault("requests.total", session.requests if session else 0)
        snapshot.setdefault("requests.errors", session.errors if session else 0)
        snapshot.setdefault("cost.total", self.cost_manager.get_metrics().total_cost)
        return snapshot

    def tenant_of(self, request: ChatRequest) -> str:
        """A tenant id for cache isolation: the end user and a hash of the API key."""
        name = request.provider or self._default_provider
        provider = self._providers.get(name)
        key = provider.api_key if provider is not None else None
        cached = self._key_digests.get(name)
        if cached is None or cached[0] != key:  # a provider's key may be rotated
            digest = hashlib.sha256(key.encode()).hexdigest()[:16] if key else "-"
            cached = self._key_digests[name] = (key, f"|{digest}")
        user = request.user
        return cached[1] if not user else user + cached[1]


def _event_loop_clock() -> Callable[[], float]:
    """The running event loop's clock (what cancel-scope deadlines use), cheaply.

    ``anyio.current_time()`` looks the backend up on every call; on asyncio
    the loop's own ``time`` is the same clock without that cost.
    """
    try:
        import asyncio

        return asyncio.get_running_loop().time
    except RuntimeError:  # another backend
        return anyio.current_time


def _describe_validation(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}" if loc else err["msg"])
    return "invalid request: " + "; ".join(parts)
