"""The seed's process-wide objects: one each, built on first use, behind one lock."""

from __future__ import annotations

import threading

import pytest

from aio_llm.compat import (
    get_cache,
    get_circuit_breaker,
    get_cost_manager,
    get_deduplicator,
    get_llm_client_service,
    get_observability,
    reset_defaults,
)
from aio_llm.compat._defaults import ProcessDefault
from aio_llm.middleware import CircuitBreakerConfig

pytestmark = pytest.mark.usefixtures("fresh_defaults")


def test_each_default_is_one_object_per_process() -> None:
    for get in (get_cache, get_cost_manager, get_deduplicator, get_observability):
        assert get() is get()


def test_breakers_are_one_per_name_and_keep_their_first_config() -> None:
    first = get_circuit_breaker("db", CircuitBreakerConfig(failure_threshold=3))
    assert get_circuit_breaker("db", CircuitBreakerConfig(failure_threshold=9)) is first
    assert first.config.failure_threshold == 3
    assert get_circuit_breaker("other") is not first


def test_reset_builds_new_objects_and_closes_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_FORCE_MOCK", "1")
    manager, service = get_cost_manager(), get_llm_client_service()
    reset_defaults()
    assert service.closed
    assert get_cost_manager() is not manager
    fresh = get_llm_client_service()
    assert fresh is not service and not fresh.closed


def test_a_closed_service_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_FORCE_MOCK", "1")
    service = get_llm_client_service()
    service.close()
    assert get_llm_client_service() is not service


def test_threads_asking_at_once_share_one_object() -> None:
    built: list[object] = []
    started = threading.Barrier(8)

    def build(_: object) -> object:
        value = object()
        built.append(value)
        return value

    default: ProcessDefault[object] = ProcessDefault(build)
    seen: list[object] = []

    def ask() -> None:
        started.wait()
        seen.append(default.get())

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and seen == built * 8
