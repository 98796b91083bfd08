"""An embedder that needs no model and no network: hashed lexical features.

Good enough to recognise a question asked again in other words (reordered,
with politeness or fillers added, contractions, plurals, small typos) and,
above all, careful not to confuse questions that share most of their words
but ask different things ("capital of France" / "capital of Germany",
"Fahrenheit to Celsius" / "Celsius to Fahrenheit", "enable" / "disable").

Text is lower-cased, accents and contractions are removed, small number
words become digits, function words are dropped and the rest lightly
stemmed. Features, each hashed (CRC-32, signed) into ``dim`` dimensions:

* every content word (question words count a little less);
* every pair of neighbouring content words, in order;
* the word after a direction word ("to", "into", "from", "than", "vs") or
  after "of", tagged with it, so direction survives dropping "to";
* a word after a negation ("not", "no", "non", "never", "without") is
  replaced by a negated twin;
* character 3- and 4-grams of each content word, at a lower weight, for
  typos and variants ("Postgres" / "PostgreSQL").

The vector is normalised to unit length, so a dot product is the cosine.
"""

from __future__ import annotations

import math
import re
import unicodedata
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .._extras import missing

try:
    import numpy as np
except ImportError as exc:
    raise missing("numpy", "semantic", "LocalEmbedder") from exc
if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["LocalEmbedder"]

_CONTRACTIONS = (
    (re.compile(r"n['’]t\b"), " not"),
    (re.compile(r"['’](?:s|re|ve|ll|d|m)\b"), ""),
    (re.compile(r"\bwhats\b"), "what"),
)
_TOKEN = re.compile(r"[a-z0-9]+(?:[.,][0-9]+)*[+#]*")
_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve".split()
    )
}
_STOP = frozenset(
    """a an the is are was were be been being am do does did doing i me my mine myself you your
    yours we us our ours he him his she her it its they them their theirs this that these those
    in on at for by with about onto as and or but if then so can could would should will shall
    may might must please kindly tell give help explain describe exactly actually really just
    some any there here have has had get also very much more most like let""".split()
)
_QUESTION = frozenset("what who whom whose when where why how which".split())
_RELATION = {"to": "to", "into": "to", "from": "from", "of": "of", "than": "than"}
_RELATION.update({"vs": "vs", "versus": "vs"})
_NEGATION = frozenset({"not", "no", "non", "never", "without", "nor"})
_SUFFIXES = (("ies", "y"), ("sses", "ss"), ("ing", ""), ("ed", ""), ("es", ""), ("s", ""))

_W_WORD = 1.0
_W_QUESTION = 0.8
_W_PAIR = 0.7
_W_RELATION = 0.8
_W_OF = 0.5
_W_CHARS = 0.5


def _stem(word: str) -> str:
    if len(word) <= 3 or word.isdigit():
        return word
    for suffix, repl in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word.endswith(("ss", "us", "is")):
                continue
            word = word[: len(word) - len(suffix)] + repl
            break
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    for pattern, repl in _CONTRACTIONS:
        text = pattern.sub(repl, text)
    return text


def features(text: str) -> dict[str, float]:
    """The weighted lexical features of ``text`` (before hashing)."""
    words: list[str] = []
    relations: list[str | None] = []
    relation: str | None = None
    negated = False
    for token in _TOKEN.findall(_normalise(text)):
        token = _NUMBER_WORDS.get(token, token)
        if token in _RELATION:
            relation = _RELATION[token]
            continue
        if token in _NEGATION:
            negated = True
            continue
        if token in _STOP:
            continue
        word = _stem(token)
        words.append("not_" + word if negated else word)
        relations.append(relation)
        relation, negated = None, False
    out: dict[str, float] = {}
    for word, rel in zip(words, relations, strict=True):
        out["w:" + word] = _W_QUESTION if word in _QUESTION else _W_WORD
        if rel is not None:
            out[f"r:{rel}:{word}"] = _W_OF if rel == "of" else _W_RELATION
        if word in _QUESTION:
            continue
        padded = f"<{word}>"
        grams = {padded[i : i + n] for n in (3, 4) for i in range(len(padded) - n + 1)}
        weight = _W_CHARS / math.sqrt(len(grams))
        for gram in grams:
            name = "c:" + gram
            out[name] = out.get(name, 0.0) + weight
    for left, right in zip(words, words[1:], strict=False):
        out[f"p:{left}_{right}"] = _W_PAIR
    return out


class LocalEmbedder:
    """Offline default ``Embedder``: hashed lexical features, unit-length float32 vectors.

    ``recommended_threshold`` is the similarity above which two prompts are
    treated as the same question (chosen on a labelled set of paraphrases
    and near-miss questions for a precision of at least 0.97).
    """

    __slots__ = ("_slots", "dim")

    recommended_threshold = 0.90

    def __init__(self, dim: int = 128) -> None:
        if dim < 16:
            raise ValueError("dim must be at least 16")
        self.dim = dim
        self._slots: dict[str, tuple[int, float]] = {}

    def _slot(self, feature: str) -> tuple[int, float]:
        slot = self._slots.get(feature)
        if slot is None:
            h = zlib.crc32(feature.encode())
            slot = (h % self.dim, 1.0 if h & 0x80000000 else -1.0)
            if len(self._slots) >= 200_000:
                self._slots.clear()
            self._slots[feature] = slot
        return slot

    def embed_one(self, text: str) -> npt.NDArray[np.float32]:
        """The unit vector of one text (all zeros for a text with no features)."""
        feats = features(text)
        vec = np.zeros(self.dim, dtype=np.float64)
        for name, weight in feats.items():
            index, sign = self._slot(name)
            vec[index] += sign * weight
        norm = float(np.linalg.norm(vec))
        if norm > 0:
            vec /= norm
        return vec.astype(np.float32)

    def embed_nowait(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Vectors of ``texts``, one row each, computed synchronously."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i] = self.embed_one(text)
        return out

    async def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return self.embed_nowait(texts)

    def __repr__(self) -> str:
        return f"LocalEmbedder(dim={self.dim})"
