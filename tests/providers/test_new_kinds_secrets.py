"""The newer provider kinds under the key rules: rotation, and every credential scrubbed."""

from __future__ import annotations

import json

from aio_llm import APIError, ChatRequest
from aio_llm.providers import AzureOpenAIProvider, GeminiProvider, create_provider
from aio_llm.providers._openai_wire import error_from_body

OLD = "AIzaOldGeminiKey0123456789abcdef"
NEW = "AIzaNewGeminiKey0123456789abcdef"


def _request() -> ChatRequest:
    return ChatRequest(model="m", messages=[{"role": "user", "content": "Hi"}])


def test_a_rotated_gemini_key_is_sent_and_the_old_one_still_blanked() -> None:
    p = GeminiProvider(api_key=OLD, base_url="https://g.example")
    p.api_key = NEW
    assert p.encode_chat(_request()).headers["x-goog-api-key"] == NEW
    exc = APIError(f"echo {OLD} and {NEW}", provider=p.label)
    p.scrub(exc)
    assert OLD not in str(exc) and NEW not in str(exc)


def test_an_azure_entra_token_is_blanked_like_a_key() -> None:
    token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.entra-token-body"
    p = AzureOpenAIProvider(azure_ad_token=token, base_url="https://r.openai.azure.com")
    exc = p.decode_error(401, {}, json.dumps({"error": {"message": f"bad {token}"}}).encode())
    p.scrub(exc)
    assert token not in str(exc) and token not in json.dumps(exc.body)


def test_bedrock_aws_credentials_are_blanked() -> None:
    env = {
        "AWS_ACCESS_KEY_ID": "AKIDTEST",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMIsecretAccessKey0123",
        "AWS_SESSION_TOKEN": "IQoJb3JpZ2luX2VjEsessionToken0123",
        "AWS_REGION": "x-1",
    }
    p = create_provider("bedrock", environ=env)
    exc = APIError(
        f"saw {env['AWS_SESSION_TOKEN']} / {env['AWS_SECRET_ACCESS_KEY']}", provider=p.label
    )
    p.scrub(exc)
    assert env["AWS_SESSION_TOKEN"] not in str(exc)
    assert env["AWS_SECRET_ACCESS_KEY"] not in str(exc)


def test_an_upstream_raw_error_stays_out_of_exc_raw() -> None:
    # OpenRouter quotes the upstream provider's error in metadata.raw: it joins the message,
    # while exc.raw stays the body as received
    body = json.dumps(
        {"error": {"message": "Provider returned error", "metadata": {"raw": {"x": 1}}}}
    ).encode()
    exc = error_from_body(400, {}, body, provider="openrouter")
    assert exc.raw == body and '{"x":1}' in str(exc).replace(" ", "")
