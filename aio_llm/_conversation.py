"""The canonical conversation that every provider codec encodes from.

Users hand aio_llm messages in the shapes they already have: OpenAI's chat
format (string or part-list content, assistant ``tool_calls`` nested or flat,
``role: "tool"`` results), Anthropic's content blocks (``text``, ``image``,
``document``, ``tool_use``, ``tool_result``, ``thinking``,
``redacted_thinking``), the Responses API's parts (``input_text``,
``input_image``, ``input_file``, ``output_text``), or a mix. ``conversation``
reads them into one list of ``Turn`` objects, and each codec writes its wire
format from those alone, so any input shape reaches any provider.

The rules:

- A turn is ``system``, ``developer``, ``user``, ``assistant`` or ``tool``.
  Tool results are their own turn (consecutive results merged into one), so
  an Anthropic user message holding ``tool_result`` blocks and text becomes
  a ``tool`` turn followed by a ``user`` turn.
- Content parts are ``Text``, ``Media`` (image, document, audio) or
  ``Opaque`` (a typed part aio_llm does not translate: it goes unchanged to
  the formats whose parts are typed dicts, and is refused by the others).
  Each part keeps the dict it came from (``raw``) and its ``dialect``, so a
  codec of the same format can send it back untouched, ``cache_control``,
  citations and future fields included.
- An assistant turn has text parts, ``ToolCall`` objects (with the
  provider's ``signature`` when it gave one) and ``ThinkingBlock`` objects;
  every tool result knows the name of the call it answers when an earlier
  turn made that call (Gemini needs it).

Tool definitions (``tool_specs``), ``tool_choice`` (``tool_choice``) and
``response_format`` (``output_format``) are read the same way from OpenAI's,
the Responses API's, Anthropic's, Bedrock's and Gemini's shapes.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from . import _json
from .errors import InvalidRequestError
from .types import Message, ThinkingBlock, ToolCall, make_tool_call

__all__ = [
    "Media",
    "Opaque",
    "OutputFormat",
    "Part",
    "Text",
    "ToolChoice",
    "ToolResult",
    "ToolSpec",
    "Turn",
    "content_part",
    "conversation",
    "data_url",
    "output_format",
    "parse_data_url",
    "provider_schema",
    "tool_arguments",
    "tool_choice",
    "tool_specs",
]

JSONDict = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Text:
    """Text; ``raw`` is the part it came from (``None``: string content)."""

    text: str
    cache: JSONDict | None = None
    raw: JSONDict | None = None
    dialect: str = "plain"


@dataclass(frozen=True, slots=True)
class Media:
    """An image, document or audio clip: base64 ``data``, a ``url``, a ``file_id`` or ``text``."""

    kind: str
    media_type: str | None = None
    data: str | None = None
    url: str | None = None
    text: str | None = None
    file_id: str | None = None
    name: str | None = None
    detail: str | None = None
    cache: JSONDict | None = None
    raw: JSONDict | None = None
    dialect: str = "openai"


@dataclass(frozen=True, slots=True)
class Opaque:
    """A typed part aio_llm does not translate; sent unchanged where parts are typed dicts."""

    raw: JSONDict
    dialect: str = "unknown"


Part = Text | Media | Opaque


@dataclass(frozen=True, slots=True)
class ToolResult:
    """The result of one tool call, answering the call with id ``call_id``."""

    call_id: str
    parts: tuple[Part, ...]
    is_error: bool = False
    name: str | None = None
    cache: JSONDict | None = None
    raw: JSONDict | None = None

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, Text))


@dataclass(frozen=True, slots=True)
class Turn:
    """One turn of the conversation, in the canonical form."""

    role: str
    parts: tuple[Part, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    thinking: tuple[ThinkingBlock, ...] = ()
    results: tuple[ToolResult, ...] = ()
    name: str | None = None
    calls_cache: JSONDict | None = None
    """A message-level ``cache_control`` of a turn with tool calls: its last call's block."""

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, Text))

    @property
    def plain_text(self) -> str | None:
        """The text when the turn is one string (no parts from a list, nothing else)."""
        if len(self.parts) == 1 and not self.tool_calls and not self.thinking:
            part = self.parts[0]
            if isinstance(part, Text) and part.raw is None and part.cache is None:
                return part.text
        if not self.parts and not self.tool_calls and not self.thinking:
            return ""
        return None


# -- messages -----------------------------------------------------------------------


