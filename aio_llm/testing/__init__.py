"""Test doubles for aio_llm: a real fake LLM server on loopback and a fake clock.

``FakeLLMServer`` speaks the OpenAI and Anthropic wire formats over real
HTTP/1.1, with scripted ``Fault``s and a request log; ``FakeClock`` makes
time-based policies testable without sleeping.
"""

import typing

from .._exports import lazy_exports as _lazy_exports

if typing.TYPE_CHECKING:
    from .clock import FakeClock as FakeClock
    from .server._faults import DEFAULT_RANDOM_FAULTS as DEFAULT_RANDOM_FAULTS
    from .server._faults import Fault as Fault
    from .server._records import RecordedRequest as RecordedRequest
    from .server._records import RequestHeaders as RequestHeaders
    from .server._records import ServerStatistics as ServerStatistics
    from .server._run import run_fake_server as run_fake_server
    from .server._server import FakeLLMServer as FakeLLMServer
    from .server._spawn import SpawnedServer as SpawnedServer

__all__, __getattr__, __dir__ = _lazy_exports(__name__)
