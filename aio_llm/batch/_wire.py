"""The batch wire formats of OpenAI and Anthropic, sans I/O.

OpenAI: a JSONL input file, one ``{"custom_id", "method": "POST", "url":
"/v1/chat/completions", "body"}`` per line, uploaded to ``/v1/files``
(``purpose=batch``), then ``POST /v1/batches``; the batch object's ``status``
goes ``validating → in_progress → finalizing → completed`` (or ``failed``,
``expired``, ``cancelling → cancelled``), ``request_counts`` has ``total``,
``completed`` and ``failed``; results are two JSONL files (``output_file_id``
for answered requests, ``error_file_id`` for the rest), each line
``{"custom_id", "response": {"status_code", "request_id", "body"} | null,
"error": {"code", "message"} | null}``. One model per batch; at most 50,000
requests and 200 MB per input file.

Anthropic: ``POST /v1/messages/batches`` with ``{"requests": [{"custom_id",
"params"}]}``; ``processing_status`` is ``in_progress``, ``canceling`` or
``ended``; ``request_counts`` has ``processing``, ``succeeded``, ``errored``,
``canceled`` and ``expired``; results are JSONL at ``results_url``, each line
``{"custom_id", "result": {"type": "succeeded" | "errored" | "canceled" |
"expired", "message" | "error"}}``. Models may be mixed; at most 100,000
requests and 256 MB per batch. ``custom_id`` matches ``[a-zA-Z0-9_-]{1,64}``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import _json

__all__ = [
    "ANTHROPIC_LIMITS",
    "OPENAI_LIMITS",
    "Limits",
    "LineResult",
    "RemoteCounts",
    "RemoteStatus",
    "anthropic_create_body",
    "anthropic_entry",
    "multipart_file",
    "openai_line",
    "parse_anthropic_batch",
    "parse_anthropic_results",
    "parse_openai_batch",
    "parse_openai_results",
]


@dataclass(frozen=True, slots=True)
class Limits:
    """How much one provider batch may hold."""

    max_requests: int
    max_bytes: int


OPENAI_LIMITS = Limits(50_000, 200 * 1024 * 1024)
ANTHROPIC_LIMITS = Limits(100_000, 256 * 1024 * 1024)


@dataclass(frozen=True, slots=True)
class RemoteCounts:
    """The provider's request counts for one batch."""

    total: int = 0
    succeeded: int = 0
    failed: int = 0
    """Errored, expired and cancelled requests (as far as the provider says so far)."""


@dataclass(slots=True)
class RemoteStatus:
    """A provider batch object, normalised.

    ``ended`` is true in a terminal state; ``outcome`` is then ``completed``,
    ``expired``, ``cancelled`` or ``failed`` (a batch refused as a whole).
    """

    id: str
    status: str
    """The provider's own status word."""
    ended: bool
    outcome: str | None
    counts: RemoteCounts
    output_file_id: str | None = None
    error_file_id: str | None = None
    results_url: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LineResult:
    """One request's result line.

    ``kind``: ``succeeded`` (``body`` is the provider's answer), ``errored``
    (``status`` and ``body`` describe the error; ``body`` may be ``None``
    when only ``code``/``message`` are known), ``expired`` or ``cancelled``.
    """

    custom_id: str
    kind: str
    status: int | None = None
    body: bytes | None = None
    code: str | None = None
    message: str | None = None
    request_id: str | None = None


# -- OpenAI ----------------------------------------------------------------------------


def openai_line(custom_id: str, endpoint: str, body: bytes) -> bytes:
    """One input-file line (``body`` is the endpoint's JSON request body, as bytes)."""
    head = _json.dumps({"custom_id": custom_id, "method": "POST", "url": endpoint})
    return head[:-1] + b',"body":' + body + b"}\n"