def conversation(messages: Sequence[Message]) -> list[Turn]:
    """The canonical turns of ``messages`` (``InvalidRequestError`` for unusable input)."""
    turns: list[Turn] = []
    names: dict[str, str] = {}
    for i, message in enumerate(messages):
        try:
            _add_message(message, turns, names)
        except InvalidRequestError as exc:
            raise InvalidRequestError(f"messages.{i}: {exc}") from None
    return turns


def _append(turns: list[Turn], turn: Turn) -> None:
    if turn.role == "tool" and turns and turns[-1].role == "tool":
        last = turns.pop()
        turn = Turn("tool", results=last.results + turn.results)
    turns.append(turn)


def _add_message(m: Message, turns: list[Turn], names: dict[str, str]) -> None:
    if m.cache_control is None:
        _add_unmarked(m, turns, names)
        return
    before = len(turns)
    _add_unmarked(m, turns, names)
    if len(turns) > before or (turns and turns[-1].role == "tool"):
        turns[-1] = _mark_last(turns[-1], m.cache_control)


def _with_cache(part: Part, cache: JSONDict) -> Part:
    if isinstance(part, Opaque):
        return Opaque({**part.raw, "cache_control": dict(cache)}, part.dialect)
    raw = {**part.raw, "cache_control": dict(cache)} if part.raw is not None else None
    return dataclasses.replace(part, cache=cache, raw=raw)


def _mark_last(turn: Turn, cache: JSONDict) -> Turn:
    """``turn`` with its last block carrying ``cache`` (a message-level ``cache_control``)."""
    if turn.results:
        last = turn.results[-1]
        raw = {**last.raw, "cache_control": dict(cache)} if last.raw is not None else None
        marked = dataclasses.replace(last, cache=cache, raw=raw)
        return dataclasses.replace(turn, results=(*turn.results[:-1], marked))
    if turn.tool_calls:  # the calls come last: the marker goes on the last one's block
        return dataclasses.replace(turn, calls_cache=cache)
    if not turn.parts:
        return turn  # nothing to mark
    return dataclasses.replace(turn, parts=(*turn.parts[:-1], _with_cache(turn.parts[-1], cache)))


def _add_unmarked(m: Message, turns: list[Turn], names: dict[str, str]) -> None:
    role = m.role
    content = m.content
    if role == "tool":
        if not m.tool_call_id:
            raise InvalidRequestError("a tool message needs tool_call_id")
        parts = _parts(content)
        name = m.name or names.get(m.tool_call_id)
        _append(turns, Turn("tool", results=(ToolResult(m.tool_call_id, parts, name=name),)))
        return
    if role == "assistant":
        _append(turns, _assistant(m, names))
        return
    if not isinstance(content, list):
        text = content or ""
        _append(turns, Turn(role, (Text(text),) if text else (), name=m.name))
        return
    # a user (or system) message: Anthropic tool_result blocks become tool turns
    pending: list[Part] = []
    for block in content:
        if block.get("type") == "tool_result":
            if pending:
                _append(turns, Turn(role, tuple(pending), name=m.name))
                pending = []
            _append(turns, Turn("tool", results=(_tool_result(block, names),)))
        else:
            pending.append(_part(block))
    if pending or not content:
        _append(turns, Turn(role, tuple(pending), name=m.name))


def _assistant(m: Message, names: dict[str, str]) -> Turn:
    parts: list[Part] = []
    calls: list[ToolCall] = []
    thinking: list[ThinkingBlock] = list(m.thinking or ())
    calls_cache: JSONDict | None = None
    content = m.content
    if isinstance(content, str):
        if content:
            parts.append(Text(content))
    elif content:
        for block in content:
            kind = block.get("type")
            if kind == "tool_use":
                ident, name = block.get("id"), block.get("name")
                if not isinstance(ident, str) or not isinstance(name, str):
                    raise InvalidRequestError("a tool_use block needs an id and a name")
                args = block.get("input")
                calls.append(make_tool_call(ident, name, _json.dumps_text(args or {})))
                if isinstance(block.get("cache_control"), Mapping):
                    calls_cache = block["cache_control"]  # kept on the turn's last call
            elif kind == "thinking":
                sig = block.get("signature")
                thinking.append(
                    ThinkingBlock(
                        text=str(block.get("thinking") or ""),
                        signature=sig if isinstance(sig, str) else None,
                    )
                )
            elif kind == "redacted_thinking":
                thinking.append(ThinkingBlock(redacted=str(block.get("data") or "")))
            else:
                parts.append(_part(block))
    calls.extend(m.tool_calls or ())
    for tc in calls:
        names[tc.id] = tc.name
    return Turn(
        "assistant",
        tuple(parts),
        tuple(calls),
        tuple(thinking),
        name=m.name,
        calls_cache=calls_cache if calls else None,
    )


