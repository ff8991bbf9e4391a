"""The ``anthropic`` adapter against the Messages API wire format.

References used for the request assertions and the fixtures in fixtures/anthropic/:
- https://docs.anthropic.com/en/api/messages (request body, content blocks, tool_choice, usage)
- https://docs.anthropic.com/en/docs/build-with-claude/streaming (SSE event sequence)
- https://docs.anthropic.com/en/api/errors (error body shape, types and statuses, 529)
- https://docs.anthropic.com/en/api/rate-limits (retry-after, anthropic-ratelimit-* headers)
- anthropics/anthropic-sdk-python src/anthropic/types/{stop_reason,usage,tool_choice_param}.py
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest

from portal import errors
from portal.contracts.messages import ImagePart, Message, ToolCall, tool_result, user
from portal.contracts.output import OutputSpec
from portal.contracts.request import ChatRequest, EmbedRequest
from portal.contracts.tools import ToolSpec
from portal.providers.anthropic import AnthropicAdapter, ratelimit_reset_after, safe_tool_id
from portal.providers.settings import ProviderSettings
from portal.secret import Secret
from portal.wire import WireReply

FIXTURES = Path(__file__).parent / "fixtures" / "anthropic"
MODEL = "claude-sonnet-4-5"
KEY = "sk-ant-test-0123456789"

LOOKUP = ToolSpec(
    "lookup_order",
    "Find an order by id.",
    {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
)
WEATHER = ToolSpec(
    "get_weather",
    "",
    {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}}},
)
ANSWER_SCHEMA = {
    "title": "Answer",
    "type": "object",
    "properties": {
        "order_id": {"type": "string"},
        "status": {"type": "string", "enum": ["pending", "shipped"]},
        "eta_days": {"type": "integer"},
    },
    "required": ["order_id", "status"],
}


def adapter(**kw: Any) -> AnthropicAdapter:
    settings = ProviderSettings(name="claude", kind="anthropic", api_key=Secret(KEY), **kw)
    return AnthropicAdapter(settings)


def reply(name: str, status: int = 200, headers: dict[str, str] | None = None) -> WireReply:
    body = (FIXTURES / name).read_bytes()
    return WireReply(status, headers or {"request-id": "req_fixture"}, body)


def stream(name: str, req: ChatRequest | None = None, chunk: int = 7) -> tuple[Any, list[Any]]:
    """Feed a fixture in small chunks (splitting lines and UTF-8 sequences)."""
    parser = adapter().stream_parser(req or ChatRequest([user("hi")], stream=True), MODEL)
    data = (FIXTURES / name).read_bytes()
    events = []
    for i in range(0, len(data), chunk):
        events.extend(parser.feed(data[i : i + chunk]))
    return parser, events


# ----------------------------------------------------------------------------- requests


def test_plain_request_url_headers_and_body() -> None:
    wire = adapter().build_chat(ChatRequest([user("Where is my order?")]), MODEL)
    assert wire.method == "POST"
    assert wire.url == "https://api.anthropic.com/v1/messages"
    assert wire.headers["x-api-key"] == KEY
    assert wire.headers["anthropic-version"] == "2023-06-01"
    assert wire.headers["content-type"] == "application/json"
    assert wire.json() == {
        "model": MODEL,
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": "Where is my order?"}],
    }
    assert KEY not in repr(wire)


def test_base_url_custom_headers_and_max_tokens_from_options() -> None:
    a = adapter(
        base_url="https://gateway.internal/anthropic/v1/",
        headers={"x-team": "support"},
        options={"max_tokens": 1000},
    )
    wire = a.build_chat(ChatRequest([user("hi")], temperature=0.2, top_p=0.9, stop=["END"]), MODEL)
    assert wire.url == "https://gateway.internal/anthropic/v1/messages"
    assert wire.headers["x-team"] == "support"
    body = wire.json()
    assert body["max_tokens"] == 1000
    assert (body["temperature"], body["top_p"], body["stop_sequences"]) == (0.2, 0.9, ["END"])
    assert (
        adapter().build_chat(ChatRequest([user("hi")], max_tokens=50), MODEL).json()["max_tokens"]
        == 50
    )
    with pytest.raises(errors.ContractError, match="max_tokens"):
        adapter(options={"max_tokens": "lots"}).build_chat(ChatRequest([user("hi")]), MODEL)


def test_missing_api_key_names_the_env_variable() -> None:
    a = AnthropicAdapter(ProviderSettings(name="claude", kind="anthropic"))
    with pytest.raises(errors.AuthenticationError, match="ANTHROPIC_API_KEY"):
        a.build_chat(ChatRequest([user("hi")]), MODEL)


def test_system_outside_messages_images_and_merged_turns() -> None:
    req = ChatRequest(
        [
            Message("system", "You are terse."),
            user(["What is this?", ImagePart(data="iVBORw0KGgo=", media_type="image/png")]),
            user([ImagePart(url="https://example.com/cat.jpg")]),
            Message("system", "Answer in French."),
            Message("assistant", "Un chat."),
        ]
    )
    body = adapter().build_chat(req, MODEL).json()
    assert body["system"] == [
        {"type": "text", "text": "You are terse."},
        {"type": "text", "text": "Answer in French."},
    ]
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                },
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
            ],
        },
        {"role": "assistant", "content": "Un chat."},
    ]
    single = adapter().build_chat(ChatRequest([Message("system", "Be brief."), user("x")]), MODEL)
    assert single.json()["system"] == "Be brief."


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (None, None),
        ("auto", {"type": "auto"}),
        ("required", {"type": "any"}),
        ("none", {"type": "none"}),
        ("get_weather", {"type": "tool", "name": "get_weather"}),
    ],
)
def test_tools_and_tool_choice(choice: str | None, expected: dict[str, Any] | None) -> None:
    body = (
        adapter()
        .build_chat(ChatRequest([user("hi")], tools=[LOOKUP, WEATHER], tool_choice=choice), MODEL)
        .json()
    )
    assert body["tools"] == [
        {
            "name": "lookup_order",
            "input_schema": LOOKUP.parameters,
            "description": "Find an order by id.",
        },
        {"name": "get_weather", "input_schema": WEATHER.parameters},
    ]
    assert body.get("tool_choice") == expected


def test_tool_history_parallel_results_share_one_user_turn() -> None:
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
            user("Thanks, and?"),
        ],
        tools=[LOOKUP],
    )
    msgs = adapter().build_chat(req, MODEL).json()["messages"]
    mapped = safe_tool_id("fc:gemini/0")
    assert mapped.startswith("toolu_") and mapped == safe_tool_id("fc:gemini/0")
    assert msgs[1] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Looking."},
            {
                "type": "tool_use",
                "id": "call_abc123",
                "name": "lookup_order",
                "input": {"order_id": "1"},
            },
            {"type": "tool_use", "id": mapped, "name": "lookup_order", "input": {"order_id": "2"}},
        ],
    }
    assert msgs[2] == {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "call_abc123",
                "content": '{"status": "shipped"}',
            },
            {
                "type": "tool_result",
                "tool_use_id": mapped,
                "content": "order not found",
                "is_error": True,
            },
            {"type": "text", "text": "Thanks, and?"},
        ],
    }
    assert len(msgs) == 3


def test_structured_output_is_a_forced_tool() -> None:
    output = OutputSpec.of(ANSWER_SCHEMA)
    body = adapter().build_chat(ChatRequest([user("status?")], output=output), MODEL).json()
    assert body["tools"][-1]["name"] == "Answer"
    assert body["tools"][-1]["input_schema"] == ANSWER_SCHEMA
    assert body["tool_choice"] == {
        "type": "tool",
        "name": "Answer",
        "disable_parallel_tool_use": True,
    }
    with_tools = (
        adapter()
        .build_chat(ChatRequest([user("status?")], tools=[LOOKUP], output=output), MODEL)
        .json()
    )
    assert [t["name"] for t in with_tools["tools"]] == ["lookup_order", "Answer"]
    assert with_tools["tool_choice"] == {"type": "any"}
    clash = ToolSpec("Answer", "", {"type": "object", "properties": {}})
    with pytest.raises(errors.ContractError, match="Answer"):
        adapter().build_chat(ChatRequest([user("x")], tools=[clash], output=output), MODEL)


def test_cache_control_marks_system_tools_and_last_message() -> None:
    cc = {"type": "ephemeral"}
    req = ChatRequest(
        [Message("system", "Long policy text."), user("q1")],
        tools=[LOOKUP],
        provider_options={"anthropic": {"cache_control": cc, "metadata": {"user_id": "u-1"}}},
    )
    body = adapter().build_chat(req, MODEL).json()
    assert body["system"] == [{"type": "text", "text": "Long policy text.", "cache_control": cc}]
    assert body["tools"][-1]["cache_control"] == cc
    assert body["messages"][-1]["content"] == [{"type": "text", "text": "q1", "cache_control": cc}]
    assert body["metadata"] == {"user_id": "u-1"}
    assert "cache_control" not in body


def test_no_embeddings() -> None:
    with pytest.raises(NotImplementedError, match="anthropic"):
        adapter().build_embed(EmbedRequest(["x"]), MODEL)


# ----------------------------------------------------------------------------- replies


def test_text_reply_usage_includes_cache_tokens_once() -> None:
    resp = adapter().parse_chat(reply("text.json"), MODEL)
    assert resp.text == "Your order 123 shipped yesterday and arrives Friday."
    assert (resp.finish_reason, resp.raw_finish_reason) == ("stop", "end_turn")
    assert resp.usage.input_tokens == 21 + 100 + 1800
    assert resp.usage.cached_input_tokens == 1800
    assert resp.usage.cache_write_tokens == 100
    assert resp.usage.output_tokens == 12
    assert resp.model == "claude-sonnet-4-5-20250929"
    assert resp.request_id == "req_fixture"
    assert resp.tool_calls == []


def test_parallel_tool_calls() -> None:
    resp = adapter().parse_chat(reply("tool_use.json"), MODEL)
    assert resp.finish_reason == "tool_calls"
    assert resp.text == "I'll look up both orders."
    assert resp.tool_calls == [
        ToolCall("toolu_01A09q90qw90lq917835lq9", "lookup_order", {"order_id": "123"}),
        ToolCall(
            "toolu_01B19r91rx91mr928946mr0", "lookup_order", {"order_id": "456", "verbose": True}
        ),
    ]
    req = ChatRequest([user("x")], output=OutputSpec.of(ANSWER_SCHEMA), tools=[LOOKUP])
    # a structured request whose reply is a real tool call keeps it as one
    assert adapter().finalize(req, resp).tool_calls == resp.tool_calls


def test_structured_reply_becomes_json_text_not_a_tool_call() -> None:
    req = ChatRequest([user("status?")], output=OutputSpec.of(ANSWER_SCHEMA))
    a = adapter()
    resp = a.finalize(req, a.parse_chat(reply("structured.json"), MODEL))
    assert json.loads(resp.text) == {"order_id": "123", "status": "shipped", "eta_days": 2}
    assert resp.tool_calls == []
    assert resp.finish_reason == "stop"
    assert resp.raw_finish_reason == "tool_use"
    assert req.output is not None and req.output.parse(resp.text)["status"] == "shipped"
    assert a.finalize(req, resp).text == resp.text  # idempotent


def test_refusal_and_unknown_stop_reasons() -> None:
    resp = adapter().parse_chat(reply("refusal.json"), MODEL)
    assert (resp.finish_reason, resp.raw_finish_reason) == ("content_filter", "refusal")
    data = json.loads((FIXTURES / "text.json").read_bytes())
    for raw, expected in [
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("brand_new_reason", "stop"),
    ]:
        data["stop_reason"] = raw
        parsed = adapter().parse_chat(WireReply(200, {}, json.dumps(data).encode()), MODEL)
        assert parsed.finish_reason == expected, raw
    data["content"] = []
    data["stop_reason"] = "brand_new_reason"
    empty = adapter().parse_chat(WireReply(200, {}, json.dumps(data).encode()), MODEL)
    assert empty.finish_reason == "error"


def test_malformed_reply_is_invalid_response() -> None:
    with pytest.raises(errors.InvalidResponse):
        adapter().parse_chat(WireReply(200, {}, b"<html>proxy error</html>"), MODEL)
    with pytest.raises(errors.InvalidResponse, match="content"):
        adapter().parse_chat(WireReply(200, {}, b'{"type":"message"}'), MODEL)


# ----------------------------------------------------------------------------- streams


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_stream_text_and_usage(chunk: int) -> None:
    parser, events = stream("stream_text.sse", chunk=chunk)
    assert "".join(e.text for e in events if e.type == "text") == "Hello, wörld!"
    usage_events = [e for e in events if e.type == "usage"]
    assert usage_events and usage_events[-1].usage.output_tokens == 15
    resp = parser.finish()
    assert resp.text == "Hello, wörld!"
    assert resp.finish_reason == "stop"
    assert (resp.usage.input_tokens, resp.usage.cached_input_tokens) == (1025, 1000)
    assert resp.usage.output_tokens == 15
    assert (resp.model, resp.request_id) == ("claude-sonnet-4-5-20250929", "msg_01StreamText")


def test_stream_tool_calls_assembled() -> None:
    parser, _ = stream("stream_tools.sse")
    resp = parser.finish()
    assert resp.text == "Checking both."
    assert resp.finish_reason == "tool_calls"
    assert resp.tool_calls == [
        ToolCall("toolu_01T1x1gpdhoGhKHh6LN1ra9P", "lookup_order", {"order_id": "123"}),
        ToolCall("toolu_01T2y2hqeiphIiLi7MO2sb0Q", "get_weather", {"city": "Paris", "unit": "c"}),
    ]
    assert resp.usage.output_tokens == 89


def test_stream_interleaved_tool_blocks() -> None:
    """Deltas of two tool_use blocks arriving interleaved are assembled by block index."""
    lines = [
        {"type": "message_start", "message": {"id": "m", "usage": {"input_tokens": 5}}},
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "tool_use", "id": "toolu_a", "name": "lookup_order"},
        },
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "toolu_b", "name": "get_weather"},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"city":'},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": '{"order_id":"9"'},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '"Oslo"}'},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": "}"},
        },
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 9},
        },
        {"type": "message_stop"},
    ]
    data = "".join(f"event: {d['type']}\ndata: {json.dumps(d)}\n\n" for d in lines).encode()
    parser = adapter().stream_parser(ChatRequest([user("x")], stream=True), MODEL)
    parser.feed(data)
    resp = parser.finish()
    assert [(c.id, c.arguments) for c in resp.tool_calls] == [
        ("toolu_a", {"order_id": "9"}),
        ("toolu_b", {"city": "Oslo"}),
    ]


def test_stream_structured_output_streams_json_as_text() -> None:
    req = ChatRequest([user("status?")], output=OutputSpec.of(ANSWER_SCHEMA), stream=True)
    parser, events = stream("stream_structured.sse", req)
    streamed = "".join(e.text for e in events if e.type == "text")
    assert json.loads(streamed) == {"order_id": "123", "status": "shipped", "eta_days": 2}
    resp = parser.finish()
    assert json.loads(resp.text) == json.loads(streamed)
    assert resp.tool_calls == [] and resp.finish_reason == "stop"
    assert adapter().finalize(req, resp) is resp and resp.tool_calls == []


def test_stream_cut_midway_raises_with_partial_text_and_usage() -> None:
    data = (FIXTURES / "stream_text.sse").read_bytes()
    cut = data.index(b"event: content_block_stop")
    parser = adapter().stream_parser(ChatRequest([user("hi")], stream=True), MODEL)
    parser.feed(data[:cut])
    with pytest.raises(errors.StreamInterrupted) as info:
        parser.finish()
    assert info.value.partial_text == "Hello, wörld!"
    assert info.value.usage is not None and info.value.usage.input_tokens == 1025
    assert info.value.retryable


def test_in_stream_error_event_is_classified() -> None:
    parser = adapter().stream_parser(ChatRequest([user("hi")], stream=True), MODEL)
    with pytest.raises(errors.Overloaded) as info:
        parser.feed((FIXTURES / "stream_error.sse").read_bytes())
    assert info.value.code == "overloaded_error"
    assert info.value.retryable
    assert info.value.provider == "claude"


# ----------------------------------------------------------------------------- errors

ERROR_CASES = json.loads((FIXTURES / "errors.json").read_text())


@pytest.mark.parametrize("case", ERROR_CASES, ids=[c["case"] for c in ERROR_CASES])
def test_error_classification(case: dict[str, Any]) -> None:
    headers = case.get("headers", {})
    err = adapter().parse_error(
        WireReply(case["status"], headers, json.dumps(case["body"]).encode()), MODEL
    )
    assert type(err).__name__ == case["expected"]
    assert err.status == case["status"]
    assert err.message == case["body"]["error"]["message"]
    assert err.code == case["body"]["error"]["type"]
    expected_id = headers.get("request-id") or case["body"].get("request_id")
    assert err.request_id == expected_id
    assert KEY not in str(err)


def test_retry_after_header_and_ratelimit_reset_headers() -> None:
    rate = next(c for c in ERROR_CASES if c["case"] == "rate_limit")
    body = json.dumps(rate["body"]).encode()
    err = adapter().parse_error(WireReply(429, {"retry-after": "17"}, body), MODEL)
    assert err.retry_after == 17.0
    reset = (datetime.now(UTC) + timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
    headers = {
        "anthropic-ratelimit-input-tokens-remaining": "0",
        "anthropic-ratelimit-input-tokens-reset": reset,
        "anthropic-ratelimit-requests-remaining": "12",
        "anthropic-ratelimit-requests-reset": "2099-01-01T00:00:00Z",
    }
    err = adapter().parse_error(WireReply(429, headers, body), MODEL)
    assert err.retry_after is not None and 25 < err.retry_after <= 30
    now = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
    assert (
        ratelimit_reset_after(
            {
                "anthropic-ratelimit-tokens-remaining": "0",
                "anthropic-ratelimit-tokens-reset": "2025-01-01T00:00:05Z",
            },
            now=now,
        )
        == 5.0
    )


# ----------------------------------------------------------------------------- wire round trip


def test_round_trip_through_httpx_mock_transport() -> None:
    a = adapter()
    seen: dict[str, Any] = {}

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen["url"] = str(request.url)
        seen["headers"] = request.headers
        seen["body"] = json.loads(request.content)
        sse = (FIXTURES / "stream_tools.sse").read_bytes()
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=sse)

    messages = [Message("system", "Be brief."), user("orders?")]
    req = ChatRequest(messages, tools=[LOOKUP], stream=True)
    wire = a.build_chat(req, MODEL)
    parser = a.stream_parser(req, MODEL)
    with (
        httpx2.Client(transport=httpx2.MockTransport(handler)) as client,
        client.stream(wire.method, wire.url, headers=wire.headers, content=wire.body) as r,
    ):
        for chunk in r.iter_bytes(chunk_size=16):
            parser.feed(chunk)
    resp = a.finalize(req, parser.finish())
    assert seen["url"] == "https://api.anthropic.com/v1/messages"
    assert seen["headers"]["x-api-key"] == KEY
    assert seen["headers"]["anthropic-version"] == "2023-06-01"
    assert seen["body"]["stream"] is True
    assert seen["body"]["system"] == "Be brief."
    assert seen["body"]["tools"][0]["name"] == "lookup_order"
    assert [c.name for c in resp.tool_calls] == ["lookup_order", "get_weather"]


def test_compaction_iterations_are_all_metered() -> None:
    """Server-side compaction samples twice in one reply; the top-level usage leaves the
    compaction iteration out, and Anthropic bills the sum over ``usage.iterations``."""
    resp = adapter().parse_chat(reply("reply_compaction.json"), MODEL)
    assert resp.text == "Your order 123 ships on Tuesday."
    assert resp.usage.input_tokens == 180000 + 23000
    assert resp.usage.output_tokens == 3500 + 1000
    assert resp.usage.cached_input_tokens == 0


def test_compaction_iterations_in_a_stream_are_all_metered() -> None:
    parser, _ = stream("stream_compaction.sse")
    resp = parser.finish()
    assert resp.usage.input_tokens == 180000 + 23000 + 2000  # fresh + cache reads
    assert resp.usage.cached_input_tokens == 2000
    assert resp.usage.output_tokens == 3500 + 1000
