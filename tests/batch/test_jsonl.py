"""Durable JSONL jobs: the runner, its checkpoint, and runs killed with SIGKILL at random points."""

from __future__ import annotations

import functools
import json
import logging
import os
import random
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

from aio_llm import AsyncLLMClient, ClientConfig, InvalidRequestError
from aio_llm.batch import run_jsonl
from aio_llm.testing import FakeClock, FakeLLMServer, Fault

log = logging.getLogger(__name__)
MODEL = "gpt-4o-mini"


def write_input(path: Path, n: int, *, openai_format_every: int = 3) -> None:
    with open(path, "w") as f:
        for i in range(1, n + 1):
            body = {"model": MODEL, "messages": [{"role": "user", "content": f"L{i}"}]}
            if i % openai_format_every == 0:
                line: dict[str, Any] = {
                    "custom_id": f"line-{i}",
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": {**body, "max_tokens": 16},
                }
            else:
                line = body
            f.write(json.dumps(line) + "\n")


def read_output(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def client_for(srv: FakeLLMServer, **kw: Any) -> AsyncLLMClient:
    return AsyncLLMClient(
        "openai",
        api_key="sk-jsonl",
        base_url=srv.openai_url,
        model=MODEL,
        config=ClientConfig(**kw.pop("config", {})),
        **kw,
    )


@pytest.mark.anyio
async def test_live_run_answers_every_line_in_order_and_a_rerun_sends_nothing(
    tmp_path: Path,
) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(inp, 40)
    with open(inp, "a") as f:
        f.write("{not json\n\n")  # a broken line gets an error result; the blank one is skipped
        f.write(json.dumps({"custom_id": "e1", "url": "/v1/embeddings", "body": {}}) + "\n")
    async with FakeLLMServer() as srv:
        srv.enqueue(Fault.status(400, message="refused"), path="/v1/chat/completions")
        async with client_for(srv) as c:
            summary = await run_jsonl(c, inp, out, concurrency=4)
            assert summary.lines == 42 and summary.succeeded == 39 and summary.failed == 3
            assert summary.pending == 0 and summary.sent == 40 and summary.cost > 0
            sent = srv.request_count
            again = await run_jsonl(c, inp, out)
            assert srv.request_count == sent and again.sent == 0
            # a failed line is sent again only when asked
            retried = await run_jsonl(c, inp, out, retry_failed=True)
            assert retried.sent == 1 and retried.failed == 2
    rows = read_output(out)
    assert [r["line"] for r in rows] == list(range(1, 41)) + [41, 43]
    answered = [r for r in rows if r["error"] is None]
    assert [r["content"] for r in answered] == [f"Echo: L{i}" for i in range(1, 41)]
    assert rows[2]["custom_id"] == "line-3" and rows[0]["custom_id"] == "line-1"
    assert rows[-2]["error"]["message"] == "the line is not valid JSON"
    assert "only POST /v1/chat/completions" in rows[-1]["error"]["message"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.anyio
async def test_a_changed_input_is_refused(tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(inp, 5)
    async with FakeLLMServer() as srv, client_for(srv) as c:
        await run_jsonl(c, inp, out)
        write_input(inp, 5, openai_format_every=2)
        with pytest.raises(InvalidRequestError, match="differs"):
            await run_jsonl(c, inp, out)
    assert len(read_output(out)) == 5  # nothing lost


@pytest.mark.anyio
async def test_budget_caps_the_whole_job_across_reruns(tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(inp, 30, openai_format_every=1)  # max_tokens=16: a small worst case
    async with FakeLLMServer() as srv, client_for(srv) as c:
        price = c.cost_manager.pricing.get(MODEL)
        assert price is not None
        one = price.worst_case(10, 16)
        first = await run_jsonl(c, inp, out, budget=one * 3, concurrency=1)
        assert 0 < first.succeeded < 30 and first.pending == 30 - first.succeeded
        second = await run_jsonl(c, inp, out, budget=one * 3, concurrency=1)
        assert second.sent == 0  # the budget was spent by the first run
        third = await run_jsonl(c, inp, out, budget=1.0)
        assert third.pending == 0 and third.succeeded == 30


@pytest.mark.anyio
async def test_batch_run_at_half_price_with_the_cache_first(tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(inp, 12)
    clock = FakeClock()
    async with FakeLLMServer(clock=clock, batches={"processing_time": 30.0}) as srv:
        async with client_for(srv, clock=clock, config={"cache_enabled": True}) as c:
            await c.chat([{"role": "user", "content": "L1"}])
            summary = await run_jsonl(c, inp, out, via="batch", poll_interval=5.0)
    assert summary.succeeded == 12 and summary.pending == 0
    assert summary.saved_by_cache > 0
    assert summary.saved_by_batch == pytest.approx(summary.cost)
    assert sorted(srv.batches.submitted) == sorted(f"r{i}" for i in range(1, 12))
    rows = read_output(out)
    assert rows[0]["cached"] is True and rows[1]["cached"] is False
    assert [r["content"] for r in rows] == [f"Echo: L{i}" for i in range(1, 13)]


# -- killed with SIGKILL at random points -----------------------------------------------------


def _runner(inp: Path, out: Path, via: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "aio_llm",
        "batch",
        "run",
        str(inp),
        "--out",
        str(out),
        "--via",
        via,
        "--no-progress",
        *extra,
    ]


def _env(srv: FakeLLMServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_", "OPENAI_"))}
    env.update(
        LLM_PROVIDER="openai",
        OPENAI_API_KEY="sk-kill",
        OPENAI_BASE_URL=srv.openai_url,
        LLM_MAX_RETRIES="0",
    )
    return env


def _reached(s: FakeLLMServer, *, target: int) -> bool:
    return s.request_count >= target


def _recorded(out: Path) -> set[int]:
    path = out.with_name(out.name + ".checkpoint.sqlite3")
    if not path.exists():
        return set()
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT n FROM lines WHERE result IS NOT NULL").fetchall()
    except sqlite3.OperationalError:  # killed before the schema was written
        rows = []
    finally:
        conn.close()
    return {r[0] for r in rows}


@pytest.mark.anyio
async def test_live_job_killed_20_times_answers_every_line_once_and_never_resends(
    tmp_path: Path,
) -> None:
    lines = 2000
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(inp, lines)
    rng = random.Random(20261203)
    boundaries: list[tuple[int, set[int]]] = []  # (log length, lines recorded) at each kill
    kills = 0
    async with FakeLLMServer(latency=0.001) as srv:
        env = _env(srv)
        for run in range(40):  # until 20 kills: a run may also end on its own first
            if kills == 20:
                break
            before = srv.request_count
            proc = await anyio.open_process(
                _runner(inp, out, "live", "--concurrency", "8"),
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if run % 6 == 0:  # anywhere, start-up and output writing included
                with anyio.move_on_after(rng.uniform(0.0, 1.5)):
                    # at most 120 answers a run, so that the job never ends before its kills
                    while proc.returncode is None and srv.request_count < before + 120:
                        with anyio.move_on_after(0.05):
                            await proc.wait()
            else:  # somewhere in the thick of it
                target = before + rng.randint(1, 120)
                with anyio.move_on_after(20):
                    while srv.request_count < target and proc.returncode is None:
                        with anyio.move_on_after(0.2):
                            await srv.wait_until(functools.partial(_reached, target=target), None)
                await anyio.sleep(rng.uniform(0.0, 0.03))
            if proc.returncode is None:
                proc.kill()
                kills += 1
            await proc.wait()
            await proc.aclose()
            await srv.wait_until(lambda s: s.open_connections == 0, timeout=10)
            boundaries.append((len(srv.requests), _recorded(out)))
        final = await anyio.run_process(_runner(inp, out, "live"), env=env, check=False)
        assert final.returncode == 0, final.stderr.decode()[-2000:]
        log_lines = [int(r.json()["messages"][-1]["content"][1:]) for r in srv.requests]
    # every line answered exactly once, in order
    rows = read_output(out)
    assert [r["line"] for r in rows] == list(range(1, lines + 1))
    assert all(r["content"] == f"Echo: L{r['line']}" for r in rows)
    # no request was sent again after its result had been recorded
    first_recorded: dict[int, int] = {}
    for log_len, recorded in boundaries:
        for n in recorded:
            first_recorded.setdefault(n, log_len)
    late = [(p, n) for p, n in enumerate(log_lines) if p >= first_recorded.get(n, len(log_lines))]
    assert late == []
    sends = Counter(log_lines)
    assert set(sends) == set(range(1, lines + 1))
    resent = sum(c - 1 for c in sends.values())
    assert kills >= 15
    log.info(
        "%d runs, %d killed with SIGKILL: %d requests for %d lines (%d resent: in flight"
        " at a kill); 0 sent after their result was recorded",
        len(boundaries) + 1,
        kills,
        len(log_lines),
        lines,
        resent,
    )


@pytest.mark.anyio
async def test_batch_job_killed_at_random_points_submits_every_line_once(tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(inp, 300)
    rng = random.Random(7)
    async with FakeLLMServer(batches={"processing_time": 1.0}) as srv:
        env = _env(srv)
        cmd = _runner(inp, out, "batch", "--poll-interval", "0.05")
        for _ in range(6):
            proc = await anyio.open_process(
                cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            with anyio.move_on_after(rng.uniform(0.2, 1.6)):
                await proc.wait()
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
            await proc.aclose()
        final = await anyio.run_process(cmd, env=env, check=False)
        assert final.returncode == 0, final.stderr.decode()[-2000:]
    rows = read_output(out)
    assert [r["content"] for r in rows] == [f"Echo: L{i}" for i in range(1, 301)]
    assert sorted(srv.batches.submitted) == sorted(f"r{i}" for i in range(300))
    assert set(srv.batches.submitted.values()) == {1}  # no line submitted twice


@pytest.mark.anyio
async def test_an_input_that_lost_lines_is_refused(tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(inp, 6)
    async with FakeLLMServer() as srv, client_for(srv, config={"daily_budget": 1e-9}) as c:
        first = await run_jsonl(c, inp, out)  # nothing affordable: every line stays pending
        assert first.pending == 6
        write_input(inp, 4)
        with pytest.raises(InvalidRequestError, match="line 5 differs .* or is gone"):
            await run_jsonl(c, inp, out)
        assert srv.request_count == 0


@pytest.mark.anyio
async def test_an_output_without_its_checkpoint_is_not_answered_again(tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(inp, 3)
    async with FakeLLMServer() as srv, client_for(srv) as c:
        await run_jsonl(c, inp, out)
        for p in tmp_path.glob("out.jsonl.checkpoint.sqlite3*"):
            p.unlink()
        sent = srv.request_count
        with pytest.raises(InvalidRequestError, match="without its checkpoint"):
            await run_jsonl(c, inp, out)
        assert srv.request_count == sent
    assert len(read_output(out)) == 3


@pytest.mark.anyio
async def test_a_damaged_checkpoint_or_store_is_a_clear_error_and_left_alone(
    tmp_path: Path,
) -> None:
    from aio_llm import ConfigurationError
    from aio_llm.batch import BatchStore

    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(inp, 3)
    damaged = b"this is not a database" * 100
    ckpt = tmp_path / "out.jsonl.checkpoint.sqlite3"
    ckpt.write_bytes(damaged)
    async with FakeLLMServer() as srv, client_for(srv) as c:
        with pytest.raises(ConfigurationError, match="checkpoint .* cannot be used"):
            await run_jsonl(c, inp, out)
        assert srv.request_count == 0
    assert ckpt.read_bytes() == damaged
    store = tmp_path / "jobs.sqlite3"
    store.write_bytes(damaged)
    with pytest.raises(ConfigurationError, match="batch store .* cannot be used"):
        BatchStore(store)
    assert store.read_bytes() == damaged


@pytest.mark.anyio
async def test_a_second_run_of_a_job_in_progress_is_refused(tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(inp, 4)
    async with FakeLLMServer() as srv, client_for(srv) as c:
        srv.enqueue(Fault.hang(), path="/v1/chat/completions")
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: run_jsonl(c, inp, out, concurrency=1))
            await srv.wait_until(lambda s: s.request_count >= 1)
            with anyio.fail_after(30), pytest.raises(InvalidRequestError, match="another run"):
                await run_jsonl(c, inp, out)
            assert srv.request_count == 1  # the second run sent nothing
            tg.cancel_scope.cancel()  # as Ctrl-C: the lock goes with the run
        summary = await run_jsonl(c, inp, out)
    assert summary.succeeded == 4
