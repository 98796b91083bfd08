"""Model prices: the packaged table (``pricing.json``), lookups and the cost of a ``Usage``.

The table lists USD per million input, cached-input, cache-write and output
tokens and the context window of the current OpenAI, Anthropic, Gemini and
Amazon Nova models and popular OpenRouter ones, with the date the prices
were checked (``PricingTable.checked``, and each source's date). Model names
are matched leniently: dated snapshots (``gpt-4o-2024-08-06``,
``claude-3-5-sonnet-20241022``), ``-latest`` aliases, OpenRouter ids
(``anthropic/claude-3.5-sonnet``, ``openai/gpt-4o``), ``:variant`` suffixes
and Bedrock model ids (``us.anthropic.claude-sonnet-4-5-20250929-v1:0``,
``amazon.nova-micro-v1:0``) all resolve to their base entry; Claude 4.5 and
later through a geographic or in-region Bedrock endpoint costs 10% more than
through the global one, as AWS prices it. An unknown model has no price:
its cost is ``None`` and one log line says so. Users add or override
prices with ``PricingTable.register``.

How a ``Usage`` is charged: ``input_tokens`` counts every prompt token;
``cached_input_tokens`` of them are billed at the cached price,
``cache_creation_input_tokens`` at the cache-write price (its
``cache_creation_1h_input_tokens`` at the one-hour write price, Anthropic's
2x input against 1.25x for five minutes) and the rest at the input price;
``output_tokens`` (reasoning tokens included) at the output price. A cost
the provider reported itself (``Usage.provider_cost``, OpenRouter) wins
over the table.

Requests sent through a provider's Batch API are billed at a discount
(``PricingTable.batch_discount``: 50% at OpenAI and Anthropic); a model
entry may carry its own ``batch_discount``.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any

from ..types import Usage

__all__ = ["ModelPrice", "PricingTable", "default_pricing"]

logger = logging.getLogger("aio_llm.cost")

_PER_TOKEN = 1e-6
_DATE_SUFFIX = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|\d{2}-\d{4}|\d{4})$")
_MAX_RESOLVED = 4096


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """Prices of one model in USD per million tokens, plus its limits.

    ``cached_input`` and ``cache_write`` default to ``input`` (no discount,
    no surcharge); ``cache_write_1h`` (writes with a one-hour TTL) defaults
    to ``cache_write``. ``long_context`` is the price used for every token of a
    request whose prompt exceeds ``long_context_above`` tokens.
    """

    model: str
    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None
    cache_write_1h: float | None = None
    context_window: int | None = None
    max_output: int | None = None
    provider: str | None = None
    source: str | None = None
    cheaper: str | None = None
    long_context: ModelPrice | None = None
    long_context_above: int | None = None

    def __post_init__(self) -> None:
        for field in ("input", "output", "cached_input", "cache_write", "cache_write_1h"):
            value = getattr(self, field)
            if value is not None and value < 0:
                raise ValueError(f"{field} price must not be negative")

    def tier(self, input_tokens: int) -> ModelPrice:
        """The prices that apply to a request with ``input_tokens`` prompt tokens."""
        above = self.long_context_above
        if self.long_context is not None and above is not None and input_tokens > above:
            return self.long_context
        return self

    def cost(self, usage: Usage) -> float:
        """USD for ``usage`` at these prices (see the module docstring)."""
        total_in = usage.input_tokens
        cached, written = usage.cached_input_tokens, usage.cache_creation_input_tokens
        output = usage.output_tokens
        if (
            self.long_context is None
            and not cached
            and not written
            and total_in >= 0
            and output >= 0
        ):  # the common case: no cache, no long-context tier
            return (total_in * self.input + output * self.output) * _PER_TOKEN
        p = self.tier(total_in)
        total_in = max(total_in, 0)
        cached = min(max(cached, 0), total_in)
        written = min(max(written, 0), total_in - cached)
        hour = min(max(usage.cache_creation_1h_input_tokens, 0), written)
        fresh = total_in - cached - written
        cached_price = p.input if p.cached_input is None else p.cached_input
        write_price = p.input if p.cache_write is None else p.cache_write
        hour_price = write_price if p.cache_write_1h is None else p.cache_write_1h
        return (
            fresh * p.input
            + cached * cached_price
            + (written - hour) * write_price
            + hour * hour_price
            + max(output, 0) * p.output
        ) * _PER_TOKEN

    def worst_case(self, input_tokens: int, output_tokens: int) -> float:
        """USD for a request if nothing is cached: the amount a budget reserves."""
        p = self.tier(input_tokens)
        write = max(p.input, p.cache_write or 0.0, p.cache_write_1h or 0.0)
        return (input_tokens * write + output_tokens * p.output) * _PER_TOKEN


def _canonical(name: str) -> str:
    return name.strip().lower().replace(".", "-")


# A Bedrock model id (canonical form): inference-profile prefix, vendor, model, version.
_BEDROCK_ID = re.compile(
    r"(?:(global|us|eu|apac|jp|au|ca|us-gov)-)?"
    r"(?:anthropic|amazon|meta|mistral|cohere|ai21|deepseek|openai|qwen|writer)-"
    r"(.+?)(?:-v\d+)?(?::\d+)?"
)
# Claude models older than 4.5 cost the same on every Bedrock endpoint.
_FLAT_ON_BEDROCK = ("claude-3", "claude-sonnet-4", "claude-opus-4", "claude-opus-4-1")
_BEDROCK_REGIONAL_PREMIUM = 1.1


def _bedrock_regional(name: str, key: str) -> bool:
    """True for Claude 4.5+ through a geographic or in-region Bedrock endpoint (+10%)."""
    m = _BEDROCK_ID.fullmatch(_canonical(name))
    if m is None or m[1] == "global" or not key.startswith("claude-"):
        return False
    return not (key in _FLAT_ON_BEDROCK or key.startswith("claude-3"))


def _candidates(name: str) -> list[str]:
    """Names to try for ``name``, most specific first (all canonical)."""
    base = _canonical(name)
    out: list[str] = []
    variants = [base]
    if ":" in base:
        variants.append(base.split(":", 1)[0])
    bedrock = _BEDROCK_ID.fullmatch(base)
    if bedrock is not None:  # us.anthropic.claude-sonnet-4-5-20250929-v1:0 -> claude-sonnet-4-5
        variants.append(bedrock[2])
    for v in list(variants):
        if "/" in v:
            variants.append(v.split("/", 1)[1])
    for v in variants:
        out.append(v)
        stripped = v.removesuffix("-latest")
        while True:
            shorter = _DATE_SUFFIX.sub("", stripped)
            if shorter == stripped:
                break
            stripped = shorter
        if stripped != v:
            out.append(stripped)
    return out


def _price_from(model: str, data: Mapping[str, Any]) -> ModelPrice:
    long = data.get("long_context")
    tier = None
    above = None
    if long is not None:
        above = int(long["above"])
        tier = ModelPrice(
            model=model,
            input=float(long["input"]),
            output=float(long["output"]),
            cached_input=_opt(long.get("cached_input")),
            cache_write=_opt(long.get("cache_write")),
            cache_write_1h=_opt(long.get("cache_write_1h")),
        )
    return ModelPrice(
        model=model,
        input=float(data["input"]),
        output=float(data["output"]),
        cached_input=_opt(data.get("cached_input")),
        cache_write=_opt(data.get("cache_write")),
        cache_write_1h=_opt(data.get("cache_write_1h")),
        context_window=data.get("context_window"),
        max_output=data.get("max_output"),
        provider=data.get("provider"),
        source=data.get("source"),
        cheaper=data.get("cheaper"),
        long_context=tier,
        long_context_above=above,
    )


def _scaled(price: ModelPrice, factor: float) -> ModelPrice:
    """``price`` with every token price times ``factor`` (the long-context tier too)."""

    def times(value: float | None) -> float | None:
        return None if value is None else value * factor

    long = price.long_context
    return replace(
        price,
        input=price.input * factor,
        output=price.output * factor,
        cached_input=times(price.cached_input),
        cache_write=times(price.cache_write),
        cache_write_1h=times(price.cache_write_1h),
        long_context=None if long is None else _scaled(long, factor),
    )


def _opt(value: Any) -> float | None:
    return None if value is None else float(value)


@functools.lru_cache(maxsize=1)
def _packaged() -> tuple[str, dict[str, ModelPrice], dict[str, str], dict[str, float]]:
    raw = json.loads(resources.files(__package__).joinpath("pricing.json").read_text("utf-8"))
    prices: dict[str, ModelPrice] = {}
    aliases: dict[str, str] = {}
    discounts = {
        k: float(v) for k, v in raw.get("batch_discount", {}).items() if isinstance(v, int | float)
    }
    for model, data in raw["models"].items():
        key = _canonical(model)
        prices[key] = _price_from(model, data)
        for alias in data.get("aliases", ()):
            aliases[_canonical(alias)] = key
        if "batch_discount" in data:
            discounts[key] = float(data["batch_discount"])
    return str(raw["checked"]), prices, aliases, discounts


class PricingTable:
    """Prices by model name: the packaged table plus prices registered here.

    Each ``CostManager`` owns one, so prices registered for one client do not
    leak into another. Lookups are cached per model name.
    """

    __slots__ = (
        "_aliases",
        "_discounts",
        "_own",
        "_prices",
        "_resolved",
        "_warned",
        "checked",
    )

    def __init__(self, *, packaged: bool = True) -> None:
        checked, prices, aliases, discounts = _packaged() if packaged else ("", {}, {}, {})
        self._discounts = dict(discounts)
        self.checked = checked
        """The date (ISO) the packaged prices were checked."""
        self._prices = dict(prices)
        self._aliases = dict(aliases)
        self._own: set[str] = set()
        self._resolved: dict[str, ModelPrice | None] = {}
        self._warned: set[str] = set()

    def register(
        self,
        model: str,
        *,
        input: float,
        output: float,
        cached_input: float | None = None,
        cache_write: float | None = None,
        context_window: int | None = None,
        max_output: int | None = None,
        cheaper: str | None = None,
        cache_write_1h: float | None = None,
    ) -> ModelPrice:
        """Add or replace the price of ``model`` (USD per million tokens)."""
        price = ModelPrice(
            model=model,
            input=input,
            output=output,
            cached_input=cached_input,
            cache_write=cache_write,
            cache_write_1h=cache_write_1h,
            context_window=context_window,
            max_output=max_output,
            source="user",
            cheaper=cheaper,
        )
        key = _canonical(model)
        self._prices[key] = price
        self._own.add(key)
        self._resolved.clear()
        return price

    def get(self, model: str) -> ModelPrice | None:
        """The price of ``model`` or ``None`` when the table does not know it."""
        try:
            return self._resolved[model]
        except KeyError:
            pass
        found = self._resolve(model)
        if len(self._resolved) >= _MAX_RESOLVED:
            self._resolved.clear()
        self._resolved[model] = found
        return found

    def _resolve(self, model: str) -> ModelPrice | None:
        free = model.strip().lower().endswith(":free")
        for key in _candidates(model):
            key = self._aliases.get(key, key)
            price = self._prices.get(key)
            if price is not None and key not in self._own and _bedrock_regional(model, key):
                return _scaled(price, _BEDROCK_REGIONAL_PREMIUM)
            if price is not None:
                if free:
                    return replace(
                        price,
                        input=0.0,
                        output=0.0,
                        cached_input=0.0,
                        cache_write=0.0,
                        cache_write_1h=0.0,
                        long_context=None,
                        long_context_above=None,
                    )
                return price
        return None

    def batch_discount(self, provider: str, model: str | None = None) -> float:
        """The fraction taken off the price for requests sent through ``provider``'s Batch API.

        ``provider`` is the provider kind (``"openai"``, ``"anthropic"``); a
        model's own entry wins. 0.0 when the table knows of no discount.
        """
        if model is not None:
            for key in _candidates(model):
                found = self._discounts.get(self._aliases.get(key, key))
                if found is not None:
                    return found
        return self._discounts.get(_canonical(provider), 0.0)

    def set_batch_discount(self, provider_or_model: str, discount: float) -> None:
        """Set the Batch API discount (0.0-1.0) of a provider kind or of one model."""
        if not 0.0 <= discount <= 1.0:
            raise ValueError("discount must be between 0.0 and 1.0")
        self._discounts[_canonical(provider_or_model)] = discount

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and self.get(model) is not None

    def models(self) -> list[str]:
        """Every model name the table prices (canonical spelling)."""
        return sorted(p.model for p in self._prices.values())

    def cost(self, model: str, usage: Usage, *, warn: bool = True) -> float | None:
        """USD for ``usage`` on ``model``; the provider's own figure wins; ``None`` if unknown.

        An unknown model is logged once, as a warning unless ``warn`` is false (the
        mock provider's answers cost nothing real): then at DEBUG.
        """
        if usage.provider_cost is not None:
            return usage.provider_cost
        price = self.get(model)
        if price is None:
            self._warn_unknown(model, logging.WARNING if warn else logging.DEBUG)
            return None
        return price.cost(usage)

    def worst_case(self, model: str, input_tokens: int, output_tokens: int) -> float | None:
        """The most a request could cost (no cache discounts); ``None`` if unknown."""
        price = self.get(model)
        if price is None:
            self._warn_unknown(model)
            return None
        return price.worst_case(input_tokens, output_tokens)

    def _warn_unknown(self, model: str, level: int = logging.WARNING) -> None:
        if model not in self._warned:
            if level >= logging.WARNING:
                self._warned.add(model)
            logger.log(
                level,
                "aio_llm has no price for model %r: its cost is None (register one with "
                "PricingTable.register)",
                model,
            )

    def __repr__(self) -> str:
        return (
            f"<PricingTable models={len(self._prices)} registered={len(self._own)} "
            f"checked={self.checked or '-'}>"
        )


def default_pricing() -> PricingTable:
    """A fresh table with the packaged prices (each caller gets its own copy)."""
    return PricingTable()
