"""Options of the soak test: ``--soak-requests N`` (default 5,000: the CI run)."""

from __future__ import annotations

import pytest

DEFAULT_SOAK_REQUESTS = 5_000


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak-requests",
        type=int,
        default=DEFAULT_SOAK_REQUESTS,
        help="requests the soak test sends (default %(default)s; e.g. 100000 for the long run)",
    )
    parser.addoption(
        "--soak-trace",
        action="store_true",
        default=False,
        help="take tracemalloc snapshots and gc figures in the soak test (slower)",
    )


@pytest.fixture
def soak_requests(request: pytest.FixtureRequest) -> int:
    value = request.config.getoption("--soak-requests", default=DEFAULT_SOAK_REQUESTS)
    return int(value)


@pytest.fixture
def soak_trace(request: pytest.FixtureRequest) -> bool:
    """``--soak-trace``: tracemalloc and gc figures, diffed between the halves (slower)."""
    return bool(request.config.getoption("--soak-trace", default=False))
