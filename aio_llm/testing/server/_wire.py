"""Answer bodies in the OpenAI and Anthropic wire formats, built from a request.

Everything is deterministic given the request: the text, the tool call,
usage counts (words stand in for tokens) and embedding vectors. The OpenAI
and Anthropic encodings of an ``Answer`` live in ``_formats``.
"""

from __future__ import annotations

import base64
import hashlib
import math
import random
import struct
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from ..._json import dumps

__all__ = ["Answer", "embeddings_json", "pieces", "plan_answer", "sample_arguments", "text_of"]

Reply = Callable[[dict[str, Any]], str]


def text_of(content: Any) -> str:
    """Plain text of a message ``content``: a string or a list of parts/blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, dict):
                kind = part.get("type")
                if kind in ("text", "input_text", "output_text") or (
                    kind is None and "text" in part
                ):
                    out.append(str(part.get("text", "")))
                elif kind == "tool_result":
                    out.append(text_of(part.get("content")))
            elif isinstance(part, str):
                out.append(part)
        return " ".join(out)
    return ""


def _tool_schema(tool: Any) -> tuple[str, dict[str, Any]]:
    """Name and JSON schema of an OpenAI (``function``) or Anthropic tool definition."""
    if not isinstance(tool, dict):
        return "tool", {}
    fn = tool.get("function")
    if isinstance(fn, dict):
        return str(fn.get("name", "tool")), fn.get("parameters") or {}
    return str(tool.get("name", "tool")), tool.get("input_schema") or {}


_SAMPLE = {
    "string": "test",
    "integer": 1,
    "number": 1.5,
    "boolean": True,
    "array": [],
    "object": {},
}


def sample_arguments(schema: dict[str, Any]) -> dict[str, Any]:
    """Sample arguments: one value per required property (all properties if none required)."""
    props = schema.get("properties")
    if not isinstance(props, dict):
        return {}
    names = schema.get("required") or list(props)
    args: dict[str, Any] = {}
    for name in names:
        prop = props.get(name)
        kind = prop.get("type") if isinstance(prop, dict) else None
        if isinstance(prop, dict) and prop.get("enum"):
            args[name] = prop["enum"][0]
        else:
            args[name] = _SAMPLE.get(kind, "test") if isinstance(kind, str) else "test"
    return args


class Answer:
    """What the model "says": text or one tool call, plus usage and finish reason."""

    __slots__ = (
        "finish",
        "include_usage",
        "input_tokens",
        "model",
        "output_tokens",
        "stream",
        "text",
        "tool_args",
        "tool_name",
    )

    def __init__(self) -> None:
        self.model = ""
        self.text = ""
        self.tool_name: str | None = None
        self.tool_args = ""
        self.finish = "stop"
        self.input_tokens = 0
        self.output_tokens = 0
        self.stream = False
        self.include_usage = False


def plan_answer(body: dict[str, Any], reply: str | Reply | None, *, anthropic: bool) -> Answer:
    """Decide the answer to a chat request body (raises ``ValueError`` if it is not one).

    A ``response_format`` of type ``json_schema`` (without a ``reply``) gets a
    sample object with one value per required property.
    """
    messages = body.get("messages")
    model = body.get("model")
    if not isinstance(messages, list) or not isinstance(model, str):
        raise ValueError("'model' (string) and 'messages' (list) are required")
    a = Answer()
    a.model = model
    a.stream = body.get("stream") is True
    opts = body.get("stream_options")
    a.include_usage = isinstance(opts, dict) and opts.get("include_usage") is True
    words = len(text_of(body.get("system")).split()) if anthropic else 0
    last_user = ""
    for msg in messages:
        if isinstance(msg, dict):
            text = text_of(msg.get("content"))
            words += len(text.split())
            if msg.get("role") == "user":
                last_user = text
    a.input_tokens = max(1, words)
    last = messages[-1] if messages else None
    tools = body.get("tools")
    if (
        tools
        and isinstance(tools, list)
        and body.get("tool_choice") != "none"
        and isinstance(last, dict)
        and last.get("role") == "user"
        and "CALL_TOOL" in text_of(last.get("content"))
    ):
        a.tool_name, schema = _tool_schema(tools[0])
        a.tool_args = dumps(sample_arguments(schema)).decode()
        a.finish = "tool_calls"
        a.output_tokens = max(1, len(a.tool_args.split()) + 1)
        return a
    wanted = _json_schema(body.get("response_format"))
    if reply is None and wanted is not None:
        text = dumps(sample_arguments(wanted)).decode()  # structured output: a sample object
    elif reply is None:
        text = f"Echo: {last_user}"
    elif isinstance(reply, str):
        text = reply
    else:
        text = str(reply(body))
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    parts = text.split()
    if isinstance(limit, int) and 0 < limit < len(parts):
        text = " ".join(parts[:limit])
        parts = parts[:limit]
        a.finish = "length"
    a.text = text
    a.output_tokens = max(1, len(parts))
    return a


def _json_schema(fmt: Any) -> dict[str, Any] | None:
    """The schema a ``response_format`` of type ``json_schema`` asks for."""
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return None
    spec = fmt.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    return schema if isinstance(schema, dict) else None


def pieces(text: str, n: int) -> list[str]:
    if not text:
        return []
    n = max(1, min(n, len(text)))
    step = len(text) / n
    return [text[round(i * step) : round((i + 1) * step)] for i in range(n)]


# -- embeddings ------------------------------------------------------------------


@lru_cache(maxsize=8192)
def _word_vector(word: str, dim: int, seed: int) -> tuple[float, ...]:
    digest = hashlib.blake2b(f"{seed}:{word}".encode(), digest_size=8).digest()
    rng = random.Random(int.from_bytes(digest, "little"))
    return tuple(rng.gauss(0.0, 1.0) for _ in range(dim))


def _embed(text: str, dim: int, seed: int) -> list[float]:
    """Bag-of-words vector: same words, same vector; shared words, high cosine."""
    words = [w.strip(".,;:!?\"'()[]").lower() for w in text.split()] or [""]
    acc = [0.0] * dim
    for w in words:
        for i, x in enumerate(_word_vector(w, dim, seed)):
            acc[i] += x
    norm = math.sqrt(sum(x * x for x in acc)) or 1.0
    return [x / norm for x in acc]


def embeddings_json(body: dict[str, Any], seed: int) -> bytes:
    """An OpenAI ``/v1/embeddings`` answer (raises ``ValueError`` on a bad body)."""
    raw = body.get("input")
    if isinstance(raw, str):
        texts = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw):
        texts = [" ".join(map(str, raw))]
    elif isinstance(raw, list) and raw:
        texts = [x if isinstance(x, str) else " ".join(map(str, x)) for x in raw]
    else:
        raise ValueError("'input' must be a non-empty string or list")
    dim = body.get("dimensions", 64)
    if not isinstance(dim, int) or not 1 <= dim <= 8192:
        raise ValueError("'dimensions' must be an integer in 1..8192")
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    tokens = 0
    for i, text in enumerate(texts):
        vec = _embed(text, dim, seed)
        tokens += max(1, len(text.split()))
        emb: Any = base64.b64encode(struct.pack(f"<{dim}f", *vec)).decode() if as_base64 else vec
        data.append({"object": "embedding", "index": i, "embedding": emb})
    model = body.get("model") if isinstance(body.get("model"), str) else "fake-embedding"
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return dumps({"object": "list", "data": data, "model": model, "usage": usage})
