"""OpenAI Responses API adapter.

References: shared/specs/openai-openapi.yaml, components CreateResponse, Response,
ResponseStreamEvent (ResponseTextDeltaEvent, ResponseOutputItemAddedEvent,
ResponseFunctionCallArgumentsDeltaEvent, ResponseCompletedEvent, ResponseFailedEvent,
ResponseErrorEvent), ResponseUsage, FunctionTool, FunctionCallOutputItemParam.
"""

from __future__ import annotations

import json

import httpx2
import pytest

from portal.contracts.messages import Message
from portal.contracts.request import ChatRequest
from portal.errors import (
    ContractError,
    InvalidResponse,
    RateLimited,
    ServerError,
    StreamInterrupted,
)
from portal.providers.openai_responses import OpenAIResponsesAdapter
from portal.providers.settings import ProviderSettings
from portal.secret import Secret
from portal.wire import WireReply
from tests.providers._cases import (
    LOOKUP,
    PNG_B64,
    SYSTEM,
    TEXT,
    WEATHER,
    error_reply,
    feed_all,
    fixture,
    full_request,
    reply,
    tool_history,
)
from tests.providers._openai_spec import errors as spec_errors

KIND = "openai-responses"


@pytest.fixture
def adapter() -> OpenAIResponsesAdapter:
    return OpenAIResponsesAdapter(ProviderSettings("openai", KIND, api_key=Secret("sk-r")))


def test_request_shape_matches_create_response(adapter: OpenAIResponsesAdapter) -> None:
    wire = adapter.build_chat(full_request(stream=True), "gpt-4.1")
    assert wire.url == "https://api.openai.com/v1/responses"
    body = wire.json()
    assert body["instructions"] == SYSTEM
    assert body["input"][0]["content"][1] == {
        "type": "input_image",
        "image_url": f"data:image/png;base64,{PNG_B64}",
        "detail": "auto",
    }
    assert body["tools"][0] == {
        "type": "function",
        "name": "lookup_order",
        "parameters": LOOKUP.parameters,
        "strict": False,
        "description": "Find an order by its id.",
    }
    fmt = body["text"]["format"]
    assert fmt["type"] == "json_schema" and fmt["strict"] is True and fmt["name"] == "Answer"
    assert fmt["schema"]["required"] == ["answer", "confidence", "note"]
    assert body["max_output_tokens"] == 256 and body["stream"] is True and body["store"] is False
    assert spec_errors(body, "CreateResponse") == []


def test_history_becomes_function_call_items(adapter: OpenAIResponsesAdapter) -> None:
    req = ChatRequest(tool_history(), tools=[LOOKUP, WEATHER], tool_choice="lookup_order")
    body = adapter.build_chat(req, "gpt-4.1").json()
    kinds = [i.get("type", i.get("role")) for i in body["input"]]
    assert kinds == [
        "user",
        "function_call",
        "function_call",
        "function_call_output",
        "function_call_output",
    ]
    assert body["input"][2] == {
        "type": "function_call",
        "call_id": "call_Z9y8X7w6V5u4T3s2R1q0P9o8",
        "name": "get_weather",
        "arguments": '{"city":"Paris"}',
    }
    assert body["input"][4]["call_id"] == "call_Z9y8X7w6V5u4T3s2R1q0P9o8"
    assert body["tool_choice"] == {"type": "function", "name": "lookup_order"}
    assert spec_errors(body, "CreateResponse") == []


def test_stop_and_seed_are_refused_not_dropped(adapter: OpenAIResponsesAdapter) -> None:
    with pytest.raises(ContractError, match="stop"):
        adapter.build_chat(ChatRequest([Message("user", "x")], stop=["\n"]), "m")
    with pytest.raises(ContractError, match="seed"):
        adapter.build_chat(ChatRequest([Message("user", "x")], seed=1), "m")


def test_fixtures_follow_the_spec() -> None:
    for name in ("reply_text.json", "reply_tool_calls.json", "reply_incomplete.json"):
        assert spec_errors(json.loads(fixture(KIND, name)), "Response") == [], name
    for name in (
        "stream_text.sse",
        "stream_tool_calls.sse",
        "stream_failed.sse",
        "stream_error.sse",
    ):
        for line in fixture(KIND, name).decode().splitlines():
            if line.startswith("data: "):
                assert spec_errors(json.loads(line[6:]), "ResponseStreamEvent") == [], (name, line)


def test_text_reply_usage(adapter: OpenAIResponsesAdapter) -> None:
    resp = adapter.parse_chat(reply(KIND, "reply_text.json"), "m")
    assert (resp.text, resp.finish_reason) == (TEXT, "stop")
    u = resp.usage
    assert (u.input_tokens, u.cached_input_tokens, u.output_tokens, u.reasoning_tokens) == (
        2006,
        1920,
        300,
        128,
    )


def test_tool_calls_use_call_id(adapter: OpenAIResponsesAdapter) -> None:
    resp = adapter.parse_chat(reply(KIND, "reply_tool_calls.json"), "m")
    assert resp.finish_reason == "tool_calls"
    assert [(c.id, c.name, c.arguments) for c in resp.tool_calls] == [
        ("call_unLAR8MvFNptuiZK6K6HCy5k", "lookup_order", {"order_id": "123"}),
        ("call_9yY3kpK0HvSYzR4ZPnqL0e2T", "get_weather", {"city": "Paris"}),
    ]


def test_incomplete_max_output_tokens_is_length(adapter: OpenAIResponsesAdapter) -> None:
    resp = adapter.parse_chat(reply(KIND, "reply_incomplete.json"), "m")
    assert (resp.finish_reason, resp.raw_finish_reason) == (
        "length",
        "incomplete:max_output_tokens",
    )


