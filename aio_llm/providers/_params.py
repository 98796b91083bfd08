"""The SDKs' sampling and transport parameters: which provider honours which, and how.

``ChatRequest`` takes the parameters users pass to the official SDKs
(``n``, ``frequency_penalty``, ``presence_penalty``, ``logit_bias``,
``logprobs``/``top_logprobs``, ``seed``, ``parallel_tool_calls``,
``service_tier``, ``top_k``). A provider lists those it can honour in
``Provider.supported_parameters``; any other that a request sets is
refused with ``UnsupportedParameterError`` before anything is sent, so a
parameter is never silently dropped. A value that changes nothing (``n=1``,
``logprobs=False``, a penalty of 0, an empty ``logit_bias``) is not "set".
``extra_body`` stays the way to send anything unchecked.

``extra_headers`` and ``extra_query`` apply to every HTTP provider
(``with_extras``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from ..errors import UnsupportedParameterError
from ..types import ChatRequest

__all__ = [
    "CHECKED_PARAMETERS",
    "FEATURE_PARAMETERS",
    "OPENAI_PARAMETERS",
    "SDK_PARAMETERS",
    "anthropic_service_tier",
    "check_parameters",
    "openai_parameters",
    "openai_service_tier",
    "with_query",
]

SDK_PARAMETERS = (
    "n",
    "frequency_penalty",
    "presence_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "seed",
    "parallel_tool_calls",
    "service_tier",
    "top_k",
)
"""The SDK parameters a provider must declare before a request may set them."""

FEATURE_PARAMETERS = ("response_format", "prompt_cache_key")
"""Request features declared the same way: ``response_format`` (each provider asks for it
in its own native way, docs/structured-outputs.md) and ``prompt_cache_key`` (OpenAI's
prompt-cache routing hint, taken by the OpenAI-style APIs only)."""

CHECKED_PARAMETERS = SDK_PARAMETERS + FEATURE_PARAMETERS
"""Everything ``check_parameters`` refuses unless the provider declares it."""

OPENAI_PARAMETERS = frozenset(CHECKED_PARAMETERS) - {"top_k"}
"""What OpenAI's chat completions take (``top_k`` is not among them)."""

_NEUTRAL: dict[str, object] = {
    "n": 1,
    "frequency_penalty": 0.0,
    "presence_penalty": 0.0,
    "logprobs": False,
}

_OPENAI_TIERS = frozenset({"auto", "default", "flex", "scale", "priority"})
_ANTHROPIC_TIERS = {"auto": "auto", "standard_only": "standard_only", "default": "standard_only"}


def _is_set(request: ChatRequest, name: str) -> bool:
    value = getattr(request, name)
    return value is not None and value != _NEUTRAL.get(name) and value != {}


_CHECKED_FIELDS = frozenset(CHECKED_PARAMETERS)


def check_parameters(request: ChatRequest, provider: str, supported: frozenset[str]) -> None:
    """Refuse a parameter ``request`` sets that ``provider`` cannot honour (nothing is sent)."""
    given = request.model_fields_set & _CHECKED_FIELDS  # most requests give none: ~0.2 µs
    if not given:
        return
    for name in CHECKED_PARAMETERS:
        if name in given and name not in supported and _is_set(request, name):
            value = getattr(request, name)
            shown = "" if isinstance(value, (dict, type)) else f"={value!r}"
            raise UnsupportedParameterError(
                f"{provider} cannot honour {name}{shown}: remove it, use a provider that "
                f"has it, or send it unchecked with extra_body={{{name!r}: ...}}",
                parameter=name,
                provider=provider,
            )
    if request.stream and request.n is not None and request.n > 1:
        raise UnsupportedParameterError(
            f"n={request.n} cannot be streamed from {provider}: aio_llm streams one answer; "
            "use chat(..., n=...) or several streams",
            parameter="n",
            provider=provider,
        )


def openai_service_tier(tier: str, provider: str) -> str:
    """``service_tier`` for an OpenAI-style body (Anthropic's ``standard_only`` is ``default``)."""
    if tier == "standard_only":
        return "default"
    if tier not in _OPENAI_TIERS:
        raise UnsupportedParameterError(
            f"{provider} has no service_tier {tier!r}; it takes {', '.join(sorted(_OPENAI_TIERS))}",
            parameter="service_tier",
            provider=provider,
        )
    return tier


def anthropic_service_tier(tier: str, provider: str) -> str:
    """``service_tier`` for Anthropic (OpenAI's ``default`` is ``standard_only``)."""
    mapped = _ANTHROPIC_TIERS.get(tier)
    if mapped is None:
        raise UnsupportedParameterError(
            f"{provider} has no service_tier {tier!r}; it takes 'auto' or 'standard_only' "
            "(OpenAI's 'default' means 'standard_only')",
            parameter="service_tier",
            provider=provider,
        )
    return mapped


def openai_parameters(body: dict[str, Any], request: ChatRequest, provider: str) -> None:
    """Add the SDK parameters ``request`` sets to an OpenAI-style ``body`` (checked before)."""
    for name in ("n", "frequency_penalty", "presence_penalty", "logit_bias", "top_k"):
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    if request.logprobs is not None:
        body["logprobs"] = request.logprobs
    if request.top_logprobs is not None:
        body["top_logprobs"] = request.top_logprobs
        body.setdefault("logprobs", True)  # the API refuses top_logprobs without it
    if request.parallel_tool_calls is not None and request.tools:
        body["parallel_tool_calls"] = request.parallel_tool_calls
    if request.service_tier is not None:
        body["service_tier"] = openai_service_tier(request.service_tier, provider)


def with_query(url: str, query: dict[str, str]) -> str:
    """``url`` with ``query`` appended."""
    if not query:
        return url
    return f"{url}{'&' if '?' in url else '?'}{urlencode(query)}"
