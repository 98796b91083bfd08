"""The Anthropic codec's request side: aio_llm's messages onto the Messages API body.

System and developer messages become the top-level ``system``; tool calls
and tool results become ``tool_use`` / ``tool_result`` blocks; consecutive
turns of one role are merged (the API wants them to alternate); blocks in
Anthropic's own form pass through; ``request.extra`` is merged last.
"""

from __future__ import annotations

import re
from typing import Any

from .._conversation import (
    Opaque,
    Part,
    Text,
    ToolResult,
    ToolSpec,
    Turn,
    conversation,
    output_format,
    provider_schema,
    tool_arguments,
    tool_choice,
    tool_specs,
)
from ..errors import InvalidRequestError
from ..types import ChatRequest, ThinkingBlock
from ._params import anthropic_service_tier

__all__ = [
    "encode_body",
    "output_mode",
    "output_tool_name",
    "part_block",
    "thinking_block",
    "tool_def",
]


# -- request mapping --------------------------------------------------------------

_TOOL_CHOICE: dict[str, dict[str, str]] = {
    "auto": {"type": "auto"},
    "required": {"type": "any"},
    "none": {"type": "none"},
}


def encode_body(
    request: ChatRequest, default_max_tokens: int, structured: str = "auto"
) -> dict[str, Any]:
    """The Messages request body for ``request`` (``extra`` merged last, unchanged).

    ``structured`` picks how a ``response_format`` is asked for (see
    ``output_mode``).
    """
    system: list[str | list[dict[str, Any]]] = []
    turns: list[dict[str, Any]] = []
    for turn in conversation(request.messages):
        role = turn.role
        if role == "system" or role == "developer":
            plain = turn.plain_text
            if plain is None:
                system.append([part_block(p) for p in turn.parts])
            elif plain:
                system.append(plain)
            continue
        content: str | list[dict[str, Any]]
        if role == "tool":
            role, content = "user", [_result_block(r) for r in turn.results]
        elif role == "assistant":
            content = _assistant_blocks(turn)
        else:
            plain = turn.plain_text
            content = plain if plain is not None else [part_block(p) for p in turn.parts]
        if not content:
            continue
        if turns and turns[-1]["role"] == role:
            last = turns[-1]
            last["content"] = _as_blocks(last["content"]) + _as_blocks(content)
        else:
            turns.append({"role": role, "content": content})
    if not turns:
        raise InvalidRequestError("Anthropic needs at least one user or assistant message")
    body: dict[str, Any] = {
        "model": request.model,
        "messages": turns,
        "max_tokens": request.max_tokens or default_max_tokens,
    }
    if system:
        body["system"] = _system(system)
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop is not None:
        body["stop_sequences"] = [request.stop] if isinstance(request.stop, str) else request.stop
    if request.tools:
        body["tools"] = [tool_def(t) for t in tool_specs(request.tools)]
    if request.tool_choice is not None:
        body["tool_choice"] = _tool_choice(request.tool_choice)
    if request.response_format is not None:
        _structured(body, request, structured)
    if request.user is not None:
        body["metadata"] = {"user_id": request.user}
    if request.stream:
        body["stream"] = True
    _sdk_parameters(body, request)
    if request.extra:
        extra = request.extra
        config = extra.get("output_config")
        if isinstance(config, dict) and isinstance(body.get("output_config"), dict):
            extra = {**extra, "output_config": {**body["output_config"], **config}}
        body.update(extra)
    return body


# -- structured output -------------------------------------------------------------

# Claude models before 4.5 have no JSON outputs; they get a forced tool instead.
_OLD_CLAUDE = re.compile(
    r"claude-(?:instant|[12](?:[.-]|$)|3"
    r"|(?:opus|sonnet|haiku)-(?:3(?:-\d)?|4(?:-[01])?)(?:-\d{8})?$)"
)


