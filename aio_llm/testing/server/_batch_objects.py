"""The objects behind ``FakeBatches``: files, batches, request lines, and small wire helpers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..._json import dumps, loads
from . import _formats as fmt
from ._conn import Reply
from ._replies import CHAT, EMBED, JSON

__all__ = [
    "ANTHROPIC_MAX_REQUESTS",
    "CUSTOM_ID",
    "ENDPOINTS",
    "OPENAI_MAX_REQUESTS",
    "Batch",
    "File",
    "Line",
    "NotFound",
    "anthropic_results",
    "error_reply",
    "json_reply",
    "line_error",
    "multipart",
    "rfc3339",
]

ENDPOINTS = {"/v1/chat/completions": CHAT, "/v1/embeddings": EMBED}
CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
OPENAI_MAX_REQUESTS = 50_000
ANTHROPIC_MAX_REQUESTS = 100_000


@dataclass
class File:
    id: str
    filename: str
    purpose: str
    content: bytes
    created: int

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": self.created,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
        }


@dataclass
class Line:
    custom_id: str
    status: int
    body: bytes
    request_id: str


@dataclass
class Batch:
    id: str
    anthropic: bool
    lines: list[Line]
    created: float
    """Server clock ``now()`` at creation."""
    created_wall: float
    window: float
    endpoint: str = ""
    input_file_id: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    errors: list[dict[str, Any]] | None = None
    """Validation errors: the batch failed without running anything."""
    cancel_at: float | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None


def anthropic_results(b: Batch, finished: int) -> bytes:
    """The results JSONL of an ended Anthropic batch."""
    out: list[bytes] = []
    cancelled = b.cancel_at is not None
    for i, ln in enumerate(b.lines):
        result: dict[str, Any]
        if i >= finished:
            result = {"type": "canceled" if cancelled else "expired"}
        elif ln.status < 400:
            result = {"type": "succeeded", "message": loads(ln.body)}
        else:
            err = loads(ln.body)
            result = {"type": "errored", "error": err}
        out.append(dumps({"custom_id": ln.custom_id, "result": result}))
    return b"\n".join(out) + b"\n"


# -- shared ---------------------------------------------------------------------


class NotFound(Exception):
    pass


def json_reply(obj: Any) -> Reply:
    return Reply(200, [JSON], dumps(obj))


def error_reply(status: int, message: str, anthropic: bool) -> Reply:
    if anthropic:
        kind = "not_found_error" if status == 404 else "invalid_request_error"
        return Reply(status, [JSON], fmt.anthropic_error(status, message, kind, "req_fake"))
    return Reply(status, [JSON], fmt.openai_error(status, message))


def line_error(code: str, message: str, line: int | None) -> dict[str, Any]:
    return {"code": code, "message": message, "param": None, "line": line}


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")


def multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """``{field: (filename, bytes)}`` of a ``multipart/form-data`` body."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.startswith("multipart/form-data") or match is None:
        raise ValueError("expected a multipart/form-data body")
    delimiter = b"--" + match.group(1).encode()
    out: dict[str, tuple[str | None, bytes]] = {}
    for part in body.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        head, sep, content = part.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("malformed multipart part")
        if content.endswith(b"\r\n"):
            content = content[:-2]
        text = head.decode("utf-8", "replace")
        name = re.search(r'name="([^"]*)"', text)
        filename = re.search(r'filename="([^"]*)"', text)
        if name is None:
            raise ValueError("multipart part without a name")
        out[name.group(1)] = (filename.group(1) if filename else None, content)
    return out
