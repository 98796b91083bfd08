"""Binomial confidence bounds in plain Python (no SciPy): Wilson and Clopper-Pearson."""

from __future__ import annotations

import math
from statistics import NormalDist

__all__ = ["binomial_cdf", "clopper_pearson_upper", "min_trials", "wilson"]


def wilson(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion; (0, 1) for no trials."""
    if trials <= 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for num in (
            m * (b - m) * x / ((a + m2 - 1) * (a + m2)),
            -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-12:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def binomial_cdf(k: int, n: int, p: float) -> float:
    """``P(X <= k)`` for ``X ~ Binomial(n, p)``."""
    if k >= n:
        return 1.0
    if k < 0:
        return 0.0
    return 1.0 - _betainc(k + 1, n - k, p)


def clopper_pearson_upper(failures: int, trials: int, delta: float) -> float:
    """The exact one-sided upper bound, at confidence ``1 - delta``, of a failure rate.

    The smallest ``p`` with ``P(X <= failures | trials, p) <= delta``: with
    probability at least ``1 - delta`` the true rate is below it.
    """
    if trials <= 0 or failures >= trials:
        return 1.0
    if failures == 0:
        return 1.0 - float(delta ** (1.0 / trials))
    # P(X <= k) = 1 - I_p(k + 1, n - k); solve I_p(k + 1, n - k) = 1 - delta by bisection
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if binomial_cdf(failures, trials, mid) > delta:
            lo = mid
        else:
            hi = mid
    return hi


def min_trials(max_rate: float, delta: float) -> int:
    """The fewest trials, all successes, whose upper bound is at most ``max_rate``."""
    return math.ceil(math.log(delta) / math.log1p(-max_rate))
