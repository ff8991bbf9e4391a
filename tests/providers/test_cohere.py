"""Cohere v2 adapter: chat, stream, tools, structured output, errors, embeddings.

Formats checked against: docs.cohere.com/reference/chat, /reference/chat-stream,
/reference/embed, /reference/errors, and cohere-ai/cohere-python (src/cohere/v2/raw_client.py,
v2/types/v2chat_response.py, v2/types/v2chat_stream_response.py, types/usage.py,
types/chat_finish_reason.py, types/tool_content.py, types/content.py,
types/response_format_v2.py). Fixtures under fixtures/cohere were written by hand from those.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2
import pytest

from portal.contracts.messages import ImagePart, Message, TextPart, ToolCall, tool_result
from portal.contracts.output import OutputSpec
from portal.contracts.request import ChatRequest, EmbedRequest
from portal.contracts.tools import ToolSpec
from portal.errors import ContractError, ServerError, StreamInterrupted
from portal.providers.cohere import CohereAdapter
from portal.providers.registry import adapter_class
from portal.providers.settings import ProviderSettings
from portal.secret import Secret
from portal.wire import WireReply

FIXTURES = Path(__file__).parent / "fixtures" / "cohere"


def cohere(base_url: str | None = None) -> CohereAdapter:
    return CohereAdapter(
        ProviderSettings(
            name="cohere",
            kind="cohere",
            base_url=base_url,
            api_key=Secret("co-key"),
            headers={"x-client-name": "portal-tests"},
        )
    )


def reply(name: str) -> WireReply:
    return WireReply(200, {"x-debug-trace-id": "trace-1"}, (FIXTURES / name).read_bytes())


def stream(name: str, size: int = 9) -> tuple[list[Any], Any]:
    parser = cohere().stream_parser(ChatRequest([Message("user", "x")], stream=True), "command-a")
    data = (FIXTURES / name).read_bytes()
    events = []
    for i in range(0, len(data), size):
        events.extend(parser.feed(data[i : i + size]))
    return events, parser


WEATHER = ToolSpec(
    "get_weather",
    "Weather for a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
LOOKUP = ToolSpec(
    "lookup_order",
    "Find an order.",
    {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
)
ANSWER = OutputSpec(
    {
        "type": "object",
        "properties": {"answer": {"type": "string"}, "confidence": {"type": "number"}},
        "required": ["answer", "confidence"],
    },
    "Answer",
)


def test_registry() -> None:
    assert adapter_class("cohere") is CohereAdapter


def test_plain_request_url_headers_body() -> None:
    req = ChatRequest(
        [Message("system", "Be brief."), Message("user", "Where is my order?")],
        temperature=0.3,
        max_tokens=200,
        top_p=0.8,
        stop=["END"],
        seed=11,
    )
    wire = cohere().build_chat(req, "command-a-03-2025")
    assert wire.url == "https://api.cohere.com/v2/chat"
    assert wire.headers["authorization"] == "Bearer co-key"
    assert wire.headers["x-client-name"] == "portal-tests"
    assert "co-key" not in repr(wire)
    assert wire.json() == {
        "model": "command-a-03-2025",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Where is my order?"},
        ],
        "max_tokens": 200,
        "temperature": 0.3,
        "p": 0.8,
        "stop_sequences": ["END"],
        "seed": 11,
        "stream": False,
    }


def test_images_tools_and_structured_output_body() -> None:
    req = ChatRequest(
        [
            Message(
                "user",
                [
                    TextPart("What is this?"),
                    ImagePart(data="iVBORw0KGgo=", media_type="image/png"),
                    ImagePart(url="https://example.com/cat.jpg"),
                ],
            )
        ],
        tools=[WEATHER, LOOKUP],
        tool_choice="required",
        output=ANSWER,
        stream=True,
    )
    wire = cohere("https://proxy.internal/cohere/").build_chat(req, "command-a-vision-07-2025")
    assert wire.url == "https://proxy.internal/cohere/v2/chat"
    assert wire.headers["accept"] == "text/event-stream"
    assert wire.json() == {
        "model": "command-a-vision-07-2025",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
                    },
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                ],
            }
        ],
        "tools": [
            {"type": "function", "function": {**fn, "parameters": spec.parameters}}
            for spec, fn in (
                (WEATHER, {"name": "get_weather", "description": "Weather for a city."}),
                (LOOKUP, {"name": "lookup_order", "description": "Find an order."}),
            )
        ],
        "tool_choice": "REQUIRED",
        "response_format": {"type": "json_object", "json_schema": ANSWER.schema},
        "stream": True,
    }


@pytest.mark.parametrize(
    ("choice", "wire"), [("auto", None), ("none", "NONE"), ("required", "REQUIRED")]
)
def test_tool_choice(choice: str, wire: str | None) -> None:
    body = cohere().build_chat(ChatRequest([Message("user", "x")], [WEATHER], choice), "m").json()
    assert body.get("tool_choice") == wire


def test_named_tool_choice_is_refused_naming_vendor_and_value() -> None:
    req = ChatRequest([Message("user", "x")], [WEATHER], "get_weather")
    with pytest.raises(ContractError, match=r"'get_weather'.*Cohere"):
        cohere().build_chat(req, "m")


def test_openai_tool_history_is_replayed() -> None:
    history = [
        Message("user", "Order 123 and weather in Paris?"),
        Message(
            "assistant",
            "Let me check both.",
            [
                ToolCall("call_Xa1", "lookup_order", {"order_id": "123"}),
                ToolCall("call_Xa2", "get_weather", {"city": "Paris"}),
            ],
        ),
        tool_result("call_Xa1", {"status": "shipped"}),
        tool_result("call_Xa2", "light rain"),
        tool_result("call_Xa3", "timeout", is_error=True),
        Message("assistant", "Shipped; light rain."),
    ]
    assert cohere().build_chat(ChatRequest(history), "m").json()["messages"] == [
        {"role": "user", "content": "Order 123 and weather in Paris?"},
        {
            "role": "assistant",
            "tool_plan": "Let me check both.",
            "tool_calls": [
                {
                    "id": "call_Xa1",
                    "type": "function",
                    "function": {"name": "lookup_order", "arguments": '{"order_id":"123"}'},
                },
                {
                    "id": "call_Xa2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "call_Xa1",
            "content": [{"type": "document", "document": {"data": {"status": "shipped"}}}],
        },
        {
            "role": "tool",
            "tool_call_id": "call_Xa2",
            "content": [{"type": "text", "text": "light rain"}],
        },
        {
            "role": "tool",
            "tool_call_id": "call_Xa3",
            "content": [{"type": "text", "text": '{"error": "timeout"}'}],
        },
        {"role": "assistant", "content": "Shipped; light rain."},
    ]


def test_text_reply_usage_and_request_id() -> None:
    resp = cohere().parse_chat(reply("text.json"), "command-a-03-2025")
    assert resp.text == "Your order 123 shipped yesterday and arrives Friday."
    assert (resp.finish_reason, resp.raw_finish_reason) == ("stop", "COMPLETE")
    # billed units are what Cohere charges; cached tokens are a share of the input
    assert (resp.usage.input_tokens, resp.usage.output_tokens) == (17, 12)
    assert resp.usage.cached_input_tokens == 8
    assert resp.provider_details["usage"]["tokens"] == {"input_tokens": 512, "output_tokens": 14}
    assert resp.request_id == "c14c80c3-18eb-4519-9460-6c92edd8cfb4"


def test_parallel_tool_calls_and_tool_plan() -> None:
    resp = cohere().parse_chat(reply("tool_calls.json"), "m")
    assert resp.finish_reason == "tool_calls"
    assert [(c.id, c.name, c.arguments) for c in resp.tool_calls] == [
        ("lookup_order_8mqv2bq1s0kt", "lookup_order", {"order_id": "123"}),
        ("get_weather_n3x9pd4a7r2c", "get_weather", {"city": "Paris", "unit": "celsius"}),
    ]
    assert resp.text == ""
    assert resp.provider_details["tool_plan"].startswith("I will look up the order")


def test_structured_output_and_citations() -> None:
    resp = cohere().parse_chat(reply("structured.json"), "m")
    assert ANSWER.parse(resp.text) == {"answer": "It shipped.", "confidence": 0.92}
    cited = cohere().parse_chat(reply("citations.json"), "m")
    assert cited.citations == ["Monday."]
    assert cited.provider_details["citations"][0]["sources"][0]["type"] == "tool"


@pytest.mark.parametrize(
    ("raw", "content", "expected"),
    [
        ("MAX_TOKENS", "cut", "length"),
        ("STOP_SEQUENCE", "done", "stop"),
        ("TIMEOUT", "", "error"),
        ("ERROR", "", "error"),
        ("SOMETHING_NEW", "text", "stop"),
        ("SOMETHING_NEW", "", "error"),
    ],
)
def test_finish_reasons(raw: str, content: str, expected: str) -> None:
    parts = [{"type": "text", "text": content}] if content else []
    body = {"id": "x", "message": {"role": "assistant", "content": parts}, "finish_reason": raw}
    resp = cohere().parse_chat(WireReply(200, {}, json.dumps(body).encode()), "m")
    assert resp.finish_reason == expected


@pytest.mark.parametrize("size", [1, 9, 100_000])
def test_stream_text_with_usage(size: int) -> None:
    events, parser = stream("stream_text.sse", size)
    assert [e.text for e in events if e.type == "text"] == [
        "Your order",
        " shipped — ",
        "arrives Friday.",
    ]
    usage = [e.usage for e in events if e.type == "usage"]
    assert len(usage) == 1 and usage[0].input_tokens == 17
    resp = parser.finish()
    assert resp.text == "Your order shipped — arrives Friday."
    assert resp.finish_reason == "stop"
    assert resp.request_id == "29f14a5a-11de-4cae-9800-25e4747408ea"
    assert resp.usage.cached_input_tokens == 8


def test_stream_interleaved_tool_calls() -> None:
    _, parser = stream("stream_tools.sse")
    resp = parser.finish()
    assert [(c.id, c.name, c.arguments) for c in resp.tool_calls] == [
        ("lookup_order_8mqv2bq1s0kt", "lookup_order", {"order_id": "123"}),
        ("get_weather_n3x9pd4a7r2c", "get_weather", {"city": "Paris"}),
    ]
    assert resp.finish_reason == "tool_calls"
    assert resp.provider_details["tool_plan"] == "I will look up the order and check the weather."
    assert resp.usage.output_tokens == 51


def test_stream_cut_raises_with_partial_text() -> None:
    _, parser = stream("stream_cut.sse")
    with pytest.raises(StreamInterrupted, match="message-end") as info:
        parser.finish()
    assert info.value.partial_text == "The three causes were first, the"


def test_stream_error_event_raises() -> None:
    with pytest.raises(ServerError, match="internal server error"):
        stream("stream_error.sse")


ERROR_FIXTURES = sorted(p.name for p in FIXTURES.glob("error_*.json"))


@pytest.mark.parametrize("name", ERROR_FIXTURES)
def test_error_fixtures_classify(name: str) -> None:
    fixture = json.loads((FIXTURES / name).read_text())
    wire = WireReply(fixture["status"], fixture["headers"], json.dumps(fixture["body"]).encode())
    error = cohere().parse_error(wire, "command-a-03-2025")
    assert type(error).__name__ == fixture["expected"]
    assert error.message == fixture["body"]["message"]
    assert error.request_id == "8c5f3e2d1b0a49786a5b4c3d2e1f0a9b"
    if fixture["status"] == 429:
        assert error.retry_after == 12.0
        assert error.retryable


def test_embeddings_request_and_reply() -> None:
    req = EmbedRequest(["where is my order", "orders ship within two days"], input_type="query")
    wire = cohere().build_embed(req, "embed-v4.0")
    assert wire.url == "https://api.cohere.com/v2/embed"
    assert wire.json() == {
        "model": "embed-v4.0",
        "texts": ["where is my order", "orders ship within two days"],
        "input_type": "search_query",
        "embedding_types": ["float"],
    }
    assert cohere().build_embed(EmbedRequest(["d"], 512), "embed-v4.0").json()["input_type"] == (
        "search_document"
    )
    resp = cohere().parse_embed(reply("embed.json"), "embed-v4.0")
    assert resp.vectors[1] == [-0.0094, 0.0271, 0.0133, -0.0409]
    assert resp.usage.input_tokens == 11
    with pytest.raises(ContractError, match="at most 96"):
        cohere().build_embed(EmbedRequest(["x"] * 97), "embed-v4.0")
    assert cohere().embed_batch_size("embed-v4.0") == 96  # so the client splits first


def test_round_trip_through_httpx_mock_transport() -> None:
    adapter = cohere()
    seen: list[dict[str, Any]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        seen.append({"auth": request.headers["authorization"], "body": body})
        if body["stream"]:
            data = (FIXTURES / "stream_tools.sse").read_bytes()
            return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=data)
        return httpx2.Response(
            200,
            headers={"content-type": "application/json", "x-debug-trace-id": "t-9"},
            content=(FIXTURES / "tool_calls.json").read_bytes(),
        )

    client = httpx2.Client(transport=httpx2.MockTransport(handler))
    req = ChatRequest([Message("user", "Order 123?")], tools=[LOOKUP, WEATHER])
    wire = adapter.build_chat(req, "command-a-03-2025")
    http = client.request(wire.method, wire.url, headers=wire.headers, content=wire.body)
    resp = adapter.parse_chat(WireReply(http.status_code, http.headers, http.content), "m")
    assert seen[0]["auth"] == "Bearer co-key"
    assert seen[0]["body"]["tools"][0]["function"]["name"] == "lookup_order"
    assert [c.name for c in resp.tool_calls] == ["lookup_order", "get_weather"]

    req.stream = True
    wire = adapter.build_chat(req, "command-a-03-2025")
    parser = adapter.stream_parser(req, "command-a-03-2025")
    with client.stream(wire.method, wire.url, headers=wire.headers, content=wire.body) as http:
        for chunk in http.iter_bytes(chunk_size=13):
            parser.feed(chunk)
    assert seen[1]["body"]["stream"] is True
    assert [c.arguments for c in parser.finish().tool_calls] == [
        {"order_id": "123"},
        {"city": "Paris"},
    ]
