"""Batch jobs at their edges: a cancelled caller, two processes on one job, huge results."""

from __future__ import annotations

import random
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest

from aio_llm import APIStatusError, BatchError
from aio_llm.batch import BatchStore
from aio_llm.batch._api import AnthropicBatchAPI
from aio_llm.testing import FakeClock, FakeLLMServer, Fault
from aio_llm.transports.base import HTTPTransport, StreamingHTTPResponse

from .test_provider_batches import client_for


def reqs(n: int, prefix: str = "q") -> list[dict[str, Any]]:
    return [
        {"messages": [{"role": "user", "content": f"{prefix}{i}"}], "max_tokens": 50}
        for i in range(n)
    ]


class GatedTransport:
    """Passes every call through, but holds the ``nth`` create of a batch until released."""

    def __init__(self, inner: HTTPTransport, nth: int) -> None:
        self.inner = inner
        self.nth = nth
        self.creates = 0
        self.held = anyio.Event()

    def _is_create(self, method: str, url: str) -> bool:
        return method == "POST" and url.endswith(("/batches", "/messages/batches"))

    async def request(
        self, method: str, url: str, headers: Mapping[str, str], content: bytes
    ) -> tuple[int, Mapping[str, str], bytes]:
        if self._is_create(method, url):
            self.creates += 1
            if self.creates == self.nth:
                self.held.set()
                await anyio.sleep_forever()
        return await self.inner.request(method, url, headers, content)

    async def stream(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        content: bytes,
        *,
        max_body_size: int | None = None,
    ) -> StreamingHTTPResponse:
        return await self.inner.stream(method, url, headers, content, max_body_size=max_body_size)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_a_caller_cancelled_while_submitting_leaves_no_batch_running_and_nothing_reserved(
    kind: str,
) -> None:
    clock = FakeClock()
    async with FakeLLMServer(clock=clock, batches={"processing_time": 3600.0}) as srv:
        async with client_for(srv, kind, clock, daily_budget=10.0) as c:
            assert c._transport is not None
            gate = GatedTransport(c._transport, nth=2)
            c._transport = gate
            with anyio.move_on_after(30):  # a caller that gives up, while part 2 is created
                async with anyio.create_task_group() as tg:
                    tg.start_soon(lambda: c.batch(reqs(6), max_requests=3))
                    await gate.held.wait()
                    tg.cancel_scope.cancel()
        status = c.cost_manager.get_budget_status("daily")  # once the client has closed
    (batch,) = srv.batches.batches.values()  # the first part was created...
    assert batch.cancel_at is not None  # ...and is cancelled with the caller
    assert status["reserved"] == 0


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_a_cancelled_call_releases_its_reservation(kind: str) -> None:
    clock = FakeClock()
    options = {"processing_time": 3600.0, "cancelling_time": 5.0}
    async with FakeLLMServer(clock=clock, batches=options) as srv:
        async with client_for(srv, kind, clock, daily_budget=10.0) as c:
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: c.batch(reqs(5)))
                await srv.wait_until(lambda s: s.request_count >= 3)  # polling has begun
                assert c.cost_manager.get_budget_status("daily")["reserved"] > 0
                tg.cancel_scope.cancel()
        status = c.cost_manager.get_budget_status("daily")  # once the client has closed
    (batch,) = srv.batches.batches.values()
    assert batch.cancel_at is not None
    assert status["reserved"] == 0  # not held for the 36 h of the batch window


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_two_processes_driving_one_job_never_send_a_request_twice(
    kind: str, tmp_path: Path
) -> None:
    clock = FakeClock()
    path = tmp_path / "jobs.sqlite3"
    options = {"processing_time": 100.0, "completion_window": 50.0}
    async with FakeLLMServer(clock=clock, batches=options) as srv:
        async with client_for(srv, kind, clock) as a, client_for(srv, kind, clock) as b:
            store_a, store_b = BatchStore(path), BatchStore(path)
            job = await a.batch_submit(reqs(20), store=store_a, resubmit_expired=3)
            other = await b.batch_resume(job.id, store=store_b)
            clock.advance(60.0)  # the first batch expired with half of the requests run
            async with anyio.create_task_group() as tg:
                tg.start_soon(job.wait)
                tg.start_soon(other.wait)
            results = await job.results()
            again = await other.results()
            store_a.close()
            store_b.close()
    kinds = [type(r).__name__ for r in results]
    assert [type(r).__name__ for r in again] == kinds
    # what one process alone sends: each batch runs half of what it holds, the rest goes again
    sizes = [len(b.lines) for b in srv.batches.batches.values()]
    assert sizes == [20, 10, 5, 3], (sizes, kinds)


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_a_results_file_larger_than_max_response_bytes_is_read_line_by_line(
    kind: str,
) -> None:
    clock = FakeClock()
    async with FakeLLMServer(clock=clock, batches={"processing_time": 10.0}) as srv:
        # each answer is well under 8 KB; the 300 of them are several times more
        async with client_for(srv, kind, clock, max_response_bytes=8192) as c:
            batch = reqs(300)
            batch[7]["messages"][0]["content"] = "x" * 9000  # its answer line is too long
            results = await c.batch(batch, return_exceptions=True)
    (remote,) = srv.batches.batches.values()
    assert sum(len(ln.body) for ln in remote.lines) > 4 * 8192
    assert isinstance(results[7], BatchError) and "no result" in str(results[7])
    rest = [r for i, r in enumerate(results) if i != 7]
    assert [r.content for r in rest] == [  # type: ignore[union-attr]
        f"Echo: q{i}" for i in range(300) if i != 7
    ]


