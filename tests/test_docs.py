"""Every ```python block of docs/*.md and README.md runs, and the configuration table is complete.

Conventions for documentation code blocks:

- **One session per page.** The blocks of a page run in order, in one
  namespace, in a fresh Python subprocess: a block may use what an earlier
  block of the same page defined, like cells of a notebook. Pages never share
  state.
- **Top-level ``await`` is allowed**, as in ``python -m asyncio`` or Jupyter:
  such a block runs on the page's event loop (one loop per page, so an object
  made by one block can be awaited in the next). A block without top-level
  ``await`` runs as plain code, so it may call ``anyio.run`` itself.
- **The environment is a FakeLLMServer.** ``OPENAI_API_KEY`` /
  ``OPENAI_BASE_URL``, ``ANTHROPIC_API_KEY`` / ``ANTHROPIC_BASE_URL`` and
  ``OPENROUTER_API_KEY`` / ``OPENROUTER_BASE_URL`` point at a fake server on
  loopback, ``LLM_REDIS_URL`` at a test Redis, every other ``LLM_*`` variable
  is unset, and the working directory is a fresh temporary directory. So an
  example is written exactly as a user would write it against the real
  providers.
- **Opting out** is a comment on the line just above the fence,
  ``<!-- not-run: why -->`` (e.g. needs a real API key or a collector). It is
  meant to be rare; ``MAX_NOT_RUN`` caps it.
- **Hangs fail.** Each block has ``BLOCK_TIMEOUT`` seconds (then the
  subprocess dumps its stacks and exits) and each page ``PAGE_TIMEOUT``.

Run ``python tests/test_docs.py --write-config-table`` after changing
``ClientConfig`` to regenerate the table in docs/configuration.md.
"""

from __future__ import annotations

import ast
import asyncio
import faulthandler
import inspect
import json
import os
import re
import subprocess
import sys
import tempfile
import traceback
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args, get_origin

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md")) + [ROOT / "README.md"]
BLOCK_TIMEOUT = 60.0
PAGE_TIMEOUT = 300.0
MAX_NOT_RUN = 8
NOT_RUN = re.compile(r"<!--\s*not-run:\s*(?P<why>.*?)\s*-->")
FENCE = re.compile(r"^(?P<indent> {0,3})```(?P<info>[^`\n]*)$")

# The pages the README links to: each must exist.
LINKED_PAGES = [
    "getting-started.md",
    "architecture.md",
    "middleware.md",
    "providers.md",
    "configuration.md",
    "structured-outputs.md",
    "multimodal.md",
    "token-counting.md",
    "caching.md",
    "resilience.md",
    "cost.md",
    "observability.md",
    "reliability.md",
    "migration.md",
    "troubleshooting.md",
    "batch.md",
    "cli.md",
]


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # 1-based line of the opening fence
    code: str
    skip: str | None  # the not-run reason, if any


