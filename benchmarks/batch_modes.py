"""Cost and time of one job in each batch mode: live fan-out, the provider Batch API, Ray Data.

    python benchmarks/batch_modes.py --requests 10000

A FakeLLMServer in a child process answers every request after ``--latency``
seconds with a ~150-token answer to a ~100-token prompt (model gpt-4o-mini,
priced from the packaged table); its batch API processes a batch in
``--batch-processing`` seconds. The figures go to stdout as a Markdown
table (docs/batch.md quotes them).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import anyio

from aio_llm import AsyncLLMClient, ChatResponse, ClientConfig
from aio_llm.batch import BatchStore
from aio_llm.testing import FakeLLMServer

MODEL = "gpt-4o-mini"
ANSWER = " ".join(f"word{i % 50}" for i in range(150))
PROMPT = " ".join(f"context{i % 40}" for i in range(95))


def requests(n: int) -> list[dict[str, Any]]:
    return [
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": f"{PROMPT} question {i}"}],
            "max_tokens": 256,
        }
        for i in range(n)
    ]


def client(url: str) -> AsyncLLMClient:
    return AsyncLLMClient(
        "openai",
        api_key="sk-bench",
        base_url=url,
        model=MODEL,
        config=ClientConfig(max_connections=256),
    )


async def live(url: str, n: int, concurrency: int) -> tuple[float, float, int]:
    async with client(url) as c:
        t0 = time.perf_counter()
        results = await c.gather(requests(n), concurrency=concurrency, return_exceptions=True)
        wall = time.perf_counter() - t0
    cost = sum(r.cost or 0.0 for r in results if isinstance(r, ChatResponse))
    return wall, cost, sum(isinstance(r, ChatResponse) for r in results)


async def batch(url: str, n: int) -> tuple[float, float, int]:
    async with client(url) as c:
        t0 = time.perf_counter()
        store = BatchStore(":memory:")
        job = await c.batch_submit(
            requests(n), store=store, poll_interval=1.0, max_poll_interval=5.0
        )
        results = await job.results()
        wall = time.perf_counter() - t0
        store.close()
    cost = sum(r.cost or 0.0 for r in results if isinstance(r, ChatResponse))
    return wall, cost, sum(isinstance(r, ChatResponse) for r in results)


def ray_mode(url: str, n: int, actors: int, concurrency: int) -> tuple[float, float, int, float]:
    import ray

    from aio_llm.integrations.ray import LLMPredictor

    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    started = time.perf_counter() - t0
    rows = [{"prompt": f"{PROMPT} question {i}"} for i in range(n)]
    ds = ray.data.from_items(rows, override_num_blocks=actors * 4)
    out = ds.map_batches(
        LLMPredictor,
        fn_constructor_kwargs={
            "client_options": {
                "provider": "openai",
                "api_key": "sk-bench",
                "base_url": url,
                "model": MODEL,
                "config": {"max_connections": 256},
            },
            "request_options": {"max_tokens": 256},
            "concurrency": concurrency,
        },
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=0.25,
        batch_size=max(1, n // (actors * 4)),
    ).take_all()
    wall = time.perf_counter() - t0
    ray.shutdown()
    cost = sum(r["cost"] for r in out)
    return wall, cost, sum(r["error"] is None for r in out), started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", "-n", type=int, default=10_000)
    ap.add_argument("--latency", type=float, default=0.25)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--actors", type=int, default=4)
    ap.add_argument("--batch-processing", type=float, default=60.0)
    ap.add_argument("--modes", default="live,batch,ray")
    args = ap.parse_args()
    modes = args.modes.split(",")
    rows = []
    with FakeLLMServer.spawn(
        reply=ANSWER,
        latency=args.latency,
        record_limit=0,
        batches={"processing_time": args.batch_processing},
    ) as srv:
        if "live" in modes:
            wall, cost, ok = anyio.run(live, srv.openai_url, args.requests, args.concurrency)
            rows.append(("live fan-out", f"concurrency {args.concurrency}", wall, cost, ok))
        if "batch" in modes:
            wall, cost, ok = anyio.run(batch, srv.openai_url, args.requests)
            rows.append(
                ("provider Batch API", f"processing {args.batch_processing:g} s", wall, cost, ok)
            )
        if "ray" in modes:
            wall, cost, ok, started = ray_mode(
                srv.openai_url, args.requests, args.actors, args.concurrency // args.actors
            )
            rows.append(
                (
                    "Ray Data",
                    f"{args.actors} actors x {args.concurrency // args.actors},"
                    f" Ray start {started:.1f} s",
                    wall,
                    cost,
                    ok,
                )
            )
    print(f"{args.requests} requests, server latency {args.latency:g} s, model {MODEL}\n")
    print("| mode | setting | wall time (s) | cost (USD) | answered |")
    print("|---|---|---:|---:|---:|")
    for mode, setting, wall, cost, ok in rows:
        print(f"| {mode} | {setting} | {wall:.1f} | {cost:.4f} | {ok} |")


if __name__ == "__main__":
    main()
