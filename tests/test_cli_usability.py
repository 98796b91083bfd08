"""The `aio-llm` command as a newcomer meets it: help, version, options, stdin, errors, progress.

Each command runs as a real subprocess against a FakeLLMServer on loopback.
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

import aio_llm
from aio_llm.cli import build_parser
from aio_llm.testing import FakeLLMServer

# no provider configuration may leak in from the environment running the tests
_PROVIDER_VARS = ("OPENAI_", "ANTHROPIC_", "OPENROUTER_", "LLM_", "AIO_LLM_")
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(_PROVIDER_VARS)}


def cli(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aio_llm", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**CLEAN_ENV, **(env or {})},
        input=stdin,
        check=False,
    )


def _all_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found.extend(_all_parsers(sub))
    return found


def test_every_option_of_every_command_has_help() -> None:
    parsers = _all_parsers(build_parser())
    assert {p.prog for p in parsers} >= {
        "aio-llm",
        "aio-llm chat",
        "aio-llm demo",
        "aio-llm fake-server",
        "aio-llm batch",
        "aio-llm batch run",
    }
    for parser in parsers:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    assert choice.help, f"{parser.prog} {choice.dest}"
                continue
            assert action.help and action.help != argparse.SUPPRESS, (
                f"{parser.prog} {action.option_strings or action.dest} has no help"
            )


@pytest.mark.parametrize(
    "command", [[], ["chat"], ["demo"], ["fake-server"], ["batch"], ["batch", "run"]]
)
def test_help_is_plain_text(command: list[str]) -> None:
    proc = cli(*command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "usage: aio-llm" in proc.stdout
    assert "`" not in proc.stdout  # no reStructuredText markup
    assert ":class:" not in proc.stdout and ":func:" not in proc.stdout


def test_version() -> None:
    proc = cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"aio-llm {aio_llm.__version__}"


@pytest.mark.anyio
async def test_base_url_and_api_key_env_reach_the_server() -> None:
    async with FakeLLMServer() as srv:
        proc = await anyio.run_process(
            [
                sys.executable,
                "-m",
                "aio_llm",
                "chat",
                "Hello there",
                "--provider",
                "openai",
                "--model",
                "gpt-4o-mini",
                "--base-url",
                srv.openai_url,
                "--api-key-env",
                "MY_TEAM_KEY",
            ],
            env={**CLEAN_ENV, "MY_TEAM_KEY": "sk-team-key-123"},
            check=False,
        )
        assert proc.returncode == 0, proc.stderr.decode()
        assert "Echo: Hello there" in proc.stdout.decode()
        request = srv.last_request
        assert request.headers["authorization"] == "Bearer sk-team-key-123"
        assert "sk-team-key-123" not in proc.stdout.decode() + proc.stderr.decode()


@pytest.mark.anyio
async def test_base_url_alone_means_an_openai_compatible_server_without_a_key() -> None:
    async with FakeLLMServer() as srv:
        proc = await anyio.run_process(
            [sys.executable, "-m", "aio_llm", "chat", "Hi", "-m", "local-model"]
            + ["--base-url", srv.openai_url],
            env=CLEAN_ENV,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr.decode()
        assert "Echo: Hi" in proc.stdout.decode()
        assert srv.last_request.path == "/v1/chat/completions"
        assert "authorization" not in srv.last_request.headers


def test_dash_reads_the_prompt_from_stdin() -> None:
    with FakeLLMServer.spawn() as srv:
        proc = cli(
            "chat",
            "-",
            "-p",
            "openai",
            "-m",
            "gpt-4o-mini",
            env={"OPENAI_API_KEY": "sk-cli", "OPENAI_BASE_URL": srv.openai_url},
            stdin="A question from a pipe",
        )
    assert proc.returncode == 0, proc.stderr
    assert "Echo: A question from a pipe" in proc.stdout


def test_batch_run_reads_its_input_from_stdin(tmp_path: Path) -> None:
    lines = [
        json.dumps({"custom_id": f"q{i}", "messages": [{"role": "user", "content": f"Q{i}"}]})
        for i in range(3)
    ]
    out = tmp_path / "out.jsonl"
    with FakeLLMServer.spawn() as srv:
        proc = cli(
            "batch",
            "run",
            "-",
            "--out",
            str(out),
            "-p",
            "openai",
            "-m",
            "gpt-4o-mini",
            "--base-url",
            srv.openai_url,
            "--api-key-env",
            "BATCH_KEY",
            "--no-progress",
            env={"BATCH_KEY": "sk-batch"},
            stdin="\n".join(lines) + "\n",
        )
    assert proc.returncode == 0, proc.stderr
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["custom_id"] for r in results] == ["q0", "q1", "q2"]
    assert all("Echo: Q" in json.dumps(r) for r in results)


def test_errors_name_the_options_not_the_keyword_arguments() -> None:
    with FakeLLMServer.spawn() as srv:
        no_model = cli("chat", "hi", "-p", "openai", "--base-url", srv.openai_url,
                       env={"OPENAI_API_KEY": "sk-x"})  # fmt: skip
    assert no_model.returncode == 1
    assert "--model" in no_model.stderr
    assert "model=" not in no_model.stderr

    no_key = cli("chat", "hi", "-p", "anthropic", "-m", "claude-3-5-haiku-latest")
    assert no_key.returncode == 1
    assert "ANTHROPIC_API_KEY" in no_key.stderr and "--api-key-env" in no_key.stderr
    assert "api_key=" not in no_key.stderr

    unset = cli("chat", "hi", "-p", "openai", "-m", "m", "--api-key-env", "NOT_SET_ANYWHERE")
    assert unset.returncode == 2
    assert "--api-key-env NOT_SET_ANYWHERE" in unset.stderr and "not set" in unset.stderr

    compatible = cli("chat", "hi", "-p", "openai-compatible", "-m", "m")
    assert compatible.returncode == 1
    assert "--base-url" in compatible.stderr and "base_url" not in compatible.stderr

    bad_number = cli("demo", "--requests", "0")
    assert bad_number.returncode == 2
    assert "--requests" in bad_number.stderr and "at least 1" in bad_number.stderr


def test_demo_watch_shows_latency_percentiles_and_the_real_cost() -> None:
    proc = cli("demo", "--requests", "80", "--watch", "--faults", "0", "--latency", "0")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "\r" not in out and "\x1b[" not in out  # not a terminal: plain lines
    live = [line for line in out.splitlines() if line.startswith("progress: 80/80")]
    assert live, out
    p50, p95 = re.search(r"p50 / p95 ms: ([\d.]+) / ([\d.]+)", live[-1]).groups()  # type: ignore[union-attr]
    assert 0 < float(p50) <= float(p95)
    watched_cost = float(re.search(r"cost USD: ([\d.]+)", live[-1]).group(1))  # type: ignore[union-attr]

    rows = dict(re.findall(r"^(\S.*?)\s{2,}(\S.*)$", out, re.M))
    assert len(re.findall(r"^requests\s", out, re.M)) == 1  # printed once
    job_cost = float(rows["cost (sum of answers)"].lstrip("$"))
    assert job_cost > 0
    assert job_cost == pytest.approx(float(rows["cost.total"]), abs=1e-6)
    assert job_cost == pytest.approx(watched_cost, abs=1e-6)
    # every cost in the table is shown to the micro-dollar, none rounded to 0.00
    for key, value in rows.items():
        if "cost" in key and re.fullmatch(r"[\d.]+", value):
            assert value != "0.00", key
    p50_final = rows["latency p50 / p95"]
    assert re.fullmatch(r"[\d.]+ / [\d.]+ ms", p50_final)


def test_progress_in_a_log_is_plain_lines() -> None:
    proc = cli("demo", "--requests", "60", "--faults", "0", "--latency", "0")
    assert proc.returncode == 0, proc.stderr
    both = proc.stdout + proc.stderr
    assert "\r" not in both and "\x1b[" not in both
    lines = [line for line in proc.stderr.splitlines() if line.startswith("progress:")]
    assert lines and lines[-1].startswith("progress: 60/60 (100%)")
    assert re.search(r"[\d.]+ req/s, elapsed \d\d:\d\d, \$[\d.]+$", lines[-1])


def test_progress_on_a_terminal_is_a_live_bar_with_rate_and_eta() -> None:
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aio_llm", "demo", "-n", "150", "--faults", "0"],
        stdout=subprocess.DEVNULL,
        stderr=secondary,
        stdin=subprocess.DEVNULL,
        env={**CLEAN_ENV, "COLUMNS": "100"},
    )
    os.close(secondary)
    chunks = []
    while True:
        try:
            data = os.read(primary, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(primary)
    assert proc.wait(timeout=120) == 0
    frames = b"".join(chunks).decode().replace("\r\n", "\n").split("\r")
    bars = [f for f in frames if "|" in f]
    assert bars
    last = bars[-1]
    assert re.match(r"100%\|█+\| 150/150 \[\d\d:\d\d<\d\d:\d\d, [\d.]+ req/s, \$[\d.]+\]", last)
    assert all(len(f.split("\x1b[K")[0]) <= 100 for f in bars)  # fits the terminal