def extract_blocks(path: Path) -> list[Block]:
    """The ```python blocks of a Markdown file, with their not-run markers."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        info = m.group("info").strip()
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith("```"):
            body.append(lines[i])
            i += 1
        i += 1  # the closing fence
        if info.split()[:1] != ["python"]:
            continue
        skip = None
        j = start - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        if j >= 0:
            marker = NOT_RUN.search(lines[j])
            if marker is not None:
                skip = marker.group("why") or "?"
        blocks.append(Block(path.name, start + 1, "\n".join(body) + "\n", skip))
    return blocks


# -- the runner (in the subprocess) ------------------------------------------------------


def _run_page(path: Path) -> int:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    loop = asyncio.new_event_loop()
    try:
        for block in extract_blocks(path):
            if block.skip is not None:
                continue
            where = f"{path.name}:{block.line}"
            try:
                code = compile(block.code, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            except SyntaxError:
                traceback.print_exc()
                return 1
            timeout = float(os.environ.get("AIO_LLM_DOCS_BLOCK_TIMEOUT", BLOCK_TIMEOUT))
            faulthandler.dump_traceback_later(timeout, exit=True)
            try:
                if code.co_flags & inspect.CO_COROUTINE:
                    loop.run_until_complete(types.FunctionType(code, namespace)())
                else:
                    exec(code, namespace)
            except BaseException:
                sys.stderr.write(f"\n--- the block at {where} failed:\n{block.code}\n")
                traceback.print_exc()
                return 1
            finally:
                faulthandler.cancel_dump_traceback_later()
            sys.stdout.write(f"ok {where}\n")
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    return 0


# -- the configuration table ------------------------------------------------------------------

# Descriptions for the fields whose definition has no attribute docstring.
FIELD_NOTES = {
    "retry_strategy": "Backoff strategy: exponential, linear, fibonacci or adaptive "
    "(learns per error class, with a retry budget).",
    "retry_max_delay": "The longest single backoff in seconds (before jitter).",
    "retry_backoff_base": "Growth factor of the exponential backoff.",
    "circuit_failure_threshold": "Consecutive failures that open a (provider, model) breaker.",
    "circuit_success_threshold": "Successful probes in HALF_OPEN that close it again.",
    "cache_enabled": "Serve identical requests from the exact-match response cache.",
    "cache_ttl": "Seconds a cached answer stays valid.",
    "cache_max_entries": "Capacity of the in-memory cache (least recently used entries go).",
    "dedup_enabled": "Concurrent identical requests share one upstream call.",
    "daily_budget": "Hard limit in USD per UTC day for the client's spend; None: no limit.",
    "monthly_budget": "Hard limit in USD per UTC month; None: no limit.",
}
TABLE_START = "<!-- config-table:start -->"
TABLE_END = "<!-- config-table:end -->"


def field_docstrings() -> dict[str, str]:
    """Attribute docstrings of ``ClientConfig``, read from its source."""
    from aio_llm import config

    tree = ast.parse(inspect.getsource(config))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "ClientConfig")
    docs: dict[str, str] = {}
    body = cls.body
    for node, after in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is not None and getattr(origin, "__name__", "") == "Literal":
        return " \\| ".join(f"`{a}`" for a in get_args(annotation))
    if isinstance(annotation, type) and not get_args(annotation):
        return annotation.__name__
    text = str(annotation).replace("typing.", "").replace("aio_llm.config.", "")
    text = re.sub(r"<class '([\w.]+)'>", r"\1", text)
    return text.replace("|", "\\|")


def _default(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, float) and value.is_integer():
        return f"`{value:.1f}`"
    if isinstance(value, int) and not isinstance(value, bool) and value >= 10_000:
        return f"`{value:_}`"
    return f"`{value!r}`"


def render_config_table() -> str:
    from aio_llm import ClientConfig
    from aio_llm.config import env_name

    docs = {**FIELD_NOTES, **field_docstrings()}
    rows = [
        "| Field | Variable | Type | Default | Meaning |",
        "|---|---|---|---|---|",
    ]
    for name, field in ClientConfig.model_fields.items():
        meaning = docs.get(name, "").replace("|", "\\|").replace("``", "`")
        rows.append(
            f"| `{name}` | `{env_name(name)}` | {_type_name(field.annotation)} | "
            f"{_default(field.default)} | {meaning} |"
        )
    return "\n".join(rows)


def _config_section(text: str) -> str:
    start = text.index(TABLE_START) + len(TABLE_START)
    return text[start : text.index(TABLE_END)].strip()


def write_config_table() -> None:
    page = DOCS / "configuration.md"
    text = page.read_text(encoding="utf-8")
    start = text.index(TABLE_START) + len(TABLE_START)
    end = text.index(TABLE_END)
    page.write_text(text[:start] + "\n" + render_config_table() + "\n" + text[end:])


if __name__ == "__main__":
    if sys.argv[1:] == ["--write-config-table"]:
        write_config_table()
        sys.exit(0)
    sys.exit(_run_page(Path(sys.argv[1])))


# -- the tests ------------------------------------------------------------------------------------

import pytest  # noqa: E402  (the runner above must not need pytest)

from aio_llm.testing import FakeLLMServer, SpawnedServer  # noqa: E402


@pytest.fixture(scope="module")
def docs_env(redis_url: str) -> Iterator[dict[str, str]]:
    """The environment of every page: a FakeLLMServer behind the SDK variables, a Redis."""
    with FakeLLMServer.spawn() as server:
        yield _environment(server, redis_url)


def _environment(server: SpawnedServer, redis_url: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LLM_", "OPENAI_", "ANTHROPIC_", "OPENROUTER_", "OTEL_"))
    }
    env.update(
        OPENAI_API_KEY="sk-docs-test",
        OPENAI_BASE_URL=server.openai_url,
        ANTHROPIC_API_KEY="sk-ant-docs-test",
        ANTHROPIC_BASE_URL=server.url,
        OPENROUTER_API_KEY="sk-or-docs-test",
        OPENROUTER_BASE_URL=server.url + "/api/v1",
        LLM_REDIS_URL=redis_url,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        PYTHONWARNINGS="error",
    )
    return env


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_page_examples_run(page: Path, docs_env: dict[str, str]) -> None:
    blocks = extract_blocks(page)
    runnable = [b for b in blocks if b.skip is None]
    with tempfile.TemporaryDirectory(prefix="aio-llm-docs-") as cwd:
        try:
            proc = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), str(page)],
                cwd=cwd,
                env=docs_env,
                capture_output=True,
                text=True,
                timeout=PAGE_TIMEOUT,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"{page.name}: the examples did not finish in {PAGE_TIMEOUT}s: {exc}")
    ran = [line for line in proc.stdout.splitlines() if line.startswith("ok ")]
    assert proc.returncode == 0, f"{page.name}:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    assert len(ran) == len(runnable), proc.stdout


def test_not_run_markers_are_rare_and_explained() -> None:
    skipped = [b for page in PAGES for b in extract_blocks(page) if b.skip is not None]
    assert all(b.skip and b.skip != "?" for b in skipped), skipped
    assert len(skipped) <= MAX_NOT_RUN, [f"{b.page}:{b.line}" for b in skipped]


def test_every_linked_page_exists_and_has_examples() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in LINKED_PAGES:
        assert (DOCS / name).is_file(), name
        assert f"docs/{name}" in readme, name
        assert (DOCS / name).read_text(encoding="utf-8").startswith("# "), name


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown page."""
    out = set()
    in_code = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