def _tool_result(block: JSONDict, names: Mapping[str, str]) -> ToolResult:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequestError("a tool_result block needs tool_use_id")
    inner = block.get("content")
    parts = _parts(inner if isinstance(inner, str | list) else None)
    return ToolResult(
        call_id,
        parts,
        is_error=block.get("is_error") is True,
        name=names.get(call_id),
        cache=block.get("cache_control"),
        raw=block,
    )


def _parts(content: str | list[dict[str, Any]] | None) -> tuple[Part, ...]:
    if content is None or content == "":
        return ()
    if isinstance(content, str):
        return (Text(content),)
    return tuple(_part(p) for p in content)


def parse_data_url(url: str) -> tuple[str, str] | None:
    """``(media_type, base64 data)`` of a ``data:<type>;base64,<data>`` URL, else ``None``."""
    if not url.startswith("data:"):
        return None
    header, sep, data = url[5:].partition(",")
    media_type, _, encoding = header.partition(";")
    if not sep or encoding != "base64" or not media_type:
        raise InvalidRequestError("a data URL must look like data:<media type>;base64,<data>")
    return media_type, data


def data_url(media_type: str | None, data: str) -> str:
    return f"data:{media_type or 'application/octet-stream'};base64,{data}"


def _url_media(kind: str, url: object, p: JSONDict, dialect: str, **more: Any) -> Media:
    if not isinstance(url, str) or not url:
        raise InvalidRequestError(f"a {p.get('type')} part needs a URL")
    inline = parse_data_url(url)
    if inline is not None:
        return Media(kind, inline[0], data=inline[1], raw=p, dialect=dialect, **more)
    return Media(kind, url=url, raw=p, dialect=dialect, **more)


def content_part(p: JSONDict) -> Part:
    """One content part, in any accepted shape, in canonical form."""
    return _part(p)


def _part(p: JSONDict) -> Part:
    kind = p.get("type")
    if kind == "text":
        text = p.get("text")
        if not isinstance(text, str):
            raise InvalidRequestError("a text part needs 'text'")
        cache = p.get("cache_control")
        return Text(text, cache, p, "anthropic" if len(p) > 2 else "openai")
    if kind in ("input_text", "output_text"):
        return Text(str(p.get("text") or ""), None, p, "responses")
    if kind == "refusal":
        return Text(str(p.get("refusal") or ""), None, p, "openai")
    if kind == "image_url":
        ref = p.get("image_url")
        url = ref.get("url") if isinstance(ref, Mapping) else ref
        detail = ref.get("detail") if isinstance(ref, Mapping) else None
        return _url_media("image", url, p, "openai", detail=detail)
    if kind == "input_image":
        if isinstance(p.get("file_id"), str):
            return Media("image", file_id=p["file_id"], detail=p.get("detail"), raw=p)
        return _url_media("image", p.get("image_url"), p, "responses", detail=p.get("detail"))
    if kind == "input_audio":
        audio = p.get("input_audio")
        if not isinstance(audio, Mapping) or not isinstance(audio.get("data"), str):
            raise InvalidRequestError("an input_audio part needs input_audio.data")
        fmt = str(audio.get("format") or "wav")
        return Media("audio", f"audio/{fmt}", data=audio["data"], raw=p, dialect="openai")
    if kind in ("file", "input_file"):
        ref = p.get("file") if kind == "file" else p
        dialect = "openai" if kind == "file" else "responses"
        if not isinstance(ref, Mapping):
            raise InvalidRequestError("a file part needs 'file'")
        name = ref.get("filename")
        if isinstance(ref.get("file_id"), str):
            return Media("document", file_id=ref["file_id"], name=name, raw=p, dialect=dialect)
        if isinstance(ref.get("file_url"), str):
            return Media("document", url=ref["file_url"], name=name, raw=p, dialect=dialect)
        return _url_media("document", ref.get("file_data"), p, dialect, name=name)
    if kind in ("image", "document"):
        return _anthropic_media(kind, p)
    if not isinstance(kind, str):
        raise InvalidRequestError("every content part needs a string 'type'")
    return Opaque(p)


