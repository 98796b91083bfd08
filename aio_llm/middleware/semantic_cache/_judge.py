"""Judges: was the cached answer as good as the fresh one? The source of observed outcomes.

When the semantic cache asks the model anyway (a candidate below the
threshold, or a sampled exploration above it), a ``Judge`` compares the
fresh answer with the one the candidate would have served; the verdict is
an observation for the ``ErrorBound``. A judge that says "same" too easily
makes the bound too loose; one that says "different" too easily only costs
hits. So the default, ``SameAnswer``, is strict.

* ``SameAnswer()``: the answers' texts (and tool calls) are equal after
  folding case, whitespace and punctuation. Right for short, deterministic
  answers (classification, extraction, ``temperature=0`` lookups). For long
  free-form answers it rarely agrees, so the cache learns to serve little:
  safe, but use ``LLMJudge`` there.
* ``LLMJudge(client, model)``: asks a (cheap) model whether the two
  answers say the same thing for the question. One extra small call per
  observation.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Protocol

from ...types import ChatResponse

__all__ = ["Judge", "LLMJudge", "SameAnswer"]


class ChatClient(Protocol):
    """What ``LLMJudge`` needs of a client: ``AsyncLLMClient`` is one."""

    async def chat(self, messages: Any = None, *, model: str | None = None, **params: Any) -> Any:
        """One chat completion."""
        ...


class Judge(Protocol):
    """Decides whether ``cached`` would have been a correct answer where ``fresh`` was given."""

    async def same(self, question: str, fresh: ChatResponse, cached: ChatResponse) -> bool: ...


_PUNCT = re.compile(r"[^\w]+", re.UNICODE)


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_PUNCT.sub(" ", text).split())


class SameAnswer:
    """The strict default ``Judge``: equal text and tool calls after folding."""

    __slots__ = ()

    async def same(self, question: str, fresh: ChatResponse, cached: ChatResponse) -> bool:
        if [(c.name, c.arguments) for c in fresh.tool_calls] != [
            (c.name, c.arguments) for c in cached.tool_calls
        ]:
            return False
        return _fold(fresh.content) == _fold(cached.content)

    def __repr__(self) -> str:
        return "SameAnswer()"


_PROMPT = """Two answers were given to the question below. Would a user who asked this \
question be equally well served by answer B as by answer A (same facts, same conclusion, \
same constraints)? Reply with one word: YES or NO.

Question: {question}

Answer A: {fresh}

Answer B: {cached}"""


class LLMJudge:
    """A ``Judge`` that asks a model whether two answers are interchangeable.

    The call goes through ``client`` (its retries, budget and tracing), with
    ``cache=False`` so the judge's own request is never cached. An error is
    not a verdict: the observation is dropped.
    """

    __slots__ = ("client", "model")

    def __init__(self, client: ChatClient, model: str) -> None:
        if not model:
            raise ValueError("model must name a chat model")
        self.client = client
        self.model = model

    async def same(self, question: str, fresh: ChatResponse, cached: ChatResponse) -> bool:
        prompt = _PROMPT.format(question=question, fresh=fresh.content, cached=cached.content)
        reply: ChatResponse = await self.client.chat(
            [{"role": "user", "content": prompt}],
            model=self.model,
            temperature=0,
            max_tokens=3,
            cache=False,
        )
        return reply.content.strip().upper().startswith("YES")

    def __repr__(self) -> str:
        return f"LLMJudge(model={self.model!r})"
