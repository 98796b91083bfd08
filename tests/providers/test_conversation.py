"""Messages in OpenAI's and Anthropic's shapes, accepted as they are and translated per provider.

The canonical conversation (``aio_llm._conversation``) is what every codec
encodes from; these tests feed each provider the same conversation in the
shapes users already have and check what goes on the wire.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from aio_llm import ChatRequest, InvalidRequestError, Message, ThinkingBlock, ToolCall
from aio_llm._conversation import conversation, output_format, tool_choice, tool_specs
from aio_llm.providers import create_provider

ENV = {"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s", "AWS_REGION": "us-east-1"}
KINDS = ["openai", "anthropic", "openai-responses", "gemini", "azure-openai", "bedrock"]


def wire(kind: str, messages: list[Any], **params: Any) -> dict[str, Any]:
    """The JSON body ``kind``'s codec writes for ``messages``."""
    options: dict[str, Any] = {"environ": ENV}
    if kind != "bedrock":
        options["api_key"] = "k"
    if kind == "azure-openai":
        options["base_url"] = "https://res.openai.azure.com"
    p = create_provider(kind, **options)
    request = ChatRequest(model=params.pop("model", "m"), messages=messages, **params)
    return dict(json.loads(p.encode_chat(request).content))


# -- the shapes users have are accepted ---------------------------------------------------


def test_openai_sdk_tool_call_shape_is_accepted() -> None:
    assistant = {
        "role": "assistant",
        "content": None,
        "refusal": None,
        "annotations": [],
        "audio": None,
        "function_call": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "lookup", "arguments": '{"q": "x"}'},
                "extra_content": {"google": {"thought_signature": "c2ln"}},
            },
            {
                "id": "call_2",
                "type": "function",
                "function": {"name": "ping", "arguments": {"n": 1}},
            },
        ],
    }
    request = ChatRequest(model="m", messages=[{"role": "user", "content": "q"}, assistant])
    m = request.messages[1]
    assert m.tool_calls == [
        ToolCall(id="call_1", name="lookup", arguments='{"q": "x"}', signature="c2ln"),
        ToolCall(id="call_2", name="ping", arguments='{"n":1}'),
    ]
    refusal = {"role": "assistant", "content": None, "refusal": "No."}
    refused = ChatRequest(model="m", messages=[refusal]).messages[0]
    assert refused.content == "No."
    with pytest.raises(ValueError, match="only 'function'"):
        ToolCall.model_validate({"id": "x", "type": "custom", "function": {"name": "f"}})
    with pytest.raises(ValueError):
        ChatRequest(model="m", messages=[{"role": "user", "content": "hi", "mystery": 1}])


OPENAI_HISTORY: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "20C"},
    {"role": "user", "content": "Thanks"},
]
ANTHROPIC_HISTORY: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
    {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "use the tool", "signature": "c2lnbmVk"},
            {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
        ],
    },
    {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "20C"},
            {"type": "text", "text": "Thanks"},
        ],
    },
]


