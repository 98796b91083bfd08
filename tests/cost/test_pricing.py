"""The packaged price table: real prices, lenient model names, cost of a Usage."""

from __future__ import annotations

import json
import logging
from importlib import resources

import pytest

from aio_llm.cost import ModelPrice, PricingTable
from aio_llm.types import Usage


@pytest.fixture
def table() -> PricingTable:
    return PricingTable()


def usage(inp: int, out: int, cached: int = 0, written: int = 0, reasoning: int = 0) -> Usage:
    return Usage(
        input_tokens=inp,
        output_tokens=out,
        total_tokens=inp + out,
        cached_input_tokens=cached,
        cache_creation_input_tokens=written,
        reasoning_tokens=reasoning,
    )


# (model, usage, expected USD) computed by hand from the published prices per 1M tokens:
# uncached input, cached input (cache reads), cache writes, output (reasoning included).
CASES = [
    # OpenAI: cached_input_tokens at the cached price, the rest at the input price.
    ("gpt-4o", usage(1000, 500, cached=400), (600 * 2.5 + 400 * 1.25 + 500 * 10.0) / 1e6),
    (
        "gpt-4o-mini",
        usage(10_000, 2_000, cached=8_000),
        (2000 * 0.15 + 8000 * 0.075 + 2000 * 0.6) / 1e6,
    ),
    ("gpt-4.1", usage(5000, 1000, cached=4096), (904 * 2.0 + 4096 * 0.5 + 1000 * 8.0) / 1e6),
    ("gpt-4.1-mini", usage(3000, 300), (3000 * 0.4 + 300 * 1.6) / 1e6),
    ("gpt-4.1-nano", usage(2000, 100, cached=1024), (976 * 0.1 + 1024 * 0.025 + 100 * 0.4) / 1e6),
    # reasoning tokens are part of output_tokens: they are not charged twice
    ("o3-mini", usage(200, 1800, reasoning=1500), (200 * 1.1 + 1800 * 4.4) / 1e6),
    (
        "o4-mini",
        usage(1200, 900, cached=1024, reasoning=600),
        (176 * 1.1 + 1024 * 0.275 + 900 * 4.4) / 1e6,
    ),
    ("o1", usage(1000, 5000, reasoning=4000), (1000 * 15.0 + 5000 * 60.0) / 1e6),
    (
        "gpt-5",
        usage(4000, 2000, cached=3000, reasoning=1500),
        (1000 * 1.25 + 3000 * 0.125 + 2000 * 10.0) / 1e6,
    ),
    ("gpt-5-mini", usage(1000, 1000), (1000 * 0.25 + 1000 * 2.0) / 1e6),
    ("gpt-3.5-turbo", usage(1000, 1000), (1000 * 0.5 + 1000 * 1.5) / 1e6),
    ("gpt-4", usage(1000, 500), (1000 * 30.0 + 500 * 60.0) / 1e6),
    ("gpt-4-turbo", usage(1000, 500), (1000 * 10.0 + 500 * 30.0) / 1e6),
    ("text-embedding-3-small", usage(10_000, 0), 10_000 * 0.02 / 1e6),
    # Anthropic: input_tokens counts every prompt token; reads at the cache-hit price,
    # writes at the 5-minute write price, the rest at the base input price.
    (
        "claude-sonnet-4-5",
        usage(12_000, 800, cached=8_000, written=3_000),
        (1000 * 3.0 + 8000 * 0.3 + 3000 * 3.75 + 800 * 15.0) / 1e6,
    ),
    (
        "claude-3-5-haiku-20241022",
        usage(5_000, 1_000, cached=2_000, written=2_000),
        (1000 * 0.8 + 2000 * 0.08 + 2000 * 1.0 + 1000 * 4.0) / 1e6,
    ),
    (
        "claude-opus-4-1-20250805",
        usage(3_000, 1_000, written=2_048),
        (952 * 15.0 + 2048 * 18.75 + 1000 * 75.0) / 1e6,
    ),
    (
        "claude-opus-4-5-20251101",
        usage(3_000, 1_000, cached=2_048),
        (952 * 5.0 + 2048 * 0.5 + 1000 * 25.0) / 1e6,
    ),
    (
        "claude-haiku-4-5-20251001",
        usage(1_500, 200, cached=1_024),
        (476 * 1.0 + 1024 * 0.1 + 200 * 5.0) / 1e6,
    ),
    ("claude-3-haiku-20240307", usage(4_000, 400, written=4_000), (4000 * 0.3 + 400 * 1.25) / 1e6),
    # OpenRouter ids
    ("anthropic/claude-3.5-sonnet", usage(1000, 100), (1000 * 3.0 + 100 * 15.0) / 1e6),
    ("google/gemini-2.5-flash", usage(2000, 1000), (2000 * 0.3 + 1000 * 2.5) / 1e6),
    ("meta-llama/llama-3.3-70b-instruct", usage(10_000, 1000), (10_000 * 0.1 + 1000 * 0.32) / 1e6),
    ("mistralai/mistral-large", usage(1000, 1000), (1000 * 2.0 + 1000 * 6.0) / 1e6),
]


