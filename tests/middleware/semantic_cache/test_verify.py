from __future__ import annotations

import pytest

from aio_llm.middleware.semantic_cache import LexicalVerifier


@pytest.mark.parametrize(
    ("query", "cached"),
    [
        ("What is the capital of France?", "what's the capital of france"),
        ("How do I reverse a list in Python?", "How can I reverse a list in Python?"),
        ("Explain how photosynthesis works.", "Can you explain how photosynthesis works?"),
        ("Is it safe to eat raw eggs?", "Is it really safe to eat raw eggs?"),
        ("Convert 3 miles to km", "convert three miles to km"),
    ],
)
def test_paraphrases_pass(query: str, cached: str) -> None:
    assert LexicalVerifier().verify(query, cached), (query, cached)


@pytest.mark.parametrize(
    ("query", "cached", "reason"),
    [
        ("Convert 3 miles to km", "Convert 5 miles to km", "numbers"),
        ("Is it safe to eat raw eggs?", "Is it not safe to eat raw eggs?", "negation"),
        ("Is it safe to eat raw eggs?", "Isn't it safe to eat raw eggs?", "negation"),
        ("What is the capital of France?", "What is the capital of Germany?", "names"),
        ("Show laptops under $500", "Show laptops over $500", "polar words"),
        ("How do I enable two-factor login?", "How do I disable two-factor login?", "polar words"),
        ("Did Federer beat Nadal in 2008?", "Did Nadal beat Federer in 2008?", "word order"),
        ("convert fahrenheit to celsius", "convert celsius to fahrenheit", "word order"),
        (
            "A biblical doom is a negative blessing",
            "A biblical doom is a blessing negative",
            "word order",
        ),
    ],
)
def test_near_but_different_requests_are_rejected(query: str, cached: str, reason: str) -> None:
    verdict = LexicalVerifier().verify(query, cached)
    assert not verdict and verdict.reason == reason


def test_checks_can_be_switched_off() -> None:
    loose = LexicalVerifier(check_order=False, check_names=False)
    assert loose.verify("convert fahrenheit to celsius", "convert celsius to fahrenheit")
    assert loose.verify("What is the capital of France?", "What is the capital of Germany?")
    assert "check_order=False" in repr(loose)


def test_sentence_initial_capitals_are_not_names() -> None:
    assert LexicalVerifier().verify(
        "Where is the station? Tell me.", "where is the station? tell me"
    )