def output_mode(request: ChatRequest, structured: str) -> str | None:
    """How ``request``'s ``response_format`` goes to Anthropic: ``"native"``, ``"tool"`` or
    ``None`` (plain text).

    ``native`` is ``output_config.format`` (JSON outputs, generally available
    on Claude 4.5 and later, no beta header); ``tool`` forces a call to a
    tool whose input schema is the format's, and reads its input as the
    answer (older models, and ``json_object``, which JSON outputs cannot
    express). ``structured`` is the provider's setting: ``"auto"`` picks by
    model, ``"native"`` or ``"tool"`` force one.
    """
    fmt = output_format(request.response_format)
    if fmt is None or fmt.kind == "text":
        return None
    if fmt.kind == "json_object" or structured == "tool":
        return "tool"
    if structured == "native":
        return "native"
    model = request.model.rpartition("/")[2].lower().replace(".", "-")
    return "tool" if _OLD_CLAUDE.search(model) else "native"


def output_tool_name(request: ChatRequest, structured: str) -> str | None:
    """The name of the tool that carries the answer, when the format is asked for by tool."""
    if output_mode(request, structured) != "tool":
        return None
    fmt = output_format(request.response_format)
    assert fmt is not None
    return fmt.name if fmt.kind == "json_schema" and fmt.name else "json_output"


def _structured(body: dict[str, Any], request: ChatRequest, structured: str) -> None:
    mode = output_mode(request, structured)
    fmt = output_format(request.response_format)
    if mode is None or fmt is None:
        return
    if mode == "native":
        assert fmt.schema is not None
        spec = {"type": "json_schema", "schema": provider_schema(fmt, "anthropic")}
        body["output_config"] = {"format": spec}
        return
    name = output_tool_name(request, structured)
    assert name is not None
    tools = body.setdefault("tools", [])
    if any(isinstance(t, dict) and t.get("name") == name for t in tools):
        raise InvalidRequestError(
            f"a tool is named {name!r} like the response_format; rename one of them"
        )
    tool: dict[str, Any] = {"name": name}
    description = fmt.description
    if description is None and fmt.schema is not None:
        described = fmt.schema.get("description")
        description = described if isinstance(described, str) else None
    if description:
        tool["description"] = description
    schema = provider_schema(fmt, "plain") if fmt.schema is not None else {"type": "object"}
    schema.pop("title", None)
    tool["input_schema"] = schema
    tools.append(tool)
    if "tool_choice" in body:
        return  # the caller's choice stands
    if len(tools) > 1:
        body["tool_choice"] = {"type": "any"}  # the answer, or one of the caller's tools
    elif not isinstance(request.extra.get("thinking"), dict):
        body["tool_choice"] = {"type": "tool", "name": name}
    else:  # extended thinking refuses a forced tool
        body["tool_choice"] = {"type": "auto"}


def _sdk_parameters(body: dict[str, Any], request: ChatRequest) -> None:
    """``top_k``, ``service_tier`` and ``parallel_tool_calls`` in Anthropic's terms."""
    if request.top_k is not None:
        body["top_k"] = request.top_k
    if request.service_tier is not None:
        body["service_tier"] = anthropic_service_tier(request.service_tier, "anthropic")
    if request.parallel_tool_calls is False and request.tools:
        choice = body.get("tool_choice") or {"type": "auto"}
        if choice.get("type") != "none":
            body["tool_choice"] = {**choice, "disable_parallel_tool_use": True}


def _system(parts: list[str | list[dict[str, Any]]]) -> str | list[dict[str, Any]]:
    """Plain strings joined by a blank line; any block list keeps the whole as blocks."""
    if all(isinstance(p, str) for p in parts):
        return "\n\n".join(p for p in parts if isinstance(p, str))
    blocks: list[dict[str, Any]] = []
    for p in parts:
        blocks.extend([{"type": "text", "text": p}] if isinstance(p, str) else p)
    return blocks


