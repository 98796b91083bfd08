"""Ray Data: one aio_llm client per Ray actor, used from ``Dataset.map_batches``.

Install the extra: ``pip install 'aio-llm[ray]'``. Then::

    import ray
    from aio_llm.integrations.ray import LLMPredictor

    ds = ray.data.read_json("prompts.jsonl")          # a "prompt" or "messages" column
    out = ds.map_batches(
        LLMPredictor,
        fn_constructor_kwargs={"client_options": {
            "provider": "openai", "model": "gpt-4o-mini",
            "config": {"rpm": 5000, "ratelimit_backend": "redis://redis:6379/0",
                       "daily_budget": 50.0, "budget_backend": "redis://redis:6379/0",
                       "cache_enabled": True, "cache_backend": "redis://redis:6379/0"},
        }},
        concurrency=16,        # actors, on any number of nodes
        batch_size=256,
    )

Each actor builds one ``AsyncLLMClient`` in an event loop of its own (a
blocking portal thread) and answers each batch with ``client.gather`` at
``concurrency`` requests in flight. Every actor on every node that points
``ratelimit_backend``, ``budget_backend`` and ``cache_backend`` at the same
Redis shares ONE rate limit (a GCRA schedule in Redis), ONE budget (a
Redis ledger: the worst case is reserved before each request, so N actors
together cannot overshoot it) and ONE cache. API keys are best read from
each worker's environment (``OPENAI_API_KEY`` ...), which is what happens
when ``client_options`` names none.

The output batch has the input columns plus ``response`` (the text, or
``None``), ``error`` (``"ErrorType: message"`` or ``None``), ``cost`` (USD),
``input_tokens``, ``output_tokens`` and ``cached``. A request the budget
refuses is not sent: its row carries ``BudgetExceededError``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

try:
    import ray  # noqa: F401  (only to refuse early, with the extra's name, when it is missing)
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "aio_llm.integrations.ray needs Ray: install the extra with pip install 'aio-llm[ray]'"
    ) from exc

from anyio.from_thread import BlockingPortal, start_blocking_portal

from ..client._client import AsyncLLMClient
from ..config import ClientConfig
from ..types import ChatResponse

__all__ = ["LLMPredictor"]

ClientFactory = Callable[[], AsyncLLMClient]


class LLMPredictor:
    """A callable class for ``Dataset.map_batches``: one client per actor (see the module doc).

    ``client_options`` are ``AsyncLLMClient`` keyword arguments (``config``
    may be a dict of ``ClientConfig`` fields); or pass ``client_factory``, a
    picklable function that builds the client. Each row is a request: a
    ``messages`` column (a list of ``{"role", "content"}``) or a ``prompt``
    column (one user message, after ``system`` if given); ``request_options``
    (e.g. ``{"max_tokens": 256}``) apply to every row.
    """

    def __init__(
        self,
        client_options: Mapping[str, Any] | None = None,
        *,
        client_factory: ClientFactory | None = None,
        prompt_column: str = "prompt",
        messages_column: str = "messages",
        system: str | None = None,
        request_options: Mapping[str, Any] | None = None,
        concurrency: int = 16,
    ) -> None:
        if client_factory is not None and client_options is not None:
            raise ValueError("pass client_options or client_factory, not both")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.prompt_column = prompt_column
        self.messages_column = messages_column
        self.system = system
        self.request_options = dict(request_options or {})
        self.concurrency = concurrency
        factory = client_factory or _factory(dict(client_options or {}))
        self._portal_cm: AbstractContextManager[BlockingPortal] | None = start_blocking_portal(
            "asyncio"
        )
        self._portal = self._portal_cm.__enter__()
        try:
            self.client: AsyncLLMClient = self._portal.call(_build, factory)
            self._client_cm = self._portal.wrap_async_context_manager(self.client)
            self._client_cm.__enter__()
        except BaseException:
            self._portal_cm.__exit__(None, None, None)
            self._portal_cm = None
            raise

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """Answer one batch (a dict of columns) and return it with the result columns added."""
        if self._portal_cm is None:
            raise RuntimeError("the predictor is closed")
        requests = self._requests(batch)
        results = self._portal.call(self._gather, requests)
        out = {k: _as_list(v) for k, v in batch.items()}
        out["response"] = [r.content if isinstance(r, ChatResponse) else None for r in results]
        out["error"] = [
            None if isinstance(r, ChatResponse) else f"{type(r).__name__}: {r}" for r in results
        ]
        out["cost"] = [(r.cost or 0.0) if isinstance(r, ChatResponse) else 0.0 for r in results]
        out["input_tokens"] = [
            r.usage.input_tokens if isinstance(r, ChatResponse) else 0 for r in results
        ]
        out["output_tokens"] = [
            r.usage.output_tokens if isinstance(r, ChatResponse) else 0 for r in results
        ]
        out["cached"] = [isinstance(r, ChatResponse) and r.cached for r in results]
        return out

    async def _gather(self, requests: list[dict[str, Any]]) -> list[ChatResponse | BaseException]:
        return await self.client.gather(
            requests, concurrency=self.concurrency, return_exceptions=True
        )

    def _requests(self, batch: Mapping[str, Any]) -> list[dict[str, Any]]:
        if self.messages_column in batch:
            rows: Sequence[Any] = _as_list(batch[self.messages_column])
            messages = [[dict(m) for m in row] for row in rows]
        elif self.prompt_column in batch:
            head = [{"role": "system", "content": self.system}] if self.system else []
            messages = [
                [*head, {"role": "user", "content": str(p)}]
                for p in _as_list(batch[self.prompt_column])
            ]
        else:
            raise KeyError(
                f"the batch has neither a {self.messages_column!r} nor a "
                f"{self.prompt_column!r} column (it has {sorted(batch)})"
            )
        return [{"messages": m, **self.request_options} for m in messages]

    def close(self) -> None:
        """Close the client and stop the actor's event-loop thread (idempotent)."""
        cm, self._portal_cm = self._portal_cm, None
        if cm is None:
            return
        try:
            self._client_cm.__exit__(None, None, None)
        finally:
            cm.__exit__(None, None, None)

    def __del__(self) -> None:
        if getattr(self, "_portal_cm", None) is not None:
            self.close()

    def __repr__(self) -> str:
        state = "closed" if self._portal_cm is None else "open"
        return f"<LLMPredictor {state} concurrency={self.concurrency} client={self.client!r}>"


def _factory(options: dict[str, Any]) -> ClientFactory:
    config = options.pop("config", None)
    if isinstance(config, Mapping):
        config = ClientConfig.model_validate({**ClientConfig.from_env().model_dump(), **config})

    def build() -> AsyncLLMClient:
        return AsyncLLMClient(config=config, **options)

    return build


async def _build(factory: ClientFactory) -> AsyncLLMClient:
    return factory()


def _as_list(column: Any) -> list[Any]:
    """A column (numpy array, pandas Series, list) as a plain list."""
    tolist = getattr(column, "tolist", None)
    return list(tolist()) if callable(tolist) else list(column)
