"""AWS Bedrock Runtime: Converse and ConverseStream.

``POST {base_url}/model/{url-encoded model id}/converse`` and
``.../converse-stream``. Requests are signed with SigV4 (``_sigv4``; checked
against AWS's published test vectors), or carry ``Authorization: Bearer``
with a Bedrock API key (``AWS_BEARER_TOKEN_BEDROCK``). The stream is AWS's
binary event stream (``transports.eventstream``): every frame's prelude and
message CRCs are checked, and a bad frame raises ``EventStreamError``.
In-band exceptions (``throttlingException``, ``modelStreamErrorException``,
...) raise the typed error of the status AWS documents for them.

Credentials are looked up once, when the provider is built (see
``_aws_credentials``); nothing AWS-specific is imported before that, and
botocore only when the environment holds no credentials and it is installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

from .. import _json
from ..clock import SYSTEM_CLOCK, Clock
from ..errors import APIError, ConfigurationError, InvalidRequestError, StreamError
from ..streaming import ChunkAccumulator
from ..transports.base import HTTPTransport
from ..transports.eventstream import EventStreamDecoder, EventStreamMessage
from ..types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    FinishReason,
    ThinkingBlock,
    make_chunk,
    make_tool_delta,
)
from ._aws_credentials import (
    BotocoreCredentials,
    CredentialSource,
    StaticCredentials,
    botocore_available,
)
from ._bedrock_wire import (
    STATUS_OF_EXCEPTION,
    answer_tool,
    decode_error,
    encode_body,
    finish_reason,
    parse_response,
    refusal_of,
    usage_from_wire,
)
from ._params import check_parameters
from ._responses_decode import bad_body
from ._sigv4 import AWSCredentials, SigV4Signer
from .base import Framing, HTTPRequest, Provider

__all__ = ["BedrockProvider", "BedrockStreamDecoder"]

_SERVICE = "bedrock"
"""The SigV4 signing name of bedrock-runtime."""


class BedrockProvider(Provider):
    """AWS Bedrock's Converse API (``name = "bedrock"``).

    ``region`` defaults to ``AWS_REGION`` / ``AWS_DEFAULT_REGION``;
    ``base_url`` to ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``, ``AWS_ENDPOINT_URL``
    or ``https://bedrock-runtime.{region}.amazonaws.com``. Credentials: an
    ``api_key`` (a Bedrock API key, sent as a bearer token;
    ``AWS_BEARER_TOKEN_BEDROCK``), else ``credentials`` / the access-key
    arguments, else ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/
    ``AWS_SESSION_TOKEN``, else botocore's chain when installed
    (``pip install 'aio-llm[bedrock]'``; ``profile`` picks a profile).
    ``clock`` gives the signing time.
    """

    name: ClassVar[str] = "bedrock"
    # Converse's inferenceConfig has none of the SDK parameters (only maxTokens, stopSequences,
    # temperature, topP): each is refused; a model's own go in extra_body
    # (additionalModelRequestFields). response_format is outputConfig (or a forced tool).
    supported_parameters: ClassVar[frozenset[str]] = frozenset({"response_format"})
    genai_system: ClassVar[str | None] = "aws.bedrock"
    api_key_env: ClassVar[str | None] = "AWS_BEARER_TOKEN_BEDROCK"
    base_url_env: ClassVar[str | None] = "AWS_ENDPOINT_URL_BEDROCK_RUNTIME"
    default_base_url: ClassVar[str] = ""

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        region: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        credentials: CredentialSource | AWSCredentials | None = None,
        profile: str | None = None,
        label: str | None = None,
        headers: Mapping[str, str] | None = None,
        clock: Clock | None = None,
    ) -> None:
        if not region and not base_url:
            raise ConfigurationError(
                f"provider {label or self.name!r} needs an AWS region: set AWS_REGION or "
                "pass region="
            )
        self.region = region or "us-east-1"
        super().__init__(
            api_key,
            base_url or f"https://bedrock-runtime.{self.region}.amazonaws.com",
            label=label,
            headers=headers,
        )
        self._clock = clock or SYSTEM_CLOCK
        self._signer = SigV4Signer(self.region, _SERVICE)
        self._source: CredentialSource | None = None
        if self.api_key is None:
            self._source = _credential_source(
                credentials, aws_access_key_id, aws_secret_access_key, aws_session_token, profile
            )
        static = {"Content-Type": "application/json", "Accept": "application/json"}
        static.update(self.extra_headers)
        self._headers = static
        self._stream_headers = {**static, "Accept": "application/vnd.amazon.eventstream"}

    @classmethod
    def settings_from_env(cls, env: Mapping[str, str]) -> dict[str, Any]:
        return {
            "region": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
            "aws_access_key_id": env.get("AWS_ACCESS_KEY_ID") or None,
            "aws_secret_access_key": env.get("AWS_SECRET_ACCESS_KEY") or None,
            "aws_session_token": env.get("AWS_SESSION_TOKEN") or None,
            "profile": env.get("AWS_PROFILE") or None,
            "base_url": env.get("AWS_ENDPOINT_URL") or None,
        }

    @classmethod
    def has_credentials(cls, settings: Mapping[str, Any]) -> bool:
        return True  # the constructor checks, and names every way to give credentials

    @property
    def secrets(self) -> tuple[str, ...]:
        """The key or bearer token, plus the AWS credentials in use (the session token travels
        in a header; the secret key never does, but is blanked all the same)."""
        base = super().secrets
        creds = self._source.current if self._source is not None else None
        if creds is None:
            return base
        extra = (creds.secret_access_key, creds.session_token or "")
        return (*base, *(s for s in extra if s and s not in base))

    def __repr__(self) -> str:
        auth = "bearer" if self.api_key else type(self._source).__name__
        return f"<BedrockProvider {self.label} region={self.region} auth={auth}>"

    # -- codec -----------------------------------------------------------------
    def _url(self, model: str, stream: bool) -> str:
        action = "converse-stream" if stream else "converse"
        return f"{self.base_url}/model/{quote(model, safe='')}/{action}"

    def encode_chat(self, request: ChatRequest) -> HTTPRequest:
        body = encode_body(request)
        try:
            content = _json.dumps(body)
        except TypeError as exc:
            raise InvalidRequestError(
                f"the request for {self.label} cannot be sent as JSON: {exc}"
            ) from None
        url = self._url(request.model, request.stream)
        headers = self._stream_headers if request.stream else self._headers
        if request.extra_query:  # in the URL before signing: SigV4 signs the query too
            url += "?" + urlencode(request.extra_query, quote_via=quote)
        if request.extra_headers:
            headers = {**headers, **request.extra_headers}
        return HTTPRequest("POST", url, self._authorize(url, headers, content), content)

    def encode_count(self, request: ChatRequest) -> HTTPRequest:
        """``POST /model/{id}/count-tokens`` with the Converse body (models that offer it)."""
        body = encode_body(request.model_copy(update={"stream": False}))
        converse = {k: v for k, v in body.items() if k in ("messages", "system", "toolConfig")}
        content = _json.dumps({"input": {"converse": converse}})
        url = f"{self.base_url}/model/{quote(request.model, safe='')}/count-tokens"
        return HTTPRequest("POST", url, self._authorize(url, self._headers, content), content)

    def decode_count(self, status: int, headers: Mapping[str, str], body: bytes) -> int:
        value = _json.loads(body)["inputTokens"]
        if not isinstance(value, int):
            raise TypeError("inputTokens is not an integer")
        return value

    def _encode(self, request: ChatRequest) -> HTTPRequest:
        """The checked, signed request: ``encode_chat`` has put the extra headers and query
        in before signing, so nothing is added after it (that would void the signature)."""
        check_parameters(request, self.label, self.supported_parameters)
        self.check_media(request)
        return self.encode_chat(request)

    def _authorize(self, url: str, headers: dict[str, str], content: bytes) -> dict[str, str]:
        if self.api_key is not None:
            return {**headers, "Authorization": f"Bearer {self.api_key}"}
        assert self._source is not None
        creds = self._source.current
        if creds is None:
            raise ConfigurationError(f"no AWS credentials loaded for {self.label}")
        return self._signer.sign("POST", url, headers, content, creds, self._clock.time())

    def decode_chat(
        self, request: ChatRequest, status: int, headers: Mapping[str, str], body: bytes
    ) -> ChatResponse:
        try:
            data = _json.loads(body)
        except _json.JSONDecodeError:
            raise bad_body(self.label, status, body, "malformed JSON", self.api_key) from None
        try:
            return parse_response(data, self.label, headers, request.model, answer_tool(request))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            why = f"unexpected shape ({exc!r})"
            raise bad_body(self.label, status, body, why, self.api_key) from None

    def framing(self) -> Framing:
        return EventStreamDecoder()

    def stream_decoder(self, request: ChatRequest) -> BedrockStreamDecoder:
        return BedrockStreamDecoder(self.label, request.model, answer_tool(request))

    def decode_error(self, status: int, headers: Mapping[str, str], body: bytes) -> APIError:
        return decode_error(status, headers, body, provider=self.label, secret=self.api_key)

    # -- I/O ---------------------------------------------------------------------
    async def send(self, request: ChatRequest, transport: HTTPTransport) -> ChatResponse:
        await self._fresh_credentials()
        return await super().send(request, transport)

    async def count_tokens(self, request: ChatRequest, transport: HTTPTransport) -> int | None:
        await self._fresh_credentials()
        return await super().count_tokens(request, transport)

    async def _fresh_credentials(self) -> None:
        source = self._source
        if source is not None:
            now = self._clock.time()
            if source.needs_refresh(now):
                await source.refresh(now)


def _credential_source(
    credentials: CredentialSource | AWSCredentials | None,
    key_id: str | None,
    secret: str | None,
    token: str | None,
    profile: str | None,
) -> CredentialSource:
    if isinstance(credentials, AWSCredentials):
        return StaticCredentials(credentials)
    if credentials is not None:
        return credentials
    if key_id and secret and not profile:
        return StaticCredentials(AWSCredentials(key_id, secret, token or None))
    if key_id or secret:
        if not (key_id and secret):
            raise ConfigurationError(
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together"
            )
        return StaticCredentials(AWSCredentials(key_id, secret, token or None))
    if botocore_available():
        return BotocoreCredentials(profile)
    raise ConfigurationError(
        "no credentials for Bedrock: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and "
        "AWS_SESSION_TOKEN), or AWS_BEARER_TOKEN_BEDROCK, or pass them; for profiles, SSO "
        "and instance roles install 'aio-llm[bedrock]'"
    )


# -- the stream ---------------------------------------------------------------------------


class BedrockStreamDecoder:
    """ConverseStream event-stream messages to ``ChatChunk`` objects.

    Tool calls are numbered by ordinal, not by content-block index; a
    reasoning block's text and signature (or redacted content) become a
    ``ThinkingBlock`` when the block stops. The stream ends with the
    ``metadata`` event (usage), after ``messageStop``.
    """

    __slots__ = (
        "_answer",
        "_blocks",
        "_done",
        "_label",
        "_raw",
        "_stop",
        "_tools",
        "accumulator",
    )

    def __init__(self, label: str, model: str, answer: str | None = None) -> None:
        self._answer = answer  # a tool whose input streams as the text (json_object)
        self._label = label
        self._done = False
        self._raw: dict[str, Any] = {}
        self._tools = 0
        self._stop: FinishReason | None = None
        # content-block index -> ["tool", ordinal] | ["reasoning", [text], signature, redacted]
        self._blocks: dict[int, list[Any]] = {}
        self.accumulator = ChunkAccumulator()
        self.accumulator.model = model

    @property
    def done(self) -> bool:
        return self._done

    def feed(self, message: EventStreamMessage) -> list[ChatChunk]:
        kind = message.message_type
        if kind == "exception":
            raise self._exception(message.event_type, message.payload)
        if kind == "error":
            code = message.headers.get(":error-code")
            text = message.headers.get(":error-message")
            raise StreamError(
                str(text or "error in the stream"),
                provider=self._label,
                code=code if isinstance(code, str) else None,
            )
        try:
            data = _json.loads(message.payload) if message.payload else {}
        except _json.JSONDecodeError:
            raise StreamError("an event payload is not JSON", provider=self._label) from None
        if not isinstance(data, dict):
            raise StreamError("an event payload is not a JSON object", provider=self._label)
        chunk = self._event(message.event_type, data)
        if chunk is None:
            return []
        self.accumulator.add(chunk)
        return [chunk]

    def _exception(self, name: str, payload: bytes) -> APIError:
        try:
            data = _json.loads(payload) if payload else {}
        except _json.JSONDecodeError:
            data = {}
        text = data.get("message") or data.get("Message") if isinstance(data, dict) else None
        status = STATUS_OF_EXCEPTION.get(name.lower())
        body = data if isinstance(data, dict) else None
        message = str(text or name or "exception in the stream")
        if status is None:
            return StreamError(message, provider=self._label, code=name or None, body=body)
        return decode_error(
            status,
            {"x-amzn-errortype": name},
            _json.dumps(body or {"message": message}),
            provider=self._label,
            secret=None,
        )

    def _event(self, etype: str, data: dict[str, Any]) -> ChatChunk | None:
        if etype == "contentBlockDelta":
            return self._delta(data)
        if etype == "contentBlockStart":
            return self._start(data)
        if etype == "contentBlockStop":
            self._block_stop(data)
            return None
        if etype == "messageStop":
            raw_stop = data.get("stopReason")
            stop = finish_reason(raw_stop)
            self._stop = "tool_calls" if self._tools else "stop" if stop == "tool_calls" else stop
            self._raw["stopReason"] = raw_stop
            refusal = refusal_of(raw_stop)
            if refusal is not None:
                self.accumulator.refusal = refusal
            return make_chunk(finish_reason=self._stop)
        if etype == "metadata":
            self._done = True
            self._raw.update({k: v for k, v in data.items() if k != "p"})
            usage = usage_from_wire(data.get("usage"))
            return make_chunk(usage=usage)
        return None  # messageStart and event types aio_llm does not know

    def _start(self, data: dict[str, Any]) -> ChatChunk | None:
        start = data.get("start")
        use = start.get("toolUse") if isinstance(start, dict) else None
        if not isinstance(use, dict):
            return None
        if self._answer is not None and use.get("name") == self._answer:
            self._blocks[_index(data)] = ["answer", -1]
            return None
        ordinal = self._tools
        self._tools += 1
        self._blocks[_index(data)] = ["tool", ordinal]
        ident, name = use.get("toolUseId"), use.get("name")
        tc = make_tool_delta(
            ordinal,
            ident if isinstance(ident, str) else None,
            name if isinstance(name, str) else None,
        )
        return make_chunk(tool_calls=[tc])

    def _delta(self, data: dict[str, Any]) -> ChatChunk | None:
        delta = data.get("delta")
        if not isinstance(delta, dict):
            raise StreamError("contentBlockDelta without a delta", provider=self._label)
        text = delta.get("text")
        if isinstance(text, str):
            return make_chunk(delta=text) if text else None
        use = delta.get("toolUse")
        if isinstance(use, dict):
            state = self._blocks.get(_index(data))
            part = use.get("input")
            if state is None or not isinstance(part, str) or not part:
                return None
            if state[0] == "answer":
                return make_chunk(delta=part)
            if state[0] != "tool":
                return None
            tc = make_tool_delta(state[1], None, None, part)
            return make_chunk(tool_calls=[tc])
        reasoning = delta.get("reasoningContent")
        if isinstance(reasoning, dict):
            state = self._blocks.setdefault(_index(data), ["reasoning", [], None, None])
            if state[0] != "reasoning":
                return None
            thought = reasoning.get("text")
            if isinstance(thought, str) and thought:
                state[1].append(thought)
                return make_chunk(reasoning=thought)
            sig = reasoning.get("signature")
            if isinstance(sig, str):
                state[2] = (state[2] or "") + sig
            redacted = reasoning.get("redactedContent")
            if isinstance(redacted, str):
                state[3] = (state[3] or "") + redacted
        return None

    def _block_stop(self, data: dict[str, Any]) -> None:
        state = self._blocks.get(_index(data))
        if state is None or state[0] != "reasoning":
            return
        if state[3] is not None:
            block = ThinkingBlock(redacted=state[3], provider="bedrock")
        else:
            block = ThinkingBlock(text="".join(state[1]), signature=state[2], provider="bedrock")
        self.accumulator.thinking.append(block)

    def build_response(self) -> ChatResponse:
        return self.accumulator.build(provider=self._label, raw=self._raw or None)

    def __repr__(self) -> str:
        state = "done" if self._done else "open"
        return f"<BedrockStreamDecoder {self._label} {state}>"


def _index(data: Mapping[str, Any]) -> int:
    index = data.get("contentBlockIndex")
    return index if isinstance(index, int) else -1
