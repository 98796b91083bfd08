from __future__ import annotations

import math

import pytest

from aio_llm.middleware.semantic_cache._stats import (
    binomial_cdf,
    clopper_pearson_upper,
    min_trials,
    wilson,
)


def test_clopper_pearson_matches_known_values() -> None:
    # one-sided 95% upper bounds: qbeta(0.95, k + 1, n - k)
    assert clopper_pearson_upper(5, 100, 0.05) == pytest.approx(0.10225, abs=1e-4)
    assert clopper_pearson_upper(0, 149, 0.05) == pytest.approx(0.0199, abs=1e-4)
    assert clopper_pearson_upper(1, 10, 0.05) == pytest.approx(0.39416, abs=1e-4)
    assert clopper_pearson_upper(3, 3, 0.05) == 1.0 and clopper_pearson_upper(0, 0, 0.05) == 1.0


def test_binomial_cdf_against_the_sum() -> None:
    n, p = 40, 0.07
    for k in (0, 1, 3, 10, 39, 40):
        direct = sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))
        assert binomial_cdf(k, n, p) == pytest.approx(direct, abs=1e-10)


def test_min_trials_and_wilson() -> None:
    assert min_trials(0.02, 0.05) == 149 and min_trials(0.1, 0.1) == 22
    lo, hi = wilson(97, 100)
    assert lo == pytest.approx(0.9155, abs=1e-3) and hi == pytest.approx(0.9897, abs=1e-3)
    assert wilson(0, 0) == (0.0, 1.0)