def _as_blocks(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return list(content)


def _assistant_blocks(turn: Turn) -> str | list[dict[str, Any]]:
    plain = turn.plain_text
    if plain is not None:
        return plain
    blocks = [b for t in turn.thinking if (b := thinking_block(t, ("anthropic", None)))]
    blocks.extend(part_block(p) for p in turn.parts if not (isinstance(p, Text) and not p.text))
    blocks.extend(
        {"type": "tool_use", "id": tc.id, "name": tc.name, "input": tool_arguments(tc)}
        for tc in turn.tool_calls
    )
    if turn.calls_cache is not None:
        blocks[-1]["cache_control"] = dict(turn.calls_cache)
    return blocks


def thinking_block(block: ThinkingBlock, kinds: tuple[str | None, ...]) -> dict[str, Any] | None:
    """An Anthropic ``thinking``/``redacted_thinking`` block, if ``block`` belongs to ``kinds``."""
    if block.provider not in kinds:
        return None
    if block.redacted is not None:
        return {"type": "redacted_thinking", "data": block.redacted}
    if block.signature is None:
        return None  # unsigned reasoning cannot be sent back
    return {"type": "thinking", "thinking": block.text, "signature": block.signature}


def _result_block(r: ToolResult) -> dict[str, Any]:
    if r.raw is not None:
        return dict(r.raw)
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": r.call_id}
    if r.parts:
        if len(r.parts) == 1 and isinstance(r.parts[0], Text) and r.parts[0].raw is None:
            block["content"] = r.parts[0].text
        else:
            block["content"] = [part_block(p) for p in r.parts]
    if r.is_error:
        block["is_error"] = True
    if r.cache is not None:
        block["cache_control"] = dict(r.cache)
    return block


def part_block(part: Part) -> dict[str, Any]:
    """One canonical content part as an Anthropic content block."""
    if isinstance(part, Opaque):
        return dict(part.raw)
    if part.raw is not None and part.dialect == "anthropic":
        return dict(part.raw)
    if isinstance(part, Text):
        block: dict[str, Any] = {"type": "text", "text": part.text}
    elif part.kind == "audio":
        raise InvalidRequestError("Anthropic does not take audio input")
    else:
        block = {"type": part.kind if part.kind == "image" else "document"}
        if part.file_id is not None:
            source: dict[str, Any] = {"type": "file", "file_id": part.file_id}
        elif part.url is not None:
            source = {"type": "url", "url": part.url}
        elif part.text is not None:
            source = {"type": "text", "media_type": "text/plain", "data": part.text}
        else:
            source = {"type": "base64", "media_type": part.media_type, "data": part.data}
        block["source"] = source
        if part.kind == "document" and part.name:
            block["title"] = part.name
    if part.cache is not None:
        block["cache_control"] = dict(part.cache)
    return block


def tool_def(spec: ToolSpec | Opaque) -> dict[str, Any]:
    """A tool definition in Anthropic's form; built-in (opaque) tools pass through."""
    if isinstance(spec, Opaque):
        return dict(spec.raw)
    if spec.dialect == "anthropic" and spec.raw is not None:
        return dict(spec.raw)
    out: dict[str, Any] = {"name": spec.name}
    if spec.description is not None:
        out["description"] = spec.description
    out["input_schema"] = dict(spec.parameters)
    if spec.strict is not None and spec.dialect != "openai":
        out["strict"] = spec.strict
    if spec.cache is not None:
        out["cache_control"] = dict(spec.cache)
    return out


def _tool_choice(choice: str | dict[str, Any]) -> dict[str, Any]:
    parsed = tool_choice(choice)
    if isinstance(parsed, Opaque) or parsed is None:
        return dict(choice) if isinstance(choice, dict) else {"type": str(choice)}
    if parsed.raw is not None and parsed.raw.get("type") in ("auto", "any", "none", "tool"):
        return dict(parsed.raw)  # already Anthropic's (disable_parallel_tool_use kept)
    if parsed.mode == "tool":
        return {"type": "tool", "name": parsed.name}
    return dict(_TOOL_CHOICE[parsed.mode])
