"""A cheap check, before a semantic hit is served, that two questions ask the same thing.

An embedding says two texts are *about* the same thing; it is easily fooled
by texts that share their words but not their meaning: "flights from Paris
to Rome" / "flights from Rome to Paris", "is it safe" / "is it not safe",
"under $50" / "over $50". ``LexicalVerifier`` looks at the words themselves
and rejects a pair when one of these differs:

* **numbers** (digits and number words), as a multiset;
* **negation** ("not", "no", "never", "without", "n't", ...), by count;
* **names**: a word written with a capital inside a sentence (or in
  capitals, or mixing letters and digits) must occur in the other text too;
* **polar words** that flip a constraint ("before"/"after", "more"/"less",
  "min"/"max", "with"/"without", "enable"/"disable", ...): the same ones,
  the same number of times;
* **word order**: the words the two texts share (each once) must come in
  the same order, so swapped entities and roles ("A beat B" / "B beat A")
  are caught even when every word is shared.

It is deliberately strict: a rejected paraphrase costs one model call, a
served wrong answer costs trust. It knows English function words; on other
languages it still checks numbers, names and word order.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Protocol

__all__ = ["LexicalVerifier", "Verdict", "Verifier"]


class Verifier(Protocol):
    """Decides whether a cached question may answer a new one (after the embedder agreed)."""

    def verify(self, query: str, cached: str) -> Verdict: ...


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of a check: ``ok``, or the ``reason`` the pair was rejected."""

    ok: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok


ACCEPT = Verdict(True)

_WORD = re.compile(r"[^\W_]+(?:[.,'’][^\W_]+)*", re.UNICODE)
_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
}
_NUMBER_WORDS.update({"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60"})
_NUMBER_WORDS.update({"seventy": "70", "eighty": "80", "ninety": "90", "hundred": "100"})
_NUMBER_WORDS.update({"thousand": "1000", "million": "1000000", "billion": "1000000000"})
_NUMBER_WORDS.update({"first": "1st", "second": "2nd", "third": "3rd", "once": "1x"})
_NUMBER_WORDS.update({"twice": "2x", "half": "1/2", "double": "2x", "single": "1x"})
_NEGATION = frozenset(
    "not no never none nobody nothing nowhere neither nor without cannot n't cant dont doesnt "
    "didnt isnt arent wasnt werent wont wouldnt shouldnt couldnt hasnt havent hadnt".split()
)
_POLAR_PAIRS = """before after above below over under more less more fewer greater less
larger smaller bigger smaller higher lower longer shorter faster slower older newer
oldest newest most least max min maximum minimum first last earliest latest early late
increase decrease increasing decreasing add remove enable disable encrypt decrypt encode
decode compress decompress import export buy sell input output inside outside
upper lower left right north south east west true false yes no always never
all none same different include exclude including excluding inclusive exclusive ascending
descending open close push pull send receive win lose won lost positive negative
plus minus sum difference best worst cheapest expensive cheap expensive hot cold male female
husband wife son daughter father mother brother sister uncle aunt predecessor successor
parent child buyer seller winner loser""".split()
_POLAR = frozenset(_POLAR_PAIRS)
_SPACE_FOLD = str.maketrans({"’": "'"})


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).translate(_SPACE_FOLD)
    return re.sub(r"n't\b", " n't", text)


@dataclass(frozen=True, slots=True)
class _Parsed:
    words: tuple[str, ...]
    numbers: tuple[str, ...]
    negations: int
    names: frozenset[str]
    polar: tuple[str, ...]


def _parse(text: str) -> _Parsed:
    words: list[str] = []
    names: set[str] = set()
    numbers: list[str] = []
    negations = 0
    polar: list[str] = []
    sentence_start = True
    text = _fold(text)
    for match in _WORD.finditer(text):
        raw = match.group()
        word = raw.lower()
        prev = text[: match.start()].rstrip()[-1:] if match.start() else ""
        if prev in '.!?:;"“(' or not prev:
            sentence_start = True
        if word in _NEGATION or word.endswith("n't"):
            negations += 1
        if any(c.isdigit() for c in word):
            if word.replace(",", "").replace(".", "").isdigit():
                numbers.append(word.replace(",", ""))
            else:
                names.add(word)
        elif word in _NUMBER_WORDS:
            numbers.append(_NUMBER_WORDS[word])
        if word in _POLAR:
            polar.append(word)
        if (raw[0].isupper() and not sentence_start) or (len(raw) > 1 and raw.isupper()):
            names.add(word)
        sentence_start = False
        words.append(word)
    return _Parsed(
        tuple(words), tuple(sorted(numbers)), negations, frozenset(names), tuple(sorted(polar))
    )


def _order_kept(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """True when the words that occur once in each text come in the same order in both."""
    count_a: dict[str, int] = {}
    count_b: dict[str, int] = {}
    for w in a:
        count_a[w] = count_a.get(w, 0) + 1
    for w in b:
        count_b[w] = count_b.get(w, 0) + 1
    position = {w: i for i, w in enumerate(b) if count_b[w] == 1}
    last = -1
    for w in a:
        if count_a[w] == 1 and w in position:
            if position[w] < last:
                return False
            last = position[w]
    return True


class LexicalVerifier:
    """The default ``Verifier``: rejects pairs whose numbers, negation, names,
    polar words or word order differ (see the module doc)."""

    __slots__ = ("check_names", "check_order")

    def __init__(self, *, check_order: bool = True, check_names: bool = True) -> None:
        self.check_order = check_order
        self.check_names = check_names

    def verify(self, query: str, cached: str) -> Verdict:
        a, b = _parse(query), _parse(cached)
        if a.numbers != b.numbers:
            return Verdict(False, "numbers")
        if a.negations != b.negations:
            return Verdict(False, "negation")
        if a.polar != b.polar:
            return Verdict(False, "polar words")
        if self.check_names:
            words_a, words_b = set(a.words), set(b.words)
            if not a.names <= words_b or not b.names <= words_a:
                return Verdict(False, "names")
        if self.check_order and not _order_kept(a.words, b.words):
            return Verdict(False, "word order")
        return ACCEPT

    def __repr__(self) -> str:
        return f"LexicalVerifier(check_order={self.check_order}, check_names={self.check_names})"
