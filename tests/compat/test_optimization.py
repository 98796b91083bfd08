from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aio_llm.compat._optimization import PromptOptimizer

PROMPT = """You are a helpful   assistant.\t Be concise.



The sky is blue.  The sky is blue. Grass is green.
The sky is blue.
Grass is green.

What colour is the sky?  Answer in one word."""


def test_whitespace_and_repeats_are_removed() -> None:
    out = PromptOptimizer().optimize(PROMPT)
    assert out == (
        "You are a helpful assistant. Be concise.\n\n"
        "The sky is blue. Grass is green.\n\n"
        "What colour is the sky? Answer in one word."
    )


def test_remove_redundancy_off_keeps_repeats() -> None:
    out = PromptOptimizer().optimize(PROMPT, remove_redundancy=False)
    assert out.count("The sky is blue.") == 3
    assert "\n\n\n" not in out and "  " not in out


def test_budget_trims_but_keeps_the_final_question() -> None:
    opt = PromptOptimizer()
    out = opt.optimize(PROMPT, max_tokens=20)
    assert opt.count_tokens(out) <= 20
    assert out.startswith("You are a helpful assistant.")
    assert "What colour is the sky?" in out
    assert opt.optimize(PROMPT, max_tokens=1) == "What colour is the sky?"


def test_repeated_question_keeps_its_last_place() -> None:
    text = "What is 2+2? Some context here. What is 2+2?"
    assert PromptOptimizer().optimize(text) == "Some context here. What is 2+2?"


def test_without_a_question_mark_the_last_sentence_is_kept() -> None:
    opt = PromptOptimizer()
    out = opt.optimize("First point. Second point. Summarise the above.", max_tokens=6)
    assert out.endswith("Summarise the above.")
    with pytest.raises(ValueError):
        opt.optimize("x", max_tokens=0)


_sentence = st.text(alphabet=st.sampled_from("abc xyz \t"), min_size=1, max_size=12).map(
    lambda s: s.strip() or "w"
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(_sentence, st.sampled_from([". ", "! ", ".\n", "\n\n"])), max_size=12),
    _sentence,
    st.integers(1, 60),
    st.booleans(),
)
def test_never_drops_the_final_question_and_fits_when_it_can(
    body: list[tuple[str, str]], question: str, budget: int, redundancy: bool
) -> None:
    opt = PromptOptimizer()
    asked = question + "?"
    text = "".join(s + end for s, end in body) + asked
    out = opt.optimize(text, max_tokens=budget, remove_redundancy=redundancy)
    normalised_question = " ".join(asked.split())
    assert normalised_question in out
    assert out == opt.optimize(text, max_tokens=budget, remove_redundancy=redundancy)
    if opt.count_tokens(normalised_question) <= budget:
        assert opt.count_tokens(out) <= budget


def test_repr() -> None:
    assert "PromptOptimizer" in repr(PromptOptimizer("gpt-4o"))