def multipart_file(
    content: bytes, *, filename: str, fields: Mapping[str, str]
) -> tuple[str, bytes]:
    """``(content_type, body)`` of a ``multipart/form-data`` upload of one file."""
    boundary = "aio-llm-" + os.urandom(12).hex()
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
            f"{value}\r\n".encode()
        )
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{filename}"\r\nContent-Type: application/jsonl\r\n\r\n'.encode()
    )
    parts.append(content)
    parts.append(f"\r\n--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", b"".join(parts)


_OPENAI_TERMINAL = {"completed", "expired", "cancelled", "failed"}


def parse_openai_batch(data: Any) -> RemoteStatus:
    """A ``RemoteStatus`` from an OpenAI batch object; ``ValueError`` if it is not one."""
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise ValueError("not a batch object")
    status = str(data.get("status"))
    counts = data.get("request_counts") or {}
    errors: list[str] = []
    raw_errors = data.get("errors")
    if isinstance(raw_errors, dict):
        for err in raw_errors.get("data") or ():
            if isinstance(err, dict):
                line = err.get("line")
                where = f" (line {line})" if line is not None else ""
                errors.append(f"{err.get('code')}: {err.get('message')}{where}")
    ended = status in _OPENAI_TERMINAL
    return RemoteStatus(
        id=data["id"],
        status=status,
        ended=ended,
        outcome=status if ended else None,
        counts=RemoteCounts(
            total=int(counts.get("total") or 0),
            succeeded=int(counts.get("completed") or 0),
            failed=int(counts.get("failed") or 0),
        ),
        output_file_id=data.get("output_file_id") or None,
        error_file_id=data.get("error_file_id") or None,
        metadata=dict(data.get("metadata") or {}),
        errors=errors,
    )


def _objects(lines: Iterable[bytes]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(custom_id, line)`` of each JSON line; blank and unreadable lines are skipped
    (their requests end up without a result, which is reported as a failure)."""
    for raw in lines:
        if not raw.strip():
            continue
        try:
            line = _json.loads(raw)
        except ValueError:
            continue
        if isinstance(line, dict) and isinstance(line.get("custom_id"), str):
            yield line["custom_id"], line


def parse_openai_results(lines: Iterable[bytes]) -> Iterator[LineResult]:
    """The lines of an OpenAI output or error file (``bytes.splitlines()`` or a file)."""
    for custom_id, line in _objects(lines):
        response = line.get("response")
        error = line.get("error")
        if isinstance(response, dict) and response.get("status_code") is not None:
            status = int(response["status_code"])
            body = _json.dumps(response.get("body"))
            rid = response.get("request_id")
            if status < 400:
                yield LineResult(custom_id, "succeeded", status, body, request_id=rid)
            else:
                yield LineResult(custom_id, "errored", status, body, request_id=rid)
            continue
        code = str(error.get("code")) if isinstance(error, dict) else None
        message = str(error.get("message")) if isinstance(error, dict) else None
        if code == "batch_expired":
            yield LineResult(custom_id, "expired", code=code, message=message)
        elif code in ("batch_cancelled", "batch_canceled"):
            yield LineResult(custom_id, "cancelled", code=code, message=message)
        else:
            yield LineResult(custom_id, "errored", code=code, message=message)


# -- Anthropic -------------------------------------------------------------------------


def anthropic_entry(custom_id: str, body: bytes) -> bytes:
    """One element of ``requests`` (``body`` is the Messages request body, as bytes)."""
    return b'{"custom_id":' + _json.dumps(custom_id) + b',"params":' + body + b"}"


def anthropic_create_body(entries: list[bytes]) -> bytes:
    return b'{"requests":[' + b",".join(entries) + b"]}"


def parse_anthropic_batch(data: Any) -> RemoteStatus:
    """A ``RemoteStatus`` from an Anthropic message batch; ``ValueError`` if it is not one."""
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise ValueError("not a message batch object")
    status = str(data.get("processing_status"))
    c = data.get("request_counts") or {}
    succeeded = int(c.get("succeeded") or 0)
    errored = int(c.get("errored") or 0)
    canceled = int(c.get("canceled") or 0)
    expired = int(c.get("expired") or 0)
    processing = int(c.get("processing") or 0)
    ended = status == "ended"
    outcome = None
    if ended:
        outcome = "cancelled" if data.get("cancel_initiated_at") else "completed"
        if expired and outcome == "completed":
            outcome = "expired"
    return RemoteStatus(
        id=data["id"],
        status=status,
        ended=ended,
        outcome=outcome,
        counts=RemoteCounts(
            total=succeeded + errored + canceled + expired + processing,
            succeeded=succeeded,
            failed=errored + canceled + expired,
        ),
        results_url=data.get("results_url") or None,
    )


def parse_anthropic_results(lines: Iterable[bytes]) -> Iterator[LineResult]:
    """The lines of an Anthropic results file (``bytes.splitlines()`` or a file)."""
    for custom_id, line in _objects(lines):
        result = line.get("result")
        if not isinstance(result, dict):
            result = {}
        kind = result.get("type")
        if kind == "succeeded":
            yield LineResult(custom_id, "succeeded", 200, _json.dumps(result.get("message")))
        elif kind == "errored":
            error = result.get("error")
            yield LineResult(
                custom_id,
                "errored",
                None,
                _json.dumps(error) if error is not None else None,
                request_id=error.get("request_id") if isinstance(error, dict) else None,
            )
        elif kind == "expired":
            yield LineResult(custom_id, "expired", code="expired")
        elif kind in ("canceled", "cancelled"):
            yield LineResult(custom_id, "cancelled", code="canceled")
        else:
            yield LineResult(custom_id, "errored", code=str(kind), message="unknown result type")
