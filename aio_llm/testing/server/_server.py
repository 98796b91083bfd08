"""``FakeLLMServer``: a real HTTP/1.1 server on loopback speaking OpenAI and Anthropic.

Written directly on asyncio's ``Protocol`` so that it costs a few tens of µs
of CPU per request and is never the bottleneck of a test or a benchmark.

Routes: ``POST /v1/chat/completions`` (also ``/chat/completions`` and
``/api/v1/chat/completions``), ``POST /v1/messages``, ``POST /v1/embeddings``
(also ``/embeddings``, ``/api/v1/embeddings``), ``GET /health``; control
routes ``GET /_fake/stats`` and ``POST /_fake/reset`` (not counted); the
OpenAI files/batches and Anthropic message-batches routes (``srv.batches``,
see ``_batches``). Faults
(``Fault``) script how the next requests fail; ``requests`` logs what came in.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import anyio

from ..._json import dumps
from ...clock import SYSTEM_CLOCK, Clock
from . import _formats
from ._batches import FakeBatches
from ._conn import Connection, Reply
from ._dialects import Route, route_of
from ._faults import Fault, FaultSchedule
from ._http import HTTPError, ParsedRequest
from ._ratelimit import RequestWindow
from ._records import RecordedRequest, RequestHeaders, ServerStatistics
from ._replies import JSON, build_reply, no_route_reply, rate_limited_reply
from ._wire import STRUCTURED_MODES, PromptCache

if TYPE_CHECKING:
    from ._spawn import SpawnedServer

__all__ = ["FakeLLMServer"]


class FakeLLMServer:
    """An OpenAI- and Anthropic-compatible HTTP server on loopback, for tests and demos.

    ``async with FakeLLMServer() as srv:`` then point a client at ``srv.url``
    (Anthropic style) or ``srv.openai_url`` (``.../v1``). Answers are
    deterministic: ``reply`` (a string, or a callable taking the request JSON),
    else ``"Echo: <last user text>"``; a request with tools whose last user
    message contains ``CALL_TOOL`` gets a call to the first tool (a ``reply``
    callable that raises yields a 500 and lands in ``srv.errors``). ``latency``
    delays every API answer, ``chunk_delay`` paces stream chunks, ``stream_chunks``
    is how many content chunks a stream has. ``rate_limit_rpm`` answers 429
    beyond that many requests in a sliding 60 s window of ``clock`` time;
    ``ratelimit_headers`` adds ``x-ratelimit-*`` headers to successes.
    ``record_limit`` caps the request log (``None``: unlimited, 0: off).

    Structured output, multimodal input, prompt caching and token counting:
    a ``response_format`` gets JSON that fits its schema (``json_object``:
    an object), a ``tool_choice`` that forces a tool gets a call with fitting
    arguments; ``structured`` (``"valid"``, ``"invalid_json"``,
    ``"schema_mismatch"``, ``"refusal"``), or the words ``INVALID_JSON``,
    ``SCHEMA_MISMATCH`` or ``REFUSE`` in the last user message, answer
    otherwise (a refusal in each format's own way). Image, document and audio
    parts are accepted and cost ``MEDIA_TOKENS`` (100) each; words stand in for
    tokens. Prompts with ``cache_control`` markers (Anthropic, OpenRouter
    style) or Bedrock ``cachePoint`` blocks report cache writes the first
    time a marked prefix is seen and cache reads after (``prompt_cache``).
    ``POST /v1/messages/count_tokens`` and Gemini's ``:countTokens`` count
    a prompt the same way its answer's usage would.

    ``batches`` configures the batch APIs (``FakeBatches`` keyword arguments:
    processing time on ``clock``, expiry, 404s just after creation).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        reply: str | Callable[[dict[str, Any]], str] | None = None,
        latency: float = 0.0,
        stream_chunks: int = 20,
        chunk_delay: float = 0.0,
        rate_limit_rpm: int | None = None,
        ratelimit_headers: bool = False,
        seed: int = 0,
        record_limit: int | None = None,
        clock: Clock | None = None,
        structured: str = "valid",
        batches: dict[str, float] | None = None,
    ) -> None:
        if latency < 0 or chunk_delay < 0:
            raise ValueError("latency and chunk_delay must not be negative")
        if stream_chunks < 1:
            raise ValueError("stream_chunks must be at least 1")
        if rate_limit_rpm is not None and rate_limit_rpm < 1:
            raise ValueError("rate_limit_rpm must be at least 1")
        if record_limit is not None and record_limit < 0:
            raise ValueError("record_limit must not be negative")
        if structured not in STRUCTURED_MODES:
            raise ValueError(f"structured must be one of {STRUCTURED_MODES}")
        self.host = host
        self._port = port
        self.reply = reply
        self.latency = latency
        self.stream_chunks = stream_chunks
        self.chunk_delay = chunk_delay
        self.ratelimit_headers = ratelimit_headers
        self._limiting = rate_limit_rpm is not None or ratelimit_headers
        self.seed = seed
        self.structured = structured
        self.prompt_cache = PromptCache()
        self._clock = clock or SYSTEM_CLOCK
        self._record_limit = record_limit
        self._records: deque[RecordedRequest] = deque(maxlen=record_limit)
        self._window = RequestWindow(rate_limit_rpm)
        self._faults = FaultSchedule()
        self._server: asyncio.Server | None = None
        self._state = "new"
        self._conns: set[Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed: anyio.Event | None = None
        self._prefix = os.urandom(3).hex()
        self._ids = 0
        self.errors: list[BaseException] = []  # bugs met while answering (each gave a 500)
        self.batches = FakeBatches(**(batches or {}))
        """The OpenAI and Anthropic batch APIs (``FakeBatches`` options in ``batches``)."""
        self.reset_stats()

    # -- lifecycle --------------------------------------------------------------

    async def start(self) -> None:
        """Bind and start serving (once; a closed server cannot be reopened)."""
        if self._state != "new":
            raise RuntimeError(f"FakeLLMServer is {self._state}; create a new one")
        loop = asyncio.get_running_loop()
        factory = functools.partial(Connection, self)
        self._server = await loop.create_server(factory, self.host, self._port, backlog=1024)
        self._port = self._server.sockets[0].getsockname()[1]
        self._state = "running"

    async def aclose(self) -> None:
        """Stop: drop every connection, end hanging answers, release the port."""
        if self._state != "running":
            self._state = "closed"
            return
        self._state = "closing"
        assert self._server is not None
        self._server.close()
        for conn in list(self._conns):
            conn.close_by_server(abort=True)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        with anyio.CancelScope(shield=True):  # finish cleaning up even if cancelled
            if tasks:
                await asyncio.wait(tasks)
            with anyio.move_on_after(5):
                await self.wait_until(lambda s: not s._conns, timeout=None)
            await self._server.wait_closed()
        self._state = "closed"
        self._notify()

    async def __aenter__(self) -> FakeLLMServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @classmethod
    def spawn(cls, host: str = "127.0.0.1", port: int = 0, **options: Any) -> SpawnedServer:
        """Start a server in a child process (blocking until it listens); see ``SpawnedServer``."""
        from ._spawn import spawn_fake_server

        return spawn_fake_server(host, port, **options)

    @property
    def port(self) -> int:
        if self._state == "new":
            raise RuntimeError("FakeLLMServer is not started")
        return self._port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: the base URL an Anthropic client takes."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def openai_url(self) -> str:
        """``url + "/v1"``: the base URL OpenAI-style clients take."""
        return f"{self.url}/v1"

    @property
    def rate_limit_rpm(self) -> int | None:
        return self._window.rpm

    # -- faults -----------------------------------------------------------------

    def enqueue(self, *faults: Fault, path: str | None = None) -> None:
        """Apply ``faults`` to the next API requests, one each, in order.

        With ``path`` (e.g. ``"/v1/messages"``) only requests to that path
        consume them; path queues are served before the global one.
        """
        self._faults.enqueue(faults, path)

    def set_fault(self, fault: Fault | None, *, path: str | None = None) -> None:
        """Apply ``fault`` to every API request (to ``path``) until ``set_fault(None)``."""
        self._faults.set(fault, path)

    def fault_rate(
        self,
        rate: float,
        kinds: Iterable[Fault] | None = None,
        *,
        seed: int | None = None,
        path: str | None = None,
    ) -> None:
        """Give each otherwise unfaulted API request a fault with probability ``rate``.

        The fault is drawn from ``kinds`` (default ``DEFAULT_RANDOM_FAULTS``)
        by a ``random.Random(seed)`` (default: the server's ``seed``), so a
        run is reproducible. ``rate=0`` turns it off.
        """
        self._faults.rate(rate, kinds, self.seed if seed is None else seed, path)

    def clear_faults(self) -> None:
        """Forget scripted, standing and random faults."""
        self._faults.clear()

    @property
    def pending_faults(self) -> int:
        """Scripted faults not consumed yet (all queues)."""
        return self._faults.pending

    # -- observability ----------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """The request log, oldest first."""
        return list(self._records)

    @property
    def last_request(self) -> RecordedRequest:
        if not self._records:
            raise LookupError("no request recorded")
        return self._records[-1]

    @property
    def open_connections(self) -> int:
        return len(self._conns)

    def statistics(self) -> ServerStatistics:
        return ServerStatistics(
            requests=self.request_count,
            in_flight=self.in_flight,
            max_in_flight=self.max_in_flight,
            disconnects=self.disconnects,
            open_connections=len(self._conns),
            connections=self.connections,
            faults=self.faults,
            rate_limited=self.rate_limited,
            bad_requests=self.bad_requests,
        )

    def reset_stats(self) -> None:
        """Zero the counters, clear the request log and the rate-limit window."""
        self.request_count = 0  # requests received (``/_fake/`` control routes excluded)
        self.in_flight = getattr(self, "in_flight", 0)  # received, not yet fully answered
        self.max_in_flight = self.in_flight
        self.disconnects = 0  # requests whose client went away before the answer was complete
        self.connections = 0
        self.faults = 0
        self.rate_limited = 0
        self.bad_requests = 0
        self._records.clear()
        if hasattr(self, "_window"):
            self._window.clear()

    async def wait_until(
        self,
        predicate: Callable[[FakeLLMServer], bool],
        timeout: float | None = 5.0,  # noqa: ASYNC109 - a bounded wait reads best in tests
    ) -> None:
        """Wait until ``predicate(self)`` holds; ``TimeoutError`` after ``timeout`` seconds.

        Re-checked whenever a request arrives or is answered and whenever a
        connection opens or closes.
        """
        with anyio.fail_after(timeout):
            while not predicate(self):
                if self._changed is None:
                    self._changed = anyio.Event()
                await self._changed.wait()

    def _notify(self) -> None:
        changed = self._changed
        if changed is not None:
            self._changed = None
            changed.set()

    def __repr__(self) -> str:
        where = f"{self.host}:{self._port}" if self._state != "new" else "not started"
        return (
            f"<FakeLLMServer {where} {self._state} requests={self.request_count} "
            f"in_flight={self.in_flight} connections={len(self._conns)} "
            f"pending_faults={self.pending_faults}>"
        )

    # -- connection callbacks (see _conn.Connection) ------------------------------

    def _opened(self, conn: Connection) -> None:
        if self._state != "running":
            conn.close_by_server(abort=True)
            return
        self._conns.add(conn)
        self.connections += 1
        self._notify()

    def _lost(self, conn: Connection, unanswered: int) -> None:
        self._conns.discard(conn)
        if unanswered:
            self.in_flight -= unanswered
            if self._state == "running":
                self.disconnects += unanswered
        self._notify()

    def _dropped(self, count: int) -> None:
        self.in_flight -= count
        self._notify()

    def _answered(self) -> None:
        self.in_flight -= 1
        if self._changed is not None:
            self._notify()

    def _received(self, req: ParsedRequest) -> RecordedRequest | None:
        """Count (and log) a complete request as it arrives."""
        if req.target.startswith("/_fake/"):
            self.in_flight += 1
            return None
        self.request_count += 1
        self.in_flight += 1
        if self.in_flight > self.max_in_flight:
            self.max_in_flight = self.in_flight
        record = None
        if self._record_limit != 0:
            path, _, query = req.target.partition("?")
            record = RecordedRequest(
                req.method, path, query, RequestHeaders(req.headers), req.body, self._clock.time()
            )
            self._records.append(record)
        if self._changed is not None:
            self._notify()
        return record

    def _bad_request(self, conn: Connection, exc: HTTPError) -> None:
        self.bad_requests += 1
        if conn.busy or conn.queue:
            conn.close_by_server(abort=True)
            return
        conn.busy = True
        self.in_flight += 1
        body = _formats.openai_error(exc.status, f"Bad request: {exc}")
        conn.send(Reply(exc.status, [JSON], body, close=True), keep_alive=False)

    # -- answering --------------------------------------------------------------

    def _serve(self, conn: Connection, req: ParsedRequest, record: RecordedRequest | None) -> None:
        """Answer one request: at once when possible, else from a task."""
        conn.busy = True
        path = req.target.partition("?")[0]
        kind = route_of(path)
        if kind is None or req.method != "POST":
            conn.send(self._other_route(req, path, kind), req.keep_alive)
            return
        limited = self._admit(req) if self._limiting else None
        if limited is not None:
            conn.send(limited, req.keep_alive)
            return
        fault = None
        if self._faults:
            fault = self._faults.next(path)
            if fault is not None:
                self.faults += 1
                if record is not None:
                    record.fault = fault
        delay = self.latency + (fault.delay if fault is not None else 0.0)
        fkind = fault.kind if fault is not None else "ok"
        if delay <= 0 and fkind != "hang":
            if fkind == "reset":
                conn.close_by_server(abort=True, rst=True)
                return
            reply = self._build(kind, req, fault)
            if reply.events is None or self.chunk_delay <= 0:
                conn.send(reply, req.keep_alive)
                return
            coro = conn.send_paced(reply, req.keep_alive, self.chunk_delay)
            self._start_task(conn, self._run(conn, coro))
            return
        self._start_task(conn, self._later(conn, req, kind, fault, delay))

    def _start_task(self, conn: Connection, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        conn.task = task
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.errors.append(task.exception())  # type: ignore[arg-type]
        self._notify()

    async def _run(self, conn: Connection, coro: Any) -> None:
        await coro
        conn.task = None
        conn.pump()

    async def _later(
        self, conn: Connection, req: ParsedRequest, kind: Route, fault: Fault | None, delay: float
    ) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        if fault is not None and fault.kind == "hang":
            await asyncio.get_running_loop().create_future()  # until cancelled
        if conn.closed:
            return
        if fault is not None and fault.kind == "reset":
            conn.close_by_server(abort=True, rst=True)
            return
        reply = self._build(kind, req, fault)
        await conn.send_paced(reply, req.keep_alive, self.chunk_delay)
        conn.task = None
        conn.pump()

    def _build(self, kind: Route, req: ParsedRequest, fault: Fault | None) -> Reply:
        try:
            extra = self._window.headers(self._clock.now()) if self.ratelimit_headers else None
            return build_reply(
                kind,
                req.body,
                fault,
                rid=self._next_id(),
                created=int(self._clock.time()),
                reply=self.reply,
                seed=self.seed,
                stream_chunks=self.stream_chunks,
                extra_headers=extra,
                structured=self.structured,
                cache=self.prompt_cache,
            )
        except Exception as exc:  # a bug in the fake: answer 500 and keep it for the test
            self.errors.append(exc)
            return Reply(500, [JSON], _formats.openai_error(500, f"fake server bug: {exc!r}"))

    def _next_id(self) -> str:
        self._ids += 1
        return f"{self._prefix}{self._ids:08d}"

    def _other_route(self, req: ParsedRequest, path: str, kind: Route | None) -> Reply:
        batch_reply = self.batches.route(self, req, path)
        if batch_reply is not None:
            return batch_reply
        if path == "/health" and req.method == "GET":
            return Reply(200, [JSON], b'{"status":"ok"}')
        if path == "/_fake/stats" and req.method == "GET":
            stats = asdict(self.statistics())
            stats["in_flight"] -= 1  # not this very request
            return Reply(200, [JSON], dumps(stats))
        if path == "/_fake/reset" and req.method == "POST":
            self.reset_stats()
            self.clear_faults()
            return Reply(200, [JSON], b'{"status":"ok"}')
        return no_route_reply(req.method, path, kind)

    # -- rate limiting ----------------------------------------------------------

    def _admit(self, req: ParsedRequest) -> Reply | None:
        """A 429 refusal when over ``rate_limit_rpm``, else ``None`` (admitted)."""
        now = self._clock.now()
        wait = self._window.admit(now, max(1, len(req.body) // 4))
        if wait is None:
            return None
        self.rate_limited += 1
        route = route_of(req.target.partition("?")[0])
        assert route is not None  # only API routes are admitted
        return rate_limited_reply(wait, self._window.headers(now), route, self._next_id())
