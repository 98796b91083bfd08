"""The Anthropic codec's request side: aio_llm's messages onto the Messages API body.

System and developer messages become the top-level ``system``; tool calls
and tool results become ``tool_use`` / ``tool_result`` blocks; consecutive
turns of one role are merged (the API wants them to alternate); blocks in
Anthropic's own form pass through; ``request.extra`` is merged last.
"""

from __future__ import annotations

from typing import Any

from .. import _json
from ..errors import InvalidRequestError
from ..types import ChatRequest, ToolCall
from ._params import anthropic_service_tier

__all__ = ["encode_body"]


# -- request mapping --------------------------------------------------------------

_TOOL_CHOICE: dict[str, dict[str, str]] = {
    "auto": {"type": "auto"},
    "required": {"type": "any"},
    "any": {"type": "any"},
    "none": {"type": "none"},
}


def encode_body(request: ChatRequest, default_max_tokens: int) -> dict[str, Any]:
    """The Messages request body for ``request`` (``extra`` merged last, unchanged)."""
    system: list[str | list[dict[str, Any]]] = []
    turns: list[dict[str, Any]] = []
    for m in request.messages:
        role = m.role
        if role == "system" or role == "developer":
            if m.content:
                system.append(m.content)
            continue
        content: str | list[dict[str, Any]]
        if role == "tool":
            if not m.tool_call_id:
                raise InvalidRequestError("a tool message needs tool_call_id")
            result: dict[str, Any] = {"type": "tool_result", "tool_use_id": m.tool_call_id}
            if m.content is not None:
                result["content"] = m.content if isinstance(m.content, str) else _blocks(m.content)
            role, content = "user", [result]
        elif isinstance(m.content, list):
            content = _blocks(m.content)
        else:
            content = m.content or ""
        if m.tool_calls:
            content = _as_blocks(content) + [_tool_use(tc) for tc in m.tool_calls]
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
        body["tools"] = [_tool(t) for t in request.tools]
    if request.tool_choice is not None:
        body["tool_choice"] = _tool_choice(request.tool_choice)
    if request.user is not None:
        body["metadata"] = {"user_id": request.user}
    if request.stream:
        body["stream"] = True
    _sdk_parameters(body, request)
    if request.extra:
        body.update(request.extra)
    return body


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


def _blocks(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Content parts in Anthropic's form: OpenAI ``image_url`` parts become image blocks."""
    return [_image(p) if p.get("type") == "image_url" else p for p in parts]


def _image(part: dict[str, Any]) -> dict[str, Any]:
    ref = part.get("image_url")
    url = ref.get("url") if isinstance(ref, dict) else ref
    if not isinstance(url, str) or not url:
        raise InvalidRequestError("an image_url part needs a url")
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if not sep or encoding != "base64" or not media_type:
            raise InvalidRequestError("an image data URL must be data:<media type>;base64,...")
        source = {"type": "base64", "media_type": media_type, "data": data}
    else:
        source = {"type": "url", "url": url}
    return {"type": "image", "source": source}


def _tool_use(tc: ToolCall) -> dict[str, Any]:
    try:
        args = _json.loads(tc.arguments) if tc.arguments.strip() else {}
    except _json.JSONDecodeError:
        raise InvalidRequestError(
            f"the arguments of tool call {tc.id!r} ({tc.name}) are not valid JSON"
        ) from None
    if not isinstance(args, dict):
        raise InvalidRequestError(
            f"the arguments of tool call {tc.id!r} ({tc.name}) must be a JSON object"
        )
    return {"type": "tool_use", "id": tc.id, "name": tc.name, "input": args}


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI-style function tool in Anthropic's form; native tools pass through."""
    fn = tool.get("function")
    if tool.get("type") != "function" or not isinstance(fn, dict):
        return tool
    name = fn.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequestError("a function tool needs a name")
    out: dict[str, Any] = {"name": name}
    if fn.get("description") is not None:
        out["description"] = fn["description"]
    out["input_schema"] = fn.get("parameters") or {"type": "object", "properties": {}}
    return out


def _tool_choice(choice: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(choice, str):
        mapped = _TOOL_CHOICE.get(choice)
        if mapped is None:
            raise InvalidRequestError(f"unknown tool_choice {choice!r}")
        return dict(mapped)
    fn = choice.get("function")
    if choice.get("type") == "function" and isinstance(fn, dict):
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequestError("tool_choice names no function")
        return {"type": "tool", "name": name}
    return choice
