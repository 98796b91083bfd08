"""The Gemini API's wire format (``generateContent``, v1beta): request body and answers.

Request: system and developer turns become ``systemInstruction``; user turns
``role: "user"`` contents and assistant turns ``role: "model"``; tool calls
are ``functionCall`` parts (their ``thoughtSignature`` sent back on the
part), tool results ``functionResponse`` parts named after the call they
answer; images, audio and documents ``inlineData`` (base64) or ``fileData``
(a URI). Consecutive contents of one role are merged.

Answer: the first candidate's parts. ``"thought": true`` parts are the
reasoning, other text parts the content, ``functionCall`` parts the tool
calls. Every ``thoughtSignature`` is kept: on the tool call it came with, or
as a ``ThinkingBlock`` (on a thought part, or alone when it sat on an answer
part), so that the next turn returns it. A call without an ``id`` gets one
made up here (``GENERATED_ID_PREFIX``), which is never sent to Gemini.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import _json
from .._conversation import (
    Media,
    Opaque,
    OutputFormat,
    Part,
    Text,
    ToolResult,
    Turn,
    conversation,
    output_format,
    tool_arguments,
    tool_choice,
    tool_specs,
)
from ..errors import APIError, InvalidRequestError, error_for_status
from ..types import (
    ChatRequest,
    ChatResponse,
    FinishReason,
    ThinkingBlock,
    ToolCall,
    Usage,
    make_response,
    make_tool_call,
    make_usage,
)
from ._common import int_field

__all__ = [
    "FINISH",
    "GENERATED_ID_PREFIX",
    "decode_error",
    "encode_body",
    "finish_reason",
    "refusal_of",
    "parse_candidate_parts",
    "parse_response",
    "usage_from_wire",
]

GENERATED_ID_PREFIX = "gemini-call-"
"""Tool-call ids aio_llm made up (Gemini sent none); they are not sent back."""

FINISH: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
}

_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY", "tool": "ANY"}


# -- request ---------------------------------------------------------------------------


def encode_body(request: ChatRequest) -> dict[str, Any]:
    """The ``generateContent`` body for ``request`` (``extra`` merged last)."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    for turn in conversation(request.messages):
        role = turn.role
        if role in ("system", "developer"):
            system.extend(_part(p) for p in turn.parts)
            continue
        if role == "tool":
            parts = _results(turn.results)
            role = "user"
        elif role == "assistant":
            parts = _model_parts(turn)
            role = "model"
        else:
            parts = [_part(p) for p in turn.parts]
        if not parts:
            continue
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    if not contents:
        raise InvalidRequestError("Gemini needs at least one user or assistant message")
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    config: dict[str, Any] = {}
    if request.temperature is not None:
        config["temperature"] = request.temperature
    if request.top_p is not None:
        config["topP"] = request.top_p
    if request.max_tokens is not None:
        config["maxOutputTokens"] = request.max_tokens
    if request.stop is not None:
        config["stopSequences"] = [request.stop] if isinstance(request.stop, str) else request.stop
    if request.seed is not None:
        config["seed"] = request.seed
    if request.top_k is not None:
        config["topK"] = request.top_k
    if request.presence_penalty is not None:
        config["presencePenalty"] = request.presence_penalty
    if request.frequency_penalty is not None:
        config["frequencyPenalty"] = request.frequency_penalty
    fmt = output_format(request.response_format)
    if fmt is not None and fmt.kind != "text":
        _json_output(config, fmt)
    if config:
        body["generationConfig"] = config
    if request.tools:
        body["tools"] = _tools(request.tools)
    if request.tool_choice is not None:
        tool_config = _tool_config(request.tool_choice)
        if tool_config is not None:
            body["toolConfig"] = tool_config
    if request.extra:
        for key, value in request.extra.items():
            if key == "generationConfig" and isinstance(value, Mapping):
                body["generationConfig"] = {**body.get("generationConfig", {}), **value}
            else:
                body[key] = value
    return body


def _json_output(config: dict[str, Any], fmt: OutputFormat) -> None:
    config["responseMimeType"] = "application/json"
    if fmt.schema is not None:
        config["responseJsonSchema"] = dict(fmt.schema)


def _part(part: Part) -> dict[str, Any]:
    if isinstance(part, Text):
        return {"text": part.text}
    if isinstance(part, Opaque):
        raise InvalidRequestError(
            f"Gemini cannot take a content part of type {part.raw.get('type')!r}"
        )
    return _media(part)


