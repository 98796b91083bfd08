"""Durable JSONL jobs: ``aio-llm batch run input.jsonl --out results.jsonl`` and ``run_jsonl``.

Each input line is a request in the OpenAI batch-input format
(``{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body"}``)
or a plain chat request (``{"model", "messages", ...}``, with an optional
``custom_id``; else ``line-N``). ``via="live"`` sends them through the
client's whole chain with ``concurrency`` in flight; ``via="batch"`` through
the provider's Batch API (``BatchJob``).

Resumable: every result is committed to the checkpoint beside the output
(``<out>.checkpoint.sqlite3``) as it arrives, so a crash, a SIGKILL or
Ctrl-C at any point followed by the same command never sends a line that
already has a recorded result and never loses one. The output is written
atomically (a temporary file renamed over it), in input order, when a run
ends; a line that cannot be read or sent gets an error result, not a crash.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from pydantic import ValidationError

from .. import _json
from ..client._progress import ProgressBar
from ..cost.budgets import BudgetConfig, BudgetPeriod
from ..errors import APIError, BudgetExceededError, InvalidRequestError, LLMError
from ..types import ChatRequest, ChatResponse
from ._checkpoint import Checkpoint, checkpoint_path

if TYPE_CHECKING:
    from ._host import BatchClient

__all__ = ["JobSummary", "parse_line", "run_jsonl"]

_BUDGET = "jsonl-job"
_FIELDS = frozenset(ChatRequest.model_fields) - {"extra", "metadata", "stream"}


@dataclass(frozen=True, slots=True)
class JobSummary:
    """What a run of a JSONL job did, and where the whole job stands (costs in USD)."""

    lines: int
    succeeded: int
    failed: int
    pending: int
    """Lines without a result (the budget ran out, or the run was interrupted)."""
    sent: int
    """Requests this run sent (or submitted)."""
    cost: float
    saved_by_cache: float
    saved_by_batch: float
    output: Path

    def __str__(self) -> str:
        return (
            f"done {self.succeeded + self.failed}/{self.lines} (failed {self.failed}, "
            f"pending {self.pending}); cost ${self.cost:.4f}; saved by cache "
            f"${self.saved_by_cache:.4f}; saved by batch ${self.saved_by_batch:.4f}; "
            f"results in {self.output}"
        )


def parse_line(n: int, raw: bytes, default_model: str | None) -> tuple[str, ChatRequest | str]:
    """``(custom_id, request)`` of input line ``n``, or ``(custom_id, why it is invalid)``."""
    cid = f"line-{n}"
    try:
        data = _json.loads(raw)
    except ValueError:
        return cid, "the line is not valid JSON"
    if not isinstance(data, dict):
        return cid, "the line is not a JSON object"
    if isinstance(data.get("custom_id"), str | int):
        cid = str(data["custom_id"])
    body: Any = data
    if "body" in data:
        url = data.get("url", "/v1/chat/completions")
        if url != "/v1/chat/completions" or data.get("method", "POST") != "POST":
            return cid, f"only POST /v1/chat/completions lines are supported, not {url!r}"
        body = data["body"]
        if not isinstance(body, dict):
            return cid, "body must be a JSON object"
    fields = {k: v for k, v in body.items() if k in _FIELDS}
    extra = {k: v for k, v in body.items() if k not in _FIELDS and k not in ("custom_id", "stream")}
    if "model" not in fields and default_model:
        fields["model"] = default_model
    if "metadata" in body and isinstance(body["metadata"], dict):
        fields["metadata"] = body["metadata"]
    try:
        return cid, ChatRequest(**fields, extra=extra)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return cid, f"invalid request: {where}: {first['msg']}"
    except TypeError as exc:
        return cid, f"invalid request: {exc}"


def _ok(response: ChatResponse) -> dict[str, Any]:
    return {"response": response.model_dump(mode="json")}


def _err(exc: BaseException | str) -> dict[str, Any]:
    if isinstance(exc, str):
        return {"error": {"type": "InvalidRequestError", "message": exc, "status_code": None}}
    message = exc.message if isinstance(exc, APIError) else str(exc)
    return {
        "error": {
            "type": type(exc).__name__,
            "message": message,
            "status_code": getattr(exc, "status_code", None),
        }
    }


class _Run:
    """One run of a job: the checkpoint, the requests and the counters."""

    def __init__(self, client: BatchClient, ckpt: Checkpoint, progress: bool) -> None:
        self.client = client
        self.ckpt = ckpt
        self.sent = 0
        self.stopped: BaseException | None = None
        totals = ckpt.totals()
        self.total = int(totals["lines"])
        self.done = int(totals["succeeded"] + totals["failed"])
        self.spent = float(totals["cost"])
        self.bar = ProgressBar(self.total) if progress else None

    def report(self, final: bool = False) -> None:
        if self.bar is not None:
            self.bar(self.done, self.total, final=final, spent=self.spent)

    def record(
        self, n: int, result: BaseException | ChatResponse | str, saved_batch: float = 0.0
    ) -> None:
        if isinstance(result, ChatResponse):
            cost = result.cost or 0.0
            saved_cache = self._live_cost(result) if result.cached else 0.0
            self.ckpt.record([(n, _ok(result), True, cost, saved_cache, saved_batch)])
            self.spent += cost
        else:
            self.ckpt.record([(n, _err(result), False, 0.0, 0.0, 0.0)])
        self.done += 1
        self.report()

    def _live_cost(self, response: ChatResponse) -> float:
        pricing = self.client.cost_manager.pricing
        cost = pricing.cost(response.model, response.usage) if response.model else None
        return cost or 0.0


async def run_jsonl(
    client: BatchClient,
    input_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    via: str = "live",
    concurrency: int = 16,
    budget: float | None = None,
    retry_failed: bool = False,
    progress: bool = False,
    poll_interval: float = 10.0,
    max_poll_interval: float = 60.0,
) -> JobSummary:
    """Run (or resume) the JSONL job ``input_path`` into ``out_path``; see the module doc.

    ``budget`` (USD) caps the whole job, across reruns: lines that would
    pass it stay pending. ``retry_failed`` sends lines whose recorded result
    is an error again.
    """
    if via not in ("live", "batch"):
        raise ValueError("via must be 'live' or 'batch'")
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    out = Path(out_path)
    raw_lines = _read_lines(input_path)
    parsed: dict[int, tuple[str, ChatRequest | str]] = {}
    register = []
    for n, raw in enumerate(raw_lines, 1):
        if not raw.strip():
            continue
        parsed[n] = parse_line(n, raw, client.model)
        register.append((n, parsed[n][0], hashlib.sha256(raw).hexdigest()[:32]))
    out.parent.mkdir(parents=True, exist_ok=True)
    _refuse_orphan_output(out)
    ckpt = Checkpoint(checkpoint_path(out))
    try:
        changed = ckpt.register(register)
        if changed:
            raise InvalidRequestError(
                f"{input_path}: line {changed[0]} differs from the one recorded in "
                f"{ckpt.path}, or is gone ({len(changed)} lines changed); use another --out "
                "for a new input"
            )
        run = _Run(client, ckpt, progress)
        if budget is not None:
            remaining = max(budget - run.spent, 0.0)
            client.cost_manager.set_budget(_BUDGET, BudgetConfig(remaining, BudgetPeriod.TOTAL))
        todo = ckpt.unanswered(retry_failed=retry_failed)
        invalid = [n for n in todo if isinstance(parsed[n][1], str)]
        for n in invalid:
            run.record(n, parsed[n][1])  # type: ignore[arg-type]
        todo = [n for n in todo if not isinstance(parsed[n][1], str)]
        requests = {n: parsed[n][1] for n in todo}
        run.report()
        try:
            if via == "live":
                await _live(run, requests, concurrency)  # type: ignore[arg-type]
            else:
                await _batch(run, requests, poll_interval, max_poll_interval)  # type: ignore[arg-type]
        finally:
            _write_output(ckpt, out)
            run.report(final=True)
        totals = ckpt.totals()
        return JobSummary(
            lines=int(totals["lines"]),
            succeeded=int(totals["succeeded"]),
            failed=int(totals["failed"]),
            pending=int(totals["lines"] - totals["succeeded"] - totals["failed"]),
            sent=run.sent,
            cost=totals["cost"],
            saved_by_cache=totals["saved_by_cache"],
            saved_by_batch=totals["saved_by_batch"],
            output=out,
        )
    finally:
        if budget is not None:
            client.cost_manager.remove_budget(_BUDGET)
        ckpt.close()


async def _live(run: _Run, requests: dict[int, ChatRequest], concurrency: int) -> None:
    order = iter(sorted(requests))
    client = run.client

    async def worker() -> None:
        for n in order:
            if run.stopped is not None:
                return
            try:
                run.sent += 1
                response: ChatResponse | BaseException = await client.chat(request=requests[n])
            except BudgetExceededError as exc:
                run.sent -= 1
                run.stopped = exc  # this line and the rest stay pending
                return
            except LLMError as exc:
                response = exc
            run.record(n, response)

    async with anyio.create_task_group() as tg:
        for _ in range(min(concurrency, len(requests))):
            tg.start_soon(worker)


async def _batch(
    run: _Run, requests: dict[int, ChatRequest], poll_interval: float, max_poll_interval: float
) -> None:
    from ._job import resume, submit
    from ._store import BatchStore

    client, ckpt = run.client, run.ckpt
    store = BatchStore(ckpt.path)
    try:
        state = ckpt.get("batch")
        if state is None and requests:
            state = {"job": "job_" + os.urandom(10).hex(), "lines": sorted(requests)}
            ckpt.set("batch", state)  # before anything is sent: a rerun finds the job
        if state is None:
            return
        lines: list[int] = state["lines"]
        if store.job(state["job"]) is None:
            try:
                job = await submit(
                    client,
                    [requests[n] for n in lines],
                    store=store,
                    job_id=state["job"],
                    poll_interval=poll_interval,
                    max_poll_interval=max_poll_interval,
                )
            except BudgetExceededError as exc:
                ckpt.set("batch", None)
                run.stopped = exc
                return
            run.sent += len(lines)
        else:
            job = resume(client, state["job"], store=store)

        def progress(done: int, total: int) -> None:
            run.report()

        await job.wait(progress=progress)
        stored = store.results(job.id)
        values = await job.results(return_exceptions=True)
        rows = []
        for n, value, extra in zip(lines, values, stored, strict=True):
            assert extra is not None
            if isinstance(value, ChatResponse):
                saved_cache = (extra.get("saved") or 0.0) if extra.get("cached") else 0.0
                cost = value.cost or 0.0
                saved_batch = max((extra.get("full_cost") or cost) - cost, 0.0)
                rows.append((n, _ok(value), True, cost, saved_cache, saved_batch))
            else:
                rows.append((n, _err(value), False, 0.0, 0.0, 0.0))
        ckpt.record(rows)
        ckpt.set("batch", None)
        run.done += len(rows)
        run.spent = float(ckpt.totals()["cost"])
    finally:
        store.close()


def _refuse_orphan_output(out: Path) -> None:
    """An output whose checkpoint is gone would be answered again from scratch: refuse."""
    if not checkpoint_path(out).exists() and out.exists() and out.stat().st_size:
        raise InvalidRequestError(
            f"{out} exists without its checkpoint {checkpoint_path(out).name}: running again "
            "would send (and pay for) every line anew; move it away, or use another --out"
        )


def _read_lines(path: str | os.PathLike[str]) -> list[bytes]:
    return Path(path).read_bytes().splitlines()


def _write_output(ckpt: Checkpoint, out: Path) -> None:
    """Every recorded result, in input order, written to a temporary file renamed over ``out``."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        for n, cid, result in ckpt.results():
            if result is None:
                continue
            f.write(_json.dumps(_output_line(n, cid, result)) + b"\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out)


def _output_line(n: int, cid: str, result: dict[str, Any]) -> dict[str, Any]:
    if "response" in result:
        resp = result["response"]
        raw = resp.get("raw")
        return {
            "custom_id": cid,
            "line": n,
            "response": {"status_code": 200, "body": raw if raw else resp},
            "error": None,
            "content": resp.get("content"),
            "cost": resp.get("cost"),
            "cached": resp.get("cached", False),
        }
    return {"custom_id": cid, "line": n, "response": None, "error": result["error"]}
