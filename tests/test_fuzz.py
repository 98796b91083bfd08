"""Bad input never crashes aio_llm: Hypothesis fuzzes the public API and the codecs.

Messages, parameters, ``ClientConfig`` values, ``LLM_*`` environment
values and provider payloads (random JSON, random bytes, recorded SSE cut at
random places) may only ever produce a result or a typed error: a
``ValueError`` (``InvalidRequestError``, ``ConfigurationError`` and pydantic's
``ValidationError`` are ones) or another ``LLMError``. Input the client
refuses is refused before anything is sent: the ``FakeLLMServer`` counts no
request for it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anyio.from_thread
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from aio_llm import AsyncLLMClient, ChatRequest, ClientConfig, LLMError
from aio_llm.config import env_name
from aio_llm.errors import APIError
from aio_llm.providers import create_provider
from aio_llm.testing import FakeLLMServer
from aio_llm.transports.sse import SSEDecoder, SSEEvent
from tests.conftest import all_fixtures, load_fixture

API_KEY = "sk-fuzz-test-0000"
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# -- strategies ---------------------------------------------------------------------


def mostly(valid: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Valid values three times in four: invalid input is caught early, so most must pass."""
    return st.integers(0, 3).flatmap(lambda i: valid if i < 3 else other | st.none())


texts = mostly(
    st.text(max_size=20),
    st.text(st.characters(categories=["Cs", "Co", "Cc"]), max_size=5)  # lone surrogates...
    | st.sampled_from(["", " ", "user", "assistant", "system", "tool", "developer", "\x00"]),
)
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
)
json_values = st.recursive(
    st.none() | st.booleans() | numbers | texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=12,
)
anything = st.one_of(json_values, st.binary(max_size=8), st.just(object()), st.just(math.nan))
roles = st.sampled_from(["user", "assistant", "system", "tool", "developer", "robot", ""])
content_parts = st.lists(
    st.one_of(
        st.fixed_dictionaries({"type": st.just("text"), "text": texts}),
        st.fixed_dictionaries(
            {"type": st.just("image_url"), "image_url": st.fixed_dictionaries({"url": texts})}
        ),
        st.dictionaries(texts, json_values, max_size=3),
    ),
    max_size=3,
)
valid_messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "system"]), "content": texts}
    ),
    min_size=1,
    max_size=3,
)
odd_messages = st.lists(
    st.fixed_dictionaries(
        {"role": roles, "content": st.one_of(texts, content_parts, st.none(), numbers)},
        optional={
            "name": texts,
            "tool_call_id": texts,
            "tool_calls": st.lists(st.dictionaries(texts, json_values, max_size=3), max_size=2),
            "extra_field": json_values,
        },
    ),
    max_size=4,
)
messages = mostly(valid_messages, odd_messages | st.lists(anything, max_size=3) | anything)
tool = st.fixed_dictionaries(
    {
        "type": st.just("function"),
        "function": st.fixed_dictionaries(
            {"name": texts, "parameters": st.dictionaries(texts, json_values, max_size=2)}
        ),
    }
)


param_values: dict[str, st.SearchStrategy[Any]] = {
    "temperature": mostly(st.floats(0, 2), numbers | texts),
    "top_p": mostly(st.floats(0, 1), numbers),
    "max_tokens": mostly(st.integers(1, 4096), numbers | texts),
    "stop": mostly(texts | st.lists(texts, max_size=3), numbers),
    "tools": mostly(st.lists(tool, max_size=2), st.lists(st.dictionaries(texts, json_values))),
    "tool_choice": mostly(st.sampled_from(["auto", "none", "required"]), texts | json_values),
    "response_format": mostly(st.just({"type": "json_object"}), st.dictionaries(texts, texts)),
    "seed": mostly(st.integers(), numbers | texts),
    "user": mostly(texts, numbers),
    "metadata": mostly(st.dictionaries(texts, json_values, max_size=3), anything),
    "extra": mostly(st.dictionaries(texts, json_values, max_size=2), anything),
    "timeout": mostly(st.floats(0.01, 10), numbers),
    "provider": mostly(st.just("openai"), texts),
    "cache": mostly(st.booleans(), texts),
    "cache_ttl": mostly(st.floats(1, 100), numbers),
    "model": mostly(st.just("gpt-4o-mini"), texts | numbers),
    "stream": st.booleans(),
    "bogus_param": anything,
}
params = st.dictionaries(st.sampled_from(sorted(param_values)), st.none(), max_size=4).flatmap(
    lambda keys: st.fixed_dictionaries({k: param_values[k] for k in keys})
)


def is_typed(exc: BaseException) -> bool:
    return isinstance(exc, ValueError | LLMError)