@pytest.mark.anyio
async def test_the_results_are_fetched_from_the_provider_and_a_redirect_keeps_the_key_home() -> (
    None
):
    clock = FakeClock()
    async with (
        FakeLLMServer(clock=clock, batches={"processing_time": 10.0}) as home,
        FakeLLMServer(clock=clock, batches={"processing_time": 10.0}) as elsewhere,
    ):
        async with client_for(home, "anthropic", clock) as c:
            provider = c.providers["anthropic"]
            assert c._transport is not None
            api = AnthropicBatchAPI(provider, c._transport, clock, random.Random(0))
            entries = [
                api.entry(f"r{i}", provider.encode_chat(c._coerce(r)).content)
                for i, r in enumerate(reqs(3))
            ]
            created = await api.create(entries, {})
            clock.advance(60.0)
            status = await api.retrieve(created.id)
            assert status.ended
            # a results_url on another host is not followed: the provider's own one is used
            status.results_url = f"{elsewhere.url}/v1/messages/batches/{created.id}/results"
            with tempfile.TemporaryFile() as spool:
                lines = list(await api.results(status, spool))
            assert [ln.kind for ln in lines] == ["succeeded"] * 3
            # a redirect to another host is followed without the key
            home.enqueue(
                Fault.raw(302, {"Location": status.results_url}, b""),
                path=f"/v1/messages/batches/{created.id}/results",
            )
            with tempfile.TemporaryFile() as spool, pytest.raises(APIStatusError):
                await api.results(status, spool)
    assert [r.path for r in elsewhere.requests] == [f"/v1/messages/batches/{created.id}/results"]
    assert all("x-api-key" not in r.headers for r in elsewhere.requests)
    assert all("authorization" not in r.headers for r in elsewhere.requests)


def test_job_totals_are_summed_in_the_store(tmp_path: Path) -> None:
    store = BatchStore(tmp_path / "jobs.sqlite3")
    rows: list[dict[str, Any]] = [
        {"ok": {"cost": 0.25}, "full_cost": 0.5},
        {"ok": {"cost": 0.1}, "full_cost": 0.0},  # no live price known: nothing saved
        {"ok": {"cost": None}, "full_cost": None},
        {"ok": {"cost": 0.0}, "cached": True, "saved": 0.3},
        {"ok": {"cost": 0.0}, "cached": True, "saved": None},
        {"error": {"kind": "expired"}},
    ]
    store.create_job("j", 0.0, {}, ("{}" for _ in range(len(rows) + 1)))
    store.finish_items("j", enumerate(rows))  # the last request has no result yet
    ok, bad, cached, cost, saved_batch, saved_cache = store.totals("j")
    store.close()
    assert (ok, bad, cached) == (5, 1, 2)
    assert cost == pytest.approx(0.35)
    assert saved_batch == pytest.approx(0.25)
    assert saved_cache == pytest.approx(0.3)
