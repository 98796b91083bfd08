from __future__ import annotations

import random

import pytest

from aio_llm.middleware.semantic_cache import Decision, EntryRecord, ErrorBound, FixedThreshold


def test_no_threshold_without_evidence() -> None:
    bound = ErrorBound(0.02)
    assert bound.threshold is None
    assert bound.decide(0.999) is Decision.OBSERVE
    assert bound.decide(0.2) is Decision.MISS  # below the floor: not worth judging


def test_the_threshold_is_the_lowest_that_passes_in_order() -> None:
    bound = ErrorBound(0.05, confidence=0.95, explore=0.0)
    rng = random.Random(3)
    # wrong answers only below 0.8: the bound must stay above them
    for _ in range(3000):
        score = rng.uniform(0.5, 1.0)
        bound.observe(score, score >= 0.8 or rng.random() < 0.5)
    threshold = bound.threshold
    assert threshold is not None and 0.75 <= threshold <= 0.85
    stats = bound.statistics()
    assert stats.upper_bound is not None and stats.upper_bound <= 0.05
    assert bound.decide(0.99) is Decision.SERVE and bound.decide(0.6) is Decision.OBSERVE


def test_the_bound_holds_on_a_known_error_curve() -> None:
    # P(wrong | s) = (1 - s) * 0.4: the true error among hits above t is (1 - t) * 0.2
    violations = 0
    for seed in range(20):
        rng = random.Random(seed)
        bound = ErrorBound(0.02, confidence=0.95)
        for _ in range(4000):
            s = rng.random()
            bound.observe(s, rng.random() >= (1 - s) * 0.4)
        t = bound.threshold
        if t is not None and (1 - t) * 0.2 > 0.02:
            violations += 1
    assert violations <= 2  # at 95% confidence, about 1 in 20 may miss


def test_entries_tighten_and_loosen_their_own_threshold() -> None:
    bound = ErrorBound(0.1, confidence=0.9, explore=0.0)
    bound.observe_many([0.95] * bound.start, [True] * bound.start)
    assert bound.threshold == pytest.approx(0.95)
    risky = EntryRecord()
    risky.add(0.97, False)  # e.g. reported by another process, or by the user
    assert bound.decide(0.97, risky) is Decision.OBSERVE
    assert bound.decide(0.98, risky) is Decision.SERVE
    trusted = EntryRecord(ok=[0.8] * bound.needed)
    assert bound.decide(0.8, trusted) is Decision.SERVE  # its own evidence goes lower
    assert bound.decide(0.79, trusted) is Decision.OBSERVE


def test_exploration_uses_the_injected_rng() -> None:
    def decisions(seed: int) -> list[Decision]:
        bound = ErrorBound(0.1, confidence=0.9, explore=0.3, rng=random.Random(seed))
        bound.observe_many([0.99] * bound.start, [True] * bound.start)
        return [bound.decide(0.995) for _ in range(200)]

    first = decisions(1)
    assert first == decisions(1)
    assert 30 <= first.count(Decision.EXPLORE) <= 90


def test_fixed_threshold_and_bad_arguments() -> None:
    fixed = FixedThreshold(0.9)
    assert fixed.decide(0.9) is Decision.SERVE and fixed.decide(0.89) is Decision.MISS
    for kwargs in ({"max_error": 0.0}, {"max_error": 1.0}, {"confidence": 1.0}, {"explore": 2}):
        with pytest.raises(ValueError):
            ErrorBound(**kwargs)
    with pytest.raises(ValueError):
        FixedThreshold(0.0)
    with pytest.raises(ValueError):
        ErrorBound().observe_many([0.9], [True, False])
