"""Reading media headers, checking provider limits, and the tokens media cost."""

from __future__ import annotations

from typing import Any

import pytest

from aio_llm import ChatRequest
from aio_llm._conversation import Media
from aio_llm._media import (
    audio_seconds,
    check_media,
    decoded_size,
    image_size,
    media_tokens,
    pdf_pages,
    sniff,
)
from aio_llm.errors import MediaTooLargeError, UnsupportedMediaTypeError
from aio_llm.tokens import count_request_tokens, estimate_request_tokens
from tests.media_samples import b64, gif, jpeg, pdf, png, wav, webp_vp8, webp_vp8l, webp_vp8x

# -- reading ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "kind", "size"),
    [
        (png(640, 480), "image/png", (640, 480)),
        (gif(33, 7), "image/gif", (33, 7)),
        (jpeg(1920, 1080), "image/jpeg", (1920, 1080)),
        (webp_vp8x(3000, 2000), "image/webp", (3000, 2000)),
        (webp_vp8l(100, 200), "image/webp", (100, 200)),
        (webp_vp8(320, 240), "image/webp", (320, 240)),
    ],
)
def test_image_headers(data: bytes, kind: str, size: tuple[int, int]) -> None:
    assert sniff(data) == kind
    assert image_size(data) == size


def test_other_types_and_sizes() -> None:
    assert sniff(pdf(1)) == "application/pdf"
    assert sniff(wav(0.1)) == "audio/wav"
    assert sniff(b"ID3\x04") == "audio/mpeg"
    assert sniff(b"plain text") is None
    assert image_size(b"not an image") is None
    for n in range(8):
        data = b"x" * n
        assert decoded_size(b64(data)) == n


def test_pdf_pages_from_the_page_tree_plain_or_compressed() -> None:
    assert pdf_pages(b64(pdf(7))) == 7
    assert pdf_pages(b64(pdf(12, compressed=True))) == 12
    assert pdf_pages(b64(b"%PDF-1.7 nothing here")) is None


def test_audio_length() -> None:
    data = wav(2.5)
    assert audio_seconds(data[:64], len(data)) == pytest.approx((2.5, 2.5))
    estimate, bound = audio_seconds(b"ID3", 16_000)
    assert estimate == 1.0 and bound == 16.0


# -- tokens -------------------------------------------------------------------------------


def image(data: bytes, detail: str | None = None) -> Media:
    return Media("image", sniff(data), data=b64(data), detail=detail)


@pytest.mark.parametrize(
    ("model", "data", "tokens"),
    [
        # OpenAI's documented examples: 1024x1024 high = 765, 2048x4096 = 1105, low = 85
        ("gpt-4o", png(1024, 1024), 765),
        ("gpt-4o-2024-08-06", png(2048, 4096), 1105),
        ("gpt-4.1", png(512, 512), 255),
        ("gpt-4o-mini", png(1024, 1024), 2833 + 5667 * 4),
        # patches: 1024x1024 = 32x32 patches, capped at 1536, times 1.62 for gpt-4.1-mini
        ("gpt-4.1-mini", png(1024, 1024), 1659),
        # Anthropic: 28-px patches after fitting 1568 px / 1.15 MP (2576 px / 3.75 MP on 4.7+)
        ("claude-sonnet-4-5", png(1000, 1000), 36 * 36),
        ("claude-sonnet-4-5", png(4000, 4000), 39 * 39),  # 1072 px a side: ~1.15 MP
        ("claude-opus-4-7", png(4000, 4000), 70 * 70),  # 1936 px a side: ~3.75 MP
        # Gemini 2: 258 a 768-px tile (258 when both sides <= 384); Gemini 3: 1120 an image
        ("gemini-2.5-flash", png(300, 300), 258),
        ("gemini-2.5-flash", png(1000, 1000), 258 * 4),
        ("gemini-3-pro-preview", png(1000, 1000), 1120),
    ],
)
def test_image_tokens_follow_each_providers_formula(model: str, data: bytes, tokens: int) -> None:
    assert media_tokens(image(data), model) == (tokens, tokens)


def test_low_detail_and_unknown_sizes() -> None:
    assert media_tokens(image(png(4000, 4000), detail="low"), "gpt-4o") == (85, 85)
    url = Media("image", url="https://example.com/cat.png")
    assert media_tokens(url, "gpt-4o") == (765, 1445)
    assert media_tokens(url, "gpt-4o-mini")[1] == 2833 + 5667 * 8
    assert media_tokens(url, "claude-opus-4-7") == (1600, 4800)
    assert media_tokens(url, "llama-3") == (1600, 50_000)


def test_document_and_audio_tokens() -> None:
    doc = Media("document", "application/pdf", data=b64(pdf(4)))
    assert media_tokens(doc, "claude-sonnet-4-5") == (4 * 2250, 4 * 8000)
    assert media_tokens(doc, "gemini-2.5-flash") == (4 * 258, 4 * 560)
    text = Media("document", "text/plain", text="a" * 400)
    assert media_tokens(text, "claude-sonnet-4-5") == (100, 400)
    clip = Media("audio", "audio/wav", data=b64(wav(3.0)))
    assert media_tokens(clip, "gpt-4o-audio-preview") == (30, 30)
    assert media_tokens(clip, "gemini-2.5-flash") == (96, 96)


