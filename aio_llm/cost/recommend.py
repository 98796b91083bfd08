"""Optimisation recommendations drawn from recorded usage, each with its saving in USD.

Three findings, computed from what was actually spent:

- a model with a large share of the spend that has a cheaper sibling in the
  price table: the same tokens re-priced on the sibling;
- prompts repeated exactly (same model, messages and sampling parameters):
  what an exact response cache would have saved;
- requests dominated by one repeated context (system prompt, documents,
  history) that the provider's prompt cache did not serve: what prompt
  caching would have saved at the model's cached-input price.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..types import Usage
from .ledger._base import UsageRecord
from .pricing import PricingTable

__all__ = ["Recommendation", "recommend"]

_MIN_SHARE = 0.10
_MIN_PREFIX_TOKENS = 1024
_MIN_PREFIX_SHARE = 0.5
_MIN_PREFIX_REPEATS = 3


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One concrete way to spend less; ``str()`` is the human-readable sentence."""

    kind: str
    """``cheaper_model``, ``response_cache`` or ``prompt_caching``."""
    message: str
    estimated_savings: float
    """USD the change would have saved over the recorded usage."""
    model: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


def _usage(r: UsageRecord) -> Usage:
    return Usage.model_construct(
        input_tokens=r.input_tokens,
        output_tokens=r.output_tokens,
        total_tokens=r.input_tokens + r.output_tokens,
        cached_input_tokens=r.cached_input_tokens,
        cache_creation_input_tokens=r.cache_creation_input_tokens,
        reasoning_tokens=r.reasoning_tokens,
        provider_cost=None,
    )


def _cheaper_models(records: Sequence[UsageRecord], pricing: PricingTable) -> list[Recommendation]:
    total = sum(r.cost for r in records if r.cost)
    if total <= 0:
        return []
    by_model: dict[str, list[UsageRecord]] = {}
    for r in records:
        if r.cost:
            by_model.setdefault(r.model, []).append(r)
    out = []
    for model, rows in by_model.items():
        spent = sum(r.cost or 0.0 for r in rows)
        share = spent / total
        price = pricing.get(model)
        if share < _MIN_SHARE or price is None or price.cheaper is None:
            continue
        alt = pricing.get(price.cheaper)
        if alt is None:
            continue
        alt_cost = sum(alt.cost(_usage(r)) for r in rows)
        saving = spent - alt_cost
        if saving <= 0:
            continue
        out.append(
            Recommendation(
                "cheaper_model",
                f"{model} is {share:.0%} of spend (${spent:.4f} over {len(rows)} requests); "
                f"the same tokens on {price.cheaper} would cost ${alt_cost:.4f}, "
                f"saving ${saving:.4f} ({saving / spent:.0%}). Route the requests that do "
                f"not need {model} to it.",
                saving,
                model,
                {
                    "alternative": price.cheaper,
                    "share": share,
                    "spent": spent,
                    "alternative_cost": alt_cost,
                    "requests": len(rows),
                },
            )
        )
    return out


def _repeated_prompts(records: Sequence[UsageRecord]) -> list[Recommendation]:
    seen: set[int] = set()
    hashed = repeats = 0
    saving = 0.0
    for r in records:
        if r.prompt_hash is None:
            continue
        hashed += 1
        if r.prompt_hash in seen:
            repeats += 1
            saving += r.cost or 0.0
        else:
            seen.add(r.prompt_hash)
    if repeats == 0 or saving <= 0:
        return []
    return [
        Recommendation(
            "response_cache",
            f"{repeats} of {hashed} requests repeated an earlier prompt exactly (same model, "
            f"messages and parameters); an exact response cache (ClientConfig.cache_enabled=True) "
            f"would have served them and saved ${saving:.4f}.",
            saving,
            None,
            {"repeats": repeats, "requests": hashed},
        )
    ]


def _repeated_context(
    records: Sequence[UsageRecord], pricing: PricingTable
) -> list[Recommendation]:
    groups: dict[tuple[str, int], list[UsageRecord]] = {}
    for r in records:
        if (
            r.prefix_hash is not None
            and r.prefix_tokens >= _MIN_PREFIX_TOKENS
            and r.input_tokens
            and r.prefix_tokens / r.input_tokens >= _MIN_PREFIX_SHARE
        ):
            groups.setdefault((r.model, r.prefix_hash), []).append(r)
    out = []
    for (model, _), rows in groups.items():
        if len(rows) < _MIN_PREFIX_REPEATS:
            continue
        price = pricing.get(model)
        if price is None or price.cached_input is None or price.cached_input >= price.input:
            continue
        prefix = min(r.prefix_tokens for r in rows)
        uncached = [r for r in rows[1:] if r.cached_input_tokens < prefix // 2]
        if len(uncached) < _MIN_PREFIX_REPEATS - 1:
            continue
        write_premium = max((price.cache_write or price.input) - price.input, 0.0) * prefix
        saving = (
            len(uncached) * prefix * (price.input - price.cached_input) - write_premium
        ) * 1e-6
        if saving <= 0:
            continue
        share = sum(prefix / r.input_tokens for r in rows) / len(rows)
        out.append(
            Recommendation(
                "prompt_caching",
                f"{len(rows)} requests to {model} repeat the same ~{prefix}-token context "
                f"({share:.0%} of their prompt) without prompt-cache hits; keeping it as a stable "
                f"prefix (and marking it with cache_control on Anthropic) bills it at "
                f"${price.cached_input}/M instead of ${price.input}/M, saving about ${saving:.4f}.",
                saving,
                model,
                {"requests": len(rows), "prefix_tokens": prefix, "share": share},
            )
        )
    return out


def recommend(records: Sequence[UsageRecord], pricing: PricingTable) -> list[Recommendation]:
    """Every finding for ``records``, largest saving first."""
    found = [
        *_cheaper_models(records, pricing),
        *_repeated_prompts(records),
        *_repeated_context(records, pricing),
    ]
    found.sort(key=lambda r: r.estimated_savings, reverse=True)
    return found
