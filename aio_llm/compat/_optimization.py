"""``PromptOptimizer``: shortens a prompt to a token budget (``app.ai``'s optimization module).

The ``app.ai`` client's ``get_cache()`` and ``get_deduplicator()`` are process defaults
(``aio_llm.compat._defaults``).
"""

from __future__ import annotations

import re

from ..tokens import estimate_tokens

__all__ = ["PromptOptimizer"]


_SPACES = re.compile(r"[ \t\f\v\u00a0]+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")
_KEY_TRIM = re.compile(r"[\W_]+")


def _key(text: str) -> str:
    """What makes two lines or sentences "the same": letters and digits, case-folded."""
    return _KEY_TRIM.sub(" ", text.casefold()).strip()


class PromptOptimizer:
    """Shortens prompts: whitespace, repeated lines and sentences, then a token budget.

    ``optimize`` is deterministic and never drops the final question (the
    last sentence ending in "?", else the last sentence). Tokens are counted
    with ``aio_llm.tokens.estimate_tokens`` for ``model``: exact with
    tiktoken for OpenAI models, else about four UTF-8 bytes per token.
    """

    __slots__ = ("model",)

    def __init__(self, model: str | None = None) -> None:
        self.model = model

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text, self.model)

    def optimize(
        self, text: str, max_tokens: int | None = None, remove_redundancy: bool = True
    ) -> str:
        """``text`` normalised, de-duplicated and trimmed to ``max_tokens`` (if given).

        Whitespace runs become one space, lines are stripped and blank runs
        become one blank line. With ``remove_redundancy`` a line or sentence
        that repeats an earlier one (ignoring case and punctuation) goes.
        Over budget, sentences are dropped from the end of the text before
        the final question; if the question alone is over budget, it is all
        that is returned.
        """
        if max_tokens is not None and max_tokens < 1:
            raise ValueError("max_tokens must be positive")
        lines = self._lines(text)
        question = self._final_question(lines)
        if remove_redundancy and question is not None:
            asked = lines[question[0]][question[1]]
            lines = self._dedupe(lines, question)
            question = self._find_last(lines, asked)
        result = self._join(lines)
        if max_tokens is None or self.count_tokens(result) <= max_tokens:
            return result
        return self._trim(lines, question, max_tokens)

    @staticmethod
    def _lines(text: str) -> list[list[str]]:
        """Paragraph structure as lines of sentences; ``[]`` marks a blank line."""
        out: list[list[str]] = []
        for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
            line = _SPACES.sub(" ", raw).strip()
            if not line:
                if out and out[-1]:
                    out.append([])
                continue
            out.append(_SENTENCE_END.split(line))
        while out and not out[-1]:
            out.pop()
        return out

    @staticmethod
    def _final_question(lines: list[list[str]]) -> tuple[int, int] | None:
        last: tuple[int, int] | None = None
        for i in range(len(lines) - 1, -1, -1):
            for j in range(len(lines[i]) - 1, -1, -1):
                if last is None:
                    last = (i, j)
                if lines[i][j].endswith("?"):
                    return i, j
        return last

    @staticmethod
    def _find_last(lines: list[list[str]], sentence: str) -> tuple[int, int] | None:
        for i in range(len(lines) - 1, -1, -1):
            for j in range(len(lines[i]) - 1, -1, -1):
                if lines[i][j] == sentence:
                    return i, j
        return None

    @staticmethod
    def _dedupe(lines: list[list[str]], question: tuple[int, int] | None) -> list[list[str]]:
        protected = _key(lines[question[0]][question[1]]) if question is not None else None
        seen_lines: set[str] = set()
        seen: set[str] = set()
        out: list[list[str]] = []
        for i, line in enumerate(lines):
            if not line:
                if out and out[-1]:
                    out.append([])
                continue
            line_key = _key(" ".join(line))
            holds_question = question is not None and question[0] == i
            if line_key in seen_lines and not holds_question:
                continue
            seen_lines.add(line_key)
            kept = []
            for j, sentence in enumerate(line):
                k = _key(sentence)
                is_question = question == (i, j)
                if not is_question and (k in seen or (k == protected and k)):
                    continue  # a repeat, or an early copy of the final question
                seen.add(k)
                kept.append(sentence)
            if kept:
                out.append(kept)
        while out and not out[-1]:
            out.pop()
        return out

    @staticmethod
    def _join(lines: list[list[str]]) -> str:
        return "\n".join(" ".join(line) for line in lines)

    def _trim(
        self, lines: list[list[str]], question: tuple[int, int] | None, max_tokens: int
    ) -> str:
        units = [
            (i, j) for i, line in enumerate(lines) for j in range(len(line)) if (i, j) != question
        ]
        budget = max_tokens
        if question is not None:
            budget -= self.count_tokens(lines[question[0]][question[1]])
        kept: list[tuple[int, int]] = []
        used = 0
        for i, j in units:
            cost = self.count_tokens(lines[i][j]) + 1
            if used + cost > budget:
                break
            kept.append((i, j))
            used += cost
        while True:
            result = self._assemble(lines, kept, question)
            if not kept or self.count_tokens(result) <= max_tokens:
                return result
            kept.pop()

    @staticmethod
    def _assemble(
        lines: list[list[str]], kept: list[tuple[int, int]], question: tuple[int, int] | None
    ) -> str:
        chosen = set(kept)
        if question is not None:
            chosen.add(question)
        rows: list[str] = []
        for i, line in enumerate(lines):
            parts = [s for j, s in enumerate(line) if (i, j) in chosen]
            if parts:
                rows.append(" ".join(parts))
        return "\n".join(rows)

    def __repr__(self) -> str:
        return f"PromptOptimizer(model={self.model!r})"
