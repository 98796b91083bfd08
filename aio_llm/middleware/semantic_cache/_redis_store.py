"""``RedisStore``: semantic cache entries and outcomes shared by every process through Redis.

Every entry (vector included) lives in Redis, so every process serves what
any process stored, and the observed outcomes (the ``ErrorBound`` counts
and each entry's record) are shared too. Each process mirrors the vectors
in a local ``VectorIndex``, synchronised from an append log (a sorted set
by sequence number) before each lookup, so a lookup is still a local matrix
product plus one small Redis read. Keys, under
``aio_llm:semantic:<namespace>:``: ``seq`` (counter), ``log`` (ids by
sequence), ``e:<id>`` (hash: partition, vector, question, answer, the
entry's record; expires with the entry), ``bins`` (the outcome counts).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..._extras import require_numpy
from ..._json import dumps, loads
from ...clock import SYSTEM_CLOCK, Clock
from ...types import ChatResponse
from ._bound import EntryRecord, ErrorBound, Policy
from ._store import Candidate, _index

if TYPE_CHECKING:
    from ...embeddings._index import VectorIndex

__all__ = ["RedisStore"]


_WRONG_MAX_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local now = tonumber(redis.call('HGET', KEYS[1], 'wm') or '-1')
if tonumber(ARGV[1]) > now then redis.call('HSET', KEYS[1], 'wm', ARGV[1]) end
return 1
"""


