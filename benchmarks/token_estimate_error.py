"""How far aio_llm's fallback token estimate is from the real prompt count.

Every recorded exchange (tests/fixtures/recorded and recorded-more) carries
the request that was sent and the provider's usage, whose input count is
the real one. The request is rebuilt as a ``ChatRequest`` (its messages,
system prompt, tools and structured-output ask, in whatever shape the
provider took them), estimated with ``aio_llm.tokens.estimate_request_tokens``
(no tokenizer: the fallback), and compared.

    python benchmarks/token_estimate_error.py               # print the table
    python benchmarks/token_estimate_error.py --write-docs  # update docs/token-counting.md

tests/test_token_estimates.py fails when the table in the docs is not the
one this script computes.
"""

from __future__ import annotations

import base64
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aio_llm import APIError, ChatRequest  # noqa: E402
from aio_llm.providers import create_provider  # noqa: E402
from aio_llm.tokens import estimate_request_tokens  # noqa: E402

FIXTURES = [ROOT / "tests" / "fixtures" / "recorded", ROOT / "tests" / "fixtures" / "recorded-more"]
DOC = ROOT / "docs" / "token-counting.md"
BEGIN, END = "<!-- estimate-table:begin -->", "<!-- estimate-table:end -->"


@dataclass(frozen=True)
class Row:
    case: str
    api: str
    model: str
    real: int
    estimate: int

    @property
    def error(self) -> float:
        """Signed error of the estimate, in percent of the real count."""
        return (self.estimate - self.real) / self.real * 100


# -- the request, rebuilt ------------------------------------------------------------------


def _text(parts: Any) -> str:
    if isinstance(parts, str):
        return parts
    return "".join(p.get("text", "") for p in parts or () if isinstance(p, dict))


def _gemini(body: dict[str, Any], model: str) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    system = body.get("systemInstruction")
    if isinstance(system, dict):
        messages.append({"role": "system", "content": _text(system.get("parts"))})
    for c in body["contents"]:
        role = "assistant" if c.get("role") == "model" else "user"
        calls, results, texts = [], [], []
        for p in c.get("parts", []):
            if "functionCall" in p:
                fc = p["functionCall"]
                calls.append(
                    {
                        "id": fc["name"],
                        "name": fc["name"],
                        "arguments": json.dumps(fc.get("args", {})),
                    }
                )
            elif "functionResponse" in p:
                fr = p["functionResponse"]
                results.append((fr["name"], json.dumps(fr.get("response"))))
            elif "text" in p and not p.get("thought"):
                texts.append(p["text"])
        for name, out in results:
            messages.append({"role": "tool", "tool_call_id": name, "content": out})
        if texts or calls:
            messages.append({"role": role, "content": "".join(texts), "tool_calls": calls or None})
    out: dict[str, Any] = {"model": model, "messages": messages}
    if body.get("tools"):
        out["tools"] = [t for t in body["tools"] if "functionDeclarations" in t] or None
    schema = (body.get("generationConfig") or {}).get("responseJsonSchema")
    if schema:
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "r", "schema": schema},
        }
    return out


def _bedrock(body: dict[str, Any], model: str) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    if body.get("system"):
        messages.append({"role": "system", "content": _text(body["system"])})
    for m in body["messages"]:
        calls, texts = [], []
        for b in m["content"]:
            if "toolUse" in b:
                use = b["toolUse"]
                calls.append(
                    {
                        "id": use["toolUseId"],
                        "name": use["name"],
                        "arguments": json.dumps(use["input"]),
                    }
                )
            elif "toolResult" in b:
                res = b["toolResult"]
                content = json.dumps(res.get("content"))
                messages.append(
                    {"role": "tool", "tool_call_id": res["toolUseId"], "content": content}
                )
            elif "text" in b:
                texts.append(b["text"])
        if texts or calls:
            messages.append(
                {"role": m["role"], "content": "".join(texts), "tool_calls": calls or None}
            )
    out: dict[str, Any] = {"model": model, "messages": messages}
    tools = (body.get("toolConfig") or {}).get("tools")
    if tools:
        out["tools"] = [t for t in tools if "toolSpec" in t]
    spec = ((body.get("outputConfig") or {}).get("textFormat") or {}).get("structure")
    if spec:
        schema = json.loads(spec["jsonSchema"]["schema"])
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "r", "schema": schema},
        }
    return out


def _responses(body: dict[str, Any]) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": body["instructions"]})
    items = body["input"]
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    for item in items:
        kind = item.get("type", "message")
        if kind == "message":
            content = item["content"]
            messages.append({"role": item["role"], "content": _text(content)})
        elif kind == "function_call":
            call = {"id": item["call_id"], "name": item["name"], "arguments": item["arguments"]}
            messages.append({"role": "assistant", "content": "", "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append(
                {"role": "tool", "tool_call_id": item["call_id"], "content": str(item["output"])}
            )
    out: dict[str, Any] = {"model": body["model"], "messages": messages}
    if body.get("tools"):
        out["tools"] = body["tools"]
    fmt = (body.get("text") or {}).get("format")
    if fmt and fmt.get("type") != "text":
        out["response_format"] = fmt
    return out


def _anthropic(body: dict[str, Any]) -> dict[str, Any]:
    messages = list(body["messages"])
    if body.get("system"):
        messages.insert(0, {"role": "system", "content": _text(body["system"])})
    out: dict[str, Any] = {"model": body["model"], "messages": messages}
    for key in ("tools", "tool_choice"):
        if body.get(key):
            out[key] = body[key]
    fmt = (body.get("output_config") or {}).get("format")
    if fmt:
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "r", "schema": fmt["schema"]},
        }
    return out


