"""Images, documents and audio over loopback: both input formats, every provider's wire.

OpenAI-format parts (``image_url``, ``file``, ``input_audio``) and Anthropic
blocks (``image``, ``document``) in one message reach each provider in its
own shape; the fake charges ``MEDIA_TOKENS`` a part, so usage shows each
part arrived; a part the provider would refuse is refused before anything
is sent.
"""

from __future__ import annotations

from typing import Any

import pytest

from aio_llm import AsyncLLMClient, ClientConfig, InvalidRequestError
from aio_llm.errors import MediaTooLargeError, UnsupportedMediaTypeError
from aio_llm.testing import FakeLLMServer
from aio_llm.testing.server._wire import MEDIA_TOKENS
from tests.kinds import make_provider
from tests.media_samples import b64, gif, pdf, png, wav

KINDS = [
    "openai",
    "openai-compatible",
    "openrouter",
    "azure-openai",
    "anthropic",
    "openai-responses",
    "azure-openai-responses",
    "gemini",
    "bedrock",
]
PNG, GIF, PDF = b64(png(64, 48)), b64(gif(20, 10)), b64(pdf(2))


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def client(kind: str, srv: FakeLLMServer) -> AsyncLLMClient:
    model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0" if kind == "bedrock" else "m"
    return AsyncLLMClient(make_provider(kind, srv), model=model, config=ClientConfig())


BOTH_FORMATS: list[dict[str, Any]] = [
    {"type": "text", "text": "Compare these"},
    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    {"type": "image", "source": {"type": "base64", "media_type": "image/gif", "data": GIF}},
    {
        "type": "file",
        "file": {"filename": "a.pdf", "file_data": f"data:application/pdf;base64,{PDF}"},
    },
    {
        "type": "document",
        "title": "b.pdf",
        "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
    },
]


def native_parts(kind: str, body: dict[str, Any]) -> list[Any]:
    """The media parts of the last message, as the provider's wire has them."""
    if kind in ("openai-responses", "azure-openai-responses"):
        return [p for p in body["input"][-1]["content"] if p["type"] != "input_text"]
    if kind == "gemini":
        return [p for p in body["contents"][-1]["parts"] if "text" not in p]
    if kind == "bedrock":
        return [b for b in body["messages"][-1]["content"] if "text" not in b]
    return [p for p in body["messages"][-1]["content"] if p["type"] != "text"]


def expected_parts(kind: str) -> list[Any]:
    png_url, gif_url = f"data:image/png;base64,{PNG}", f"data:image/gif;base64,{GIF}"
    pdf_url = f"data:application/pdf;base64,{PDF}"
    if kind in ("openai", "openai-compatible", "openrouter", "azure-openai"):
        return [
            {"type": "image_url", "image_url": {"url": png_url}},
            {"type": "image_url", "image_url": {"url": gif_url}},
            {"type": "file", "file": {"filename": "a.pdf", "file_data": pdf_url}},
            {"type": "file", "file": {"file_data": pdf_url, "filename": "b.pdf"}},
        ]
    if kind == "anthropic":
        return [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            BOTH_FORMATS[2],
            {
                "type": "document",
                "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
                "title": "a.pdf",
            },
            BOTH_FORMATS[4],
        ]
    if kind in ("openai-responses", "azure-openai-responses"):
        return [
            {"type": "input_image", "image_url": png_url, "detail": "auto"},
            {"type": "input_image", "image_url": gif_url, "detail": "auto"},
            {"type": "input_file", "file_data": pdf_url, "filename": "a.pdf"},
            {"type": "input_file", "file_data": pdf_url, "filename": "b.pdf"},
        ]
    if kind == "gemini":
        return [
            {"inlineData": {"mimeType": "image/png", "data": PNG}},
            {"inlineData": {"mimeType": "image/gif", "data": GIF}},
            {"inlineData": {"mimeType": "application/pdf", "data": PDF}},
            {"inlineData": {"mimeType": "application/pdf", "data": PDF}},
        ]
    return [
        {"image": {"format": "png", "source": {"bytes": PNG}}},
        {"image": {"format": "gif", "source": {"bytes": GIF}}},
        {"document": {"format": "pdf", "name": "a pdf", "source": {"bytes": PDF}}},
        {"document": {"format": "pdf", "name": "b pdf", "source": {"bytes": PDF}}},
    ]


