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
from ..._schema import sample

__all__ = [
    "MEDIA_TOKENS",
    "Answer",
    "PromptCache",
    "embeddings_json",
    "pieces",
    "plan_answer",
    "prompt_tokens",
    "sample_arguments",
    "text_of",
]

MEDIA_TOKENS = 100
"""What the fake charges for each image, document or audio part of a prompt."""

_MEDIA_KEYS = frozenset(
    {"image", "image_url", "input_image", "document", "file", "input_file", "input_audio"}
)
_MEDIA_MARKERS = ("inlineData", "fileData", "source", "image_url", "input_audio", "file_data")
REFUSAL = "I'm sorry, but I can't help with that."
STRUCTURED_MODES = ("valid", "invalid_json", "schema_mismatch", "refusal")

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
    """What the model "says": text or one tool call, plus usage and finish reason.

    ``refusal`` is set when the model declines (each format writes it its
    way); ``cache_read``/``cache_write``/``cache_write_1h`` are prompt tokens
    read from or written to the prompt cache (part of ``input_tokens``).
    """

    __slots__ = (
        "cache_read",
        "cache_write",
        "cache_write_1h",
        "finish",
        "include_usage",
        "input_tokens",
        "model",
        "output_tokens",
        "refusal",
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
        self.refusal: str | None = None
        self.cache_read = 0
        self.cache_write = 0
        self.cache_write_1h = 0


def _media_parts(content: Any) -> int:
    if not isinstance(content, list):
        return 0
    count = 0
    for part in content:
        if isinstance(part, dict):
            kind = part.get("type")
            if kind in _MEDIA_KEYS or (kind is None and any(k in part for k in _MEDIA_MARKERS)):
                count += 1
            elif kind == "tool_result":
                count += _media_parts(part.get("content"))
    return count


def prompt_tokens(body: dict[str, Any], *, anthropic: bool) -> int:
    """The fake's count of a normalised request's prompt: words, plus ``MEDIA_TOKENS`` a part."""
    words = len(text_of(body.get("system")).split()) if anthropic else 0
    for msg in body.get("messages") or ():
        if isinstance(msg, dict):
            content = msg.get("content")
            words += len(text_of(content).split()) + MEDIA_TOKENS * _media_parts(content)
    media = body.get("_media")
    if isinstance(media, int):
        words += MEDIA_TOKENS * media
    return max(1, words)


class PromptCache:
    """The fake's prompt cache: which marked prefixes it has seen (Anthropic, Bedrock).

    A dialect's ``normalize`` lists the request's cache breakpoints as
    ``_cache_marks``: ``(prefix digest, tokens up to the mark, ttl)``. The
    longest prefix seen before is read from the cache; the tokens beyond it
    up to the last mark are written (at the last mark's TTL). Any length
    caches (the real APIs need about a thousand tokens).
    """

    __slots__ = ("seen",)

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def account(self, marks: list[tuple[str, int, str]]) -> tuple[int, int, int]:
        """``(read, written, written with the 1h TTL)`` for a request with ``marks``."""
        if not marks:
            return 0, 0, 0
        read = max((tokens for digest, tokens, _ in marks if digest in self.seen), default=0)
        last_tokens, last_ttl = marks[-1][1], marks[-1][2]
        written = max(0, last_tokens - read)
        self.seen.update(digest for digest, _, _ in marks)
        return read, written, written if last_ttl == "1h" else 0


def _unmarked(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _unmarked(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_unmarked(v) for v in value]
    return value


def cache_marks(items: list[tuple[Any, int, Any]]) -> list[tuple[str, int, str]]:
    """``PromptCache`` marks from the prompt in order: ``(block, its tokens, cache_control)``.

    A mark's digest covers every block up to it (markers themselves left
    out, so re-marking the same prefix elsewhere still hits).
    """
    h = hashlib.blake2b(digest_size=16)
    tokens = 0
    marks: list[tuple[str, int, str]] = []
    for value, n, cache in items:
        h.update(dumps(_unmarked(value)))
        tokens += n
        if isinstance(cache, dict):
            marks.append((h.copy().hexdigest(), tokens, str(cache.get("ttl") or "5m")))
    return marks


def block_tokens(block: Any) -> int:
    """The fake's tokens for one content block (words, or ``MEDIA_TOKENS`` for media)."""
    if isinstance(block, str):
        return len(block.split())
    return len(text_of([block]).split()) + MEDIA_TOKENS * _media_parts([block])


def message_marks(
    messages: Any, system: Any = None, tools: Any = None
) -> list[tuple[str, int, str]]:
    """Marks of an Anthropic- or OpenAI-shaped prompt (tools, system, then messages)."""
    items: list[tuple[Any, int, Any]] = []
    for tool in tools if isinstance(tools, list) else ():
        if isinstance(tool, dict):
            items.append((tool, 0, tool.get("cache_control")))
    blocks = system if isinstance(system, list) else [system] if system else []
    for block in blocks:
        cache = block.get("cache_control") if isinstance(block, dict) else None
        items.append((block, block_tokens(block), cache))
    for m in messages if isinstance(messages, list) else ():
        if not isinstance(m, dict):
            continue
        content = m.get("content")
        if isinstance(content, list):
            for block in content:
                cache = block.get("cache_control") if isinstance(block, dict) else None
                items.append(([m.get("role"), block], block_tokens(block), cache))
        else:
            items.append(
                ([m.get("role"), content], block_tokens(content or ""), m.get("cache_control"))
            )
    return cache_marks(items)


def _forced_tool(body: dict[str, Any], tools: list[Any]) -> dict[str, Any] | None:
    """The tool a ``tool_choice`` forces (OpenAI, Anthropic, Bedrock or Gemini shape)."""
    choice = body.get("tool_choice")
    name: object = None
    if choice in ("required", "any"):
        return tools[0] if isinstance(tools[0], dict) else None
    if isinstance(choice, dict):
        kind = choice.get("type")
        fn = choice.get("function")
        if kind == "function" and isinstance(fn, dict):
            name = fn.get("name")
        elif kind == "tool" or kind == "function":
            name = choice.get("name")
        elif kind == "any" or "any" in choice:
            return tools[0] if isinstance(tools[0], dict) else None
        elif isinstance(choice.get("tool"), dict):
            name = choice["tool"].get("name")
    if not isinstance(name, str):
        return None
    return next((t for t in tools if _tool_schema(t)[0] == name), None)


def _structured_text(fmt: Any, mode: str, last_user: str) -> str | None:
    """The answer to a ``response_format`` (``None``: none asked)."""
    if not isinstance(fmt, dict) or fmt.get("type") not in ("json_schema", "json_object"):
        return None
    if mode == "invalid_json":
        return '{"answer": "cut off'
    if mode == "schema_mismatch":
        return '{"unexpected": true}'
    wanted = _json_schema(fmt)
    if wanted is None:
        return dumps({"echo": last_user}).decode()
    return dumps(sample(wanted)).decode()  # structured output: a value that fits the schema


def plan_answer(
    body: dict[str, Any],
    reply: str | Reply | None,
    *,
    anthropic: bool,
    structured: str = "valid",
    cache: PromptCache | None = None,
) -> Answer:
    """Decide the answer to a chat request body (raises ``ValueError`` if it is not one).

    A ``response_format`` (without a ``reply``) gets JSON: a value that fits
    a ``json_schema``, an object for ``json_object``. A ``tool_choice`` that
    forces a tool gets a call with arguments that fit its schema.
    ``structured`` (or a word in the last user message: ``REFUSE``,
    ``INVALID_JSON``, ``SCHEMA_MISMATCH``) makes the answer a refusal, text
    that is not JSON, or JSON that does not fit the schema.
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
    last_user = ""
    for msg in messages:
        if isinstance(msg, dict) and msg.get("role") == "user":
            last_user = text_of(msg.get("content"))
    a.input_tokens = prompt_tokens(body, anthropic=anthropic)
    if cache is not None:
        marks = body.get("_cache_marks")
        if isinstance(marks, list) and marks:
            read, written, hour = cache.account(marks)
            a.cache_read = min(read, a.input_tokens)
            a.cache_write = min(written, a.input_tokens - a.cache_read)
            a.cache_write_1h = min(hour, a.cache_write)
    for word, mode in (
        ("REFUSE", "refusal"),
        ("INVALID_JSON", "invalid_json"),
        ("SCHEMA_MISMATCH", "schema_mismatch"),
    ):
        if word in last_user:
            structured = mode
    if structured == "refusal":
        a.refusal = a.text = REFUSAL
        a.output_tokens = len(REFUSAL.split())
        return a
    last = messages[-1] if messages else None
    tools = body.get("tools")
    forced = (
        _forced_tool(body, tools) if tools and isinstance(tools, list) and reply is None else None
    )
    if forced is not None:
        a.tool_name, schema = _tool_schema(forced)
        args = {"unexpected": True} if structured != "valid" else sample(schema) if schema else {}
        a.tool_args = dumps(args).decode()
        a.finish = "tool_calls"
        a.output_tokens = max(1, len(a.tool_args.split()) + 1)
        return a
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
    wanted = _structured_text(body.get("response_format"), structured, last_user)
    if reply is None and wanted is not None:
        text = wanted
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