@pytest.mark.parametrize(("model", "use", "expected"), CASES, ids=[c[0] for c in CASES])
def test_cost_matches_the_published_price(
    table: PricingTable, model: str, use: Usage, expected: float
) -> None:
    assert table.cost(model, use) == pytest.approx(expected, rel=1e-12)


def test_long_context_tier_prices_every_token_of_the_request(table: PricingTable) -> None:
    short = table.cost("claude-sonnet-4-20250514", usage(200_000, 1000))
    long = table.cost("claude-sonnet-4-20250514", usage(200_001, 1000, cached=100_000))
    assert short == pytest.approx((200_000 * 3.0 + 1000 * 15.0) / 1e6)
    assert long == pytest.approx((100_001 * 6.0 + 100_000 * 0.6 + 1000 * 22.5) / 1e6)


@pytest.mark.parametrize(
    ("name", "base"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
        ("claude-sonnet-4-0", "claude-sonnet-4"),
        ("openai/gpt-4o", "gpt-4o"),
        ("OpenAI/GPT-4o", "gpt-4o"),
        ("anthropic/claude-sonnet-4", "claude-sonnet-4"),
        ("anthropic/claude-sonnet-4.5", "claude-sonnet-4-5"),
        ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
        ("gpt-4-0613", "gpt-4"),
        ("gpt-4-1106-preview", "gpt-4-turbo"),
        ("o3-mini-2025-01-31", "o3-mini"),
        ("gpt-4.1-2025-04-14", "gpt-4.1"),
        ("google/gemini-2.5-flash:thinking", "google/gemini-2.5-flash"),
    ],
)
def test_dated_and_routed_names_resolve_to_their_base(
    table: PricingTable, name: str, base: str
) -> None:
    price = table.get(name)
    assert price is not None
    assert price.model == base


def test_a_dated_snapshot_with_its_own_price_keeps_it(table: PricingTable) -> None:
    price = table.get("gpt-4o-2024-05-13")
    assert price is not None and (price.input, price.output) == (5.0, 15.0)


def test_openrouter_free_variant_costs_nothing(table: PricingTable) -> None:
    assert table.cost("meta-llama/llama-3.3-70b-instruct:free", usage(5000, 5000)) == 0.0


def test_prefix_of_a_known_name_is_not_a_match(table: PricingTable) -> None:
    assert table.get("gpt-4o-audio-preview") is None
    assert table.get("gpt-4o-mini-search") is None


def test_unknown_model_costs_none_and_warns_once(
    table: PricingTable, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="aio_llm.cost"):
        assert table.cost("acme/unknown-model", usage(10, 10)) is None
        assert table.cost("acme/unknown-model", usage(20, 20)) is None
        assert table.worst_case("acme/unknown-model", 10, 10) is None
    warnings = [r for r in caplog.records if "acme/unknown-model" in r.getMessage()]
    assert len(warnings) == 1


def test_provider_reported_cost_wins(table: PricingTable) -> None:
    use = usage(1000, 1000).model_copy(update={"provider_cost": 0.0123})
    assert table.cost("gpt-4o", use) == 0.0123
    assert table.cost("acme/unknown-model", use) == 0.0123


def test_users_register_their_own_prices(table: PricingTable) -> None:
    table.register("acme/house-model", input=1.0, output=2.0, cached_input=0.5)
    assert table.cost("acme/house-model", usage(1000, 1000, cached=500)) == pytest.approx(
        (500 * 1.0 + 500 * 0.5 + 1000 * 2.0) / 1e6
    )
    table.register("gpt-4o", input=1.0, output=1.0)  # overrides the packaged price
    assert table.cost("gpt-4o-2024-08-06", usage(1000, 0)) == pytest.approx(0.001)
    assert PricingTable().cost("gpt-4o", usage(1000, 0)) == pytest.approx(0.0025)


def test_worst_case_ignores_cache_discounts(table: PricingTable) -> None:
    # every prompt token might be written to the cache with a one-hour TTL (2x input)
    assert table.worst_case("claude-sonnet-4-5", 1000, 1000) == pytest.approx(
        (1000 * 6.0 + 1000 * 15.0) / 1e6
    )
    assert table.worst_case("gpt-4o", 1000, 1000) == pytest.approx((1000 * 2.5 + 1000 * 10) / 1e6)


def test_negative_prices_are_rejected() -> None:
    with pytest.raises(ValueError):
        ModelPrice("x", input=-1.0, output=1.0)


