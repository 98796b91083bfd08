"""Short messages for error answers whose body is not the provider's JSON error.

A proxy, a load balancer or a wrong ``base_url`` answers with an HTML page
or plain text. Pasting that into the message buries what matters, so the
message says what came back in one line and the whole body stays on the
exception (``exc.body``, ``exc.raw``).
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from http import HTTPStatus

__all__ = ["describe_text_body"]

_TITLE = re.compile(rb"<title[^>]*>(.{0,300}?)</title", re.IGNORECASE | re.DOTALL)
_SPACE = re.compile(r"\s+")
_TEXT_LIMIT = 200
_TITLE_LIMIT = 80


def _phrase(status: int) -> str:
    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def _looks_like_html(headers: Mapping[str, str] | None, text: str) -> bool:
    ctype = (headers or {}).get("content-type") or (headers or {}).get("Content-Type") or ""
    if "html" in ctype.lower():
        return True
    head = text.lstrip()[:64].lower()
    return head.startswith(("<!doctype html", "<html", "<head", "<body", "<?xml"))


def _clip(text: str, limit: int) -> str:
    text = _SPACE.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def describe_text_body(status: int, headers: Mapping[str, str] | None, text: str) -> str:
    """A one-line message for an error body that is not JSON (``text``, already redacted)."""
    if not text.strip():
        return f"{_phrase(status)} with an empty body"
    if _looks_like_html(headers, text):
        match = _TITLE.search(text.encode("utf-8", errors="replace")[:65536])
        title = ""
        if match:
            raw_title = match.group(1).decode("utf-8", errors="replace")
            title = _clip(html.unescape(raw_title), _TITLE_LIMIT)
        seen = f' titled "{title}"' if title else ""
        return (
            f"{_phrase(status)}: the server sent an HTML page{seen}, not an API error; "
            "a proxy or a wrong base_url answered (the page is on exc.body)"
        )
    return f"{_phrase(status)}: {_clip(text, _TEXT_LIMIT)}"