@pytest.mark.parametrize("kind", KINDS)
def test_both_histories_reach_every_provider(kind: str) -> None:
    a = wire(kind, OPENAI_HISTORY)
    b = wire(kind, ANTHROPIC_HISTORY)
    if kind in ("openai", "azure-openai"):
        assert a["messages"] == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "20C"},
            {"role": "user", "content": "Thanks"},
        ]
        # Anthropic's blocks come out the same, text parts kept as parts
        assert b["messages"][2:4] == a["messages"][2:4]
        assert b["messages"][4] == {"role": "user", "content": [{"type": "text", "text": "Thanks"}]}
        assert b["messages"][1] == {
            "role": "user",
            "content": [{"type": "text", "text": "Weather in Paris?"}],
        }
    elif kind == "anthropic":
        assert a["system"] == b["system"] == "Be brief."
        call = {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}}
        assert a["messages"][1] == {"role": "assistant", "content": [call]}
        thinking = {"type": "thinking", "thinking": "use the tool", "signature": "c2lnbmVk"}
        assert b["messages"][1] == {"role": "assistant", "content": [thinking, call]}
        result = {"type": "tool_result", "tool_use_id": "call_1", "content": "20C"}
        assert a["messages"][2]["content"] == [result, {"type": "text", "text": "Thanks"}]
        assert b["messages"][2]["content"] == [result, {"type": "text", "text": "Thanks"}]
    elif kind == "openai-responses":
        assert a["input"][2] == {
            "type": "function_call",
            "call_id": "call_1",
            "name": "weather",
            "arguments": '{"city":"Paris"}',
        }
        assert a["input"][3] == {
            "type": "function_call_output",
            "call_id": "call_1",
            "output": "20C",
        }
        assert b["input"][2:4] == a["input"][2:4]
        assert b["input"][4]["content"] == [{"type": "input_text", "text": "Thanks"}]
    elif kind == "gemini":
        assert a["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
        assert a["contents"][1] == {
            "role": "model",
            "parts": [
                {"functionCall": {"name": "weather", "args": {"city": "Paris"}, "id": "call_1"}}
            ],
        }
        assert a["contents"][2] == {
            "role": "user",
            "parts": [
                {
                    "functionResponse": {
                        "name": "weather",
                        "response": {"result": "20C"},
                        "id": "call_1",
                    }
                },
                {"text": "Thanks"},
            ],
        }
        assert b["contents"] == a["contents"]  # Anthropic thinking is not Gemini's
    else:  # bedrock takes Anthropic-format thinking (its Claude models sign it the same way)
        call = {"toolUse": {"toolUseId": "call_1", "name": "weather", "input": {"city": "Paris"}}}
        assert a["messages"][1] == {"role": "assistant", "content": [call]}
        reasoning = {
            "reasoningContent": {"reasoningText": {"text": "use the tool", "signature": "c2lnbmVk"}}
        }
        assert b["messages"][1] == {"role": "assistant", "content": [reasoning, call]}
        assert a["messages"][2]["content"][0] == {
            "toolResult": {"toolUseId": "call_1", "content": [{"text": "20C"}]}
        }


def test_thinking_goes_back_only_to_the_kind_that_made_it() -> None:
    blocks = [
        ThinkingBlock(text="a", signature="s-anthropic", provider="anthropic"),
        ThinkingBlock(text="b", signature="s-bedrock", provider="bedrock"),
        ThinkingBlock(redacted="r-bedrock", provider="bedrock"),
        ThinkingBlock(text="c", signature="s-gemini", provider="gemini"),
        ThinkingBlock(text="d", signature="enc", id="rs_1", provider="openai-responses"),
        ThinkingBlock(text="unsigned", provider="anthropic"),
    ]
    history = [
        {"role": "user", "content": "q"},
        Message(role="assistant", content="answer", thinking=blocks),
        {"role": "user", "content": "more"},
    ]
    anthropic = json.dumps(wire("anthropic", history))
    assert "s-anthropic" in anthropic and "unsigned" not in anthropic
    assert not {"s-bedrock", "s-gemini", "enc"} & set(anthropic.split('"'))
    bedrock = json.dumps(wire("bedrock", history))
    assert "s-bedrock" in bedrock and "r-bedrock" in bedrock and "s-anthropic" not in bedrock
    gemini = wire("gemini", history)["contents"][1]["parts"]
    assert gemini == [
        {"text": "c", "thought": True, "thoughtSignature": "s-gemini"},
        {"text": "answer"},
    ]
    responses = wire("openai-responses", history)["input"][1]
    assert responses == {
        "type": "reasoning",
        "id": "rs_1",
        "summary": [{"type": "summary_text", "text": "d"}],
        "encrypted_content": "enc",
    }
    assert "thinking" not in json.dumps(wire("openai", history))
    # Azure's Responses kind is another kind: OpenAI's encrypted reasoning is not sent there
    azure = create_provider(
        "azure-openai-responses", api_key="k", base_url="https://r.openai.azure.com", environ={}
    )
    sent = json.loads(azure.encode_chat(ChatRequest(model="m", messages=history)).content)
    assert all(item.get("type") != "reasoning" for item in sent["input"])


def test_a_gemini_answer_signature_rides_on_its_text_part() -> None:
    history = [
        {"role": "user", "content": "q"},
        Message(
            role="assistant",
            content="the answer",
            thinking=[ThinkingBlock(signature="sig-1", provider="gemini")],
        ),
        Message(
            role="assistant",
            thinking=[ThinkingBlock(signature="sig-2", provider="gemini")],
        ),
        {"role": "user", "content": "more"},
    ]
    parts = wire("gemini", history)["contents"][1]["parts"]
    assert parts == [
        {"text": "the answer", "thoughtSignature": "sig-1"},
        {"text": "", "thoughtSignature": "sig-2"},
    ]


# -- content parts, cache markers ---------------------------------------------------------

IMAGE_B64 = "iVBORw0KGgo="
PDF_B64 = "JVBERi0xLjQ="


@pytest.mark.parametrize("kind", KINDS)
def test_images_and_documents_in_either_shape(kind: str) -> None:
    openai_parts = [
        {"type": "text", "text": "Look"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{IMAGE_B64}"}},
        {
            "type": "file",
            "file": {"file_data": f"data:application/pdf;base64,{PDF_B64}", "filename": "a.pdf"},
        },
    ]
    anthropic_parts: list[dict[str, Any]] = [
        {"type": "text", "text": "Look"},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": IMAGE_B64},
        },
        {
            "type": "document",
            "title": "a.pdf",
            "source": {"type": "base64", "media_type": "application/pdf", "data": PDF_B64},
        },
    ]
    a = wire(kind, [{"role": "user", "content": openai_parts}])
    b = wire(kind, [{"role": "user", "content": anthropic_parts}])
    if kind in ("openai", "azure-openai"):
        assert a["messages"][0]["content"] == openai_parts
        assert b["messages"][0]["content"] == [
            {"type": "text", "text": "Look"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{IMAGE_B64}"}},
            {
                "type": "file",
                "file": {
                    "file_data": f"data:application/pdf;base64,{PDF_B64}",
                    "filename": "a.pdf",
                },
            },
        ]
    elif kind == "anthropic":
        assert b["messages"][0]["content"] == anthropic_parts
        assert a["messages"][0]["content"][1] == anthropic_parts[1]
        assert a["messages"][0]["content"][2]["source"] == anthropic_parts[2]["source"]
    elif kind == "openai-responses":
        assert (
            a["input"][0]["content"]
            == b["input"][0]["content"]
            == [
                {"type": "input_text", "text": "Look"},
                {
                    "type": "input_image",
                    "image_url": f"data:image/png;base64,{IMAGE_B64}",
                    "detail": "auto",
                },
                {
                    "type": "input_file",
                    "file_data": f"data:application/pdf;base64,{PDF_B64}",
                    "filename": "a.pdf",
                },
            ]
        )
    elif kind == "gemini":
        assert (
            a["contents"][0]["parts"]
            == b["contents"][0]["parts"]
            == [
                {"text": "Look"},
                {"inlineData": {"mimeType": "image/png", "data": IMAGE_B64}},
                {"inlineData": {"mimeType": "application/pdf", "data": PDF_B64}},
            ]
        )
    else:
        assert (
            a["messages"][0]["content"]
            == b["messages"][0]["content"]
            == [
                {"text": "Look"},
                {"image": {"format": "png", "source": {"bytes": IMAGE_B64}}},
                {"document": {"format": "pdf", "name": "a pdf", "source": {"bytes": PDF_B64}}},
            ]
        )


def test_cache_markers_survive_to_anthropic_and_bedrock() -> None:
    marked = {"type": "text", "text": "Long context", "cache_control": {"type": "ephemeral"}}
    messages = [{"role": "user", "content": [marked, {"type": "text", "text": "Question"}]}]
    tool = {"name": "f", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}}
    anthropic = wire("anthropic", messages, tools=[tool])
    assert anthropic["messages"][0]["content"][0] == marked
    assert anthropic["tools"] == [tool]
    bedrock = wire("bedrock", messages, tools=[tool])
    assert bedrock["messages"][0]["content"] == [
        {"text": "Long context"},
        {"cachePoint": {"type": "default"}},
        {"text": "Question"},
    ]
    assert bedrock["toolConfig"]["tools"][1] == {"cachePoint": {"type": "default"}}
    # OpenAI-format servers that read the marker (OpenRouter, proxies) get it too;
    # OpenAI itself caches on its own and refuses keys it does not know
    assert wire("openrouter", messages)["messages"][0]["content"][0] == marked
    unmarked = {"type": "text", "text": "Long context"}
    assert wire("openai", messages)["messages"][0]["content"][0] == unmarked


def test_unknown_parts_pass_to_typed_formats_and_are_refused_elsewhere() -> None:
    odd = [{"type": "search_result", "source": "x", "title": "t", "content": []}]
    assert wire("anthropic", [{"role": "user", "content": odd}])["messages"][0]["content"] == odd
    for kind in ("gemini", "bedrock"):
        with pytest.raises(InvalidRequestError, match="search_result"):
            wire(kind, [{"role": "user", "content": odd}])


# -- tools, tool_choice, response_format ------------------------------------------------------

SCHEMA = {"type": "object", "properties": {"q": {"type": "string"}}}
TOOL_SHAPES: dict[str, dict[str, Any]] = {
    "openai": {
        "type": "function",
        "function": {"name": "find", "description": "d", "parameters": SCHEMA},
    },
    "responses": {"type": "function", "name": "find", "description": "d", "parameters": SCHEMA},
    "anthropic": {"name": "find", "description": "d", "input_schema": SCHEMA},
    "bedrock": {"toolSpec": {"name": "find", "description": "d", "inputSchema": {"json": SCHEMA}}},
    "gemini": {
        "functionDeclarations": [
            {"name": "find", "description": "d", "parametersJsonSchema": SCHEMA}
        ]
    },
}


@pytest.mark.parametrize("shape", sorted(TOOL_SHAPES))
def test_every_tool_shape_reads_the_same(shape: str) -> None:
    (spec,) = tool_specs([TOOL_SHAPES[shape]])
    assert (spec.name, spec.description, dict(spec.parameters)) == ("find", "d", SCHEMA)  # type: ignore[union-attr]
    for kind in KINDS:
        body = wire(kind, [{"role": "user", "content": "q"}], tools=[TOOL_SHAPES[shape]])
        assert "find" in json.dumps(body["tools"] if "tools" in body else body["toolConfig"])


def test_built_in_tools_pass_through_unchanged() -> None:
    search = {"type": "web_search"}
    assert wire("openai-responses", [{"role": "user", "content": "q"}], tools=[search])[
        "tools"
    ] == [search]
    google: dict[str, Any] = {"googleSearch": {}}
    assert wire("gemini", [{"role": "user", "content": "q"}], tools=[google])["tools"] == [google]


@pytest.mark.parametrize(
    ("choice", "mode", "name"),
    [
        ("auto", "auto", None),
        ("any", "required", None),
        ({"type": "function", "function": {"name": "f"}}, "tool", "f"),
        ({"type": "function", "name": "f"}, "tool", "f"),
        ({"type": "tool", "name": "f"}, "tool", "f"),
        ({"type": "any"}, "required", None),
        ({"tool": {"name": "f"}}, "tool", "f"),
    ],
)
def test_tool_choice_shapes(choice: Any, mode: str, name: str | None) -> None:
    parsed = tool_choice(choice)
    assert (parsed.mode, parsed.name) == (mode, name)  # type: ignore[union-attr]


def test_response_format_shapes_and_refusals() -> None:
    nested = {"type": "json_schema", "json_schema": {"name": "X", "schema": SCHEMA, "strict": True}}
    flat = {"type": "json_schema", "name": "X", "schema": SCHEMA, "strict": True}
    assert output_format(nested) == output_format(flat)
    assert (
        wire("openai", [{"role": "user", "content": "q"}], response_format=flat)["response_format"]
        == nested
    )
    with pytest.raises(InvalidRequestError, match="regex"):
        output_format({"type": "regex"})
    with pytest.raises(InvalidRequestError, match="schema"):
        output_format({"type": "json_schema", "json_schema": {"name": "X"}})
    body = wire(
        "gemini", [{"role": "user", "content": "q"}], response_format={"type": "json_object"}
    )
    assert body["generationConfig"] == {"responseMimeType": "application/json"}


# -- bad input is refused with the message's index ---------------------------------------------


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        (
            [{"role": "user", "content": "q"}, {"role": "tool", "content": "x"}],
            "messages.1: .*tool_call_id",
        ),
        (
            [{"role": "user", "content": [{"type": "tool_result", "content": "x"}]}],
            "messages.0: .*tool_use_id",
        ),
        (
            [{"role": "assistant", "content": [{"type": "tool_use", "name": "f"}]}],
            "messages.0: .*id",
        ),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:x"}}]}],
            "data URL",
        ),
    ],
)
def test_unusable_messages_are_refused_before_sending(messages: list[Any], match: str) -> None:
    with pytest.raises(InvalidRequestError, match=match):
        conversation([Message.model_validate(m) for m in messages])