def test_data_file_records_date_sources_and_required_models() -> None:
    raw = json.loads(resources.files("aio_llm.cost").joinpath("pricing.json").read_text("utf-8"))
    assert raw["checked"] == "2026-11-24"
    assert PricingTable().checked == "2026-11-24"
    for entry in raw["models"].values():
        assert entry["source"] in raw["sources"]
        assert entry["input"] >= 0 and entry["output"] >= 0
        assert entry["context_window"] > 0
    table = PricingTable()
    required = [
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-4.1-nano",
        "o1",
        "o3",
        "o3-mini",
        "o4-mini",
        "gpt-5",
        "gpt-5-mini",
        "gpt-5-nano",
        "gpt-3.5-turbo",
        "gpt-4",
        "gpt-4-turbo",
        "text-embedding-3-small",
        "text-embedding-3-large",
        "claude-3-opus",
        "claude-3-5-sonnet",
        "claude-3-7-sonnet",
        "claude-3-5-haiku",
        "claude-3-haiku",
        "claude-opus-4",
        "claude-opus-4-1",
        "claude-sonnet-4",
        "claude-sonnet-4-5",
        "claude-haiku-4-5",
        "openai/gpt-4o",
        "anthropic/claude-sonnet-4",
        "google/gemini-2.5-flash",
        "meta-llama/llama-3.3-70b-instruct",
        "mistralai/mistral-large",
    ]
    missing = [m for m in required if m not in table]
    assert missing == []
    for model in table.models():
        price = table.get(model)
        assert price is not None
        if price.cheaper is not None:
            assert price.cheaper in table, model
    assert table.get("gpt-4o").context_window == 128_000  # type: ignore[union-attr]


def test_new_provider_models_are_priced_and_bedrock_ids_resolve() -> None:
    table = PricingTable()
    for model in ["gemini-2.5-pro", "gemini-2.5-flash", "gemini-3-pro-preview", "nova-micro"]:
        price = table.get(model)
        assert price is not None and price.source in ("gemini-pricing-page", "bedrock-pricing-page")
    assert table.get("models/gemini-2.5-flash") == table.get("gemini-2.5-flash")
    assert table.get("gemini-2.0-flash-001") == table.get("gemini-2.0-flash")
    assert table.get("us.amazon.nova-micro-v1:0") == table.get("nova-micro")
    assert table.get("amazon.nova-pro-v1:0") == table.get("nova-pro")
    # Claude on Bedrock: Anthropic's list price globally, +10% through a regional endpoint
    anthropic = table.get("claude-sonnet-4-5")
    assert anthropic is not None
    assert table.get("global.anthropic.claude-sonnet-4-5-20250929-v1:0") == anthropic
    for regional in (
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "anthropic.claude-sonnet-4-5-20250929-v1:0",
    ):
        price = table.get(regional)
        assert price is not None
        assert price.input == pytest.approx(anthropic.input * 1.1)
        assert price.cached_input == pytest.approx(anthropic.cached_input * 1.1)  # type: ignore[operator]
        assert price.output == pytest.approx(anthropic.output * 1.1)
    assert table.get("us.anthropic.claude-sonnet-4-20250514-v1:0") == table.get("claude-sonnet-4")
    # Gemini 2.5 Pro's long-context tier and Gemini's cached-content price
    pro = table.get("gemini-2.5-pro")
    assert pro is not None
    long = Usage(input_tokens=300_000, output_tokens=1000, cached_input_tokens=100_000)
    assert pro.cost(long) == pytest.approx((200_000 * 2.5 + 100_000 * 0.25 + 1000 * 15.0) / 1e6)
    # a price registered for a Bedrock id is taken as given
    table.register("us.anthropic.claude-sonnet-4-5-20250929-v1:0", input=1.0, output=2.0)
    mine = table.get("us.anthropic.claude-sonnet-4-5-20250929-v1:0")
    assert mine is not None and (mine.input, mine.output) == (1.0, 2.0)


def test_one_hour_cache_writes_cost_more_than_five_minute_ones(table: PricingTable) -> None:
    price = table.get("claude-sonnet-4-5")
    assert price is not None
    assert (price.input, price.cache_write, price.cache_write_1h, price.cached_input) == (
        3.0,
        3.75,
        6.0,
        0.3,
    )
    # 10,000 prompt tokens: 2,000 read, 3,000 written for 5 min, 4,000 for 1 h, 1,000 fresh
    u = Usage(
        input_tokens=10_000,
        output_tokens=500,
        cached_input_tokens=2_000,
        cache_creation_input_tokens=7_000,
        cache_creation_1h_input_tokens=4_000,
    )
    want = (1_000 * 3.0 + 2_000 * 0.3 + 3_000 * 3.75 + 4_000 * 6.0 + 500 * 15.0) / 1e6
    assert price.cost(u) == pytest.approx(want)
    # a model without a one-hour price bills such writes at its cache-write price
    house = table.register("house", input=1.0, output=1.0, cache_write=1.5)
    assert house.cost(u) == pytest.approx(
        (1_000 * 1.0 + 2_000 * 1.0 + 7_000 * 1.5 + 500 * 1.0) / 1e6
    )
    # Bedrock's regional endpoints scale the one-hour price too
    regional = table.get("us.anthropic.claude-sonnet-4-5-20250929-v1:0")
    assert regional is not None and regional.cache_write_1h == pytest.approx(6.6)