# -- one server and one client (default chain) for every example -------------------------


@dataclass
class Env:
    portal: anyio.from_thread.BlockingPortal
    server: FakeLLMServer
    client: AsyncLLMClient

    def sent(self) -> int:
        return self.portal.call(lambda: _count(self.server))


async def _count(server: FakeLLMServer) -> int:
    return server.request_count


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    with anyio.from_thread.start_blocking_portal() as portal:
        with portal.wrap_async_context_manager(FakeLLMServer()) as server:
            client = AsyncLLMClient(
                "openai",
                api_key=API_KEY,
                base_url=server.openai_url,
                model="gpt-4o-mini",
                config=ClientConfig(timeout=10.0, max_retries=0, cache_enabled=True),
            )
            with portal.wrap_async_context_manager(client):
                yield Env(portal, server, client)


async def _chat(client: AsyncLLMClient, msgs: Any, kwargs: dict[str, Any]) -> str:
    if kwargs.get("stream"):
        async with client.stream(msgs, **kwargs) as s:
            return await s.text()
    return (await client.chat(msgs, **kwargs)).content


@FUZZ
@given(msgs=messages, kwargs=params)
def test_chat_input_gives_a_result_or_a_typed_error(
    env: Env, msgs: Any, kwargs: dict[str, Any]
) -> None:
    before = env.sent()
    try:
        env.portal.call(_chat, env.client, msgs, kwargs)
    except Exception as exc:
        assert is_typed(exc), repr(exc)
        if isinstance(exc, ValueError):  # refused up front: nothing went out
            assert env.sent() == before, repr(exc)
    assert API_KEY not in repr(env.client)


@FUZZ
@given(requests=st.lists(st.dictionaries(st.sampled_from(sorted(param_values)), anything)))
def test_gather_validates_every_request_before_sending(
    env: Env, requests: list[dict[str, Any]]
) -> None:
    assume(requests)
    before = env.sent()
    with pytest.raises(ValueError):  # no "messages" with valid roles in these dicts
        env.portal.call(
            lambda: env.client.gather([*requests, {"messages": 42}], return_exceptions=True)
        )
    assert env.sent() == before


def test_valid_input_is_sent(env: Env) -> None:
    """The fuzz above does reach the server when the input is valid."""
    before = env.sent()
    text = env.portal.call(_chat, env.client, [{"role": "user", "content": "fuzz"}], {})
    assert text == "Echo: fuzz" and env.sent() == before + 1


# -- configuration ---------------------------------------------------------------------

config_values: dict[str, st.SearchStrategy[Any]] = dict.fromkeys(
    ClientConfig.model_fields, anything | texts | numbers
)


@FUZZ
@given(
    values=st.dictionaries(st.sampled_from(sorted(config_values)), st.none(), max_size=4).flatmap(
        lambda keys: st.fixed_dictionaries({k: config_values[k] for k in keys})
    ),
    base_url=st.none() | texts | st.sampled_from(["ftp://x", "file:///etc", "localhost:8000"]),
    provider=st.none() | texts,
)
def test_config_and_client_construction(
    values: dict[str, Any], base_url: str | None, provider: str | None
) -> None:
    try:
        config = ClientConfig(**values)
        AsyncLLMClient(provider, api_key=API_KEY, base_url=base_url, config=config)
    except Exception as exc:
        assert is_typed(exc), repr(exc)
        assert API_KEY not in str(exc)


env_keys = st.sampled_from(sorted(env_name(f) for f in ClientConfig.model_fields))
env_texts = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["", "1", "0", "true", "none", "-1", "nan", "inf", "1e309", "[", "[{}]"]),
    st.sampled_from(['[{"provider": 1}]', "a:b,c", "redis", "memory", "x" * 300]),
    st.integers().map(str),
    st.floats().map(repr),
)


@FUZZ
@given(environ=st.dictionaries(env_keys, env_texts, max_size=6))
def test_from_env_raises_only_configuration_errors(environ: dict[str, str]) -> None:
    from aio_llm.errors import ConfigurationError

    try:
        ClientConfig.from_env(environ)
    except ConfigurationError:
        pass


# -- provider payloads ---------------------------------------------------------------------

PROVIDERS = ["openai", "anthropic", "openrouter"]
REQUEST = ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}])
STREAM_REQUEST = REQUEST.model_copy(update={"stream": True})


def _provider(kind: str) -> Any:
    return create_provider(kind, api_key=API_KEY)


def _check_decode(kind: str, status: int, body: bytes) -> None:
    provider = _provider(kind)
    headers = {"content-type": "application/json", "retry-after": "abc"}
    try:
        provider.decode_chat(REQUEST, status, headers, body)
    except Exception as exc:
        assert isinstance(exc, LLMError), repr(exc)
        assert API_KEY not in str(exc)
    err = provider.decode_error(status if status >= 400 else 500, headers, body)
    assert isinstance(err, APIError) and API_KEY not in str(err)


