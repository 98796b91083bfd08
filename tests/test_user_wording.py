"""User-facing text speaks to users: no project-internal jargon such as "the seed".

The older synchronous client aio_llm replaces is "the `app.ai` client" in
docs, docstrings and help; ``seed`` as a sampling parameter or a random
seed is fine.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from aio_llm.cli import build_parser

ROOT = Path(__file__).parent.parent
JARGON = re.compile(
    r"\b(the seed\b(?! parameter| value| for)|seed's|seed[- ]compat\w*|seed (names?|transports?|"
    r"facade|api|imports?|metrics?|variables?|configuration|helpers?))",
    re.IGNORECASE,
)
TEXTS = [
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "README.md",
    ROOT / "CHANGELOG.md",
    ROOT / "CONTRIBUTING.md",
    *sorted((ROOT / "aio_llm").rglob("*.py")),
]


@pytest.mark.parametrize("path", TEXTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_internal_jargon(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    found = [m.group(0) for m in JARGON.finditer(text)]
    assert not found, f"{path.relative_to(ROOT)}: {found}"


def test_the_command_line_help_has_no_jargon() -> None:
    def walk(parser: argparse.ArgumentParser) -> list[str]:
        texts = [parser.format_help()]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    texts.extend(walk(sub))
        return texts

    texts = walk(build_parser())
    assert len(texts) == 6  # aio-llm, chat, demo, fake-server, batch, batch run
    for text in texts:
        assert not JARGON.search(text), text
        assert "`" not in text
