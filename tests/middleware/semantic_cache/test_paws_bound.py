"""The error bound on held-aside public data (PAWS-Wiki's test split, see tests/data/README.md).

The cache learns from the dev split's outcomes (warm-up), then the test
split is replayed and measured; the share of wrong hits must stay within
``max_error`` (up to its confidence margin), with hits served (not a bound
met by serving nothing).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from aio_llm.embeddings import LocalEmbedder
from aio_llm.middleware.semantic_cache import PrecomputedEmbedder, SemanticCache, replay_pairs

pytestmark = pytest.mark.anyio

PAIRS = Path(__file__).resolve().parents[2] / "data" / "paws_wiki_pairs.jsonl"


def _split() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows = [json.loads(line) for line in PAIRS.read_text().splitlines() if line.strip()]
    dev = [r for r in rows if r["id"].startswith("paws-dev-")]
    test = [r for r in rows if r["id"].startswith("paws-test-")]
    assert len(dev) > 900 and len(test) > 900
    return dev, test


@pytest.mark.parametrize(("max_error", "min_hits"), [(0.05, 60), (0.10, 60)])
async def test_false_hits_stay_within_max_error_on_held_aside_pairs(
    max_error: float, min_hits: int
) -> None:
    dev, test = _split()
    texts = [t for r in dev + test for t in (r["query"], r["cached_query"])]
    embedder = await PrecomputedEmbedder.build(LocalEmbedder(), texts)
    cache = SemanticCache(embedder, max_error=max_error, rng=random.Random(0))
    report = await replay_pairs(cache, test, warmup=dev)
    assert report.hits >= min_hits, report
    low, _ = report.interval("error")  # wrong hits / hits, 95% Wilson
    assert low <= max_error, report
    assert report.false_hit_rate <= max_error, report
    assert report.precision >= 1 - max_error, report


async def test_the_old_default_fails_the_same_data() -> None:
    """A fixed threshold without the verifier (the old default) is far outside any bound."""
    _, test = _split()
    cache = SemanticCache(threshold=0.90, verifier=None)
    report = await replay_pairs(cache, test[:300])
    assert report.precision < 0.8, report
