"""Client settings: ``ClientConfig`` and the ``LLM_*`` environment variables.

Every field can be set from the environment as ``LLM_<FIELD>`` (upper case),
e.g. ``LLM_MAX_RETRIES=5``; ``transport`` reads ``LLM_HTTP_TRANSPORT``.
``ClientConfig.from_env()`` reads them; keyword arguments win over the
environment. A value that does not parse raises ``ConfigurationError``
naming the variable.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigurationError

__all__ = ["ClientConfig", "FallbackTarget", "env_name"]

_ENV_ALIASES = {"transport": "LLM_HTTP_TRANSPORT"}
_URL_SECRET = re.compile(r"(://)[^/@\s]*@")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_name(field: str) -> str:
    """The environment variable that sets ``field``."""
    return _ENV_ALIASES.get(field, "LLM_" + field.upper())


# defer_build: validators are built on first use, not at import (see aio_llm.types)


class FallbackTarget(BaseModel):
    """One (provider, model) to try when the primary target fails."""

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    provider: str | None = None
    model: str | None = None


class ClientConfig(BaseModel):
    """Everything that shapes a client's default middleware chain."""

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid", validate_default=True)

    provider: str | None = None
    """Default provider kind: openrouter, openai, openai-responses, anthropic, gemini,
    azure-openai, azure-openai-responses, bedrock, openai-compatible or mock; None: the
    one whose key the environment sets (docs/configuration.md, "The default provider")."""
    force_mock: bool = False
    """Use the in-process mock provider whatever ``provider`` says (``LLM_FORCE_MOCK=1``)."""
    model: str | None = None
    """Default model for calls that name none."""
    base_url: str | None = None
    """Base URL of the default provider (else the provider's own variable or default)."""
    timeout: float | None = Field(default=600.0, gt=0)
    """Total deadline of one call in seconds, every retry and backoff included; None: none."""
    connect_timeout: float | None = Field(default=10.0, gt=0)
    """Seconds to open a connection; None: no limit."""
    read_timeout: float | None = Field(default=600.0, gt=0)
    """Longest wait in seconds for the next bytes of an answer; None: no limit."""
    transport: Literal["aiohttp", "httpx"] = "aiohttp"
    """HTTP library (``LLM_HTTP_TRANSPORT``)."""
    max_connections: int = Field(default=512, gt=0)
    """Connection pool size of the owned HTTP session."""
    max_response_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    """A response body larger than this is refused."""

    max_retries: int = Field(default=3, ge=0)
    """Retries after the first attempt."""
    retry_strategy: Literal["exponential", "linear", "fibonacci", "adaptive"] = "adaptive"
    retry_base_delay: float = Field(default=0.5, ge=0)
    """First backoff in seconds."""
    retry_max_delay: float = Field(default=30.0, ge=0)
    retry_backoff_base: float = Field(default=2.0, ge=1.0)
    retry_after_cap: float = Field(default=60.0, ge=0)
    """The longest ``Retry-After`` honoured: Retry fails at once on a longer one, and
    RateLimit never holds a model longer than this on any server-given wait."""
    max_validation_retries: int = Field(default=0, ge=0, le=100)
    """Re-asks when an answer does not fit its ``response_format`` (0: raise at once)."""

    circuit_failure_rate: float = Field(default=0.5, gt=0, le=1)
    """Share of failed calls in the window that opens a breaker (see docs/resilience.md)."""
    circuit_minimum_calls: int = Field(default=20, ge=1)
    """Calls a breaker's window must hold before the failure rate can open it."""
    circuit_window: float = Field(default=60.0, gt=0)
    """Seconds of the sliding window behind the failure rate."""
    circuit_failure_threshold: int | None = Field(default=None, ge=1)
    """Consecutive failures that also open a breaker; None: only the rate decides."""
    circuit_success_threshold: int = Field(default=3, ge=1)
    """Successful half-open probes that close a breaker."""
    circuit_timeout: float = Field(default=5.0, gt=0)
    """Seconds a breaker stays OPEN before probes (doubling on each failed probe, to 60 s)."""
    circuit_backend: str = "memory"
    """``memory`` or a Redis URL to share OPEN states between processes."""

    rpm: float | None = Field(default=None, gt=0)
    """Requests per minute per (provider, model); None: learn from the provider."""
    tpm: float | None = Field(default=None, gt=0)
    """Tokens per minute per (provider, model)."""
    ratelimit_backend: str = "memory"
    """``memory`` or a Redis URL for one limit shared by many processes."""
    ratelimit_fail_open: bool = True
    """With Redis unreachable: admit requests (True) or refuse them."""

    cache_enabled: bool = False
    cache_ttl: float = Field(default=3600.0, gt=0)
    cache_backend: str = "memory"
    """``memory`` or a Redis URL."""
    cache_max_entries: int = Field(default=10_000, gt=0)
    semantic_cache_max_error: float | None = Field(default=None, gt=0, lt=1)
    """Turns the semantic cache on, serving hits only while at most this share of them is
    wrong (learned from observed outcomes, see docs/caching.md); None: off."""
    semantic_cache_threshold: float | None = Field(default=None, gt=0, le=1)
    """A fixed similarity from which semantic hits are served, with no error bound; None: off."""
    semantic_cache_embedder: str = "local"
    """``local`` (offline, lexical), ``minilm`` (offline model, extra ``minilm``) or
    ``provider:<embedding model>`` (the provider's embeddings through ``client.embed``)."""
    semantic_cache_backend: str = "memory"
    """``memory`` or a Redis URL (entries and outcomes shared by every process)."""
    dedup_enabled: bool = True
    dedup_sampling: bool = False
    """Also merge identical requests that sample (temperature above 0 or the provider's
    sampling default, no ``seed``, ``n`` > 1): they then share one answer."""

    daily_budget: float | None = Field(default=None, ge=0)
    monthly_budget: float | None = Field(default=None, ge=0)
    budget_backend: str = "memory"
    """``memory``, a SQLite file path, or a Redis URL."""
    budget_fail_open: bool = False
    """With the budget backend unreachable: admit (True) or refuse (False, default)."""

    fallbacks: tuple[FallbackTarget, ...] = ()
    """Ordered targets tried when the primary one fails."""
    capture_content: bool = False
    """Record prompts and answers in telemetry."""
    redis_url: str | None = None
    """Default Redis URL for every ``*_backend`` set to ``redis``."""

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # Redis URLs may carry a password: never print it
        for name, value in super().__repr_args__():
            if isinstance(value, str) and "@" in value and "://" in value:
                value = _URL_SECRET.sub(r"\1***@", value)
            yield name, value

    @field_validator("base_url")
    @classmethod
    def _http_only(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("base_url must be an http:// or https:// URL")
        return value

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str | None) -> str | None:
        return value.strip().lower() or None if value is not None else None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ClientConfig:
        """Settings from ``LLM_*`` variables, then ``overrides``."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, field in cls.model_fields.items():
            var = env_name(name)
            raw = env.get(var)
            if raw is None:
                continue
            values[name] = _parse_env(var, raw, field.annotation)
        values.update(overrides)
        try:
            return cls(**values)
        except ValidationError as exc:
            raise ConfigurationError(
                _describe(exc, from_env=set(values) - set(overrides))
            ) from None

    def backend_url(self, backend: str) -> str:
        """Resolve ``redis`` to ``redis_url``; other values pass through."""
        if backend == "redis":
            if not self.redis_url:
                raise ConfigurationError("a backend is 'redis' but LLM_REDIS_URL is not set")
            return self.redis_url
        return backend


def _parse_env(var: str, raw: str, annotation: Any) -> Any:
    text = raw.strip()
    kind = str(annotation)
    if kind == "<class 'bool'>":
        low = text.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ConfigurationError(f"{var}={raw!r} is not a boolean (use 1/0, true/false)")
    if "FallbackTarget" in kind:
        return _parse_fallbacks(var, text)
    if "None" in kind and text.lower() in {"", "none", "null"}:
        return None
    return text


def _parse_fallbacks(var: str, text: str) -> tuple[FallbackTarget, ...]:
    """JSON list of ``{"provider", "model"}`` or ``provider:model,provider:model``."""
    if not text:
        return ()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"{var} is not valid JSON: {exc.msg}") from None
        try:
            return tuple(FallbackTarget.model_validate(i) for i in items)
        except (ValidationError, TypeError) as exc:
            raise ConfigurationError(f"{var}: {exc}") from None
    targets = []
    for part in text.split(","):
        provider, sep, model = part.strip().partition(":")
        targets.append(FallbackTarget(provider=provider or None, model=model if sep else None))
    return tuple(targets)


def _describe(exc: ValidationError, *, from_env: set[str]) -> str:
    lines = []
    for err in exc.errors():
        field = str(err["loc"][0]) if err["loc"] else "?"
        where = env_name(field) if field in from_env else field
        lines.append(f"{where}: {err['msg']}")
    return "invalid configuration: " + "; ".join(lines)
