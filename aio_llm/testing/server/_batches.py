"""The batch APIs of ``FakeLLMServer``: OpenAI Files + Batches and Anthropic Message Batches.

OpenAI: ``POST /v1/files`` (multipart, ``purpose=batch``), ``GET /v1/files/{id}``,
``GET /v1/files/{id}/content``, ``DELETE /v1/files/{id}``, ``POST /v1/batches``,
``GET /v1/batches`` (list, newest first), ``GET /v1/batches/{id}``,
``POST /v1/batches/{id}/cancel``. Anthropic: ``POST /v1/messages/batches``,
``GET /v1/messages/batches`` (list), ``GET /v1/messages/batches/{id}``,
``POST /v1/messages/batches/{id}/cancel``, ``GET /v1/messages/batches/{id}/results``.

Time runs on the server's clock, so a test with a ``FakeClock`` moves a batch
through its life by advancing the clock. A batch created at ``t0`` validates
for ``validating_time``, then processes its requests one after another,
evenly over ``processing_time`` (request ``i`` of ``n`` is finished at
``t0 + validating_time + processing_time * (i + 1) / n``), then finalizes for
``finalizing_time``. If processing would pass ``completion_window`` seconds
after ``t0``, the batch expires then: requests finished by that moment keep
their results, the rest are reported expired. A cancelled batch keeps the
results of requests finished before the cancel and reports the rest
cancelled, after ``cancelling_time``. ``not_found_for`` answers 404 to
``GET`` on a batch for that long after its creation (real providers do so
for a moment).

Each request line is answered as if it had been sent to its own endpoint,
at creation time: scripted ``Fault``s for that path (``srv.enqueue(...,
path="/v1/chat/completions")``, or ``"/v1/messages"``) become per-request
errors in the results. ``FakeBatches.submitted`` counts every ``custom_id``
ever submitted, so a test can check nothing was sent twice.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ..._json import dumps, loads
from ._batch_objects import (
    ANTHROPIC_MAX_REQUESTS,
    CUSTOM_ID,
    ENDPOINTS,
    OPENAI_MAX_REQUESTS,
    Batch,
    File,
    Line,
    NotFound,
    anthropic_results,
    error_reply,
    json_reply,
    line_error,
    multipart,
    rfc3339,
)
from ._conn import Reply
from ._dialects import ANTHROPIC, CHAT, MESSAGES, OPENAI, Route, route_of
from ._replies import JSON, build_reply, fault_reply

if TYPE_CHECKING:
    from ...clock import Clock
    from ._faults import Fault, FaultSchedule
    from ._http import ParsedRequest

__all__ = ["FakeBatches"]


class FakeLLMServer(Protocol):
    """What the batch routes use of the server that owns them."""

    _clock: Clock
    _faults: FaultSchedule
    faults: int
    reply: str | Callable[[dict[str, Any]], str] | None
    seed: int
    stream_chunks: int

    @property
    def url(self) -> str: ...

    def _next_id(self) -> str: ...


class FakeBatches:
    """Batch objects and files of one ``FakeLLMServer`` (``srv.batches``); see the module doc."""

    def __init__(
        self,
        *,
        processing_time: float = 0.0,
        validating_time: float = 0.0,
        finalizing_time: float = 0.0,
        cancelling_time: float = 0.0,
        completion_window: float = 86_400.0,
        not_found_for: float = 0.0,
    ) -> None:
        for name, value in (
            ("processing_time", processing_time),
            ("validating_time", validating_time),
            ("finalizing_time", finalizing_time),
            ("cancelling_time", cancelling_time),
            ("not_found_for", not_found_for),
        ):
            if value < 0:
                raise ValueError(f"{name} must not be negative")
        if completion_window <= 0:
            raise ValueError("completion_window must be positive")
        self.processing_time = processing_time
        self.validating_time = validating_time
        self.finalizing_time = finalizing_time
        self.cancelling_time = cancelling_time
        self.completion_window = completion_window
        self.not_found_for = not_found_for
        self.files: dict[str, File] = {}
        self.batches: dict[str, Batch] = {}
        self.submitted: Counter[str] = Counter()
        """How often each ``custom_id`` was submitted in a batch (all batches)."""
        self._prefix = os.urandom(4).hex()
        self._ids = 0

    def __repr__(self) -> str:
        return f"<FakeBatches batches={len(self.batches)} files={len(self.files)}>"

    # -- routing --------------------------------------------------------------------

    def route(self, server: FakeLLMServer, req: ParsedRequest, path: str) -> Reply | None:
        """The answer to a batch or file route, or ``None`` when ``path`` is not one."""
        anthropic = path.startswith("/v1/messages/batches")
        if not anthropic and not path.startswith(("/v1/files", "/v1/batches")):
            return None
        if server._faults:
            fault = server._faults.next(path)
            if fault is not None and fault.kind in ("status", "raw"):
                server.faults += 1
                headers = [JSON]
                route = Route(MESSAGES, ANTHROPIC) if anthropic else Route(CHAT, OPENAI)
                return fault_reply(fault, headers, route, self._next("req"))
        parts = path.strip("/").split("/")
        method = req.method
        try:
            if anthropic:
                return self._anthropic(server, method, parts[3:], req)
            if parts[1] == "files":
                return self._files(server, method, parts[2:], req)
            return self._openai(server, method, parts[2:], req)
        except NotFound as exc:
            return error_reply(404, str(exc), anthropic)
        except ValueError as exc:
            return error_reply(400, str(exc), anthropic)

    # -- OpenAI files ---------------------------------------------------------------

    def _files(
        self, server: FakeLLMServer, method: str, rest: list[str], req: ParsedRequest
    ) -> Reply:
        if not rest:
            if method != "POST":
                return error_reply(405, f"Method {method} not allowed", False)
            form = multipart(req.headers.get("content-type", ""), req.body)
            upload = form.get("file")
            purpose = form.get("purpose")
            if upload is None or purpose is None:
                raise ValueError("a file upload needs the 'file' and 'purpose' fields")
            name, content = upload
            new = File(
                self._next("file-"),
                name or "upload.jsonl",
                purpose[1].decode(),
                content,
                int(server._clock.time()),
            )
            self.files[new.id] = new
            return json_reply(new.json())
        f = self.files.get(rest[0])
        if f is None:
            raise NotFound(f"No such File object: {rest[0]}")
        if len(rest) == 2 and rest[1] == "content" and method == "GET":
            return Reply(200, [("content-type", "application/octet-stream")], f.content)
        if len(rest) == 1 and method == "GET":
            return json_reply(f.json())
        if len(rest) == 1 and method == "DELETE":
            del self.files[f.id]
            return json_reply({"id": f.id, "object": "file", "deleted": True})
        return error_reply(405, f"Method {method} not allowed", False)

    # -- OpenAI batches -------------------------------------------------------------

    def _openai(
        self, server: FakeLLMServer, method: str, rest: list[str], req: ParsedRequest
    ) -> Reply:
        if not rest:
            if method == "GET":
                return self._list(server, anthropic=False, query=req.target)
            if method != "POST":
                return error_reply(405, f"Method {method} not allowed", False)
            return self._openai_create(server, loads(req.body))
        batch = self._get(server, rest[0], anthropic=False, method=method)
        if len(rest) == 2 and rest[1] == "cancel" and method == "POST":
            self._cancel(server, batch)
            return json_reply(self._openai_json(server, batch))
        if len(rest) == 1 and method == "GET":
            return json_reply(self._openai_json(server, batch))
        return error_reply(405, f"Method {method} not allowed", False)

    def _openai_create(self, server: FakeLLMServer, body: Any) -> Reply:
        if not isinstance(body, dict):
            raise ValueError("the request body must be a JSON object")
        file_id = body.get("input_file_id")
        endpoint = body.get("endpoint")
        if body.get("completion_window") != "24h":
            raise ValueError("completion_window must be '24h'")
        if endpoint not in ENDPOINTS:
            raise ValueError(f"unsupported endpoint {endpoint!r}")
        f = self.files.get(str(file_id))
        if f is None:
            raise ValueError(f"No such File object: {file_id}")
        metadata = body.get("metadata") or {}
        batch = Batch(
            self._next("batch_"),
            False,
            [],
            server._clock.now(),
            server._clock.time(),
            self.completion_window,
            endpoint=str(endpoint),
            input_file_id=f.id,
            metadata=dict(metadata),
        )
        errors: list[dict[str, Any]] = []
        entries: list[tuple[str, dict[str, Any]]] = []
        seen: set[str] = set()
        models: set[str] = set()
        raw_lines = [ln for ln in f.content.split(b"\n") if ln.strip()]
        if len(raw_lines) > OPENAI_MAX_REQUESTS:
            errors.append(line_error("too_many_requests", "more than 50,000 requests", None))
        for n, raw in enumerate(raw_lines, 1):
            try:
                line = loads(raw)
                cid = line["custom_id"]
                if line.get("method") != "POST" or line.get("url") != endpoint:
                    errors.append(line_error("invalid_url", "url must match endpoint", n))
                    continue
                if cid in seen:
                    errors.append(line_error("duplicate_custom_id", f"duplicate {cid}", n))
                    continue
                seen.add(cid)
                models.add(str(line["body"].get("model")))
                entries.append((str(cid), line["body"]))
            except (ValueError, KeyError, TypeError, AttributeError):
                errors.append(line_error("invalid_json_line", "not a valid request line", n))
        if len(models) > 1:
            errors.append(line_error("mixed_models", "a batch may use one model only", None))
        if not entries and not errors:
            errors.append(line_error("empty_file", "the input file has no requests", None))
        if errors:
            batch.errors = errors
        else:
            batch.lines = self._answer(server, entries, str(endpoint))
        self.batches[batch.id] = batch
        return json_reply(self._openai_json(server, batch))

    def _openai_json(self, server: FakeLLMServer, b: Batch) -> dict[str, Any]:
        status, finished, at = self._state(server, b)
        n = len(b.lines)
        done = b.lines[:finished]
        failed = sum(1 for ln in done if ln.status >= 400)
        if status in ("expired", "cancelled"):
            failed += n - finished
        terminal = status in ("completed", "expired", "cancelled", "failed")
        if terminal and status != "failed" and b.output_file_id is None:
            self._write_openai_files(server, b, finished)
        created = int(b.created_wall)

        def stamp(offset: float | None) -> int | None:
            return None if offset is None else int(b.created_wall + offset)

        return {
            "id": b.id,
            "object": "batch",
            "endpoint": b.endpoint,
            "errors": None if b.errors is None else {"object": "list", "data": b.errors},
            "input_file_id": b.input_file_id,
            "completion_window": "24h",
            "status": status,
            "output_file_id": b.output_file_id or None,
            "error_file_id": b.error_file_id or None,
            "created_at": created,
            "in_progress_at": stamp(at.get("in_progress")),
            "expires_at": int(b.created_wall + b.window),
            "finalizing_at": stamp(at.get("finalizing")),
            "completed_at": stamp(at.get("completed")),
            "failed_at": stamp(at.get("failed")),
            "expired_at": stamp(at.get("expired")),
            "cancelling_at": stamp(at.get("cancelling")),
            "cancelled_at": stamp(at.get("cancelled")),
            "request_counts": {
                "total": n,
                "completed": len(done) - sum(1 for ln in done if ln.status >= 400),
                "failed": failed,
            },
            "metadata": b.metadata or None,
        }

    def _write_openai_files(self, server: FakeLLMServer, b: Batch, finished: int) -> None:
        ok: list[bytes] = []
        bad: list[bytes] = []
        cancelled = b.cancel_at is not None
        for i, ln in enumerate(b.lines):
            entry: dict[str, Any] = {"id": self._next("batch_req_"), "custom_id": ln.custom_id}
            if i < finished:
                entry["response"] = {
                    "status_code": ln.status,
                    "request_id": ln.request_id,
                    "body": loads(ln.body),
                }
                entry["error"] = None
                (ok if ln.status < 400 else bad).append(dumps(entry))
            else:
                code = "batch_cancelled" if cancelled else "batch_expired"
                why = "cancelled" if cancelled else "expired"
                entry["response"] = None
                entry["error"] = {
                    "code": code,
                    "message": f"This request could not be executed before the batch {why}.",
                }
                bad.append(dumps(entry))
        now = int(server._clock.time())
        b.output_file_id = ""
        b.error_file_id = ""
        if ok:
            f = File(
                self._next("file-"),
                f"{b.id}_output.jsonl",
                "batch_output",
                b"\n".join(ok) + b"\n",
                now,
            )
            self.files[f.id] = f
            b.output_file_id = f.id
        if bad:
            f = File(
                self._next("file-"),
                f"{b.id}_error.jsonl",
                "batch_output",
                b"\n".join(bad) + b"\n",
                now,
            )
            self.files[f.id] = f
            b.error_file_id = f.id

    # -- Anthropic message batches ---------------------------------------------------

    def _anthropic(
        self, server: FakeLLMServer, method: str, rest: list[str], req: ParsedRequest
    ) -> Reply:
        if not rest:
            if method == "GET":
                return self._list(server, anthropic=True, query=req.target)
            if method != "POST":
                return error_reply(405, f"Method {method} not allowed", True)
            return self._anthropic_create(server, loads(req.body))
        batch = self._get(server, rest[0], anthropic=True, method=method)
        if len(rest) == 2 and rest[1] == "cancel" and method == "POST":
            self._cancel(server, batch)
            return json_reply(self._anthropic_json(server, batch))
        if len(rest) == 2 and rest[1] == "results" and method == "GET":
            status, finished, _ = self._state(server, batch)
            if status != "ended":
                raise ValueError(f"Message Batch {batch.id} has not yet ended")
            return Reply(
                200,
                [("content-type", "application/binary")],
                anthropic_results(batch, finished),
            )
        if len(rest) == 1 and method == "GET":
            return json_reply(self._anthropic_json(server, batch))
        return error_reply(405, f"Method {method} not allowed", True)

    def _anthropic_create(self, server: FakeLLMServer, body: Any) -> Reply:
        if not isinstance(body, dict) or not isinstance(body.get("requests"), list):
            raise ValueError("requests: field required")
        requests = body["requests"]
        if not requests or len(requests) > ANTHROPIC_MAX_REQUESTS:
            raise ValueError("requests: between 1 and 100,000 requests")
        entries: list[tuple[str, dict[str, Any]]] = []
        seen: set[str] = set()
        for n, item in enumerate(requests):
            if not isinstance(item, dict) or not isinstance(item.get("params"), dict):
                raise ValueError(f"requests.{n}.params: field required")
            cid = item.get("custom_id")
            if not isinstance(cid, str) or not CUSTOM_ID.match(cid):
                raise ValueError(f"requests.{n}.custom_id: must match ^[a-zA-Z0-9_-]{{1,64}}$")
            if cid in seen:
                raise ValueError(f"requests.{n}.custom_id: duplicate custom_id {cid!r}")
            if item["params"].get("stream"):
                raise ValueError(f"requests.{n}.params.stream: not supported in batches")
            seen.add(cid)
            entries.append((cid, item["params"]))
        batch = Batch(
            self._next("msgbatch_"),
            True,
            [],
            server._clock.now(),
            server._clock.time(),
            self.completion_window,
        )
        batch.lines = self._answer(server, entries, "/v1/messages")
        self.batches[batch.id] = batch
        return json_reply(self._anthropic_json(server, batch))

    def _anthropic_json(self, server: FakeLLMServer, b: Batch) -> dict[str, Any]:
        status, finished, at = self._state(server, b)
        done = b.lines[:finished]
        errored = sum(1 for ln in done if ln.status >= 400)
        rest = len(b.lines) - finished
        ended = status == "ended"
        cancelled = b.cancel_at is not None

        def stamp(offset: float | None) -> str | None:
            return None if offset is None else rfc3339(b.created_wall + offset)

        return {
            "id": b.id,
            "type": "message_batch",
            "processing_status": status,
            "request_counts": {
                "processing": 0 if ended else rest,
                "succeeded": len(done) - errored,
                "errored": errored,
                "canceled": rest if ended and cancelled else 0,
                "expired": rest if ended and not cancelled else 0,
            },
            "created_at": rfc3339(b.created_wall),
            "expires_at": rfc3339(b.created_wall + b.window),
            "ended_at": stamp(at.get("ended")),
            "cancel_initiated_at": stamp(at.get("cancelling")),
            "archived_at": None,
            "results_url": f"{server.url}/v1/messages/batches/{b.id}/results" if ended else None,
        }

    def _answer(
        self,
        server: FakeLLMServer,
        entries: list[tuple[str, dict[str, Any]]],
        path: str,
    ) -> list[Line]:
        route = route_of(path)
        assert route is not None, path  # the batch endpoints are API routes
        lines = []
        for cid, body in entries:
            self.submitted[cid] += 1
            fault: Fault | None = server._faults.next(path) if server._faults else None
            if fault is not None:
                server.faults += 1
                if fault.kind not in ("status", "raw"):
                    from ._faults import Fault as _Fault

                    fault = _Fault.status(500, message=f"{fault.kind} fault in a batch request")
            rid = server._next_id()
            if body.get("stream"):
                body = {**body, "stream": False}
            reply = build_reply(
                route,
                dumps(body),
                fault,
                rid=rid,
                created=int(server._clock.time()),
                reply=server.reply,
                seed=server.seed,
                stream_chunks=server.stream_chunks,
            )
            lines.append(Line(cid, reply.status, reply.body, f"req_{rid}"))
        return lines

    def _get(self, server: FakeLLMServer, batch_id: str, *, anthropic: bool, method: str) -> Batch:
        batch = self.batches.get(batch_id)
        if batch is None or batch.anthropic != anthropic:
            raise NotFound(f"No batch found with id '{batch_id}'")
        if method == "GET" and server._clock.now() - batch.created < self.not_found_for:
            raise NotFound(f"No batch found with id '{batch_id}'")
        return batch

    def _cancel(self, server: FakeLLMServer, batch: Batch) -> None:
        status, _, _ = self._state(server, batch)
        if status in ("completed", "expired", "cancelled", "failed", "ended"):
            if not batch.anthropic:
                raise ValueError(f"Cannot cancel a batch with status '{status}'")
            return
        if batch.cancel_at is None:
            batch.cancel_at = server._clock.now()

    def _state(self, server: FakeLLMServer, b: Batch) -> tuple[str, int, dict[str, float]]:
        """``(status, requests finished, {phase: seconds after creation it began})``."""
        now = server._clock.now() - b.created
        if b.errors is not None:
            return "failed", 0, {"failed": 0.0}
        n = len(b.lines)
        start = self.validating_time
        end = start + self.processing_time
        window = b.window

        def finished_by(t: float) -> int:
            if t < start:
                return 0
            if self.processing_time <= 0 or t >= end:
                return n
            return min(n, int((t - start) / self.processing_time * n + 1e-9))

        at: dict[str, float] = {}
        if b.cancel_at is not None:
            cut = b.cancel_at - b.created
            at["cancelling"] = cut
            if start < cut:
                at["in_progress"] = start
            done_at = cut + self.cancelling_time
            if now < done_at:
                return ("canceling" if b.anthropic else "cancelling"), finished_by(cut), at
            at["cancelled" if not b.anthropic else "ended"] = done_at
            return ("ended" if b.anthropic else "cancelled"), finished_by(cut), at
        if end > window and now >= window:
            if start < window:
                at["in_progress"] = start
            at["ended" if b.anthropic else "expired"] = window
            return ("ended" if b.anthropic else "expired"), finished_by(window), at
        if now < start:
            return ("in_progress" if b.anthropic else "validating"), 0, at
        at["in_progress"] = start
        if now < end:
            return "in_progress", finished_by(now), at
        final = end + self.finalizing_time
        if now < final:
            at["finalizing"] = end
            return ("in_progress" if b.anthropic else "finalizing"), n, at
        if not b.anthropic:
            at["finalizing"] = end
        at["ended" if b.anthropic else "completed"] = final
        return ("ended" if b.anthropic else "completed"), n, at

    def _list(self, server: FakeLLMServer, *, anthropic: bool, query: str) -> Reply:
        render: Callable[[FakeLLMServer, Batch], dict[str, Any]]
        render = self._anthropic_json if anthropic else self._openai_json
        items = [b for b in self.batches.values() if b.anthropic == anthropic]
        items.reverse()  # newest first
        limit = 20
        for part in query.partition("?")[2].split("&"):
            key, _, value = part.partition("=")
            if key == "limit" and value.isdigit():
                limit = max(1, min(int(value), 100))
            elif key in ("after", "after_id"):  # the cursor: the page after this batch
                ids = [b.id for b in items]
                items = items[ids.index(value) + 1 :] if value in ids else []
        data = [render(server, b) for b in items[:limit]]
        if anthropic:
            return json_reply(
                {
                    "data": data,
                    "has_more": len(items) > limit,
                    "first_id": data[0]["id"] if data else None,
                    "last_id": data[-1]["id"] if data else None,
                }
            )
        return json_reply(
            {
                "object": "list",
                "data": data,
                "has_more": len(items) > limit,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        )

    def _next(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}{self._prefix}{self._ids:08d}"
