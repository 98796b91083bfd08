"""Error-bounded hit decisions: learn, from observed outcomes, when a similarity may answer.

One fixed similarity threshold cannot bound how often a semantic cache is
wrong: the scores of right and wrong hits overlap, and where they overlap
differs between embedders, verifiers and traffic. ``ErrorBound`` instead
takes the error rate the user accepts (``max_error``: the share of served
hits allowed to be wrong) and learns the threshold from outcomes:

* **Outcomes.** A candidate below the current threshold goes to the model
  anyway (a plain miss), so comparing the fresh answer with the cached one
  costs no extra model call: every such comparison is an observation
  ``(similarity, correct)``. Above the threshold a random ``explore`` share
  of would-be hits (injected ``rng``) is also sent to the model and
  compared, so the served region keeps being measured; the rest is served.
  Users can add their own verdicts (``observe``), e.g. from feedback.
* **The global threshold** is chosen by fixed-sequence testing
  (Learn-then-Test): thresholds are tested from high to low; a threshold
  passes when the exact (Clopper-Pearson) upper confidence bound of the
  error rate of the observations at or above it is at most ``max_error``;
  the lowest threshold before the first failure wins. Testing in a fixed
  order needs no multiple-testing correction. Testing starts where there
  are enough observations to pass (the fewest that could, and at least
  100); which threshold that is depends on the similarities alone, not on
  the outcomes, so the order stays fixed in advance. Before
  that there is no threshold, and nothing is served: a cold cache only
  observes.
* **Per entry** (in the spirit of vCache): an entry that was observed to
  be wrong at similarity ``s`` is never served at or below ``s`` again,
  whatever the global threshold; an entry that collected enough correct
  observations of its own (the same count the global test needs, none
  wrong) may serve down to its own lower threshold.

The bound holds for traffic like the observed traffic, assuming that a
higher similarity is never more likely to be wrong than a lower one (the
observations above the threshold are a uniform sample; those below are
sampled more densely, which under that assumption only overstates the
error). ``confidence`` is the probability that the learned threshold
meets the bound.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ._stats import binomial_cdf, clopper_pearson_upper, min_trials

__all__ = ["BoundStatistics", "Decision", "EntryRecord", "ErrorBound", "FixedThreshold", "Policy"]

_BINS = 400  # similarity resolution 0.0025 over [0, 1]
_MAX_OK = 512
_MIN_START = 100
"""Never test a threshold on fewer observations: with a loose ``max_error`` the fewest that
could pass are a handful, and one early wrong answer among them would end the sequence."""


class Decision(enum.Enum):
    """What to do with a candidate hit."""

    SERVE = "serve"
    """Serve the cached answer."""
    EXPLORE = "explore"
    """Would be served, but ask the model and compare (the random exploration share)."""
    OBSERVE = "observe"
    """Below the threshold: ask the model, then compare its answer with the cached one."""
    MISS = "miss"
    """Too far to be worth comparing: a plain miss."""


class EntryRecord:
    """What one cached entry has been observed to do."""

    __slots__ = ("ok", "wrong_max")

    def __init__(self, wrong_max: float = -math.inf, ok: Iterable[float] = ()) -> None:
        self.wrong_max = wrong_max
        """The highest similarity at which this entry gave a wrong answer (-inf: never)."""
        self.ok: list[float] = sorted(ok, reverse=True)[:_MAX_OK]
        """Similarities at which it was observed to be right, highest first (capped)."""

    def add(self, score: float, correct: bool) -> None:
        if not correct:
            self.wrong_max = max(self.wrong_max, score)
        elif len(self.ok) < _MAX_OK or score > self.ok[-1]:
            self.ok.append(score)
            self.ok.sort(reverse=True)
            del self.ok[_MAX_OK:]

    def threshold(self, needed: int) -> float | None:
        """The entry's own threshold: its ``needed``-th best correct observation above any
        wrong one; None without that many."""
        above = [s for s in self.ok if s > self.wrong_max]
        return above[needed - 1] if len(above) >= needed else None

    def __repr__(self) -> str:
        return f"EntryRecord(wrong_max={self.wrong_max}, ok={len(self.ok)})"


class Policy(Protocol):
    """Decides what the semantic cache does with a verified candidate, and learns."""

    floor: float
    """Candidates below this similarity are plain misses (not even judged)."""

    @property
    def threshold(self) -> float | None: ...

    def decide(self, score: float, entry: EntryRecord | None = None) -> Decision: ...

    def observe(self, score: float, correct: bool, entry: EntryRecord | None = None) -> None: ...


class FixedThreshold:
    """A ``Policy`` that serves every verified candidate at or above ``threshold``.

    No learning and no error bound: what it serves wrongly depends on the
    embedder and the traffic. For experiments, and for embedders measured
    on your own traffic.
    """

    __slots__ = ("floor",)

    def __init__(self, threshold: float) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        self.floor = float(threshold)

    @property
    def threshold(self) -> float:
        return self.floor

    def decide(self, score: float, entry: EntryRecord | None = None) -> Decision:
        return Decision.SERVE if score >= self.floor else Decision.MISS

    def observe(self, score: float, correct: bool, entry: EntryRecord | None = None) -> None:
        if entry is not None:
            entry.add(score, correct)

    def __repr__(self) -> str:
        return f"FixedThreshold({self.floor})"


@dataclass(frozen=True)
class BoundStatistics:
    """A snapshot of an ``ErrorBound``."""

    observations: int
    wrong: int
    threshold: float | None
    """The learned global threshold (None: not enough evidence yet, nothing is served)."""
    upper_bound: float | None
    """The upper confidence bound of the error rate at that threshold."""
    served: int
    explored: int


def _bin(score: float) -> int:
    return min(_BINS - 1, max(0, int(score * _BINS)))


class ErrorBound:
    """Decides hit / explore / observe for a candidate, bounding the error rate of hits."""

    __slots__ = (
        "_dirty",
        "_rng",
        "_threshold",
        "_upper",
        "confidence",
        "explore",
        "explored",
        "floor",
        "max_error",
        "needed",
        "served",
        "start",
        "total",
        "wrong",
    )

    def __init__(
        self,
        max_error: float = 0.02,
        *,
        confidence: float = 0.95,
        explore: float = 0.05,
        floor: float = 0.5,
        rng: random.Random | None = None,
    ) -> None:
        if not 0.0 < max_error < 1.0:
            raise ValueError("max_error must be in (0, 1)")
        if not 0.5 <= confidence < 1.0:
            raise ValueError("confidence must be in [0.5, 1)")
        if not 0.0 <= explore <= 1.0:
            raise ValueError("explore must be in [0, 1]")
        self.max_error = max_error
        self.confidence = confidence
        self.explore = explore
        self.floor = floor
        self.needed = min_trials(max_error, 1.0 - confidence)
        """Correct observations an entry needs before it may serve below the global threshold."""
        self.start = max(self.needed, _MIN_START)
        """Observations at or above a threshold before it is tested."""
        self._rng = rng or random.Random()
        self.total = [0] * _BINS
        self.wrong = [0] * _BINS
        self._threshold: float | None = None
        self._upper: float | None = None
        self._dirty = False
        self.served = self.explored = 0

    # -- learning ---------------------------------------------------------------
    def observe(self, score: float, correct: bool, entry: EntryRecord | None = None) -> None:
        """Record that a candidate at ``score`` would have been right (or wrong)."""
        b = _bin(score)
        self.total[b] += 1
        if not correct:
            self.wrong[b] += 1
        if entry is not None:
            entry.add(score, correct)
        self._dirty = True

    def observe_many(self, scores: Sequence[float], correct: Sequence[bool]) -> None:
        """Warm start from labelled pairs (e.g. your own traffic, judged offline)."""
        if len(scores) != len(correct):
            raise ValueError("scores and correct must have the same length")
        for score, ok in zip(scores, correct, strict=True):
            self.observe(score, ok)

    def load_counts(self, total: Sequence[int], wrong: Sequence[int]) -> None:
        """Replace the observation counts (a shared store hands them over)."""
        if len(total) != _BINS or len(wrong) != _BINS:
            raise ValueError(f"expected {_BINS} bins")
        self.total, self.wrong = list(total), list(wrong)
        self._dirty = True

    @staticmethod
    def bin(score: float) -> int:
        """The histogram bin of a similarity."""
        return _bin(score)

    @property
    def threshold(self) -> float | None:
        """The lowest similarity that may be served (None: none yet)."""
        if self._dirty:
            self._refit()
        return self._threshold

    def _refit(self) -> None:
        self._dirty = False
        delta = 1.0 - self.confidence
        n = k = 0
        best: float | None = None
        at: tuple[int, int] | None = None
        for b in range(_BINS - 1, -1, -1):
            n += self.total[b]
            k += self.wrong[b]
            if n < self.start or self.total[b] == 0:
                continue
            # the Clopper-Pearson bound is <= max_error iff P(X <= k | n, max_error) <= delta
            if k and binomial_cdf(k, n, self.max_error) > delta:
                break
            best, at = b / _BINS, (k, n)
        self._threshold = best
        self._upper = None if at is None else clopper_pearson_upper(at[0], at[1], delta)

    # -- deciding ---------------------------------------------------------------
    def decide(self, score: float, entry: EntryRecord | None = None) -> Decision:
        """What to do with a candidate at ``score`` (after the verifier accepted it)."""
        if score < self.floor:
            return Decision.MISS
        limit = self.threshold
        if entry is not None:
            own = entry.threshold(self.needed)
            if own is not None and (limit is None or own < limit):
                limit = own
            if score <= entry.wrong_max:
                return Decision.OBSERVE
        if limit is None or score < limit:
            return Decision.OBSERVE
        if self.explore and self._rng.random() < self.explore:
            self.explored += 1
            return Decision.EXPLORE
        self.served += 1
        return Decision.SERVE

    def statistics(self) -> BoundStatistics:
        threshold = self.threshold
        return BoundStatistics(
            observations=sum(self.total),
            wrong=sum(self.wrong),
            threshold=threshold,
            upper_bound=self._upper,
            served=self.served,
            explored=self.explored,
        )

    def __repr__(self) -> str:
        return (
            f"ErrorBound(max_error={self.max_error}, confidence={self.confidence}, "
            f"threshold={self.threshold}, observations={sum(self.total)})"
        )
