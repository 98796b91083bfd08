"""Instructions per request under valgrind: ``python benchmarks/count_instructions.py``.

CPU time per request moves by ±15% from run to run on a shared machine and
by far more under load (a loaded 2-core VM read raw aiohttp at 220-370 µs
where a quiet one reads 87). The number of instructions the client process
executes does not depend on what else the machine runs, so it tells whether
a change made the hot path cheaper even when timings cannot. It is not CPU
time (instructions differ in cost), so the targets are judged by ``run.py``
on a quiet machine; use this for before/after comparisons.

Each figure runs the worker (``_worker.py``) twice under ``valgrind
--tool=cachegrind --cache-sim=no`` with ``--small`` and ``--large`` measured
requests after the same warm-up, against a fake server outside valgrind,
and reports the difference divided by the difference in requests, so
start-up, imports and the warm-up cancel out. A run takes a few minutes
(valgrind runs the client ~50 times slower). At c=16 a figure repeats
within ~0.5%; at c=128 and above it depends on how responses happen to be
batched and is not reliable.

    python benchmarks/count_instructions.py --clients raw_aiohttp,aio_default_aiohttp -c 1,16
    python benchmarks/count_instructions.py --clients aio_default_aiohttp@stream -c 16
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from _clients import spawn_pinned_server  # noqa: E402

_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def instructions(spec: dict[str, object]) -> int:
    """Instructions the worker process executed for ``spec`` (under valgrind)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONHASHSEED="0")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            "valgrind",
            "--tool=cachegrind",
            "--cache-sim=no",
            f"--cachegrind-out-file={Path(tmp) / 'out'}",
            sys.executable,
            str(HERE / "_worker.py"),
            json.dumps(spec),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    found = _REFS.search(proc.stderr)
    if proc.returncode != 0 or found is None:
        raise SystemExit(f"valgrind failed for {spec['client']}: {proc.stderr.strip()[-800:]}")
    return int(found[1].replace(",", ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="raw_aiohttp,aio_default_aiohttp")
    parser.add_argument("-c", default="16", help="comma-separated concurrencies")
    parser.add_argument("--small", type=int, default=100, help="requests in the short run")
    parser.add_argument("--large", type=int, default=600, help="requests in the long run")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    if args.large <= args.small:
        parser.error("--large must be more than --small")

    srv, urls, core = spawn_pinned_server()
    try:
        for client in args.clients.split(","):
            for c in (int(x) for x in args.c.split(",")):
                spec: dict[str, object] = {
                    "kind": "load",
                    "client": client,
                    "c": c,
                    "warmup": 200,
                    "urls": urls,
                    "core": core,
                }
                small = instructions(dict(spec, n=args.small))
                large = instructions(dict(spec, n=args.large))
                per = (large - small) / (args.large - args.small) / 1000
                print(f"{client:30s} c={c:<4d} {per:9.1f} k instructions per request", flush=True)
    finally:
        srv.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