def _anthropic_media(kind: str, p: JSONDict) -> Media:
    source = p.get("source")
    if not isinstance(source, Mapping):
        raise InvalidRequestError(f"an {kind} block needs a source")
    stype = source.get("type")
    cache = p.get("cache_control")
    title = p.get("title") if isinstance(p.get("title"), str) else None
    common: dict[str, Any] = {"cache": cache, "raw": p, "dialect": "anthropic", "name": title}
    if stype == "base64":
        return Media(kind, source.get("media_type"), data=source.get("data"), **common)
    if stype == "url":
        return Media(kind, url=source.get("url"), **common)
    if stype == "text":
        return Media(
            kind, source.get("media_type") or "text/plain", text=source.get("data"), **common
        )
    if stype == "file":
        return Media(kind, file_id=source.get("file_id"), **common)
    if stype == "content" and isinstance(source.get("content"), list | str):
        inner = _parts(source["content"])
        text = "".join(x.text for x in inner if isinstance(x, Text))
        return Media(kind, "text/plain", text=text, **common)
    raise InvalidRequestError(f"unsupported {kind} source type {stype!r}")


def tool_arguments(call: ToolCall) -> dict[str, Any]:
    """A tool call's arguments as the JSON object the providers with structured input want."""
    text = call.arguments
    try:
        args = _json.loads(text) if text.strip() else {}
    except _json.JSONDecodeError:
        raise InvalidRequestError(
            f"the arguments of tool call {call.id!r} ({call.name}) are not valid JSON"
        ) from None
    if not isinstance(args, dict):
        raise InvalidRequestError(
            f"the arguments of tool call {call.id!r} ({call.name}) must be a JSON object"
        )
    return args


# -- tools ---------------------------------------------------------------------------

_EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function tool: name, description and JSON-schema ``parameters``."""

    name: str
    description: str | None
    parameters: JSONDict
    strict: bool | None = None
    cache: JSONDict | None = None
    raw: JSONDict | None = None
    dialect: str = "openai"


def tool_specs(tools: Sequence[JSONDict] | None) -> list[ToolSpec | Opaque]:
    """Function tools in any supported shape; anything else (built-in tools) stays ``Opaque``."""
    out: list[ToolSpec | Opaque] = []
    for i, tool in enumerate(tools or ()):
        if not isinstance(tool, Mapping):
            raise InvalidRequestError(f"tools.{i} is not an object")
        out.extend(_tool(tool, i))
    return out


def _schema(value: object) -> JSONDict:
    return value if isinstance(value, Mapping) else _EMPTY_SCHEMA


def _named(value: object, i: int) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidRequestError(f"tools.{i} needs a name")
    return value


def _tool(t: JSONDict, i: int) -> list[ToolSpec | Opaque]:
    kind = t.get("type")
    fn = t.get("function")
    if kind == "function" and isinstance(fn, Mapping):  # OpenAI chat
        return [
            ToolSpec(
                _named(fn.get("name"), i),
                fn.get("description"),
                _schema(fn.get("parameters")),
                fn.get("strict"),
                raw=t,
            )
        ]
    if kind == "function":  # Responses API
        return [
            ToolSpec(
                _named(t.get("name"), i),
                t.get("description"),
                _schema(t.get("parameters")),
                t.get("strict"),
                raw=t,
                dialect="responses",
            )
        ]
    if "input_schema" in t and kind in (None, "custom"):  # Anthropic
        return [
            ToolSpec(
                _named(t.get("name"), i),
                t.get("description"),
                _schema(t.get("input_schema")),
                t.get("strict"),
                cache=t.get("cache_control"),
                raw=t,
                dialect="anthropic",
            )
        ]
    spec = t.get("toolSpec")
    if isinstance(spec, Mapping):  # Bedrock Converse
        schema = spec.get("inputSchema")
        params = schema.get("json") if isinstance(schema, Mapping) else None
        return [
            ToolSpec(
                _named(spec.get("name"), i),
                spec.get("description"),
                _schema(params),
                spec.get("strict"),
                raw=t,
                dialect="bedrock",
            )
        ]
    decls = t.get("functionDeclarations") or t.get("function_declarations")
    if isinstance(decls, list):  # Gemini
        return [
            ToolSpec(
                _named(d.get("name"), i),
                d.get("description"),
                _schema(
                    d.get("parametersJsonSchema")
                    or d.get("parameters_json_schema")
                    or d.get("parameters")
                ),
                raw=d,
                dialect="gemini",
            )
            for d in decls
            if isinstance(d, Mapping)
        ]
    return [Opaque(t)]


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """``auto``, ``none``, ``required`` (some tool) or ``tool`` (the one named)."""

    mode: str
    name: str | None = None
    raw: JSONDict | None = None


_MODES = {"auto": "auto", "none": "none", "required": "required", "any": "required"}


def tool_choice(choice: str | JSONDict | None) -> ToolChoice | Opaque | None:
    """``tool_choice`` in OpenAI's, the Responses API's, Anthropic's or Bedrock's shape."""
    if choice is None:
        return None
    if isinstance(choice, str):
        mode = _MODES.get(choice)
        if mode is None:
            raise InvalidRequestError(f"unknown tool_choice {choice!r}")
        return ToolChoice(mode)
    kind = choice.get("type")
    if kind == "function":
        fn = choice.get("function")
        name = fn.get("name") if isinstance(fn, Mapping) else choice.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequestError("tool_choice names no function")
        return ToolChoice("tool", name, choice)
    if kind == "tool":
        name = choice.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequestError("tool_choice names no tool")
        return ToolChoice("tool", name, choice)
    if isinstance(kind, str) and kind in _MODES:
        return ToolChoice(_MODES[kind], raw=choice)
    if len(choice) == 1:  # Bedrock: {"auto": {}}, {"any": {}}, {"tool": {"name": ...}}
        (key, value), *_ = choice.items()
        if key in ("auto", "any"):
            return ToolChoice(_MODES[key], raw=choice)
        if key == "tool" and isinstance(value, Mapping) and isinstance(value.get("name"), str):
            return ToolChoice("tool", value["name"], choice)
    return Opaque(choice)


# -- structured output ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """What ``response_format`` asks for: ``text``, ``json_object`` or ``json_schema``.

    ``model`` is the pydantic class the answer is validated into (``None``
    for a raw schema). ``schema`` is the schema as given (a class's
    ``model_json_schema()``); each codec adapts it to its provider
    (``provider_schema``).
    """

    kind: str
    schema: JSONDict | None = None
    name: str | None = None
    strict: bool | None = None
    description: str | None = None
    model: type[BaseModel] | None = None


_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_-]")


def output_format(fmt: JSONDict | type[BaseModel] | None) -> OutputFormat | None:
    """``response_format`` as a pydantic class, or in the chat-completions or Responses shape."""
    if fmt is None:
        return None
    if isinstance(fmt, type):
        return _model_format(fmt)
    kind = fmt.get("type")
    if kind in ("text", "json_object"):
        return OutputFormat(kind)
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, Mapping):
            spec = fmt  # the Responses API's flat shape
        schema = spec.get("schema")
        if not isinstance(schema, Mapping):
            raise InvalidRequestError("response_format json_schema needs a 'schema' object")
        name = spec.get("name")
        strict = spec.get("strict")
        description = spec.get("description")
        return OutputFormat(
            "json_schema",
            schema,
            name if isinstance(name, str) and name else "response",
            strict if isinstance(strict, bool) else None,
            description if isinstance(description, str) else None,
        )
    raise InvalidRequestError(f"unsupported response_format type {kind!r}")


@functools.lru_cache(maxsize=256)
def _model_format(model: type[BaseModel]) -> OutputFormat:
    """The format of a pydantic class (its JSON schema computed once per class)."""
    if not issubclass(model, BaseModel):
        raise InvalidRequestError(
            f"response_format must be a pydantic model class or a dict, not {model!r}"
        )
    try:
        schema = model.model_json_schema()
    except Exception as exc:  # pydantic's PydanticInvalidForJsonSchema and kin
        raise InvalidRequestError(
            f"response_format {model.__name__} has no JSON schema: {exc}"
        ) from None
    name = _NAME_CHARS.sub("_", model.__name__)[:64] or "response"
    return OutputFormat("json_schema", schema, name, True, None, model)


@functools.lru_cache(maxsize=512)
def _dialect_schema(model: type[BaseModel], dialect: str) -> dict[str, Any]:
    fmt = _model_format(model)
    assert fmt.schema is not None
    return _adapt(fmt.schema, dialect)


def _adapt(schema: JSONDict, dialect: str) -> dict[str, Any]:
    from ._schema import anthropic_schema, strict_schema

    try:
        if dialect == "strict":
            return strict_schema(schema)
        if dialect == "anthropic":
            return anthropic_schema(schema)
    except ValueError as exc:  # a $ref that points nowhere
        raise InvalidRequestError(f"response_format schema: {exc}") from None
    return dict(schema)


def provider_schema(fmt: OutputFormat, dialect: str) -> dict[str, Any]:
    """``fmt``'s schema for a provider: ``"strict"`` (OpenAI strict mode), ``"anthropic"``
    (Anthropic and Bedrock structured outputs) or ``"plain"``.

    A pydantic class's schema is adapted, as the official SDKs adapt the
    classes they are given (``aio_llm._schema``). A raw schema goes as the
    caller wrote it, for every provider: it is theirs to fit the API.
    """
    assert fmt.schema is not None
    if fmt.model is not None:
        return _dialect_schema(fmt.model, dialect)
    return dict(fmt.schema)