def test_relative_links_resolve() -> None:
    link = re.compile(r"\]\((?!https?://|mailto:)([^)#\s]*)(?:#([^)\s]*))?\)")
    for page in PAGES:
        for target, anchor in link.findall(page.read_text(encoding="utf-8")):
            path = (page.parent / target) if target else page
            assert path.exists(), f"{page.name} links to missing {target}"
            if anchor and path.suffix == ".md":
                assert anchor in _anchors(path), f"{page.name} links to missing {target}#{anchor}"


def test_configuration_table_lists_every_field() -> None:
    from aio_llm import ClientConfig
    from aio_llm.config import env_name

    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    table = _config_section(text)
    for name in ClientConfig.model_fields:
        assert f"| `{name}` | `{env_name(name)}` |" in table, name
    assert table == render_config_table(), (
        "docs/configuration.md is stale: run `python tests/test_docs.py --write-config-table`"
    )


def test_every_field_is_described() -> None:
    from aio_llm import ClientConfig

    described = {**FIELD_NOTES, **field_docstrings()}
    assert set(ClientConfig.model_fields) <= set(described)


def test_the_seed_variables_are_documented() -> None:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    for var in (
        "LLM_PROVIDER",
        "LLM_FORCE_MOCK",
        "LLM_DAILY_BUDGET",
        "LLM_MONTHLY_BUDGET",
        "LLM_CIRCUIT_FAILURE_THRESHOLD",
        "LLM_CIRCUIT_TIMEOUT",
        "LLM_MAX_RETRIES",
        "LLM_RETRY_BACKOFF_BASE",
        "LLM_CACHE_ENABLED",
        "LLM_CACHE_TTL",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "OPENROUTER_API_KEY",
        "OPENROUTER_BASE_URL",
    ):
        assert f"`{var}`" in text, var


def test_extractor_sees_markers_and_fences(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# T\n\n```python\nx = 1\n```\n\n<!-- not-run: needs a real API key -->\n"
        "```python\ny = 2\n```\n\n```bash\necho no\n```\n\n```python\nawait z()\n```\n"
    )
    blocks = extract_blocks(page)
    assert [(b.line, b.skip) for b in blocks] == [
        (3, None),
        (8, "needs a real API key"),
        (16, None),
    ]
    assert json.dumps([b.code for b in blocks]) == json.dumps(["x = 1\n", "y = 2\n", "await z()\n"])


def _run_runner(page: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), str(page)],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_hanging_block_fails_instead_of_hanging(tmp_path: Path) -> None:
    page = tmp_path / "hang.md"
    page.write_text("# Hang\n\n```python\nimport time\n\ntime.sleep(600)\n```\n")
    proc = _run_runner(page, AIO_LLM_DOCS_BLOCK_TIMEOUT="0.5")
    assert proc.returncode != 0
    assert "Timeout" in proc.stderr and "time.sleep" not in proc.stdout


def test_blocks_share_a_page_namespace_and_loop(tmp_path: Path) -> None:
    page = tmp_path / "ok.md"
    page.write_text(
        "# Ok\n\n```python\nimport anyio\n\nevent = anyio.Event()\n```\n\n"
        "```python\nevent.set()\nawait event.wait()\nvalue = 42\n```\n\n"
        "```python\nassert value == 42\n```\n"
    )
    proc = _run_runner(page)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["ok", "ok.md:3", "ok", "ok.md:9", "ok", "ok.md:15"]


def test_a_failing_block_names_its_line(tmp_path: Path) -> None:
    page = tmp_path / "bad.md"
    page.write_text("# Bad\n\n```python\nx = 1\n```\n\n```python\nraise ValueError(x)\n```\n")
    proc = _run_runner(page)
    assert proc.returncode == 1
    assert "the block at bad.md:7 failed" in proc.stderr and "ValueError: 1" in proc.stderr
