"""gather(progress=True): a tqdm-like bar on a terminal, periodic plain lines elsewhere."""

from __future__ import annotations

import io
import re

import pytest

from aio_llm import AsyncLLMClient, ClientConfig
from aio_llm.client._progress import ProgressBar, progress_interval
from aio_llm.testing import FakeLLMServer


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class Terminal(io.StringIO):
    encoding = "utf-8"

    def isatty(self) -> bool:
        return True


def test_not_a_terminal_one_line_per_interval_and_a_last_one() -> None:
    clock, out = Clock(), io.StringIO()
    bar = ProgressBar(100, stream=out, now=clock, log_interval=10, initial=0)
    for done in range(1, 101):
        clock.t = done * 0.29  # 29 s in all
        bar(done, 100, spent=done * 0.001)
    bar(100, 100, final=True, spent=0.1)
    bar(100, 100, final=True, spent=0.1)  # a second final is ignored
    text = out.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert len(lines) == 3  # at 10 s, 20 s and the end
    assert lines[0] == "progress: 35/100 (35%) 3.4 req/s, elapsed 00:10, ETA 00:19, $0.0350"
    assert lines[1].startswith("progress: 69/100 (69%) 3.4 req/s, elapsed 00:20, ETA 00:09")
    assert lines[-1] == "progress: 100/100 (100%) 3.4 req/s, elapsed 00:29, $0.1000"


def test_a_short_job_off_a_terminal_prints_only_the_last_line() -> None:
    clock, out = Clock(), io.StringIO()
    bar = ProgressBar(5, stream=out, now=clock, log_interval=10, initial=0)
    for done in range(1, 6):
        clock.t = done * 0.1
        bar(done, 5)
    bar(5, 5, final=True)
    assert out.getvalue() == "progress: 5/5 (100%) 10.0 req/s, elapsed 00:01\n"


def test_on_a_terminal_a_redrawn_bar_with_rate_eta_and_spend() -> None:
    clock, out = Clock(), Terminal()
    bar = ProgressBar(200, stream=out, now=clock, interval=0.1, initial=0, width=100)
    clock.t = 0.05
    bar(1, 200)  # the first report draws
    clock.t = 0.08
    bar(2, 200)  # within the interval: skipped
    clock.t = 10.0
    bar(100, 200, spent=0.5)
    clock.t = 20.0
    bar(200, 200, final=True, spent=1.0)
    frames = out.getvalue().split("\r")[1:]
    assert len(frames) == 3
    assert frames[1].startswith(" 50%|" + "█" * 20)
    assert "100/200 [00:10<00:10, 10.0 req/s, $0.5000]" in frames[1]
    assert frames[2].startswith("100%|" + "█" * 40 + "| 200/200 [00:20<00:00, 10.0 req/s")
    assert frames[2].endswith("\x1b[K\n")
    assert "\n" not in "".join(frames[:2])


def test_the_bar_fits_the_width_and_falls_back_to_ascii() -> None:
    bar = ProgressBar(10, now=lambda: 0.0, initial=0)
    assert len(bar.bar(5, 10, 5.0, width=50)) <= 49
    assert len(bar.bar(5, 10, 5.0, width=10)) > 0  # too narrow for a bar: just the numbers

    class Ascii(Terminal):
        encoding = "ascii"

    clock, out = Clock(), Ascii()
    ProgressBar(4, stream=out, now=clock, initial=0, width=80)(2, 4, final=True)
    assert out.getvalue().startswith("\r 50%|####")
    out.getvalue().encode("ascii")


def test_the_interval_off_a_terminal_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("AIO_LLM_PROGRESS_INTERVAL", raising=False)
    assert progress_interval() == 10.0
    monkeypatch.setenv("AIO_LLM_PROGRESS_INTERVAL", "2.5")
    assert progress_interval() == 2.5
    monkeypatch.setenv("AIO_LLM_PROGRESS_INTERVAL", "soon")
    assert progress_interval() == 10.0
    assert "AIO_LLM_PROGRESS_INTERVAL='soon'" in caplog.text


@pytest.mark.anyio
async def test_gather_progress_reports_the_spend_of_the_answers(
    transport: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with (
        FakeLLMServer() as srv,
        AsyncLLMClient(
            "openai",
            api_key="sk-progress",
            base_url=srv.openai_url,
            config=ClientConfig(transport=transport),
        ) as client,
    ):
        requests = [
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"Q{i}"}]}
            for i in range(12)
        ]
        results = await client.gather(requests, concurrency=4, progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err  # pytest's capture is not a terminal
    last = err.splitlines()[-1]
    spent = sum(r.cost or 0.0 for r in results)
    assert spent > 0
    match = re.fullmatch(
        r"progress: 12/12 \(100%\) [\d.]+ req/s, elapsed \d\d:\d\d, \$([\d.]+)", last
    )
    assert match, last
    assert float(match.group(1)) == pytest.approx(spent, abs=5e-5)


@pytest.mark.anyio
async def test_a_callable_still_gets_done_and_total() -> None:
    seen: list[tuple[int, int]] = []
    async with (
        FakeLLMServer() as srv,
        AsyncLLMClient("openai", api_key="sk-progress", base_url=srv.openai_url) as client,
    ):
        requests = [
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"Q{i}"}]}
            for i in range(5)
        ]
        await client.gather(requests, concurrency=2, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(i, 5) for i in range(1, 6)]