class RedisStore:
    """Entries shared by every process through Redis (see the module doc).

    ``url`` is a ``redis://`` URL; ``namespace`` separates caches that must
    not share entries (the partition key already separates tenants, models
    and parameters). ``max_entries`` bounds the shared log (oldest out
    first) and each process's mirror. Redis being down makes lookups miss
    and stores do nothing (one warning per outage), never a failed request.
    """

    __slots__ = (
        "_clock",
        "_errors",
        "_index",
        "_known",
        "_link",
        "_next_refresh",
        "_seq",
        "max_entries",
        "prefix",
        "refresh_interval",
    )

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "default",
        max_entries: int = 100_000,
        refresh_interval: float = 1.0,
        timeout: float = 0.5,
        retry_interval: float = 5.0,
        clock: Clock | None = None,
    ) -> None:
        from .._redis_limits import _errors, _RedisLink

        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        require_numpy("the semantic cache")
        self._clock = clock or SYSTEM_CLOCK
        self._link = _RedisLink(
            url,
            timeout=timeout,
            retry_interval=retry_interval,
            clock=self._clock,
            feature="the semantic cache's Redis store",
        )
        self._errors = _errors()
        self.prefix = f"aio_llm:semantic:{namespace}:"
        self.max_entries = max_entries
        self.refresh_interval = refresh_interval
        self._index: VectorIndex | None = None
        self._known: dict[str, int] = {}
        self._seq = 0.0
        self._next_refresh = -math.inf

    # -- keys -------------------------------------------------------------------
    def _entry_key(self, entry_id: str) -> str:
        return f"{self.prefix}e:{entry_id}"

    # -- the mirror -------------------------------------------------------------
    async def _sync(self, client: Any) -> None:
        np = require_numpy("the semantic cache")
        now = self._clock.now()
        while True:
            rows = await client.zrangebyscore(
                self.prefix + "log", f"({self._seq!r}", "+inf", start=0, num=512, withscores=True
            )
            if not rows:
                return
            fresh = [(raw.decode(), seq) for raw, seq in rows if raw.decode() not in self._known]
            if fresh:
                pipe = client.pipeline(transaction=False)
                for entry_id, _ in fresh:
                    pipe.hmget(self._entry_key(entry_id), "p", "v")
                    pipe.pttl(self._entry_key(entry_id))
                answers = await pipe.execute()
                for i, (entry_id, _) in enumerate(fresh):
                    (part, vec), ttl_ms = answers[2 * i], answers[2 * i + 1]
                    if part is None or vec is None or ttl_ms is None or ttl_ms <= 0:
                        continue
                    vector = np.frombuffer(vec, dtype=np.float32)
                    index = self._index = _index(self._index, len(vector), self.max_entries)
                    if len(vector) != index.dim:
                        continue
                    local = index.add(
                        part.decode(), vector, entry_id, expires_at=now + ttl_ms / 1000
                    )
                    self._known[entry_id] = local
            self._seq = max(self._seq, rows[-1][1])
            if len(rows) < 512:
                return

    def _forget(self, entry_id: str) -> None:
        local = self._known.pop(entry_id, None)
        if local is not None and self._index is not None:
            self._index.remove(local)

    async def nearest(
        self, partition: str, vector: Sequence[float], *, floor: float
    ) -> Candidate | None:
        link = self._link
        if not link.available():
            return None
        try:
            client = link.client()
            await self._sync(client)
            index = self._index
            if index is None:
                return None
            if len(self._known) > 2 * self.max_entries:  # ids the mirror evicted
                live = {i for i in self._known if self._known[i] in index}
                self._known = {i: self._known[i] for i in live}
            for _ in range(4):
                found = index.search(partition, vector, threshold=floor, now=self._clock.now())
                if found is None:
                    return None
                score, entry_id = found
                q, r, wm, ok = await client.hmget(self._entry_key(entry_id), "q", "r", "wm", "ok")
                if q is None or r is None:  # expired or evicted elsewhere
                    self._forget(entry_id)
                    continue
                link.ok()
                record = EntryRecord(
                    float(wm) if wm is not None else -math.inf, loads(ok) if ok else ()
                )
                response = ChatResponse.model_validate(loads(r))
                return Candidate(entry_id, score, q.decode(), record, response)
        except self._errors as exc:
            link.failed(exc, "the semantic cache misses until it returns")
        except ValueError:  # an entry that does not decode: a miss
            return None
        return None

    async def add(
        self,
        partition: str,
        vector: Sequence[float],
        question: str,
        response: ChatResponse,
        ttl: float,
    ) -> None:
        link = self._link
        if not link.available():
            return
        np = require_numpy("the semantic cache")
        vec = np.asarray(vector, dtype=np.float32).reshape(-1)
        try:
            client = link.client()
            seq = await client.incr(self.prefix + "seq")
            entry_id = str(seq)
            key = self._entry_key(entry_id)
            fields = {
                "p": partition,
                "v": vec.tobytes(),
                "q": question,
                "r": dumps(response.model_dump(mode="json")),
            }
            pipe = client.pipeline(transaction=True)
            pipe.hset(key, mapping=fields)
            pipe.pexpire(key, max(1, int(ttl * 1000)))
            pipe.zadd(self.prefix + "log", {entry_id: seq})
            pipe.zcard(self.prefix + "log")
            *_, size = await pipe.execute()
            if size > self.max_entries:
                old = await client.zrange(self.prefix + "log", 0, size - self.max_entries - 1)
                if old:
                    pipe = client.pipeline(transaction=False)
                    pipe.zrem(self.prefix + "log", *old)
                    pipe.delete(*(self._entry_key(o.decode()) for o in old))
                    await pipe.execute()
            link.ok()
        except self._errors as exc:
            link.failed(exc, "the semantic cache stores nothing until it returns")

    async def outcome(self, candidate: Candidate, correct: bool, bound: Policy) -> None:
        bound.observe(candidate.score, correct, candidate.record)
        link = self._link
        if not link.available():
            return
        b = ErrorBound.bin(candidate.score)
        key = self._entry_key(str(candidate.entry))
        try:
            client = link.client()
            pipe = client.pipeline(transaction=False)
            pipe.hincrby(self.prefix + "bins", f"t{b}", 1)
            if correct:
                pipe.hset(key, "ok", dumps(candidate.record.ok))  # last writer wins
            else:
                pipe.hincrby(self.prefix + "bins", f"w{b}", 1)
                pipe.eval(_WRONG_MAX_SCRIPT, 1, key, repr(candidate.score))
            await pipe.execute()
            link.ok()
        except self._errors as exc:
            link.failed(exc, "outcomes are kept locally until it returns")

    async def refresh(self, bound: Policy) -> None:
        """Load the shared outcome counts into ``bound`` (at most every ``refresh_interval``)."""
        link = self._link
        now = self._clock.now()
        if not isinstance(bound, ErrorBound) or now < self._next_refresh or not link.available():
            return
        self._next_refresh = now + self.refresh_interval
        try:
            counts = await link.client().hgetall(self.prefix + "bins")
            link.ok()
        except self._errors as exc:
            link.failed(exc, "outcomes are kept locally until it returns")
            return
        total = [0] * len(bound.total)
        wrong = [0] * len(bound.wrong)
        for field, value in counts.items():
            name = field.decode()
            b = int(name[1:])
            if 0 <= b < len(total):
                (total if name[0] == "t" else wrong)[b] = int(value)
        bound.load_counts(total, wrong)

    async def clear(self) -> None:
        """Delete every entry and outcome of this namespace (tests, resets)."""
        client = self._link.client()
        keys = [k async for k in client.scan_iter(match=self.prefix + "*", count=1000)]
        if keys:
            await client.delete(*keys)
        self._known.clear()
        self._seq = 0.0
        if self._index is not None:
            self._index.clear()

    async def aclose(self) -> None:
        await self._link.aclose()

    def __len__(self) -> int:
        return len(self._known)

    def __repr__(self) -> str:
        return f"RedisStore(prefix={self.prefix!r}, mirrored={len(self._known)})"
