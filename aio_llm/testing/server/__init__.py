"""``FakeLLMServer``: a real HTTP server on loopback speaking the providers' wire formats."""

from __future__ import annotations

from ._faults import (
    DEFAULT_RANDOM_FAULTS,
    Fault,
    FaultSchedule,
)
from ._records import (
    RecordedRequest,
    RequestHeaders,
    ServerStatistics,
)
from ._server import (
    FakeLLMServer,
)
from ._spawn import (
    SpawnedServer,
    run_fake_server,
    spawn_fake_server,
)

__all__ = [
    "DEFAULT_RANDOM_FAULTS",
    "FakeLLMServer",
    "Fault",
    "FaultSchedule",
    "RecordedRequest",
    "RequestHeaders",
    "ServerStatistics",
    "SpawnedServer",
    "run_fake_server",
    "spawn_fake_server",
]
