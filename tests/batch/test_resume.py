"""A batch job outlives its process: resume after SIGKILL, and after a create in flight."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from aio_llm import AsyncLLMClient, ChatResponse, ClientConfig, InvalidRequestError
from aio_llm.batch import BatchStore
from aio_llm.testing import FakeClock, FakeLLMServer

MODEL = {"openai": "gpt-4o-mini", "anthropic": "claude-3-5-haiku-20241022"}

CHILD = textwrap.dedent(
    """
    import sys, anyio
    from aio_llm import AsyncLLMClient, ClientConfig

    async def main(kind, base, model, store):
        async with AsyncLLMClient(kind, api_key="sk-resume", base_url=base, model=model,
                                  config=ClientConfig()) as c:
            reqs = [{"messages": [{"role": "user", "content": f"k{i}"}]} for i in range(25)]
            job = await c.batch_submit(reqs, store=store, poll_interval=0.05,
                                       max_poll_interval=0.1)
            print(job.id, flush=True)
            await job.wait()
            print("finished", flush=True)

    anyio.run(main, *sys.argv[1:])
    """
)


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_resume_after_the_submitting_process_is_killed(kind: str, tmp_path: Path) -> None:
    store_path = tmp_path / "jobs.sqlite3"
    async with FakeLLMServer(batches={"processing_time": 2.0}) as srv:
        base = srv.openai_url if kind == "openai" else srv.url
        env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_")}
        cmd = [sys.executable, "-c", CHILD, kind, base, MODEL[kind], str(store_path)]
        async with await anyio.open_process(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        ) as proc:
            assert proc.stdout is not None
            line = b""
            with anyio.fail_after(60):
                while not line.endswith(b"\n"):
                    line += await proc.stdout.receive(1)
                job_id = line.decode().strip()
                polls = srv.request_count + 2
                await srv.wait_until(lambda s: s.request_count >= polls, timeout=None)
            proc.kill()  # SIGKILL while it polls a batch that is still running
            await proc.wait()
        assert proc.returncode == -9
        (batch,) = srv.batches.batches.values()
        async with AsyncLLMClient(
            kind, api_key="sk-resume", base_url=base, model=MODEL[kind], config=ClientConfig()
        ) as c:
            job = await c.batch_resume(job_id, store=str(store_path))
            assert job.remote_ids() == [batch.id]
            results = await job.results()
            with pytest.raises(InvalidRequestError, match="no batch job"):
                await c.batch_resume("job_unknown", store=str(store_path))
    assert [r.content for r in results] == [f"Echo: k{i}" for i in range(25)]  # type: ignore[union-attr]
    assert len(srv.batches.batches) == 1
    assert set(srv.batches.submitted.values()) == {1}  # nothing was sent twice


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_a_create_in_flight_at_a_crash_is_found_or_sent_again(kind: str) -> None:
    clock = FakeClock()
    async with FakeLLMServer(clock=clock, batches={"processing_time": 10.0}) as srv:
        base = srv.openai_url if kind == "openai" else srv.url
        store = BatchStore(":memory:")
        async with AsyncLLMClient(
            kind, api_key="sk-x", base_url=base, model=MODEL[kind], clock=clock
        ) as c:
            reqs = [{"messages": [{"role": "user", "content": f"f{i}"}]} for i in range(5)]
            job = await c.batch_submit(reqs, store=store)
            # as if the process died after sending the create, before recording its answer
            (part,) = store.parts(job.id)
            store.update_part(job.id, part.key, remote_id=None, state="submitting")
            again = await c.batch_resume(job.id, store=store)
            results = await again.results()
        store.close()
    assert all(isinstance(r, ChatResponse) for r in results)
    if kind == "openai":  # found again by its metadata: not sent twice
        assert len(srv.batches.batches) == 1
        assert set(srv.batches.submitted.values()) == {1}
    else:  # Anthropic keeps no metadata to find it by: sent again (documented)
        assert len(srv.batches.batches) == 2
