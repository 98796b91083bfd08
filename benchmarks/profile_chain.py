"""Profile one client under load: ``python benchmarks/profile_chain.py``.

Spawns the fake server pinned to one core, runs ``--client`` (default: the
aio_llm default chain on aiohttp) at ``-c`` requests in flight in a worker
pinned to the other core, and prints self time by file, the functions with
the most self time, then aio_llm's functions by inclusive time, each as µs
per request (share of samples × the worker's unprofiled CPU per request).

The default profiler is py-spy, which samples the worker from outside and
so adds no cost to it; ``--pyinstrument`` profiles in-process instead (its
hook inflates code that makes many small Python calls). ``--html FILE``
saves pyinstrument's page.

    python benchmarks/profile_chain.py -c 16 -n 20000
    python benchmarks/profile_chain.py --client aio_default_aiohttp@stream -c 128
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from _clients import open_client, spawn_pinned_server  # noqa: E402
from _worker import drive  # noqa: E402

Profile = tuple[dict[str, float], dict[str, float], dict[str, float], float]
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


# -- py-spy ---------------------------------------------------------------------------


def _py_spy(args: argparse.Namespace, urls: dict[str, str], core: int | None) -> Profile:
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    spec = {
        "kind": "load",
        "client": args.client,
        "c": args.c,
        "n": args.n,
        "warmup": 2000,
        "urls": urls,
        "core": core,
    }
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "stacks.txt"
        cmd = [exe, "record", "--format", "raw", "--rate", str(args.rate), "-o", str(raw)]
        cmd += ["--", sys.executable, str(HERE / "_worker.py"), json.dumps(spec)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        if proc.returncode != 0 or not raw.exists():
            raise SystemExit(f"py-spy failed: {proc.stderr.strip()[-500:]}")
        out = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        result = json.loads(out[-1])  # py-spy prints its own lines after the worker's
        lines = raw.read_text().splitlines()
    self_time: dict[str, float] = defaultdict(float)
    total: dict[str, float] = defaultdict(float)
    by_file: dict[str, float] = defaultdict(float)
    samples = 0.0
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if "_find_and_load" in stack or "open_client" in stack:
            continue  # imports and set-up, not requests
        n = float(count)
        frames = []
        for part in stack.split(";"):
            m = _FRAME.match(part)
            frames.append((m["func"], m["file"]) if m else (part, "?"))
        samples += n
        func, file = frames[-1]
        self_time[f"{func} ({file})"] += n
        by_file[file] += n
        for name in {f"{f} ({p})" for f, p in frames}:
            total[name] += n
    args.us_per_req = result["us_per_req"]
    return self_time, total, by_file, samples


# -- pyinstrument ---------------------------------------------------------------------


def _walk(frame: Any, prof: Profile, stack: set[str]) -> None:
    if frame.is_synthetic:  # "[self]" and "[await]" frames count in their parent
        return
    self_time, total, by_file, _ = prof
    name = f"{frame.function} ({frame.file_path_short})"
    self_time[name] += frame.total_self_time
    by_file[frame.file_path_short or "?"] += frame.total_self_time
    nested = name in stack
    if not nested:  # count recursion once
        total[name] += frame.time
        stack.add(name)
    for child in frame.children:
        _walk(child, prof, stack)
    if not nested:
        stack.discard(name)


async def _pyinstrument_run(args: argparse.Namespace, urls: dict[str, str]) -> Any:
    from pyinstrument import Profiler

    client = await open_client(args.client, urls, args.c)
    try:
        await drive(client.call, args.c, 0, 2000)
        cpu = time.process_time()
        await drive(client.call, args.c, 2000, 2000 + args.n)
        args.us_per_req = (time.process_time() - cpu) / args.n * 1e6
        profiler = Profiler(interval=0.0002, async_mode="disabled")
        profiler.start()
        await drive(client.call, args.c, 2000 + args.n, 2000 + 2 * args.n)
        profiler.stop()
    finally:
        await client.aclose()
    return profiler


def _pyinstrument(args: argparse.Namespace, urls: dict[str, str], core: int | None) -> Profile:
    if core is not None:
        os.sched_setaffinity(0, {core})
    profiler = asyncio.run(_pyinstrument_run(args, urls))
    root = profiler.last_session.root_frame()
    prof: Profile = (defaultdict(float), defaultdict(float), defaultdict(float), root.time or 1.0)
    _walk(root, prof, set())
    if args.html:
        Path(args.html).write_text(profiler.output_html())
    return prof


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client", default="aio_default_aiohttp", help="a row of _clients.py")
    parser.add_argument("-c", type=int, default=16, help="requests in flight")
    parser.add_argument("-n", type=int, default=20_000, help="requests profiled")
    parser.add_argument("--rate", type=int, default=1000, help="py-spy samples per second")
    parser.add_argument("--pyinstrument", action="store_true", help="profile in-process")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--html", default=None, help="pyinstrument's HTML page to this file")
    args = parser.parse_args()

    srv, urls, core = spawn_pinned_server()
    try:
        run = _pyinstrument if args.pyinstrument else _py_spy
        self_time, total, by_file, samples = run(args, urls, core)
    finally:
        srv.close()
    us = args.us_per_req
    tool = "pyinstrument" if args.pyinstrument else "py-spy"
    print(
        f"{args.client} at c={args.c}: {us:.1f} µs CPU per request unprofiled; "
        f"{tool}, {samples:.0f} samples. µs = share of samples × that figure."
    )

    def show(title: str, items: dict[str, float], keep: str = "") -> None:
        print(f"\n{title}:")
        rows = sorted(((k, v) for k, v in items.items() if keep in k), key=lambda kv: -kv[1])
        for name, t in rows[: args.top]:
            share = t / samples
            print(f"  {share * us:7.1f} µs {100 * share:5.1f}%  {name}")

    show("Self time by file", by_file)
    show("Functions by self time", self_time)
    show("aio_llm functions by inclusive time", total, keep="aio_llm/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