def test_the_request_estimate_counts_media_parts() -> None:
    parts = [
        {"type": "text", "text": "What is this?"},
        {
            "type": "image_url",
            "image_url": {"url": f"data:image/png;base64,{b64(png(1024, 1024))}"},
        },
    ]
    with_image = ChatRequest(model="gpt-4o", messages=[{"role": "user", "content": parts}])
    text_only = ChatRequest(model="gpt-4o", messages=[{"role": "user", "content": parts[:1]}])
    assert estimate_request_tokens(with_image) - estimate_request_tokens(text_only) == 765
    counted = count_request_tokens(with_image)
    assert counted == estimate_request_tokens(with_image) and not counted.exact


# -- provider limits ----------------------------------------------------------------------


def ask(*parts: dict[str, Any]) -> ChatRequest:
    return ChatRequest(model="m", messages=[{"role": "user", "content": ["look", *parts][1:]}])


def openai_image(data: bytes, media_type: str = "image/png") -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": f"data:{media_type};base64,{b64(data)}"}}


def anthropic_image(data: bytes, media_type: str = "image/png") -> dict[str, Any]:
    source = {"type": "base64", "media_type": media_type, "data": b64(data)}
    return {"type": "image", "source": source}


def test_types_each_provider_takes() -> None:
    heic = b"\x00\x00\x00\x18ftypheic" + b"\x00" * 16
    check_media(ask(openai_image(heic, "image/heic")), "gemini")
    for kind in ("anthropic", "openai", "bedrock"):
        with pytest.raises(UnsupportedMediaTypeError, match="image/heic") as info:
            check_media(ask(openai_image(heic, "image/heic")), kind)
        assert info.value.provider == kind and info.value.index == "messages.0.content.0"
    audio = {"type": "input_audio", "input_audio": {"data": b64(wav(0.1)), "format": "wav"}}
    check_media(ask(audio), "openai")
    for kind in ("anthropic", "bedrock"):
        with pytest.raises(UnsupportedMediaTypeError, match="audio"):
            check_media(ask(audio), kind)
    docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    document = {
        "type": "document",
        "source": {"type": "base64", "media_type": docx, "data": b64(b"PK\x03\x04")},
    }
    check_media(ask(document), "bedrock")
    with pytest.raises(UnsupportedMediaTypeError, match="document"):
        check_media(ask(document), "anthropic")


def test_a_declared_type_that_contradicts_the_bytes_is_refused() -> None:
    with pytest.raises(
        UnsupportedMediaTypeError, match="says image/png but its data is image/jpeg"
    ):
        check_media(ask(anthropic_image(jpeg(10, 10), "image/png")), "anthropic")
    check_media(ask(anthropic_image(jpeg(10, 10), "image/jpg")), "openai")  # jpg is jpeg


def test_bytes_pixels_and_counts() -> None:
    big = png(10, 10) + b"\x00" * (5 * 1024 * 1024)
    with pytest.raises(MediaTooLargeError, match="at most 5.0 MB") as info:
        check_media(ask(anthropic_image(big)), "anthropic")
    assert info.value.limit == 5 * 1024 * 1024 and info.value.unit == "bytes"
    check_media(ask(anthropic_image(png(10, 10) + b"\x00" * 3_700_000)), "bedrock")
    with pytest.raises(MediaTooLargeError):
        check_media(ask(anthropic_image(png(10, 10) + b"\x00" * 3_800_000)), "bedrock")
    with pytest.raises(MediaTooLargeError, match="8001x10 px") as info:
        check_media(ask(anthropic_image(png(8001, 10))), "anthropic")
    assert info.value.unit == "pixels" and info.value.limit == 8000
    # above 20 images, Anthropic takes 2000 px sides at most
    many = [anthropic_image(png(2001, 10))] + [anthropic_image(png(10, 10))] * 20
    check_media(ask(*many[:20]), "anthropic")
    with pytest.raises(MediaTooLargeError, match="2000x2000"):
        check_media(ask(*many), "anthropic")
    with pytest.raises(MediaTooLargeError, match="21 images") as info:
        check_media(ask(*[anthropic_image(png(10, 10))] * 21), "bedrock")
    assert info.value.unit == "parts"
    docs = [{"type": "file", "file": {"file_data": f"data:application/pdf;base64,{b64(pdf(1))}"}}]
    with pytest.raises(MediaTooLargeError, match="6 documents"):
        check_media(ask(*docs * 6), "bedrock")


def test_inline_bytes_per_request() -> None:
    part = anthropic_image(png(10, 10) + b"\x00" * (4 * 1024 * 1024))
    check_media(ask(*[part] * 7), "anthropic")
    with pytest.raises(MediaTooLargeError, match="inline media"):
        check_media(ask(*[part] * 9), "anthropic")


def test_servers_without_documented_limits_are_not_checked() -> None:
    big = png(9000, 9000) + b"\x00" * (60 * 1024 * 1024)
    for kind in ("openrouter", "openai-compatible", "mock"):
        check_media(ask(anthropic_image(big)), kind)


def test_media_inside_tool_results_is_checked() -> None:
    result = {
        "type": "tool_result",
        "tool_use_id": "t1",
        "content": [anthropic_image(png(9000, 1))],
    }
    with pytest.raises(MediaTooLargeError) as info:
        check_media(ask(result), "anthropic")
    assert info.value.index == "messages.0.content.0.content.0"