@pytest.mark.anyio
async def test_both_formats_reach_every_provider_in_its_shape(
    kind: str, server: FakeLLMServer
) -> None:
    parts = BOTH_FORMATS
    if kind == "gemini":  # Gemini takes no GIF: send the PNG twice
        parts = [
            *parts[:2],
            {**parts[2], "source": {**parts[2]["source"], "media_type": "image/png", "data": PNG}},
            *parts[3:],
        ]
    async with client(kind, server) as c:
        r = await c.chat([{"role": "user", "content": parts}])
    body = server.last_request.json()
    want = expected_parts(kind)
    if kind == "gemini":
        want[1] = want[0]
    assert native_parts(kind, body) == want
    assert r.usage.input_tokens == 2 + 4 * MEDIA_TOKENS  # "Compare these" and four parts


@pytest.mark.anyio
async def test_image_urls_go_where_urls_are_taken(kind: str, server: FakeLLMServer) -> None:
    url = "https://example.com/cat.png"
    parts = [
        {"type": "text", "text": "What is it?"},
        {"type": "image_url", "image_url": {"url": url}},
    ]
    async with client(kind, server) as c:
        if kind == "bedrock":
            with pytest.raises(InvalidRequestError):
                await c.chat([{"role": "user", "content": parts}])
            assert server.request_count == 0
            return
        await c.chat([{"role": "user", "content": parts}])
    (got,) = native_parts(kind, server.last_request.json())
    if kind == "anthropic":
        assert got == {"type": "image", "source": {"type": "url", "url": url}}
    elif kind == "gemini":
        assert got == {"fileData": {"fileUri": url}}
    elif kind in ("openai-responses", "azure-openai-responses"):
        assert got == {"type": "input_image", "image_url": url, "detail": "auto"}
    else:
        assert got == parts[1]


@pytest.mark.anyio
async def test_audio_goes_where_audio_is_taken(kind: str, server: FakeLLMServer) -> None:
    clip = b64(wav(0.5))
    parts = [
        {"type": "text", "text": "Transcribe"},
        {"type": "input_audio", "input_audio": {"data": clip, "format": "wav"}},
    ]
    async with client(kind, server) as c:
        if kind in ("anthropic", "bedrock", "openai-responses", "azure-openai-responses"):
            with pytest.raises(UnsupportedMediaTypeError, match="audio"):
                await c.chat([{"role": "user", "content": parts}])
            assert server.request_count == 0
            return
        await c.chat([{"role": "user", "content": parts}])
    (got,) = native_parts(kind, server.last_request.json())
    if kind == "gemini":
        assert got == {"inlineData": {"mimeType": "audio/wav", "data": clip}}
    else:
        assert got == parts[1]


@pytest.mark.anyio
async def test_limits_are_checked_before_sending(kind: str, server: FakeLLMServer) -> None:
    huge = b64(png(9000, 9000))
    parts = [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{huge}"}}]
    async with client(kind, server) as c:
        if kind in ("anthropic", "bedrock"):
            with pytest.raises(MediaTooLargeError, match="9000x9000"):
                await c.chat([{"role": "user", "content": parts}])
            with pytest.raises(MediaTooLargeError):
                async with c.stream([{"role": "user", "content": parts}]):
                    pass
            assert server.request_count == 0
        else:  # no documented pixel limit: sent
            await c.chat([{"role": "user", "content": parts}])
            assert server.request_count == 1