@FUZZ
@given(
    kind=st.sampled_from(PROVIDERS),
    status=st.sampled_from([200, 201, 400, 401, 429, 500, 529]),
    payload=json_values,
)
def test_decode_chat_of_random_json(kind: str, status: int, payload: Any) -> None:
    try:
        body = json.dumps(payload).encode()
    except (ValueError, TypeError):
        body = repr(payload).encode("utf-8", "surrogatepass")
    _check_decode(kind, status, body)


@FUZZ
@given(kind=st.sampled_from(PROVIDERS), body=st.binary(max_size=64))
def test_decode_chat_of_random_bytes(kind: str, body: bytes) -> None:
    _check_decode(kind, 200, body)


def _shaped_payloads() -> st.SearchStrategy[Any]:
    """JSON close to the real shapes, with fields of the wrong type."""
    return st.fixed_dictionaries(
        {},
        optional={
            "id": json_values,
            "type": st.sampled_from(["message", "error", "content_block_delta"]) | json_values,
            "choices": st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "message": st.dictionaries(
                            st.sampled_from(["role", "content", "tool_calls"]), json_values
                        ),
                        "delta": st.dictionaries(
                            st.sampled_from(["content", "tool_calls", "reasoning"]), json_values
                        ),
                        "finish_reason": json_values,
                        "index": json_values,
                    },
                ),
                max_size=2,
            )
            | json_values,
            "content": st.lists(
                st.dictionaries(
                    st.sampled_from(["type", "text", "id", "name", "input"]), json_values
                ),
                max_size=2,
            )
            | json_values,
            "usage": st.dictionaries(
                st.sampled_from(["prompt_tokens", "completion_tokens", "input_tokens", "cost"]),
                json_values,
            )
            | json_values,
            "delta": st.dictionaries(st.sampled_from(["type", "text", "stop_reason"]), json_values),
            "message": st.dictionaries(st.sampled_from(["id", "usage", "model"]), json_values),
            "index": json_values,
            "content_block": st.dictionaries(st.sampled_from(["type", "text", "id"]), json_values),
            "error": json_values,
            "stop_reason": json_values,
            "model": json_values,
        },
    )


@FUZZ
@given(kind=st.sampled_from(PROVIDERS), payload=_shaped_payloads())
def test_decode_chat_of_nearly_right_json(kind: str, payload: dict[str, Any]) -> None:
    _check_decode(kind, 200, json.dumps(payload).encode())


def _feed_all(kind: str, events: list[SSEEvent]) -> None:
    decoder = _provider(kind).stream_decoder(STREAM_REQUEST)
    try:
        for event in events:
            decoder.feed(event)
            if decoder.done:
                break
    except Exception as exc:
        assert isinstance(exc, LLMError), repr(exc)
        assert API_KEY not in str(exc)
    try:
        decoder.build_response()
    except Exception as exc:
        assert isinstance(exc, LLMError), repr(exc)


event_names = st.sampled_from(
    [
        "",
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
        "ping",
        "error",
    ]
)


@FUZZ
@given(
    kind=st.sampled_from(PROVIDERS),
    events=st.lists(st.tuples(event_names, st.one_of(_shaped_payloads(), json_values)), max_size=6),
)
def test_stream_decoder_of_random_events(kind: str, events: list[tuple[str, Any]]) -> None:
    sse = []
    for name, payload in events:
        try:
            data = json.dumps(payload)
        except (ValueError, TypeError):
            data = "{not json"
        sse.append(SSEEvent(name, data))
    _feed_all(kind, sse)


STREAMS = [
    name for name in all_fixtures() if "stream" in name and not name.startswith("openai-embed")
]


@FUZZ
@given(name=st.sampled_from(STREAMS), data=st.data())
def test_recorded_streams_cut_anywhere(name: str, data: st.DataObject) -> None:
    recording = load_fixture(name)
    kind = recording["provider"]
    if kind not in PROVIDERS:
        kind = "openai"
    raw = recording["response"]["body_text"].encode()
    cut = data.draw(st.integers(min_value=0, max_value=len(raw)), label="cut")
    pieces = data.draw(st.lists(st.integers(1, 64), max_size=8), label="chunking")
    parser = SSEDecoder()
    events: list[SSEEvent] = []
    body, pos = raw[:cut], 0
    for size in pieces:
        events.extend(parser.feed(body[pos : pos + size]))
        pos += size
    events.extend(parser.feed(body[pos:]))
    events.extend(parser.flush())
    _feed_all(kind, events)
