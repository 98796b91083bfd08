"""The `aio-llm` command: demo, fake-server and chat, run as real subprocesses."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request

from aio_llm.testing import FakeLLMServer


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "aio_llm", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout + proc.stderr


def test_demo_runs_a_fan_out_and_prints_metrics() -> None:
    out = run_cli("demo", "--requests", "120", "--concurrency", "16")
    assert "120/120 (100%)" in out  # the progress bar reached the end
    assert re.search(r"^requests\s+120$", out, re.M)
    assert re.search(r"^succeeded\s+\d+$", out, re.M)
    for key in ("retry.attempts", "cache.hits", "circuit.state", "cost.total", "dedup.hits"):
        assert key in out


def test_demo_watch_mode() -> None:
    out = run_cli("demo", "--requests", "60", "--watch", "--faults", "0")
    assert "progress" in out and "60/60" in out


def test_fake_server_command_serves() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "aio_llm", "fake-server", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert url, line
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(url.group(0) + "/health", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()


def test_chat_command_against_an_openai_compatible_server() -> None:
    with FakeLLMServer.spawn() as srv:
        out = run_cli(
            "chat",
            "Hello",
            "--provider",
            "openai",
            "--model",
            "gpt-4o-mini",
            env={"OPENAI_API_KEY": "sk-cli-test", "OPENAI_BASE_URL": srv.openai_url},
        )
        assert "Echo: Hello" in out
        assert "sk-cli-test" not in out
        streamed = run_cli(
            "chat",
            "Hi there",
            "--stream",
            "-p",
            "openai",
            "-m",
            "gpt-4o-mini",
            env={"OPENAI_API_KEY": "sk-cli-test", "OPENAI_BASE_URL": srv.openai_url},
        )
        assert "Echo: Hi there" in streamed


def test_chat_without_a_key_names_the_variable() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    proc = subprocess.run(
        [sys.executable, "-m", "aio_llm", "chat", "hi", "-p", "openai", "-m", "gpt-4o"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert proc.returncode == 1
    assert "OPENAI_API_KEY" in proc.stderr
