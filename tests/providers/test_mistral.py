"""Mistral adapter.

References: Mistral API reference (docs.mistral.ai/api: "Chat Completion" — tool_choice
auto/none/any/required or a function, max_tokens, random_seed, response_format json_schema;
"Embeddings" — output_dimension), and mistralai/client-python models (ToolCall ids, UsageInfo,
HTTPValidationError ``{"detail": [...]}``).
"""

from __future__ import annotations

import json

import httpx2
import pytest

from portal.contracts.request import ChatRequest, EmbedRequest
from portal.errors import BadRequest, ContextTooLong, RateLimited
from portal.providers.mistral import MistralAdapter, mistral_tool_call_id
from portal.providers.settings import ProviderSettings
from portal.secret import Secret
from tests.providers._cases import (
    ANSWER,
    LOOKUP,
    PNG_B64,
    TEXT,
    WEATHER,
    error_reply,
    feed_all,
    fixture,
    full_request,
    reply,
    tool_history,
)

KIND = "mistral"


@pytest.fixture
def adapter() -> MistralAdapter:
    return MistralAdapter(ProviderSettings("mistral", KIND, api_key=Secret("mk-1")))


def test_request_differences_from_openai(adapter: MistralAdapter) -> None:
    req = full_request(stream=True)
    req.seed = 42
    req.tool_choice = "required"
    wire = adapter.build_chat(req, "mistral-large-latest")
    assert wire.url == "https://api.mistral.ai/v1/chat/completions"
    assert wire.headers["authorization"] == "Bearer mk-1"
    body = wire.json()
    assert body["max_tokens"] == 256 and "max_completion_tokens" not in body
    assert body["random_seed"] == 42 and "seed" not in body
    assert body["tool_choice"] == "any"
    assert "stream_options" not in body and body["stream"] is True
    assert body["messages"][1]["content"][1] == {
        "type": "image_url",
        "image_url": f"data:image/png;base64,{PNG_B64}",
    }
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "Answer", "schema": ANSWER.schema, "strict": True},
    }


def test_foreign_tool_call_ids_become_stable_9_char_ids(adapter: MistralAdapter) -> None:
    body = adapter.build_chat(ChatRequest(tool_history(), tools=[LOOKUP, WEATHER]), "m").json()
    ids = [c["id"] for c in body["messages"][2]["tool_calls"]]
    assert all(len(i) == 9 and i.isalnum() for i in ids) and len(set(ids)) == 2
    assert [body["messages"][3]["tool_call_id"], body["messages"][4]["tool_call_id"]] == ids
    assert mistral_tool_call_id("call_a1B2c3D4e5F6g7H8i9J0k1L2") == ids[0]  # deterministic
    assert mistral_tool_call_id("D681PevKs") == "D681PevKs"


def test_named_tool_choice(adapter: MistralAdapter) -> None:
    body = adapter.build_chat(
        ChatRequest(tool_history(), tools=[LOOKUP], tool_choice="lookup_order"), "m"
    ).json()
    assert body["tool_choice"] == {"type": "function", "function": {"name": "lookup_order"}}


def test_replies(adapter: MistralAdapter) -> None:
    resp = adapter.parse_chat(reply(KIND, "reply_text.json"), "m")
    assert (resp.text, resp.finish_reason, resp.usage.input_tokens) == (TEXT, "stop", 82)
    calls = adapter.parse_chat(reply(KIND, "reply_tool_calls.json"), "m").tool_calls
    assert [(c.id, c.arguments) for c in calls] == [
        ("D681PevKs", {"order_id": "123"}),
        ("g7YhQ2mZp", {"city": "Paris"}),
    ]
    cut = adapter.parse_chat(reply(KIND, "reply_model_length.json"), "m")
    assert (cut.finish_reason, cut.raw_finish_reason) == ("length", "model_length")


def test_stream_usage_in_last_chunk(adapter: MistralAdapter) -> None:
    parser = adapter.stream_parser(full_request(stream=True), "m")
    events = feed_all(parser, fixture(KIND, "stream_text.sse"))
    assert "".join(e.text for e in events if e.type == "text") == TEXT
    assert parser.finish().usage.output_tokens == 17


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("error_rate_limited.json", RateLimited),
        ("error_context_too_long.json", ContextTooLong),
        ("error_bad_request.json", BadRequest),
    ],
)
def test_errors(adapter: MistralAdapter, name: str, cls: type[Exception]) -> None:
    err = adapter.parse_error(error_reply(KIND, name), "m")
    assert type(err) is cls and err.message


def test_validation_error_names_the_field(adapter: MistralAdapter) -> None:
    err = adapter.parse_error(error_reply(KIND, "error_bad_request.json"), "m")
    assert "body.messages: Field required" in err.message
    assert adapter.parse_error(error_reply(KIND, "error_rate_limited.json"), "m").retry_after == 1.0


def test_embeddings(adapter: MistralAdapter) -> None:
    wire = adapter.build_embed(EmbedRequest(["a"], dimensions=512), "mistral-embed")
    assert wire.url == "https://api.mistral.ai/v1/embeddings"
    assert wire.json() == {"model": "mistral-embed", "input": ["a"], "output_dimension": 512}
    out = adapter.parse_embed(reply(KIND, "embeddings.json"), "mistral-embed")
    assert out.vectors == [[-0.0165, 0.0711, 0.0323]] and out.usage.input_tokens == 6


def test_wire_round_trip(adapter: MistralAdapter) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        assert json.loads(request.content)["max_tokens"] == 256
        return httpx2.Response(200, content=fixture(KIND, "stream_text.sse"))

    req = full_request(stream=True)
    with httpx2.Client(transport=httpx2.MockTransport(handler)) as client:
        wire = adapter.build_chat(req, "m")
        parser = adapter.stream_parser(req, "m")
        with client.stream(wire.method, wire.url, headers=wire.headers, content=wire.body) as r:
            for chunk in r.iter_bytes():
                parser.feed(chunk)
    assert parser.finish().text == TEXT
