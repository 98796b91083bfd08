"""Images, documents and audio in prompts: what they are, whether a provider takes them,
and how many tokens they cost.

Three jobs, all without third-party code and without decoding more than a
header where a header is enough:

- **Reading media.** ``sniff`` names the type of base64 data from its magic
  bytes; ``image_size`` reads the pixel size from a PNG, JPEG, GIF or WebP
  header; ``pdf_pages`` counts the pages of a PDF; ``audio_seconds`` reads
  a WAV header (other formats are bounded by their lowest bit rate).
- **Checking a request against a provider's documented limits**
  (``check_media``, called by every provider before it sends): media types,
  bytes per part and per request, pixels and part counts. A part whose
  declared type contradicts its bytes is refused too: the APIs answer 400.
  Failures are ``UnsupportedMediaTypeError`` / ``MediaTooLargeError``.
- **Counting their tokens** (``media_tokens``), with each provider's
  documented formula, chosen by the model's name: Anthropic about
  ``width * height / 750`` after resizing to the model's native resolution;
  OpenAI's tiles (85 + 170 per 512-px tile for GPT-4o, GPT-4.1 and GPT-5,
  2833 + 5667 for GPT-4o mini) or 32-px patches (GPT-4.1 mini and nano,
  o4-mini); Gemini's 258 tokens per 768-px tile (Gemini 3: 1120 per image)
  and 258 per PDF page. Each count comes as an estimate and as a bound:
  with the size unknown (an image by URL or file id) the bound is the most
  the model can charge for one image, so a budget built on it holds.
"""

from __future__ import annotations

import base64
import binascii
import functools
import math
import re
import struct
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ._conversation import Media, Opaque, Part, Text, content_part
from .errors import MediaTooLargeError, UnsupportedMediaTypeError
from .types import ChatRequest

__all__ = [
    "MEDIA_LIMITS",
    "MediaLimits",
    "audio_seconds",
    "check_media",
    "decoded_size",
    "image_size",
    "media_parts",
    "part_media",
    "media_tokens",
    "pdf_pages",
    "sniff",
]

MB = 1024 * 1024

# -- reading media ----------------------------------------------------------------------------


def decoded_size(b64: str) -> int:
    """Bytes that base64 text decodes to (without decoding it)."""
    n = len(b64)
    pad = b64.endswith("==") + b64.endswith("=") if n else 0
    return n * 3 // 4 - pad


def _head(b64: str, size: int) -> bytes:
    """The first ``size`` bytes of base64 ``b64`` (fewer if it is shorter or malformed)."""
    chunk = b64[: (size + 2) // 3 * 4]
    try:
        return base64.b64decode(chunk + "=" * (-len(chunk) % 4))
    except (binascii.Error, ValueError):
        return b""


_MAGIC: list[tuple[bytes, int, str]] = [
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"%PDF-", 0, "application/pdf"),
    (b"ID3", 0, "audio/mpeg"),
    (b"fLaC", 0, "audio/flac"),
    (b"OggS", 0, "audio/ogg"),
]


def sniff(head: bytes) -> str | None:
    """The media type that the first bytes of a file say, if they say one aio_llm knows."""
    for magic, offset, kind in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "audio/mpeg"  # an MPEG audio frame header without ID3
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"msf1"):
        return "image/heic"
    return None


