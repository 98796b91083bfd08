"""Which provider kinds the adversarial suite attacks: all; those needing a readable answer, all
but the kinds whose format the raw server does not write yet."""

from __future__ import annotations

from aio_llm.providers import PROVIDER_KINDS

from .conftest import FORMAT_KINDS, NOT_YET_COVERED, WIRE_KINDS


def test_every_http_kind_is_attacked_or_listed_as_not_yet() -> None:
    http_kinds = set(PROVIDER_KINDS) - {"mock"}
    assert NOT_YET_COVERED <= http_kinds  # no stale names in the exception list
    assert set(WIRE_KINDS) == http_kinds
    assert set(FORMAT_KINDS) | NOT_YET_COVERED == http_kinds
    assert {"openai", "anthropic", "openrouter", "openai-compatible"} <= set(FORMAT_KINDS)