def test_stream_text_and_interleaved_tool_calls(adapter: OpenAIResponsesAdapter) -> None:
    req = ChatRequest([Message("user", "q")], stream=True)
    parser = adapter.stream_parser(req, "m")
    events = feed_all(parser, fixture(KIND, "stream_text.sse"), size=9)
    assert "".join(e.text for e in events if e.type == "text") == TEXT
    assert parser.finish().usage.output_tokens == 17
    parser = adapter.stream_parser(req, "m")
    feed_all(parser, fixture(KIND, "stream_tool_calls.sse"), size=4)
    resp = parser.finish()
    assert [(c.id, c.arguments) for c in resp.tool_calls] == [
        ("call_unLAR8MvFNptuiZK6K6HCy5k", {"order_id": "123"}),
        ("call_9yY3kpK0HvSYzR4ZPnqL0e2T", {"city": "Paris"}),
    ]


def test_stream_cut_failed_and_error_events(adapter: OpenAIResponsesAdapter) -> None:
    req = ChatRequest([Message("user", "q")], stream=True)
    parser = adapter.stream_parser(req, "m")
    feed_all(parser, fixture(KIND, "stream_cut.sse"))
    with pytest.raises(StreamInterrupted) as info:
        parser.finish()
    assert info.value.partial_text == "Your order 123 ships"
    with pytest.raises(ServerError, match="failed to generate"):
        feed_all(adapter.stream_parser(req, "m"), fixture(KIND, "stream_failed.sse"))
    with pytest.raises(RateLimited):
        feed_all(adapter.stream_parser(req, "m"), fixture(KIND, "stream_error.sse"))


def test_http_error_classification(adapter: OpenAIResponsesAdapter) -> None:
    err = adapter.parse_error(error_reply(KIND, "error_rate_limited.json"), "m")
    assert isinstance(err, RateLimited) and err.retry_after == pytest.approx(0.12)


def test_wire_round_trip(adapter: OpenAIResponsesAdapter) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        assert request.url.path == "/v1/responses"
        assert json.loads(request.content)["input"][0]["role"] == "user"
        return httpx2.Response(200, content=fixture(KIND, "reply_text.json"))

    with httpx2.Client(transport=httpx2.MockTransport(handler)) as client:
        wire = adapter.build_chat(full_request(), "gpt-4.1")
        r = client.request(wire.method, wire.url, headers=wire.headers, content=wire.body)
        assert (
            adapter.parse_chat(WireReply(r.status_code, dict(r.headers), r.content), "m").text
            == TEXT
        )


def test_tool_call_cut_by_max_output_tokens_is_length_with_the_partial_call_kept(
    adapter: OpenAIResponsesAdapter,
) -> None:
    """The token limit cut a function call: the reply is ``finish_reason="length"`` with its
    usage; the half call is not in ``tool_calls`` (nothing may run it) but kept, flagged, in
    ``provider_details["incomplete_tool_calls"]``."""
    data = json.loads(fixture(KIND, "reply_incomplete_tool_call.json"))
    assert spec_errors(data, "Response") == []
    resp = adapter.parse_chat(reply(KIND, "reply_incomplete_tool_call.json"), "m")
    assert (resp.finish_reason, resp.raw_finish_reason) == (
        "length",
        "incomplete:max_output_tokens",
    )
    assert resp.tool_calls == []
    assert resp.provider_details["incomplete_tool_calls"] == [
        {
            "id": "call_Qm3xT8vB2nL5kP9rW4yZ7cD1",
            "name": "lookup_order",
            "arguments": '{"order_id": "12',
        }
    ]
    assert (resp.usage.input_tokens, resp.usage.output_tokens) == (82, 16)


def test_streamed_tool_call_cut_by_max_output_tokens_is_length(
    adapter: OpenAIResponsesAdapter,
) -> None:
    raw = fixture(KIND, "stream_incomplete_tool_call.sse")
    for line in raw.decode().splitlines():
        if line.startswith("data: "):
            assert spec_errors(json.loads(line[6:]), "ResponseStreamEvent") == [], line
    parser = adapter.stream_parser(ChatRequest([Message("user", "q")], stream=True), "m")
    feed_all(parser, raw)
    resp = parser.finish()
    assert resp.finish_reason == "length" and resp.tool_calls == []
    assert resp.provider_details["incomplete_tool_calls"][0]["name"] == "lookup_order"
    assert resp.usage.output_tokens == 16


@pytest.mark.parametrize(
    "name", ["reply_background_queued.json", "reply_background_in_progress.json"]
)
def test_background_snapshot_is_not_a_finished_reply(
    adapter: OpenAIResponsesAdapter, name: str
) -> None:
    assert spec_errors(json.loads(fixture(KIND, name)), "Response") == []
    with pytest.raises(InvalidResponse, match="background") as info:
        adapter.parse_chat(reply(KIND, name), "m")
    assert not info.value.retryable
    assert info.value.request_id == json.loads(fixture(KIND, name))["id"]


def test_background_without_streaming_is_refused_before_sending(
    adapter: OpenAIResponsesAdapter,
) -> None:
    req = ChatRequest(
        [Message("user", "q")], provider_options={"openai-responses": {"background": True}}
    )
    with pytest.raises(ContractError, match="background"):
        adapter.build_chat(req, "gpt-4.1")
    streamed = ChatRequest(
        [Message("user", "q")],
        stream=True,
        provider_options={"openai-responses": {"background": True}},
    )
    assert adapter.build_chat(streamed, "gpt-4.1").json()["background"] is True