def request_of(fx: dict[str, Any]) -> ChatRequest:
    body = fx["request"]["body"]
    path = fx["request"]["path"].partition("?")[0]
    if fx["provider"] == "gemini":
        model = path.rpartition("/models/")[2].partition(":")[0]
        data = _gemini(body, model)
    elif fx["provider"] == "bedrock":
        from urllib.parse import unquote

        data = _bedrock(body, unquote(path.split("/")[2]))
    elif path.endswith("/responses"):
        data = _responses(body)
    elif fx["provider"] == "anthropic":
        data = _anthropic(body)
    else:
        data = {
            k: body[k]
            for k in ("model", "messages", "tools", "tool_choice", "response_format")
            if k in body
        }
        if "/deployments/" in path:
            data["model"] = path.split("/")[3]
    return ChatRequest.model_validate(data)


# -- the real count, from the recorded answer ---------------------------------------------


def api_of(fx: dict[str, Any]) -> str:
    path = fx["request"]["path"]
    if path.partition("?")[0].endswith("/responses"):
        return "openai-responses"
    if fx["provider"] in ("azure-openai", "openrouter"):
        return "openai" if fx["provider"] == "azure-openai" else "openrouter"
    return str(fx["provider"])


def real_input(fx: dict[str, Any], request: ChatRequest) -> int | None:
    """The prompt tokens the provider reported, read with aio_llm's decoders."""
    api = api_of(fx)
    options: dict[str, Any] = {"environ": {}}
    if api == "bedrock":
        options["environ"] = {"AWS_ACCESS_KEY_ID": "A", "AWS_SECRET_ACCESS_KEY": "B"}
        options["region"] = "us-east-1"
    else:
        options["api_key"] = "k"
    provider = create_provider(api, **options)
    response = fx["response"]
    if response["status"] >= 400:
        return None
    headers = response.get("headers") or {}
    if fx["kind"] == "stream" or "body_b64" in response:
        raw = (
            base64.b64decode(response["body_b64"])
            if "body_b64" in response
            else response["body_text"].encode()
        )
        decoder = provider.stream_decoder(request)
        framing = provider.framing()
        try:
            for event in [*framing.feed(raw), *framing.flush()]:
                decoder.feed(event)
        except APIError:  # a stream that ended in an error still reported its prompt
            pass
        usage = decoder.build_response().usage
    else:
        usage = provider.decode_chat(request, 200, headers, response["body_text"].encode()).usage
    return usage.input_tokens or None


def unseen(fx: dict[str, Any]) -> str | None:
    """Why the prompt holds tokens that the request body does not (then it is left out)."""
    body = fx["request"]["body"]
    if body.get("cachedContent"):
        return "a Gemini cachedContents resource"
    for tool in body.get("tools") or ():
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind not in (None, "function", "custom"):
            return f"a server-side tool ({kind})"
    return None


def measure() -> list[Row]:
    rows: list[Row] = []
    for folder in FIXTURES:
        for path in sorted(folder.glob("*.json")):
            fx = json.loads(path.read_text())
            if fx["kind"] in ("error", "embeddings") or unseen(fx):
                continue
            request = request_of(fx)
            real = real_input(fx, request)
            if not real:
                continue
            rows.append(
                Row(path.stem, api_of(fx), request.model, real, estimate_request_tokens(request))
            )
    return rows


def table(rows: list[Row]) -> str:
    out = [
        "| API | cases | median error | median error in tokens | lowest (under) | highest (over) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    groups: dict[str, list[Row]] = {}
    for r in rows:
        groups.setdefault(r.api, []).append(r)
    groups["all"] = rows
    for api, group in groups.items():
        errors = [r.error for r in group]
        tokens = statistics.median(r.estimate - r.real for r in group)
        out.append(
            f"| {api} | {len(group)} | {statistics.median(errors):+.0f}% | {tokens:+.0f} | "
            f"{min(errors):+.0f}% | {max(errors):+.0f}% |"
        )
    return "\n".join(out)


def main() -> None:
    rows = measure()
    text = table(rows)
    if "--write-docs" in sys.argv:
        doc = DOC.read_text()
        start, end = doc.index(BEGIN) + len(BEGIN), doc.index(END)
        DOC.write_text(doc[:start] + "\n" + text + "\n" + doc[end:])
    if "--cases" in sys.argv:
        for r in sorted(rows, key=lambda r: r.error):
            print(f"{r.error:+7.1f}%  real {r.real:6d}  est {r.estimate:6d}  {r.api:16s} {r.case}")
    print(text)


if __name__ == "__main__":
    main()
