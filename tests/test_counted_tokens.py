"""count_tokens over loopback, and the rate limiter and the budget fed by counted tokens
(media by their provider's formula, a registered tokenizer where there is one)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from aio_llm import (
    AsyncLLMClient,
    ChatRequest,
    ChatResponse,
    ClientConfig,
    NotFoundError,
)
from aio_llm.cost import CostManager
from aio_llm.middleware import BudgetMiddleware, RateLimit, RateLimitConfig
from aio_llm.testing import FakeLLMServer, Fault
from aio_llm.testing.clock import FakeClock
from aio_llm.tokens import (
    TokenCount,
    count_request_tokens,
    estimate_request_tokens,
    max_request_tokens,
    register_tokenizer,
)
from aio_llm.types import make_response, make_usage
from tests.kinds import make_provider
from tests.media_samples import b64, png

ASK = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "How many moons has Mars?"},
]


@pytest.fixture
def word_tokenizer() -> Iterator[None]:
    register_tokenizer("house-", lambda text: len(text.split()))
    yield
    register_tokenizer("house-", None)


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["anthropic", "gemini", "openai-responses", "bedrock"])
async def test_providers_that_count_are_asked(kind: str, server: FakeLLMServer) -> None:
    async with AsyncLLMClient(make_provider(kind, server), config=ClientConfig()) as c:
        n = await c.count_tokens(ASK, model="m")
        r = await c.chat(ASK, model="m")
        local = await c.count_tokens(ASK, model="m", local=True)
    assert isinstance(n, int) and isinstance(n, TokenCount)
    assert (n.exact, n.source) == (True, "provider")
    assert n == r.usage.input_tokens  # the fake counts as its usage does
    assert server.request_count == 2  # the local count sent nothing
    assert (local.exact, local.source) == (False, "estimate")
    path = server.requests[0].path
    assert path.endswith(
        {
            "anthropic": "/v1/messages/count_tokens",
            "gemini": "/models/m:countTokens",
            "openai-responses": "/responses/input_tokens",
            "bedrock": "/model/m/count-tokens",
        }[kind]
    )


@pytest.mark.anyio
async def test_what_is_counted_is_what_chat_sends(server: FakeLLMServer) -> None:
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64(png(8, 8))}"}}
    tool = {"name": "f", "input_schema": {"type": "object"}}
    async with AsyncLLMClient(make_provider("anthropic", server), config=ClientConfig()) as c:
        n = await c.count_tokens(
            [{"role": "user", "content": [{"type": "text", "text": "one two"}, image]}],
            model="claude-sonnet-4-5",
            tools=[tool],
            max_tokens=10,
            temperature=0.5,
        )
    body = server.last_request.json()
    assert set(body) == {"model", "messages", "tools"}  # count_tokens takes no sampling fields
    assert body["messages"][0]["content"][1]["type"] == "image"
    assert n == 2 + 100


@pytest.mark.anyio
async def test_a_counting_error_is_typed(server: FakeLLMServer) -> None:
    server.enqueue(Fault.status(404, message="model: nope"))
    async with AsyncLLMClient(make_provider("anthropic", server), config=ClientConfig()) as c:
        with pytest.raises(NotFoundError):
            await c.count_tokens(ASK, model="nope")


@pytest.mark.anyio
async def test_local_counts(server: FakeLLMServer, word_tokenizer: None) -> None:
    async with AsyncLLMClient(make_provider("openai", server), config=ClientConfig()) as c:
        exact = await c.count_tokens(ASK, model="house-7b")
        estimate = await c.count_tokens(ASK, model="gpt-4o")
        with_tools = await c.count_tokens(
            ASK, model="house-7b", tools=[{"type": "function", "function": {"name": "f"}}]
        )
    assert server.request_count == 0
    # OpenAI's framing: 3 a message, 3 to prime the reply; then the words
    assert (int(exact), exact.exact, exact.source) == (3 + 3 + 2 + 3 + 5, True, "tokenizer")
    assert (estimate.exact, estimate.source) == (False, "estimate")
    assert not with_tools.exact  # the tool framing is the provider's


# -- the limiter and the budget ---------------------------------------------------------------


def image_request(model: str, side: int, **kw: Any) -> ChatRequest:
    url = f"data:image/png;base64,{b64(png(side, side))}"
    parts = [{"type": "text", "text": "Describe"}, {"type": "image_url", "image_url": {"url": url}}]
    return ChatRequest(model=model, messages=[{"role": "user", "content": parts}], **kw)


async def answer(request: ChatRequest) -> ChatResponse:
    return make_response(
        id="r",
        model=request.model,
        provider="x",
        content="ok",
        finish_reason="stop",
        usage=make_usage(estimate_request_tokens(request), 1),
    )


@pytest.mark.anyio
async def test_the_rate_limiter_books_image_tokens() -> None:
    clock = FakeClock()
    rl = RateLimit(RateLimitConfig(tpm=3000, burst=0.5), clock=clock)  # 50/s, 1500 at once
    small = image_request("gpt-4o", 64, max_tokens=10)
    big = image_request("gpt-4o", 2048, max_tokens=10)
    # OpenAI's tiles: 85 + 170 for a 64-px image, 85 + 4 x 170 for 2048 px (fit to 768)
    assert estimate_request_tokens(big) - estimate_request_tokens(small) == 765 - 255
    await rl(small, answer)
    await rl(small, answer)
    assert clock.sleeps == []
    clock = FakeClock()
    rl = RateLimit(RateLimitConfig(tpm=3000, burst=0.5), clock=clock)
    await rl(big, answer)
    await rl(big, answer)  # the image's tokens do not fit twice in the burst: it waits
    booked = estimate_request_tokens(big) + 10  # the prompt and max_tokens
    used = estimate_request_tokens(big) + 1  # the first booking, corrected from its usage
    assert clock.sleeps == [pytest.approx((used + booked - 1500) / 50)]


@pytest.mark.anyio
async def test_the_budget_reserves_image_tokens(word_tokenizer: None) -> None:
    manager = CostManager()
    manager.pricing.register("house-7b", input=1.0, output=1.0, max_output=10)
    budget = BudgetMiddleware(manager)
    text_only = ChatRequest(model="house-7b", messages=[{"role": "user", "content": "Describe"}])
    with_image = image_request("gpt-4o", 1024)
    manager.pricing.register("gpt-4o", input=1.0, output=1.0, max_output=10)
    worst_text = budget.worst_case(text_only)
    worst_image = budget.worst_case(with_image)
    # a hard budget reserves a bound (max_request_tokens), never less than the best count
    assert worst_text * 1e6 == pytest.approx(max_request_tokens(text_only) + 10)
    assert max_request_tokens(text_only) >= count_request_tokens(text_only)
    # the image is bounded by OpenAI's formula for its size (765 at 1024 px), not by the
    # length of its base64
    bound = max_request_tokens(with_image)
    assert worst_image * 1e6 == pytest.approx(bound + 10)
    text_bound = max_request_tokens(text_only.model_copy(update={"model": "gpt-4o"}))
    assert 765 <= bound - text_bound < 1000
    padded = f"data:image/png;base64,{b64(png(1024, 1024) + bytes(400_000))}"  # 400 kB more
    part = {"type": "image_url", "image_url": {"url": padded}}
    heavy = ChatRequest(model="gpt-4o", messages=[{"role": "user", "content": [part]}])
    assert max_request_tokens(heavy) < 1000
