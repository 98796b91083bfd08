"""The clients the benchmark compares, each behind one ``call(i)`` coroutine.

``open_client(name, urls, concurrency)`` returns a ``Client``: ``call(i)``
sends request ``i`` (a distinct prompt per ``i``, so neither deduplication nor
a cache can fold requests together) and returns what it read (the answer text
or the number of stream chunks); ``aclose()`` releases the connections.
Every client sends the same JSON body to the same fake server.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "claude-3-5-haiku-latest"
AUTH = {"Authorization": "Bearer x"}
REPLY = "Hello there! " * 6
"""The fake server's fixed answer: long enough for 20 stream chunks."""
STREAM_CHUNKS = 20


def prompt(i: int) -> str:
    return f"Say hello, request {i}"


def messages(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt(i)}]


@dataclass
class Client:
    call: Callable[[int], Awaitable[object]]
    aclose: Callable[[], Awaitable[None]]


async def _noop() -> None:
    return None


# -- raw HTTP ---------------------------------------------------------------------


async def _raw_aiohttp(urls: dict[str, str], c: int, stream: bool) -> Client:
    import aiohttp

    # The default connector holds 100 connections; size it for the concurrency.
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=max(100, c)))
    url = urls["openai"] + "/chat/completions"
    loads = json.loads

    async def call(i: int) -> object:
        body = {"model": MODEL, "messages": messages(i)}
        async with session.post(url, json=body, headers=AUTH) as resp:
            resp.raise_for_status()
            data = await resp.json()
        return data["choices"][0]["message"]["content"]

    async def call_stream(i: int) -> object:
        body = {
            "model": MODEL,
            "messages": messages(i),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        chunks = 0
        async with session.post(url, json=body, headers=AUTH) as resp:
            resp.raise_for_status()
            async for line in resp.content:
                if not line.startswith(b"data: "):
                    continue
                payload = line[6:].strip()
                if payload == b"[DONE]":
                    break
                event = loads(payload)
                if event.get("choices") and event["choices"][0]["delta"].get("content"):
                    chunks += 1
        return chunks

    return Client(call_stream if stream else call, session.close)


async def _raw_httpx(urls: dict[str, str], c: int, stream: bool) -> Client:
    import httpx

    client = httpx.AsyncClient(
        limits=httpx.Limits(max_connections=c, max_keepalive_connections=c), timeout=60.0
    )
    url = urls["openai"] + "/chat/completions"

    async def call(i: int) -> object:
        body = {"model": MODEL, "messages": messages(i)}
        resp = await client.post(url, json=body, headers=AUTH)
        resp.raise_for_status()
        return resp.json()["choices"][0]["message"]["content"]

    return Client(call, client.aclose)


# -- official SDKs and LiteLLM ----------------------------------------------------


async def _openai_sdk(urls: dict[str, str], c: int, stream: bool) -> Client:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=urls["openai"], api_key="x", max_retries=0)
    create = client.chat.completions.create

    async def call(i: int) -> object:
        resp = await create(model=MODEL, messages=messages(i))  # type: ignore[arg-type]
        return resp.choices[0].message.content

    async def call_stream(i: int) -> object:
        chunks = 0
        s = await create(
            model=MODEL,
            messages=messages(i),  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in s:
            if chunk.choices and chunk.choices[0].delta.content:
                chunks += 1
        return chunks

    return Client(call_stream if stream else call, client.close)


async def _anthropic_sdk(urls: dict[str, str], c: int, stream: bool) -> Client:
    from anthropic import AsyncAnthropic

    client = AsyncAnthropic(base_url=urls["anthropic"], api_key="x", max_retries=0)
    create = client.messages.create

    async def call(i: int) -> object:
        resp = await create(model=ANTHROPIC_MODEL, max_tokens=256, messages=messages(i))  # type: ignore[arg-type]
        return resp.content[0].text  # type: ignore[union-attr]

    return Client(call, client.close)


async def _litellm(urls: dict[str, str], c: int, stream: bool) -> Client:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network at import
    import litellm

    litellm.telemetry = False
    base = urls["openai"]

    async def call(i: int) -> object:
        resp = await litellm.acompletion(
            model="openai/" + MODEL,
            messages=messages(i),
            api_base=base,
            api_key="x",
            max_retries=0,
        )
        return resp.choices[0].message.content

    return Client(call, _noop)


# -- aio_llm ------------------------------------------------------------------------


async def _aio_llm(
    urls: dict[str, str],
    c: int,
    stream: bool,
    *,
    transport: str,
    bare: bool,
    cache: bool = False,
    prebuilt: bool = False,
) -> Client:
    from aio_llm import AsyncLLMClient, ClientConfig

    options: dict[str, Any] = {"transport": transport, "cache_enabled": cache}
    if transport == "httpx":
        options["max_connections"] = c  # configured as the raw httpx client is
    elif c > 512:
        options["max_connections"] = c  # a pool as large as the raw aiohttp session's
    client = AsyncLLMClient(
        "openai",
        api_key="x",
        base_url=urls["openai"],
        config=ClientConfig(**options),
        middleware=[] if bare else None,
    )
    await client.__aenter__()
    chat = client.chat

    async def call(i: int) -> object:
        resp = await chat(messages(i), model=MODEL)
        return resp.content

    async def call_stream(i: int) -> object:
        chunks = 0
        async with client.stream(messages(i), model=MODEL) as s:
            async for chunk in s:
                if chunk.delta:
                    chunks += 1
        return chunks

    async def close() -> None:
        await client.__aexit__(None, None, None)

    if cache:
        # an exact-cache hit: the same request every time
        if prebuilt:
            request = client.build_request(messages(0), model=MODEL)

            async def call_hit(i: int) -> object:
                return (await chat(request=request)).content

        else:

            async def call_hit(i: int) -> object:
                return (await chat(messages(0), model=MODEL)).content

        return Client(call_hit, close)
    return Client(call_stream if stream else call, close)


def _aio(transport: str, bare: bool, **kw: bool) -> Callable[..., Awaitable[Client]]:
    async def make(urls: dict[str, str], c: int, stream: bool) -> Client:
        return await _aio_llm(urls, c, stream, transport=transport, bare=bare, **kw)

    return make


FACTORIES: dict[str, Callable[[dict[str, str], int, bool], Awaitable[Client]]] = {
    "raw_aiohttp": _raw_aiohttp,
    "raw_httpx": _raw_httpx,
    "openai_sdk": _openai_sdk,
    "anthropic_sdk": _anthropic_sdk,
    "litellm": _litellm,
    "aio_bare_aiohttp": _aio("aiohttp", True),
    "aio_default_aiohttp": _aio("aiohttp", False),
    "aio_bare_httpx": _aio("httpx", True),
    "aio_default_httpx": _aio("httpx", False),
    "aio_cache_hit": _aio("aiohttp", False, cache=True),
    "aio_cache_hit_prebuilt": _aio("aiohttp", False, cache=True, prebuilt=True),
}

LABELS = {
    "raw_aiohttp": "raw aiohttp `ClientSession.post` + `json()`",
    "raw_httpx": "raw httpx `AsyncClient.post` + `json()`",
    "openai_sdk": "official openai SDK",
    "anthropic_sdk": "official anthropic SDK",
    "litellm": "LiteLLM `acompletion`",
    "aio_bare_aiohttp": "aio_llm bare chain (`middleware=[]`), aiohttp",
    "aio_default_aiohttp": "aio_llm default chain, aiohttp",
    "aio_bare_httpx": "aio_llm bare chain (`middleware=[]`), httpx",
    "aio_default_httpx": "aio_llm default chain, httpx",
    "raw_aiohttp@stream": "raw aiohttp streaming (20 chunks, line by line)",
    "openai_sdk@stream": "openai SDK streaming (20 chunks)",
    "aio_bare_aiohttp@stream": "aio_llm bare chain streaming (20 chunks), aiohttp",
    "aio_default_aiohttp@stream": "aio_llm default chain streaming (20 chunks), aiohttp",
}

# Rows that need a package which may be missing: (row, module to import).
OPTIONAL = {"anthropic_sdk": "anthropic", "litellm": "litellm"}


def spawn_pinned_server() -> tuple[Any, dict[str, str], int | None]:
    """The fake server on the first core: ``(server, urls, core for the client or None)``."""
    from aio_llm.testing import FakeLLMServer

    cpus = sorted(os.sched_getaffinity(0))
    srv = FakeLLMServer.spawn(reply=REPLY, stream_chunks=STREAM_CHUNKS, record_limit=0)
    core = None
    if len(cpus) >= 2:
        os.sched_setaffinity(srv.pid, {cpus[0]})
        core = cpus[1]
    return srv, {"openai": srv.openai_url, "anthropic": srv.url}, core


async def open_client(name: str, urls: dict[str, str], c: int) -> Client:
    """The client ``name`` (``row`` or ``row@stream``) sized for ``c`` requests in flight."""
    base, _, mode = name.partition("@")
    return await FACTORIES[base](urls, c, mode == "stream")