def _media(part: Media) -> dict[str, Any]:
    if part.text is not None:
        return {"text": part.text}
    if part.data is not None:
        mime = part.media_type or "application/octet-stream"
        return {"inlineData": {"mimeType": mime, "data": part.data}}
    uri = part.url or part.file_id
    file: dict[str, Any] = {"fileUri": uri}
    if part.media_type:
        file["mimeType"] = part.media_type
    return {"fileData": file}


def _model_parts(turn: Turn) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    loose: list[str] = []  # signatures that came on an answer part, not on a thought
    for block in turn.thinking:
        if block.provider != "gemini":
            continue
        if block.text:
            thought: dict[str, Any] = {"text": block.text, "thought": True}
            if block.signature:
                thought["thoughtSignature"] = block.signature
            parts.append(thought)
        elif block.signature:
            loose.append(block.signature)
    texts = [_part(p) for p in turn.parts if not (isinstance(p, Text) and not p.text)]
    for text_part, sig in zip(texts, loose, strict=False):
        text_part["thoughtSignature"] = sig
    parts.extend(texts)
    parts.extend({"text": "", "thoughtSignature": sig} for sig in loose[len(texts) :])
    for tc in turn.tool_calls:
        call: dict[str, Any] = {"name": tc.name, "args": tool_arguments(tc)}
        if not tc.id.startswith(GENERATED_ID_PREFIX):
            call["id"] = tc.id
        part: dict[str, Any] = {"functionCall": call}
        if tc.signature:
            part["thoughtSignature"] = tc.signature
        parts.append(part)
    return parts


