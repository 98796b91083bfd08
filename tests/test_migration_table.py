"""docs/migration.md's tables of SDK habits name only things aio_llm has.

Each row's right-hand column is aio_llm's form of an openai, anthropic or
LiteLLM habit; every name it uses must exist: top-level names and errors,
client methods, ``ChatResponse`` and ``Usage`` fields, the command's options.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
from pathlib import Path

import aio_llm
from aio_llm import AsyncLLMClient, LLMClient
from aio_llm.cli import build_parser
from aio_llm.types import ChatResponse, Usage

DOC = Path(__file__).parent.parent / "docs" / "migration.md"
SECTIONS = ("From the openai SDK", "From the anthropic SDK", "From LiteLLM")


def _rows(section: str) -> list[tuple[str, str]]:
    text = DOC.read_text()
    start = text.index(f"## {section}")
    end = text.find("\n## ", start + 1)
    body = text[start : end if end != -1 else None]
    rows = []
    for line in body.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if line.startswith("|") and len(cells) == 2 and not set(cells[0]) <= {"-", "|"}:
            rows.append((cells[0], cells[1]))
    return rows[1:]  # the header row


def _code(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def _options() -> set[str]:
    found: set[str] = set()

    def walk(parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:
            found.update(action.option_strings)
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    walk(sub)

    walk(build_parser())
    return found


def _exists(name: str) -> bool:
    """``aio_llm.<name>`` is a public name or a subpackage."""
    return hasattr(aio_llm, name) or importlib.util.find_spec(f"aio_llm.{name}") is not None


def test_every_section_has_a_table_of_habits() -> None:
    for section in SECTIONS:
        assert len(_rows(section)) >= 15, section


def test_the_aio_llm_column_names_only_what_exists() -> None:
    options = _options()
    fields = set(ChatResponse.model_fields) | {n for n in dir(ChatResponse) if n[0] != "_"}
    usage = set(Usage.model_fields)
    checked = 0
    for section in SECTIONS:
        for habit, ours in _rows(section):
            for code in _code(ours):
                for name in re.findall(r"\baio_llm\.(\w+)", code):
                    assert _exists(name), (section, habit, name)
                    checked += 1
                for name in re.findall(r"\bclient\.(\w+)\(", code):
                    assert hasattr(AsyncLLMClient, name) or hasattr(LLMClient, name), (
                        section,
                        habit,
                        name,
                    )
                    checked += 1
                for name in re.findall(r"\b(?:r|response)\.(\w+)", code):
                    assert name in fields, (section, habit, name)
                    checked += 1
                for name in re.findall(r"\b(?:r|response)\.usage\.(\w+)", code):
                    assert name in usage, (section, habit, name)
                    checked += 1
                for flag in re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", code):
                    if code.startswith("aio-llm "):
                        assert flag in options, (section, habit, flag)
                        checked += 1
                if re.fullmatch(r"[A-Z]\w+Error", code):
                    assert hasattr(aio_llm, code), (section, habit, code)
                    checked += 1
            if "the same names in `aio_llm`" in ours:
                for name in re.findall(r"\b([A-Z]\w+Error)\b", habit):
                    assert hasattr(aio_llm, name), (section, habit, name)
                    checked += 1
    assert checked > 40
