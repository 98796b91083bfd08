"""Test doubles for aio_llm: a real fake LLM server on loopback and a fake clock.

``FakeLLMServer`` speaks the OpenAI and Anthropic wire formats over real
HTTP/1.1, with scripted ``Fault``s and a request log; ``FakeClock`` makes
time-based policies testable without sleeping.
"""

from __future__ import annotations

from .clock import FakeClock
from .server._faults import DEFAULT_RANDOM_FAULTS, Fault
from .server._records import RecordedRequest, RequestHeaders, ServerStatistics
from .server._server import FakeLLMServer
from .server._spawn import SpawnedServer, run_fake_server, spawn_fake_server

__all__ = [
    "DEFAULT_RANDOM_FAULTS",
    "FakeClock",
    "FakeLLMServer",
    "Fault",
    "RecordedRequest",
    "RequestHeaders",
    "ServerStatistics",
    "SpawnedServer",
    "run_fake_server",
    "spawn_fake_server",
]