def _results(results: tuple[ToolResult, ...]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    media: list[dict[str, Any]] = []
    for r in results:
        if not r.name:
            raise InvalidRequestError(
                f"Gemini needs the tool name of result {r.call_id!r}: send the assistant "
                "message that made the call, or give the tool message a 'name'"
            )
        text = r.text
        response: Any
        try:
            response = _json.loads(text) if text.strip() else ""
        except _json.JSONDecodeError:
            response = text
        if r.is_error:
            response = {"error": response}
        elif not isinstance(response, dict):
            response = {"result": response}
        fn: dict[str, Any] = {"name": r.name, "response": response}
        if not r.call_id.startswith(GENERATED_ID_PREFIX):
            fn["id"] = r.call_id
        parts.append({"functionResponse": fn})
        media.extend(_part(p) for p in r.parts if not isinstance(p, Text))
    return parts + media


def _tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    declarations: list[dict[str, Any]] = []
    others: list[dict[str, Any]] = []
    for spec in tool_specs(tools):
        if isinstance(spec, Opaque):
            others.append(dict(spec.raw))
        elif spec.dialect == "gemini" and spec.raw is not None:
            declarations.append(dict(spec.raw))
        else:
            decl: dict[str, Any] = {"name": spec.name}
            if spec.description is not None:
                decl["description"] = spec.description
            decl["parametersJsonSchema"] = dict(spec.parameters)
            declarations.append(decl)
    out = [{"functionDeclarations": declarations}] if declarations else []
    return out + others


def _tool_config(choice: str | dict[str, Any]) -> dict[str, Any] | None:
    parsed = tool_choice(choice)
    if parsed is None:
        return None
    if isinstance(parsed, Opaque):
        return dict(parsed.raw)  # Gemini's own {"functionCallingConfig": ...}
    config: dict[str, Any] = {"mode": _MODES[parsed.mode]}
    if parsed.mode == "tool":
        config["allowedFunctionNames"] = [parsed.name]
    return {"functionCallingConfig": config}


# -- answers -----------------------------------------------------------------------------


def finish_reason(value: object) -> FinishReason | None:
    return FINISH.get(value) if isinstance(value, str) else None


def refusal_of(candidate: object, data: Mapping[str, Any]) -> str | None:
    """``ChatResponse.refusal`` when Gemini blocked the prompt or the answer, else ``None``."""
    reason = candidate.get("finishReason") if isinstance(candidate, Mapping) else None
    if isinstance(reason, str) and FINISH.get(reason) == "content_filter":
        return f"Gemini blocked the answer (finishReason: {reason})"
    feedback = data.get("promptFeedback")
    block = feedback.get("blockReason") if isinstance(feedback, Mapping) else None
    if block:
        return f"Gemini blocked the prompt (blockReason: {block})"
    return None


def usage_from_wire(data: object) -> Usage:
    """``Usage``: input counts cached and tool-use prompt tokens, output counts thoughts."""
    if not isinstance(data, Mapping):
        return make_usage()
    prompt = int_field(data.get("promptTokenCount")) + int_field(
        data.get("toolUsePromptTokenCount")
    )
    thoughts = int_field(data.get("thoughtsTokenCount"))
    output = int_field(data.get("candidatesTokenCount")) + thoughts
    total = int_field(data.get("totalTokenCount")) or prompt + output
    cached = int_field(data.get("cachedContentTokenCount"))
    return make_usage(prompt, output, total, cached, 0, thoughts)


class PartsRead:
    """What a candidate's parts say: text, thoughts, calls and kept signatures."""

    __slots__ = ("calls", "text", "thinking", "thoughts")

    def __init__(self) -> None:
        self.text: list[str] = []
        self.thoughts: list[str] = []
        self.calls: list[ToolCall] = []
        self.thinking: list[ThinkingBlock] = []


def parse_candidate_parts(parts: object, response_id: str, first_call: int = 0) -> PartsRead:
    """Read the ``parts`` of a candidate's ``content``; call ids made up from ``first_call``."""
    out = PartsRead()
    if not isinstance(parts, list):
        return out
    for part in parts:
        if not isinstance(part, Mapping):
            continue
        sig = part.get("thoughtSignature")
        sig = sig if isinstance(sig, str) and sig else None
        call = part.get("functionCall")
        text = part.get("text")
        if isinstance(call, Mapping):
            ident = call.get("id")
            if not isinstance(ident, str) or not ident:
                ident = f"{GENERATED_ID_PREFIX}{response_id}-{first_call + len(out.calls)}"
            args = call.get("args")
            arguments = _json.dumps_text(args if isinstance(args, Mapping) else {})
            out.calls.append(make_tool_call(ident, str(call.get("name") or ""), arguments, sig))
        elif isinstance(text, str) and part.get("thought") is True:
            out.thoughts.append(text)
            out.thinking.append(ThinkingBlock(text=text, signature=sig, provider="gemini"))
        elif isinstance(text, str):
            out.text.append(text)
            if sig is not None:
                out.thinking.append(ThinkingBlock(signature=sig, provider="gemini"))
    return out


def parse_response(
    data: object, label: str, headers: Mapping[str, str], model: str
) -> ChatResponse:
    """A ``ChatResponse`` from a ``generateContent`` answer."""
    if not isinstance(data, dict):
        raise TypeError("the body is not a JSON object")
    response_id = str(data.get("responseId") or "")
    candidates = data.get("candidates") or []
    if not isinstance(candidates, list):
        raise TypeError("'candidates' is not a list")
    read = PartsRead()
    reason: FinishReason | None = None
    refusal = refusal_of(candidates[0] if candidates else None, data)
    if candidates:
        candidate = candidates[0]
        if not isinstance(candidate, dict):
            raise TypeError("a candidate is not an object")
        content = candidate.get("content")
        if isinstance(content, dict):
            read = parse_candidate_parts(content.get("parts"), response_id)
        reason = finish_reason(candidate.get("finishReason"))
    else:
        feedback = data.get("promptFeedback")
        if isinstance(feedback, dict) and feedback.get("blockReason"):
            reason = "content_filter"  # the prompt itself was blocked
    if read.calls:
        reason = "tool_calls"
    text = "".join(read.text)
    return make_response(
        id=response_id,
        model=str(data.get("modelVersion") or model),
        provider=label,
        content=text,
        finish_reason=reason,
        usage=usage_from_wire(data.get("usageMetadata")),
        tool_calls=read.calls,
        thinking=read.thinking,
        reasoning="".join(read.thoughts) or None,
        request_id=headers.get("x-request-id"),
        raw=data,
        refusal=refusal,
    )


def decode_error(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    provider: str,
    secret: str | None,
) -> APIError:
    """The typed error for a Gemini error answer (the HTTP status decides the class)."""
    text = body.decode("utf-8", errors="replace")
    if secret and secret in text:
        text = text.replace(secret, "[REDACTED]")
    data: Any
    try:
        data = _json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, list) and data:  # the JSON-array stream's error shape
        data = data[0]
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        message = str(err.get("message") or "").strip() or f"HTTP {status}"
        code = err.get("status")
        for detail in err.get("details") or ():
            if isinstance(detail, dict) and isinstance(detail.get("reason"), str):
                code = detail["reason"]  # API_KEY_INVALID, ...
                break
        return error_for_status(
            status,
            message,
            provider=provider,
            headers=headers,
            code=code if isinstance(code, str) else None,
            body=data,
        )
    message = text.strip()[:500] or f"HTTP {status}"
    return error_for_status(status, message, provider=provider, headers=headers, body=text)