def image_size(head: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a PNG, GIF, WebP or JPEG header, else ``None``."""
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR" and len(head) >= 24:
        w, h = struct.unpack(">II", head[16:24])
        return int(w), int(h)
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        w, h = struct.unpack("<HH", head[6:10])
        return int(w), int(h)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP" and len(head) >= 25:
        chunk = head[12:16]
        if chunk == b"VP8X" and len(head) >= 30:
            w = int.from_bytes(head[24:27], "little") + 1
            h = int.from_bytes(head[27:30], "little") + 1
            return w, h
        if chunk == b"VP8L":
            bits = int.from_bytes(head[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if chunk == b"VP8 " and head[23:26] == b"\x9d\x01\x2a" and len(head) >= 30:
            w, h = struct.unpack("<HH", head[26:30])
            return int(w) & 0x3FFF, int(h) & 0x3FFF
        return None
    if head[:2] == b"\xff\xd8":
        return _jpeg_size(head)
    return None


_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _SOF:
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return int(w), int(h)
        i += 2 + length
    return None


_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")
_COUNT = re.compile(rb"/Type\s*/Pages\b[^>]*?/Count\s+(\d+)|/Count\s+(\d+)[^>]*?/Type\s*/Pages\b")


@functools.lru_cache(maxsize=64)
def pdf_pages(b64: str) -> int | None:
    """Pages of a base64 PDF: its page tree's ``/Count``, else its ``/Page`` objects.

    ``None`` when neither can be read (page objects inside compressed object
    streams, a broken file). Memoised per string: a PDF sent on every turn of
    a conversation is decoded once.
    """
    try:
        data = base64.b64decode(b64)
    except (binascii.Error, ValueError):
        return None
    for text in (data, _inflated(data)):
        counts = [int(a or b) for a, b in _COUNT.findall(text)]
        if counts:
            return max(counts)
        pages = len(_PAGE.findall(text))
        if pages:
            return pages
    return None


_STREAM = re.compile(rb"/FlateDecode[^>]*>>\s*stream\r?\n")
_INFLATE_LIMIT = 64 * MB


def _inflated(data: bytes) -> bytes:
    """The compressed streams of a PDF, inflated (object streams hold the page tree
    of PDF 1.5 and later files); at most ``_INFLATE_LIMIT`` bytes."""
    out: list[bytes] = []
    total = 0
    for m in _STREAM.finditer(data):
        inflater = zlib.decompressobj()
        try:
            chunk = inflater.decompress(data[m.end() : m.end() + 4 * MB], _INFLATE_LIMIT - total)
        except zlib.error:
            continue
        out.append(chunk)
        total += len(chunk)
        if total >= _INFLATE_LIMIT:
            break
    return b"\n".join(out)


def audio_seconds(head: bytes, size: int) -> tuple[float, float]:
    """``(estimate, bound)`` of an audio clip's length in seconds.

    A WAV header gives the exact length; other formats are estimated at
    128 kbit/s and bounded at 8 kbit/s, the lowest rate a compressed voice
    clip uses.
    """
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE" and len(head) >= 32:
        byte_rate = int.from_bytes(head[28:32], "little")
        if byte_rate > 0:
            seconds = max(size - 44, 0) / byte_rate
            return seconds, seconds
    return size / 16_000, size / 1_000


# -- provider limits --------------------------------------------------------------------------

_IMAGES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


@dataclass(frozen=True, slots=True)
class MediaLimits:
    """A provider's documented limits on media in one request (``None``: no limit known)."""

    image_types: frozenset[str]
    document_types: frozenset[str]
    audio_types: frozenset[str]
    image_bytes: int | None = None
    image_pixels: int | None = None
    """The longest side an image may have."""
    many_images: tuple[int, int] | None = None
    """``(count, pixels)``: with more than ``count`` images, sides are limited to ``pixels``."""
    images: int | None = None
    document_bytes: int | None = None
    documents: int | None = None
    inline_bytes: int | None = None
    """All media carried inline (base64) in one request."""
    source: str = ""


_ANTHROPIC = MediaLimits(
    image_types=_IMAGES,
    document_types=frozenset({"application/pdf", "text/plain"}),
    audio_types=frozenset(),
    image_bytes=5 * MB,
    image_pixels=8000,
    many_images=(20, 2000),
    images=600,
    inline_bytes=32 * MB,
    source="platform.claude.com vision, PDF support (2026): 5 MB and 8000 px per image "
    "(2000 px above 20 images), 600 images, 32 MB per request",
)
_OPENAI = MediaLimits(
    image_types=_IMAGES,
    document_types=frozenset({"application/pdf"}),
    audio_types=frozenset({"audio/wav", "audio/x-wav", "audio/mpeg", "audio/mp3"}),
    images=500,
    inline_bytes=50 * MB,
    document_bytes=32 * MB,
    source="platform.openai.com images-vision, pdf-files, audio (2026): 500 images and "
    "50 MB per request, 32 MB of files, WAV and MP3 audio",
)
_GEMINI = MediaLimits(
    image_types=frozenset({"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"}),
    document_types=frozenset(
        {
            "application/pdf",
            "text/plain",
            "text/html",
            "text/css",
            "text/csv",
            "text/xml",
            "text/markdown",
            "text/javascript",
            "application/x-javascript",
            "text/x-python",
            "application/x-python",
        }
    ),
    audio_types=frozenset(
        {
            "audio/wav",
            "audio/x-wav",
            "audio/mp3",
            "audio/mpeg",
            "audio/aiff",
            "audio/aac",
            "audio/ogg",
            "audio/flac",
        }
    ),
    images=3600,
    inline_bytes=100 * MB,
    source="ai.google.dev image, document and audio understanding (2026): 3,600 images, "
    "100 MB of inline data per request",
)
_BEDROCK = MediaLimits(
    image_types=_IMAGES,
    document_types=frozenset(
        {
            "application/pdf",
            "text/csv",
            "application/msword",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/vnd.ms-excel",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "text/html",
            "text/plain",
            "text/markdown",
        }
    ),
    audio_types=frozenset(),
    image_bytes=3_750_000,
    image_pixels=8000,
    images=20,
    document_bytes=4_500_000,
    documents=5,
    source="AWS Bedrock Converse ImageBlock and DocumentBlock (2026): 3.75 MB and 8000 px "
    "per image, 20 images, 4.5 MB per document, 5 documents",
)

_RESPONSES = MediaLimits(
    image_types=_OPENAI.image_types,
    document_types=_OPENAI.document_types,
    audio_types=frozenset(),  # the Responses API has no audio input part
    images=_OPENAI.images,
    inline_bytes=_OPENAI.inline_bytes,
    document_bytes=_OPENAI.document_bytes,
    source=_OPENAI.source,
)

MEDIA_LIMITS: Mapping[str, MediaLimits] = {
    "anthropic": _ANTHROPIC,
    "openai": _OPENAI,
    "azure-openai": _OPENAI,
    "openai-responses": _RESPONSES,
    "azure-openai-responses": _RESPONSES,
    "gemini": _GEMINI,
    "bedrock": _BEDROCK,
}
"""Limits by provider kind. OpenRouter, OpenAI-compatible servers and the mock have
none of their own (the model behind them decides) and are not checked."""


def _sized(n: int) -> str:
    return f"{n / MB:.1f} MB" if n >= MB else f"{n} bytes"


# -- the media in a request -------------------------------------------------------------------

_TEXT_PARTS = frozenset({"text", "input_text", "output_text", "refusal"})


def media_parts(request: ChatRequest) -> Iterator[tuple[str, Media]]:
    """Every image, document and audio part of ``request``, with where it is."""
    for i, m in enumerate(request.messages):
        content = m.content
        if not isinstance(content, list):
            continue
        for j, p in enumerate(content):
            kind = p.get("type")
            if kind in _TEXT_PARTS:
                continue
            where = f"messages.{i}.content.{j}"
            if kind == "tool_result" and isinstance(p.get("content"), list):
                for k, inner in enumerate(p["content"]):
                    yield from _one(inner, f"{where}.content.{k}")
                continue
            yield from _one(p, where)


def part_media(p: Any) -> Iterator[Media]:
    """The media in one content part (a ``tool_result`` block's included)."""
    if not isinstance(p, Mapping) or p.get("type") in _TEXT_PARTS:
        return
    if p.get("type") == "tool_result" and isinstance(p.get("content"), list):
        for inner in p["content"]:
            for _, media in _one(inner, ""):
                yield media
        return
    for _, media in _one(p, ""):
        yield media


def _one(p: Any, where: str) -> Iterator[tuple[str, Media]]:
    if not isinstance(p, Mapping) or p.get("type") in _TEXT_PARTS:
        return
    try:
        part: Part = content_part(p)
    except Exception:  # malformed parts are the codec's to refuse, with its own message
        return
    if isinstance(part, Media):
        yield where, part
    elif isinstance(part, Text | Opaque):
        return


# -- checking -----------------------------------------------------------------------------------


def check_media(request: ChatRequest, kind: str) -> None:
    """Refuse ``request`` if its media break provider ``kind``'s documented limits."""
    limits = MEDIA_LIMITS.get(kind)
    if limits is None:
        return
    found = list(media_parts(request))
    if not found:
        return
    images = sum(1 for _, m in found if m.kind == "image")
    for what, count, most in (
        ("images", images, limits.images),
        ("documents", sum(1 for _, m in found if m.kind == "document"), limits.documents),
    ):
        if most is not None and count > most:
            raise MediaTooLargeError(
                f"{count} {what} in one request; {kind} takes at most {most}",
                provider=kind,
                size=count,
                limit=most,
                unit="parts",
            )
    pixels = limits.image_pixels
    if limits.many_images is not None and images > limits.many_images[0]:
        pixels = limits.many_images[1]
    inline = 0
    for where, media in found:
        inline += _check_part(media, where, kind, limits, pixels)
    if limits.inline_bytes is not None and inline > limits.inline_bytes:
        raise MediaTooLargeError(
            f"the request carries {_sized(inline)} of inline media; {kind} takes at most "
            f"{_sized(limits.inline_bytes)} per request (send large files by URL or file id)",
            provider=kind,
            size=inline,
            limit=limits.inline_bytes,
        )


def _check_part(
    media: Media, where: str, kind: str, limits: MediaLimits, pixels: int | None
) -> int:
    """Check one part; its inline bytes."""
    declared = (media.media_type or "").lower() or None
    head = _head(media.data, 4096) if media.data else b""
    found = sniff(head) if head else None
    if media.kind == "audio" and not limits.audio_types:
        raise UnsupportedMediaTypeError(
            f"{where}: {kind} does not take audio input", provider=kind, index=where
        )
    if declared and found and _family(declared) != _family(found):
        raise UnsupportedMediaTypeError(
            f"{where}: the part says {declared} but its data is {found}",
            provider=kind,
            media_type=declared,
            index=where,
        )
    media_type = declared or found
    allowed = {
        "image": limits.image_types,
        "document": limits.document_types,
        "audio": limits.audio_types,
    }[media.kind]
    if (
        media_type is not None
        and media.text is None
        and _normal(media_type) not in allowed
        and _family(media_type) not in allowed
    ):
        names = ", ".join(sorted(allowed))
        raise UnsupportedMediaTypeError(
            f"{where}: {kind} does not take {media.kind}s of type {media_type} (it takes {names})",
            provider=kind,
            media_type=media_type,
            index=where,
        )
    if not media.data:
        return len(media.text.encode()) if media.text else 0
    size = decoded_size(media.data)
    cap = limits.image_bytes if media.kind == "image" else None
    if media.kind == "document":
        cap = limits.document_bytes
    if cap is not None and size > cap:
        raise MediaTooLargeError(
            f"{where}: a {media.kind} of {_sized(size)}; {kind} takes at most {_sized(cap)}",
            provider=kind,
            media_type=media_type,
            index=where,
            size=size,
            limit=cap,
        )
    if media.kind == "image" and pixels is not None:
        dims = image_size(_head(media.data, 65536))
        if dims is not None and max(dims) > pixels:
            raise MediaTooLargeError(
                f"{where}: an image of {dims[0]}x{dims[1]} px; {kind} takes at most "
                f"{pixels}x{pixels} px here",
                provider=kind,
                media_type=media_type,
                index=where,
                size=max(dims),
                limit=pixels,
                unit="pixels",
            )
    return size


def _normal(media_type: str) -> str:
    return media_type.lower().split(";")[0].strip()


def _family(media_type: str) -> str:
    kind = _normal(media_type)
    return {"image/jpg": "image/jpeg", "audio/mp3": "audio/mpeg", "audio/x-wav": "audio/wav"}.get(
        kind, kind
    )


# -- tokens -------------------------------------------------------------------------------------


def _family_of(model: str) -> str:
    name = model.lower().rpartition("/")[2]
    if "claude" in name:
        return "claude"
    if "gemini" in name:
        return "gemini"
    if "nova" in name:
        return "nova"
    if name.startswith(("gpt", "o1", "o3", "o4", "chatgpt", "computer-use")):
        return "openai"
    return "unknown"


def _claude_image(w: int, h: int, model: str) -> int:
    name = model.lower()
    high = re.search(r"opus-4-(?:[7-9]|\d\d)|(?:sonnet|haiku)-4-(?:[7-9]|\d\d)|-[5-9]-", name)
    edge, area = (2576, 3_750_000) if high else (1568, 1_150_000)
    scale = min(1.0, edge / max(w, h), math.sqrt(area / (w * h)))
    w2, h2 = max(1, int(w * scale)), max(1, int(h * scale))
    return math.ceil(w2 / 28) * math.ceil(h2 / 28)


_OPENAI_TILES = {"gpt-4o-mini": (2833, 5667), "o1": (75, 150), "o3": (75, 150)}
_OPENAI_PATCHES = {
    "gpt-4.1-mini": 1.62,
    "gpt-4.1-nano": 2.46,
    "o4-mini": 1.72,
    "gpt-5-mini": 1.62,
    "gpt-5-nano": 2.46,
}


def _openai_image(w: int, h: int, model: str, detail: str | None) -> int:
    name = model.lower().rpartition("/")[2]
    patches = next((v for k, v in _OPENAI_PATCHES.items() if name.startswith(k)), None)
    if patches is not None:
        n = math.ceil(w / 32) * math.ceil(h / 32)
        if n > 1536:
            scale = math.sqrt(32 * 32 * 1536 / (w * h))
            n = min(1536, math.ceil(w * scale / 32) * math.ceil(h * scale / 32))
        return math.ceil(n * patches)
    base, tile = next((v for k, v in _OPENAI_TILES.items() if name.startswith(k)), (85, 170))
    if detail == "low":
        return base
    scale = min(1.0, 2048 / max(w, h))
    w2, h2 = w * scale, h * scale
    short = min(w2, h2)
    if short > 768:
        w2, h2 = w2 * 768 / short, h2 * 768 / short
    return base + tile * math.ceil(w2 / 512) * math.ceil(h2 / 512)


def _gemini_image(w: int, h: int, model: str) -> int:
    if re.search(r"gemini-[3-9]", model.lower()):
        return 1120  # media_resolution high, the default for images
    if w <= 384 and h <= 384:
        return 258
    return 258 * math.ceil(w / 768) * math.ceil(h / 768)


# (estimate, bound) for one image of unknown size, by family
_UNKNOWN_IMAGE = {
    "claude": (1600, 4800),
    "openai": (765, 1445),
    "gemini": (258, 1120),
    "nova": (1600, 4800),
    "unknown": (1600, 50_000),
}
_GEMINI2_IMAGE_BOUND = 258 * 11 * 11  # 8000 px sides in 768-px tiles
_OPENAI_MINI_IMAGE_BOUND = 2833 + 5667 * 8
_PATCH_IMAGE_BOUND = math.ceil(1536 * 2.46)
_DOCUMENT_PAGE = {
    "claude": (2250, 8000),
    "openai": (2250, 8000),
    "gemini": (258, 560),
    "nova": (2250, 8000),
    "unknown": (2250, 50_000),
}
_AUDIO_PER_SECOND = {"openai": 10, "gemini": 32, "unknown": 32}


def _unknown_image(family: str, model: str) -> tuple[int, int]:
    estimate, bound = _UNKNOWN_IMAGE[family]
    name = model.lower().rpartition("/")[2]
    if family == "openai":
        if name.startswith("gpt-4o-mini"):
            return 2833 + 5667 * 4, _OPENAI_MINI_IMAGE_BOUND
        if any(name.startswith(k) for k in _OPENAI_PATCHES):
            return 1000, _PATCH_IMAGE_BOUND
    if family == "gemini" and not re.search(r"gemini-[3-9]", name):
        return 258 * 4, _GEMINI2_IMAGE_BOUND
    return estimate, bound


def media_tokens(media: Media, model: str) -> tuple[int, int]:
    """``(estimate, bound)`` of the prompt tokens one part costs ``model``.

    The formula is picked from the model's name (the same model costs the
    same through any provider). A part whose size cannot be read (a URL, a
    file id, an unknown format) gets the model's typical cost as estimate
    and its largest as bound.
    """
    family = _family_of(model)
    if media.text is not None:
        n = (len(media.text.encode()) + 3) // 4
        return n, len(media.text.encode())
    if media.kind == "image":
        dims = image_size(_head(media.data, 65536)) if media.data else None
        if dims is None or min(dims) <= 0:
            return _unknown_image(family, model)
        w, h = dims
        if family == "claude" or family == "nova":
            n = _claude_image(w, h, model)
        elif family == "openai":
            n = _openai_image(w, h, model, media.detail)
        elif family == "gemini":
            n = _gemini_image(w, h, model)
        else:
            return min(math.ceil(w * h / 750), 50_000), _UNKNOWN_IMAGE["unknown"][1]
        return n, n
    if media.kind == "document":
        per_page = _DOCUMENT_PAGE[family]
        pages = pdf_pages(media.data) if media.data and _is_pdf(media) else None
        if pages is None:
            size = decoded_size(media.data) if media.data else 0
            pages = max(1, size // 50_000) if size else 1
            return per_page[0] * pages, max(per_page[1] * pages, size)
        return per_page[0] * pages, per_page[1] * pages
    rate = _AUDIO_PER_SECOND.get(family, _AUDIO_PER_SECOND["unknown"])
    size = decoded_size(media.data) if media.data else 0
    estimate, bound = audio_seconds(_head(media.data, 64) if media.data else b"", size)
    return math.ceil(estimate * rate), math.ceil(bound * rate)


def _is_pdf(media: Media) -> bool:
    if (media.media_type or "").lower() == "application/pdf":
        return True
    return _head(media.data or "", 8).startswith(b"%PDF-")