def test_gemini_needs_the_name_of_a_tool_result() -> None:
    orphan = [
        {"role": "user", "content": "q"},
        {"role": "tool", "tool_call_id": "c", "content": "x"},
    ]
    with pytest.raises(InvalidRequestError, match="tool name"):
        wire("gemini", orphan)
    named = [
        {"role": "user", "content": "q"},
        {"role": "tool", "tool_call_id": "c", "name": "f", "content": '{"a": 1}'},
    ]
    part = wire("gemini", named)["contents"][0]["parts"][1]  # one user turn: question + result
    assert part == {"functionResponse": {"name": "f", "response": {"a": 1}, "id": "c"}}


def test_reasoning_and_signatures_are_part_of_the_cache_key() -> None:
    from aio_llm.middleware._keys import request_key

    def key(thinking: list[ThinkingBlock] | None, signature: str | None) -> str:
        call = ToolCall(id="c", name="f", arguments="{}", signature=signature)
        messages = [
            Message(role="user", content="q"),
            Message(role="assistant", content="a", thinking=thinking, tool_calls=[call]),
            Message(role="tool", tool_call_id="c", content="r"),
        ]
        return request_key(ChatRequest(model="m", messages=messages), provider="gemini")

    plain = key(None, None)
    assert plain != key(None, "sig") != key([ThinkingBlock(text="t", provider="gemini")], "sig")
    assert key(None, None) == plain
