"""The ``bedrock`` adapter against the Bedrock Runtime Converse / ConverseStream / InvokeModel
wire formats.

References used for the request assertions and the fixtures in fixtures/bedrock/:
- botocore's service model botocore/data/bedrock-runtime/2023-09-30/service-2.json (shapes
  ConverseRequest, ConverseResponse, ConverseStreamOutput, TokenUsage, StopReason, the
  exception shapes with their HTTP status codes)
- https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html and
  API_runtime_ConverseStream.html, API_runtime_TokenUsage.html
- event-stream framing: https://docs.aws.amazon.com/AmazonS3/latest/API/RESTSelectObjectAppendix.html
  (prelude: total length, headers length, prelude CRC32; headers; payload; message CRC32)
- SigV4: https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html
- Titan Text Embeddings v2 and Cohere Embed request/response bodies: the "Inference request
  parameters" pages of the Bedrock user guide (model-parameters-titan-embed-text.html,
  model-parameters-embed.html)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx2
import pytest

from portal import errors
from portal.contracts.messages import ImagePart, Message, ToolCall, tool_result, user
from portal.contracts.output import OutputSpec
from portal.contracts.request import ChatRequest, EmbedRequest
from portal.contracts.tools import ToolSpec
from portal.providers.bedrock import BedrockAdapter
from portal.providers.settings import ProviderSettings
from portal.secret import Secret
from portal.wire import WireReply, WireRequest
from tests.providers._cases import frame

FIXTURES = Path(__file__).parent / "fixtures" / "bedrock"
MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
KEY_ID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
FROZEN = datetime(2025, 1, 2, 3, 4, 5)

LOOKUP = ToolSpec(
    "lookup_order",
    "Find an order by id.",
    {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
)
WEATHER = ToolSpec(
    "get_weather", "", {"type": "object", "properties": {"city": {"type": "string"}}}
)
ANSWER_SCHEMA = {
    "title": "Answer",
    "type": "object",
    "properties": {"order_id": {"type": "string"}, "status": {"type": "string"}},
    "required": ["order_id", "status"],
}


@pytest.fixture(autouse=True)
def _frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    import botocore.auth

    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: FROZEN)


def adapter(**options: Any) -> BedrockAdapter:
    opts = {
        "region_name": "us-east-1",
        "access_key_id": KEY_ID,
        "secret_access_key": Secret(SECRET),
    }
    opts.update(options)
    return BedrockAdapter(ProviderSettings(name="aws", kind="bedrock", options=opts))


def reply(name: str, status: int = 200) -> WireReply:
    return WireReply(status, {"x-amzn-requestid": "rid-fixture"}, (FIXTURES / name).read_bytes())


# ------------------------------------------------------------------ event-stream framing


def event(kind: str, payload: dict[str, Any]) -> bytes:
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    return frame(headers, json.dumps(payload).encode())


def stream_bytes(name: str) -> bytes:
    frames = json.loads((FIXTURES / name).read_text())
    return b"".join(event(f["event"], f["payload"]) for f in frames)


def run_stream(
    data: bytes, req: ChatRequest | None = None, chunk: int = 5
) -> tuple[Any, list[Any]]:
    parser = adapter().stream_parser(req or ChatRequest([user("hi")], stream=True), MODEL)
    events = []
    for i in range(0, len(data), chunk):
        events.extend(parser.feed(data[i : i + chunk]))
    return parser, events


# ------------------------------------------------------------------ signing


def expected_signature(wire: WireRequest, region: str, secret: str) -> str:
    """SigV4 recomputed from the AWS documentation, independently of botocore."""
    auth = wire.headers["authorization"]
    signed = auth.split("SignedHeaders=")[1].split(",")[0].split(";")
    url = urlsplit(wire.url)
    canonical_uri = quote(url.path, safe="/~")  # non-S3 services: path encoded a second time
    headers = {**wire.headers, "host": url.netloc}
    canonical_headers = "".join(f"{h}:{' '.join(headers[h].split())}\n" for h in signed)
    payload_hash = hashlib.sha256(wire.body or b"").hexdigest()
    canonical = "\n".join(
        ["POST", canonical_uri, "", canonical_headers, ";".join(signed), payload_hash]
    )
    amz_date = wire.headers["x-amz-date"]
    scope = f"{amz_date[:8]}/{region}/bedrock/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + secret).encode()
    for part in (amz_date[:8], region, "bedrock", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def test_converse_url_and_sigv4_headers() -> None:
    wire = adapter().build_chat(ChatRequest([user("Where is my order?")]), MODEL)
    assert wire.url == (
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/"
        "anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
    )
    assert wire.headers["x-amz-date"] == "20250102T030405Z"
    auth = wire.headers["authorization"]
    assert auth.startswith(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250102/us-east-1/bedrock/aws4_request, "
        "SignedHeaders="
    )
    signed = auth.split("SignedHeaders=")[1].split(",")[0].split(";")
    assert {"content-type", "host", "x-amz-date"} <= set(signed)
    assert auth.split("Signature=")[1] == expected_signature(wire, "us-east-1", SECRET)
    assert "x-amz-security-token" not in wire.headers
    assert SECRET not in repr(wire) and "Signature" not in repr(wire)


def test_session_token_arn_model_and_stream_endpoint() -> None:
    a = adapter(session_token=Secret("FQoGZXIvYXdzEXAMPLETOKEN"), region_name="eu-west-3")
    arn = "arn:aws:bedrock:eu-west-3:123456789012:inference-profile/eu.anthropic.claude-v1:0"
    wire = a.build_chat(ChatRequest([user("hi")], stream=True), arn)
    assert wire.url == (
        "https://bedrock-runtime.eu-west-3.amazonaws.com/model/"
        + quote(arn, safe="")
        + "/converse-stream"
    )
    assert wire.headers["x-amz-security-token"] == "FQoGZXIvYXdzEXAMPLETOKEN"
    assert "/eu-west-3/bedrock/aws4_request" in wire.headers["authorization"]
    assert wire.headers["authorization"].split("Signature=")[1] == expected_signature(
        wire, "eu-west-3", SECRET
    )


def test_bedrock_api_key_is_a_bearer_token() -> None:
    settings = ProviderSettings(
        name="aws", kind="bedrock", api_key=Secret("bedrock-api-key-xyz"), region="us-west-2"
    )
    wire = BedrockAdapter(settings).build_chat(ChatRequest([user("hi")]), MODEL)
    assert wire.url.startswith("https://bedrock-runtime.us-west-2.amazonaws.com/")
    assert wire.headers["authorization"] == "Bearer bedrock-api-key-xyz"
    assert "x-amz-date" not in wire.headers


def test_region_and_credentials_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(errors.ConfigError, match="region_name"):
        BedrockAdapter(ProviderSettings(name="aws", kind="bedrock", region="us"))
    proxied = BedrockAdapter(
        ProviderSettings(
            name="aws",
            kind="bedrock",
            base_url="https://bedrock-runtime.ap-south-1.amazonaws.com",
            options={"access_key_id": KEY_ID, "secret_access_key": SECRET},
        )
    )
    assert (
        "/ap-south-1/bedrock/"
        in proxied.build_chat(ChatRequest([user("x")]), MODEL).headers["authorization"]
    )
    with pytest.raises(errors.ConfigError, match="secret_access_key"):
        adapter(secret_access_key=None).build_chat(ChatRequest([user("x")]), MODEL)
    # botocore's default chain: environment variables, with files and IMDS out of the way
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    chain = BedrockAdapter(
        ProviderSettings(name="aws", kind="bedrock", options={"region_name": "us-east-1"})
    )
    wire = chain.build_chat(ChatRequest([user("x")]), MODEL)
    assert "Credential=AKIDFROMENV/" in wire.headers["authorization"]
    assert wire.headers["authorization"].split("Signature=")[1] == expected_signature(
        wire, "us-east-1", "env-secret"
    )


def test_missing_botocore_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "botocore.auth", None)
    with pytest.raises(errors.ConfigError, match=r"bedrock extra"):
        adapter().build_chat(ChatRequest([user("x")]), MODEL)


def test_import_portal_does_not_load_botocore() -> None:
    code = (
        "import sys, portal, portal.providers.bedrock, portal.providers.anthropic;"
        "print('botocore' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------ request bodies


def test_body_system_inference_config_and_merged_turns() -> None:
    req = ChatRequest(
        [
            Message("system", "You are terse."),
            user(["What is this?", ImagePart(data="iVBORw0KGgo=", media_type="image/png")]),
            user("Be quick."),
            Message("assistant", "A cat."),
        ],
        temperature=0.3,
        max_tokens=256,
        top_p=0.8,
        stop=["END"],
        provider_options={"bedrock": {"additionalModelRequestFields": {"top_k": 40}}},
    )
    assert adapter().build_chat(req, MODEL).json() == {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": "What is this?"},
                    {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}},
                    {"text": "Be quick."},
                ],
            },
            {"role": "assistant", "content": [{"text": "A cat."}]},
        ],
        "system": [{"text": "You are terse."}],
        "inferenceConfig": {
            "maxTokens": 256,
            "temperature": 0.3,
            "topP": 0.8,
            "stopSequences": ["END"],
        },
        "additionalModelRequestFields": {"top_k": 40},
    }


def test_image_urls_and_unknown_formats_are_refused() -> None:
    with pytest.raises(errors.ContractError, match=r"messages\[0\].*image URLs"):
        adapter().build_chat(ChatRequest([user([ImagePart(url="https://x.test/a.png")])]), MODEL)
    with pytest.raises(errors.ContractError, match="image/tiff"):
        adapter().build_chat(
            ChatRequest([user([ImagePart(data="AAAA", media_type="image/tiff")])]), MODEL
        )


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (None, None),
        ("auto", {"auto": {}}),
        ("required", {"any": {}}),
        ("get_weather", {"tool": {"name": "get_weather"}}),
    ],
)
def test_tool_config(choice: str | None, expected: dict[str, Any] | None) -> None:
    body = (
        adapter()
        .build_chat(ChatRequest([user("hi")], tools=[LOOKUP, WEATHER], tool_choice=choice), MODEL)
        .json()
    )
    config = body["toolConfig"]
    assert config["tools"] == [
        {
            "toolSpec": {
                "name": "lookup_order",
                "inputSchema": {"json": LOOKUP.parameters},
                "description": "Find an order by id.",
            }
        },
        {"toolSpec": {"name": "get_weather", "inputSchema": {"json": WEATHER.parameters}}},
    ]
    assert config.get("toolChoice") == expected


def test_tool_choice_none_leaves_tools_out_unless_history_needs_them() -> None:
    body = (
        adapter()
        .build_chat(ChatRequest([user("hi")], tools=[LOOKUP], tool_choice="none"), MODEL)
        .json()
    )
    assert "toolConfig" not in body
    history = [
        user("x"),
        Message("assistant", None, [ToolCall("call_1", "lookup_order", {"order_id": "1"})]),
        tool_result("call_1", "ok"),
    ]
    with pytest.raises(errors.ContractError, match="tool_choice='none'"):
        adapter().build_chat(ChatRequest(history, tools=[LOOKUP], tool_choice="none"), MODEL)


def test_tool_history_with_foreign_ids_and_error_results() -> None:
    req = ChatRequest(
        [
            user("Check orders 1 and 2"),
            Message(
                "assistant",
                "Looking.",
                [
                    ToolCall("call_abc123", "lookup_order", {"order_id": "1"}),
                    ToolCall("fc:gemini/0", "lookup_order", {"order_id": "2"}),
                ],
            ),
            tool_result("call_abc123", {"status": "shipped"}),
            tool_result("fc:gemini/0", "order not found", is_error=True),
        ],
        tools=[LOOKUP],
    )
    msgs = adapter().build_chat(req, MODEL).json()["messages"]
    second = msgs[1]["content"][2]["toolUse"]["toolUseId"]
    assert second.startswith("tooluse_") and ":" not in second
    assert msgs[1] == {
        "role": "assistant",
        "content": [
            {"text": "Looking."},
            {
                "toolUse": {
                    "toolUseId": "call_abc123",
                    "name": "lookup_order",
                    "input": {"order_id": "1"},
                }
            },
            {"toolUse": {"toolUseId": second, "name": "lookup_order", "input": {"order_id": "2"}}},
        ],
    }
    assert msgs[2] == {
        "role": "user",
        "content": [
            {
                "toolResult": {
                    "toolUseId": "call_abc123",
                    "content": [{"json": {"status": "shipped"}}],
                }
            },
            {
                "toolResult": {
                    "toolUseId": second,
                    "content": [{"text": "order not found"}],
                    "status": "error",
                }
            },
        ],
    }


def test_structured_output_forced_tool_request() -> None:
    output = OutputSpec.of(ANSWER_SCHEMA)
    config = (
        adapter().build_chat(ChatRequest([user("s?")], output=output), MODEL).json()["toolConfig"]
    )
    assert config["tools"][-1]["toolSpec"]["name"] == "Answer"
    assert config["tools"][-1]["toolSpec"]["inputSchema"] == {"json": ANSWER_SCHEMA}
    assert config["toolChoice"] == {"tool": {"name": "Answer"}}
    mixed = (
        adapter()
        .build_chat(ChatRequest([user("s?")], tools=[LOOKUP], output=output), MODEL)
        .json()["toolConfig"]
    )
    assert [t["toolSpec"]["name"] for t in mixed["tools"]] == ["lookup_order", "Answer"]
    assert mixed["toolChoice"] == {"any": {}}


# ------------------------------------------------------------------ replies


def test_text_reply_usage_and_latency() -> None:
    resp = adapter().parse_chat(reply("converse_text.json"), MODEL)
    assert resp.text == "Your order 123 shipped yesterday and arrives Friday."
    assert (resp.finish_reason, resp.raw_finish_reason) == ("stop", "end_turn")
    # totalTokens (1933) = input 21 + output 12 + cache 1800 + 100: cache is outside inputTokens
    assert resp.usage.input_tokens == 1921
    assert (resp.usage.cached_input_tokens, resp.usage.cache_write_tokens) == (1800, 100)
    assert resp.usage.output_tokens == 12
    assert resp.request_id == "rid-fixture"
    assert resp.provider_details["latency_ms"] == 812


def test_usage_when_total_shows_cache_already_counted() -> None:
    usage = BedrockAdapter.parse_usage(
        {"inputTokens": 1921, "outputTokens": 12, "totalTokens": 1933, "cacheReadInputTokens": 1800}
    )
    assert (usage.input_tokens, usage.cached_input_tokens) == (1921, 1800)


def test_parallel_tool_calls_and_structured_reply() -> None:
    a = adapter()
    resp = a.parse_chat(reply("converse_tools.json"), MODEL)
    assert resp.finish_reason == "tool_calls"
    assert resp.tool_calls == [
        ToolCall("tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "lookup_order", {"order_id": "123"}),
        ToolCall(
            "tooluse_7Qb2xYw9T0uN1cVfPq3aHg", "lookup_order", {"order_id": "456", "verbose": True}
        ),
    ]
    req = ChatRequest([user("s?")], output=OutputSpec.of(ANSWER_SCHEMA))
    structured = a.finalize(req, a.parse_chat(reply("converse_structured.json"), MODEL))
    assert json.loads(structured.text) == {"order_id": "123", "status": "shipped", "eta_days": 2}
    assert structured.tool_calls == [] and structured.finish_reason == "stop"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("max_tokens", "length"),
        ("stop_sequence", "stop"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
        ("model_context_window_exceeded", "length"),
        ("malformed_model_output", "error"),
        ("some_future_reason", "stop"),
    ],
)
def test_stop_reasons(raw: str, expected: str) -> None:
    data = json.loads((FIXTURES / "converse_text.json").read_text())
    data["stopReason"] = raw
    resp = adapter().parse_chat(WireReply(200, {}, json.dumps(data).encode()), MODEL)
    assert (resp.finish_reason, resp.raw_finish_reason) == (expected, raw)


# ------------------------------------------------------------------ streams


@pytest.mark.parametrize("chunk", [1, 5, 65536])
def test_stream_text_and_usage(chunk: int) -> None:
    parser, events = run_stream(stream_bytes("stream_text.json"), chunk=chunk)
    assert "".join(e.text for e in events if e.type == "text") == "Hello, wörld!"
    assert [e.usage.output_tokens for e in events if e.type == "usage"] == [15]
    resp = parser.finish()
    assert (resp.text, resp.finish_reason) == ("Hello, wörld!", "stop")
    assert (resp.usage.input_tokens, resp.usage.cached_input_tokens) == (1025, 1000)
    assert resp.provider_details["latency_ms"] == 433


def test_stream_interleaved_tool_calls() -> None:
    parser, _ = run_stream(stream_bytes("stream_tools.json"))
    resp = parser.finish()
    assert resp.text == "Checking both."
    assert resp.finish_reason == "tool_calls"
    assert resp.tool_calls == [
        ToolCall("tooluse_T1x1gpdhoGhKHh6LN1ra9P", "lookup_order", {"order_id": "123"}),
        ToolCall("tooluse_T2y2hqeiphIiLi7MO2sb0Q", "get_weather", {"city": "Paris", "unit": "c"}),
    ]
    assert resp.usage.output_tokens == 89


def test_stream_structured_output() -> None:
    req = ChatRequest([user("s?")], output=OutputSpec.of(ANSWER_SCHEMA), stream=True)
    parser, events = run_stream(stream_bytes("stream_structured.json"), req)
    streamed = "".join(e.text for e in events if e.type == "text")
    resp = parser.finish()
    assert (
        json.loads(resp.text)
        == json.loads(streamed)
        == {"order_id": "123", "status": "shipped", "eta_days": 2}
    )
    assert resp.tool_calls == [] and resp.finish_reason == "stop"


def test_stream_cut_before_message_stop() -> None:
    frames = json.loads((FIXTURES / "stream_text.json").read_text())
    data = b"".join(event(f["event"], f["payload"]) for f in frames[:3])
    data += event("contentBlockStop", frames[3]["payload"])[:9]  # half a frame
    parser, _ = run_stream(data)
    with pytest.raises(errors.StreamInterrupted, match="messageStop") as info:
        parser.finish()
    assert info.value.partial_text == "Hello, wörld!"


@pytest.mark.parametrize(
    ("exception_type", "expected"),
    [
        ("throttlingException", errors.RateLimited),
        ("modelStreamErrorException", errors.ServerError),
        ("serviceUnavailableException", errors.Overloaded),
        ("validationException", errors.BadRequest),
        ("internalServerException", errors.ServerError),
    ],
)
def test_stream_exception_frames(exception_type: str, expected: type[Exception]) -> None:
    frames = json.loads((FIXTURES / "stream_text.json").read_text())
    data = b"".join(event(f["event"], f["payload"]) for f in frames[:2])
    exc_frame = frame(
        {
            ":exception-type": exception_type,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        b'{"message":"Stream failed: try again"}',
    )
    parser = adapter().stream_parser(ChatRequest([user("x")], stream=True), MODEL)
    with pytest.raises(expected) as info:
        parser.feed(data)
        parser.feed(exc_frame)
    assert type(info.value) is expected
    assert info.value.message == "Stream failed: try again"


def test_corrupt_frame_is_invalid_response() -> None:
    data = bytearray(event("messageStart", {"role": "assistant"}))
    data[-1] ^= 0xFF
    parser = adapter().stream_parser(ChatRequest([user("x")], stream=True), MODEL)
    with pytest.raises(errors.InvalidResponse, match="corrupt"):
        parser.feed(bytes(data))


# ------------------------------------------------------------------ errors

ERROR_CASES = json.loads((FIXTURES / "errors.json").read_text())


@pytest.mark.parametrize("case", ERROR_CASES, ids=[c["case"] for c in ERROR_CASES])
def test_error_classification(case: dict[str, Any]) -> None:
    headers = {"x-amzn-errortype": case["errortype"], "x-amzn-requestid": "4c2e-rid"}
    err = adapter().parse_error(
        WireReply(case["status"], headers, json.dumps(case["body"]).encode()), MODEL
    )
    assert type(err).__name__ == case["expected"]
    assert err.message == case["body"]["message"]
    assert err.code == case["errortype"].split(":")[0]
    assert err.request_id == "4c2e-rid"
    assert err.retryable == (
        case["expected"] in {"RateLimited", "Overloaded", "ServerError", "ProviderTimeout"}
    )


def test_error_without_header_uses_body_type_and_retry_after() -> None:
    body = b'{"__type":"com.amazon.bedrock#ThrottlingException","message":"Rate exceeded"}'
    err = adapter().parse_error(WireReply(429, {"retry-after": "3"}, body), MODEL)
    assert isinstance(err, errors.RateLimited)
    assert err.retry_after == 3.0


# ------------------------------------------------------------------ embeddings


def test_titan_embed_request_and_reply() -> None:
    model = "amazon.titan-embed-text-v2:0"
    wire = adapter().build_embed(EmbedRequest(["hello"], dimensions=256), model)
    assert wire.url.endswith("/model/amazon.titan-embed-text-v2%3A0/invoke")
    assert wire.json() == {"inputText": "hello", "dimensions": 256, "normalize": True}
    assert wire.headers["authorization"].startswith("AWS4-HMAC-SHA256 ")
    resp = adapter().parse_embed(reply("embed_titan.json"), model)
    assert resp.vectors == [[0.0123, -0.0456, 0.0789, 0.1011]]
    assert resp.usage.input_tokens == 7
    with pytest.raises(errors.ContractError, match="one input per request"):
        adapter().build_embed(EmbedRequest(["a", "b"]), model)  # the flow splits first
    assert adapter().embed_batch_size(model) == 1
    assert adapter().embed_batch_size("cohere.embed-english-v3") == 96


def test_cohere_embed_request_and_reply() -> None:
    model = "cohere.embed-english-v3"
    wire = adapter().build_embed(
        EmbedRequest(["first text", "second text"], input_type="query"), model
    )
    assert wire.json() == {"texts": ["first text", "second text"], "input_type": "search_query"}
    default = adapter().build_embed(EmbedRequest(["x"]), model).json()
    assert default["input_type"] == "search_document"
    raw = reply("embed_cohere.json")
    resp = adapter().parse_embed(
        WireReply(200, {"x-amzn-bedrock-input-token-count": "4"}, raw.body), model
    )
    assert resp.vectors == [[0.25, -0.5, 0.125], [0.75, 0.0, -0.25]]
    assert resp.usage.input_tokens == 4
    with pytest.raises(errors.ContractError, match="dimensions"):
        adapter().build_embed(EmbedRequest(["x"], dimensions=256), model)
    with pytest.raises(errors.ContractError, match="titan-embed-text"):
        adapter().build_embed(EmbedRequest(["x"]), "amazon.nova-lite-v1:0")


# ------------------------------------------------------------------ wire round trip


def test_round_trip_through_httpx_mock_transport() -> None:
    a = adapter()
    seen: dict[str, Any] = {}

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen["path"] = request.url.raw_path.decode()
        seen["headers"] = request.headers
        seen["body"] = json.loads(request.content)
        return httpx2.Response(
            200,
            headers={
                "content-type": "application/vnd.amazon.eventstream",
                "x-amzn-requestid": "rid-1",
            },
            content=stream_bytes("stream_tools.json"),
        )

    req = ChatRequest(
        [Message("system", "Be brief."), user("orders?")], tools=[LOOKUP, WEATHER], stream=True
    )
    wire = a.build_chat(req, MODEL)
    parser = a.stream_parser(req, MODEL)
    with (
        httpx2.Client(transport=httpx2.MockTransport(handler)) as client,
        client.stream(wire.method, wire.url, headers=wire.headers, content=wire.body) as r,
    ):
        for chunk in r.iter_bytes(chunk_size=11):
            parser.feed(chunk)
    resp = a.finalize(req, parser.finish())
    assert seen["path"] == "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream"
    assert seen["headers"]["authorization"] == wire.headers["authorization"]
    assert seen["headers"]["x-amz-date"] == "20250102T030405Z"
    assert seen["body"]["system"] == [{"text": "Be brief."}]
    assert [t["toolSpec"]["name"] for t in seen["body"]["toolConfig"]["tools"]] == [
        "lookup_order",
        "get_weather",
    ]
    assert [c.name for c in resp.tool_calls] == ["lookup_order", "get_weather"]


def test_client_embed_splits_inputs_to_the_models_batch_size() -> None:
    """Titan takes one input per request: an embed of three is three signed requests, in
    order, one attempt, usage summed; Cohere Embed takes 96, so 200 texts are 96+96+8."""
    import portal

    bodies: list[dict[str, Any]] = []
    fail_on: set[int] = set()

    def handler(request: httpx2.Request) -> httpx2.Response:
        assert request.headers["authorization"].startswith("AWS4-HMAC-SHA256 ")
        body = json.loads(request.content)
        bodies.append(body)
        if len(bodies) in fail_on:
            return httpx2.Response(500, json={"message": "internal"})
        if "inputText" in body:
            text = body["inputText"]
            return httpx2.Response(
                200, json={"embedding": [float(len(text)), 0.5], "inputTextTokenCount": len(text)}
            )
        return httpx2.Response(
            200,
            json={
                "id": "e1",
                "embeddings": [[float(len(t))] for t in body["texts"]],
                "texts": body["texts"],
            },
        )

    options = {"region_name": "us-east-1", "access_key_id": KEY_ID, "secret_access_key": SECRET}
    config = {
        "portal": {"ledger": "none"},
        "providers": {"aws": {"kind": "bedrock", "options": options}},
    }
    with portal.Client(config, transports={"aws": httpx2.MockTransport(handler)}) as client:
        resp = client.embed(model="aws:amazon.titan-embed-text-v2:0", inputs=["a", "bbb", "cc"])
        assert [b["inputText"] for b in bodies] == ["a", "bbb", "cc"]
        assert resp.vectors == [[1.0, 0.5], [3.0, 0.5], [2.0, 0.5]]
        assert resp.usage.input_tokens == 6
        assert len(resp.attempts) == 1 and resp.attempts[0].outcome == "ok"

        bodies.clear()
        texts = [f"t{i}" * (i % 3 + 1) for i in range(200)]
        resp = client.embed(model="aws:cohere.embed-english-v3", inputs=texts)
        assert [len(b["texts"]) for b in bodies] == [96, 96, 8]
        assert resp.vectors == [[float(len(t))] for t in texts]

        bodies.clear()
        fail_on.update({2, 5})  # the second request of each try fails: the whole attempt does
        with pytest.raises(errors.ServerError):
            client.embed(model="aws:amazon.titan-embed-text-v2:0", inputs=["a", "b", "c"])
        assert [b["inputText"] for b in bodies][:2] == ["a", "b"]
