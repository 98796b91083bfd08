"""Embeddings against a misbehaving server: every error is an ``LLMError``, and one bad
caller in a merged batch fails alone.

Concurrent ``embed`` calls are merged into one upstream request. When that
request fails for a reason one caller's input may have caused (a 400 for
one text, a wrong number of vectors, a 5xx), each caller is retried alone,
so only the callers whose own request fails see an error.
"""

from __future__ import annotations

import json

import anyio
import pytest

from aio_llm import APIResponseError, BadRequestError, LLMError

from .conftest import client_for
from .rawserver import Conn, RawServer, Seen

POISON = "poison text"


def _vectors(texts: list[str]) -> bytes:
    data = [
        {"object": "embedding", "index": i, "embedding": [float(len(t)), 1.0]}
        for i, t in enumerate(texts)
    ]
    return json.dumps(
        {"object": "list", "data": data, "model": "emb", "usage": {"prompt_tokens": 3}}
    ).encode()


async def _picky(req: Seen, conn: Conn) -> None:
    texts = req.json()["input"]
    if POISON in texts:
        body = {"error": {"message": "one input is invalid", "type": "invalid_request_error"}}
        await conn.full(400, json.dumps(body).encode())
    else:
        await conn.full(200, _vectors(texts))


async def _one_at_a_time(req: Seen, conn: Conn) -> None:
    # a buggy server: answers the first text only, whatever it was sent
    await conn.full(200, _vectors(req.json()["input"][:1]))


async def _crash_on_poison(req: Seen, conn: Conn) -> None:
    if POISON in req.json()["input"]:
        await conn.full(500, b"<html>Internal Server Error</html>", content_type="text/html")
    else:
        await conn.full(200, _vectors(req.json()["input"]))


async def _embed_all(client: object, texts: list[str]) -> list[object]:
    results: list[object] = [None] * len(texts)

    async def one(i: int) -> None:
        try:
            results[i] = (await client.embed(texts[i], model="emb")).vectors  # type: ignore[attr-defined]
        except Exception as exc:
            results[i] = exc

    async with anyio.create_task_group() as tg:
        for i in range(len(texts)):
            tg.start_soon(one, i)
    return results


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("handler", "poisoned"),
    [(_picky, BadRequestError), (_crash_on_poison, LLMError)],
    ids=["400-for-one-text", "500-for-one-text"],
)
async def test_one_bad_caller_fails_alone(transport: str, handler: object, poisoned: type) -> None:
    texts = [f"text {i}" for i in range(9)] + [POISON]
    async with RawServer(handler) as srv:  # type: ignore[arg-type]
        async with client_for("openai", srv, transport) as client:
            results = await _embed_all(client, texts)
    assert len(srv.requests[0].json()["input"]) == len(texts), "the calls were not merged"
    for text, result in zip(texts[:-1], results[:-1], strict=True):
        assert result == [[float(len(text)), 1.0]], result
    assert isinstance(results[-1], poisoned)


@pytest.mark.anyio
async def test_a_wrong_number_of_vectors_is_an_llm_error_and_split(transport: str) -> None:
    texts = [f"t{i}" for i in range(10)]
    async with RawServer(_one_at_a_time) as srv:
        async with client_for("openai", srv, transport) as client:
            results = await _embed_all(client, texts)
            assert all(r == [[2.0, 1.0]] for r in results), results
            # a single call with two texts has no one to split from: a typed error
            with pytest.raises(APIResponseError, match="2 texts"):
                await client.embed(["a", "b"], model="emb")


@pytest.mark.anyio
async def test_a_batch_whose_error_no_caller_can_fix_is_not_resent(transport: str) -> None:
    async def unauthorized(req: Seen, conn: Conn) -> None:
        await conn.full(401, b'{"error": {"message": "bad key"}}')

    async with RawServer(unauthorized) as srv:
        async with client_for("openai", srv, transport) as client:
            results = await _embed_all(client, [f"t{i}" for i in range(10)])
    assert all(isinstance(r, LLMError) for r in results)
    assert len(srv.requests) == 1  # a bad key fails every caller alike: no resends
