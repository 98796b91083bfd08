"""Redirects: no request, key or prompt ever leaves the configured origin.

A provider that answers ``301/302/303/307/308`` gets a typed
``RedirectError`` naming the ``Location``'s origin; the redirect is not
followed, to another host or to the same one (an LLM call is a POST that
costs money: it is never re-sent behind the caller's back). The other
host's answer can therefore never come back as the provider's.
"""

from __future__ import annotations

import pytest

from aio_llm import errors
from aio_llm.errors import APIStatusError, LLMError

from .conftest import KEY, PROMPT, client_for
from .leakcheck import assert_clean
from .rawserver import Conn, RawServer, Seen, json_answer

REDIRECTS = (301, 302, 303, 307, 308)


async def _other_host(req: Seen, conn: Conn) -> None:
    # were a request to arrive here, its answer would look like the provider's
    await conn.full(200, json_answer(req, "answer from another host"))


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
@pytest.mark.parametrize("same_origin", [False, True], ids=["other-origin", "same-origin"])
async def test_redirects_are_never_followed(
    kind: str, transport: str, stream: bool, same_origin: bool
) -> None:
    async with RawServer(_other_host) as other:
        status_of: dict[str, int] = {}

        async def redirect(req: Seen, conn: Conn) -> None:
            where = (srv.url if same_origin else other.url) + "/v1/elsewhere?x=1"
            await conn.full(
                status_of["now"],
                b"",
                {"Location": where, "X-Echo": req.headers.get("x-api-key", "")},
            )

        async with RawServer(redirect) as srv:
            async with client_for(kind, srv, transport) as client:
                for status in REDIRECTS:
                    status_of["now"] = status
                    messages = [{"role": "user", "content": PROMPT}]
                    with pytest.raises(LLMError) as info:
                        if stream:
                            async with client.stream(messages, max_tokens=16) as s:
                                await s.text()
                        else:
                            await client.chat(messages, max_tokens=16)
                    exc = info.value
                    assert other.requests == [], f"{status} was followed to another host"
                    assert isinstance(exc, APIStatusError) and exc.status_code == status
                    assert isinstance(exc, errors.RedirectError)
                    target = srv.url if same_origin else other.url
                    assert exc.location_origin == target
                    assert target in str(exc)
                    assert "/v1/elsewhere" not in str(exc)  # the origin only
                    assert_clean(exc, secrets=(KEY,))
            # one request per status: nothing re-sent, on the same origin either
            assert len(srv.requests) == len(REDIRECTS)


@pytest.mark.anyio
async def test_embeddings_redirect_is_not_followed(transport: str) -> None:
    async with RawServer(_other_host) as other:

        async def redirect(req: Seen, conn: Conn) -> None:
            await conn.full(307, b"", {"Location": other.url + "/v1/embeddings"})

        async with RawServer(redirect) as srv:
            async with client_for("openai", srv, transport) as client:
                with pytest.raises(errors.RedirectError):
                    await client.embed([PROMPT], model="text-embedding-3-small")
    assert other.requests == []
