"""Gemini API and Vertex AI adapters, and the JSON Schema -> Gemini Schema translator.

Formats checked against: the Gemini API REST reference (models.generateContent,
streamGenerateContent, batchEmbedContents; google.rpc error model), the Vertex AI
generateContent / predict references, and googleapis/python-genai google/genai/types.py
(Content, Part, FunctionCall, FunctionResponse, FunctionCallingConfig, GenerationConfig,
Schema, GenerateContentResponseUsageMetadata, FinishReason, BlockedReason). Fixtures under
fixtures/gemini and fixtures/vertex were written by hand from those references.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any, Literal

import httpx2
import pytest
from pydantic import BaseModel, Field

import portal.errors as errors
from portal.contracts.messages import ImagePart, Message, TextPart, ToolCall, tool_result
from portal.contracts.output import OutputSpec
from portal.contracts.request import ChatRequest, EmbedRequest
from portal.contracts.tools import ToolSpec
from portal.errors import ConfigError, ContentFiltered, ContractError, StreamInterrupted
from portal.providers.gemini import SKIP_SIGNATURE, GeminiAdapter, VertexAdapter
from portal.providers.gemini_schema import to_gemini_schema
from portal.providers.registry import adapter_class
from portal.providers.settings import ProviderSettings
from portal.secret import Secret
from portal.wire import WireReply

FIXTURES = Path(__file__).parent / "fixtures"
BASE = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash"


def gemini(**options: Any) -> GeminiAdapter:
    return GeminiAdapter(
        ProviderSettings(name="google", kind="gemini", api_key=Secret("g-key"), options=options)
    )


def vertex(**options: Any) -> VertexAdapter:
    options.setdefault("project", "acme-prod")
    return VertexAdapter(
        ProviderSettings(name="gcp", kind="vertex", api_key=Secret("ya29.token"), options=options)
    )


def reply(name: str, kind: str = "gemini", status: int = 200) -> WireReply:
    return WireReply(status, {}, (FIXTURES / kind / name).read_bytes())


def stream(adapter: GeminiAdapter, name: str, size: int = 7) -> tuple[list[Any], Any]:
    parser = adapter.stream_parser(ChatRequest([Message("user", "hi")], stream=True), "m")
    data = (FIXTURES / "gemini" / name).read_bytes()
    events = []
    for i in range(0, len(data), size):
        events.extend(parser.feed(data[i : i + size]))
    return events, parser


WEATHER = ToolSpec(
    "get_weather",
    "Weather for a city.",
    {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
        "required": ["city"],
    },
)
LOOKUP = ToolSpec(
    "lookup_order",
    "Find an order.",
    {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
)
ANSWER = OutputSpec(
    {
        "type": "object",
        "title": "Answer",
        "properties": {
            "answer": {"type": "string"},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        },
        "required": ["answer", "confidence"],
        "additionalProperties": False,
    },
    "Answer",
)


def test_registry_names_both_kinds() -> None:
    assert adapter_class("gemini") is GeminiAdapter
    assert adapter_class("vertex") is VertexAdapter


# ----------------------------------------------------------------------------- requests


def test_plain_text_request_url_headers_and_body() -> None:
    req = ChatRequest([Message("user", "Where is my order?")], temperature=0.2, max_tokens=256)
    wire = gemini().build_chat(req, "gemini-2.5-flash")
    assert wire.method == "POST"
    assert wire.url == BASE + ":generateContent"
    assert wire.headers["x-goog-api-key"] == "g-key"
    assert "g-key" not in repr(wire)
    assert wire.json() == {
        "contents": [{"role": "user", "parts": [{"text": "Where is my order?"}]}],
        "generationConfig": {"temperature": 0.2, "maxOutputTokens": 256},
    }


def test_system_images_tools_and_structured_output_body() -> None:
    req = ChatRequest(
        [
            Message("system", "You are terse."),
            Message(
                "user",
                [
                    TextPart("What is in these?"),
                    ImagePart(data="iVBORw0KGgo=", media_type="image/png"),
                    ImagePart(url="https://example.com/cat.jpg"),
                ],
            ),
        ],
        tools=[WEATHER, LOOKUP],
        tool_choice="auto",
        output=ANSWER,
        top_p=0.9,
        stop=["END"],
        seed=7,
    )
    body = gemini().build_chat(req, "gemini-2.5-flash").json()
    assert body == {
        "systemInstruction": {"parts": [{"text": "You are terse."}]},
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "What is in these?"},
                    {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                    {
                        "fileData": {
                            "mimeType": "image/jpeg",
                            "fileUri": "https://example.com/cat.jpg",
                        }
                    },
                ],
            }
        ],
        "tools": [
            {
                "functionDeclarations": [
                    {
                        "name": "get_weather",
                        "description": "Weather for a city.",
                        "parameters": {
                            "type": "OBJECT",
                            "properties": {
                                "city": {"type": "STRING"},
                                "unit": {"type": "STRING", "enum": ["celsius", "fahrenheit"]},
                            },
                            "required": ["city"],
                        },
                    },
                    {
                        "name": "lookup_order",
                        "description": "Find an order.",
                        "parameters": {
                            "type": "OBJECT",
                            "properties": {"order_id": {"type": "STRING"}},
                            "required": ["order_id"],
                        },
                    },
                ]
            }
        ],
        "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
        "generationConfig": {
            "topP": 0.9,
            "stopSequences": ["END"],
            "seed": 7,
            "responseMimeType": "application/json",
            "responseSchema": {
                "type": "OBJECT",
                "properties": {
                    "answer": {"type": "STRING"},
                    "confidence": {"type": "NUMBER", "minimum": 0, "maximum": 1},
                },
                "required": ["answer", "confidence"],
            },
        },
    }


def test_image_url_without_guessable_type_is_refused() -> None:
    req = ChatRequest([Message("user", [ImagePart(url="https://example.com/img?id=4")])])
    with pytest.raises(ContractError, match="media_type"):
        gemini().build_chat(req, "m")


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        ("lookup_order", {"mode": "ANY", "allowedFunctionNames": ["lookup_order"]}),
    ],
)
def test_tool_choice(choice: str, expected: dict[str, Any]) -> None:
    req = ChatRequest([Message("user", "x")], tools=[WEATHER, LOOKUP], tool_choice=choice)
    assert gemini().build_chat(req, "m").json()["toolConfig"] == {"functionCallingConfig": expected}


def test_tool_choice_naming_an_absent_tool_is_refused() -> None:
    req = ChatRequest([Message("user", "x")], tools=[WEATHER], tool_choice="delete_everything")
    with pytest.raises(ContractError, match="delete_everything"):
        gemini().build_chat(req, "m")


def test_too_many_stop_sequences_are_refused() -> None:
    req = ChatRequest([Message("user", "x")], stop=["a", "b", "c", "d", "e", "f"])
    with pytest.raises(ContractError, match="at most 5"):
        gemini().build_chat(req, "m")


def test_tool_without_parameters_omits_them() -> None:
    req = ChatRequest([Message("user", "x")], tools=[ToolSpec("now", "Current time.")])
    decl = gemini().build_chat(req, "m").json()["tools"][0]["functionDeclarations"][0]
    assert decl == {"name": "now", "description": "Current time."}


def test_json_schema_option_sends_full_json_schema() -> None:
    req = ChatRequest([Message("user", "x")], tools=[WEATHER], output=ANSWER)
    body = gemini(json_schema=True).build_chat(req, "m").json()
    assert body["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"] == WEATHER.parameters
    assert body["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseJsonSchema": ANSWER.schema,
    }


def test_provider_options_merge_into_generation_config_and_body() -> None:
    req = ChatRequest(
        [Message("user", "x")],
        temperature=0.1,
        provider_options={
            "gemini": {
                "generationConfig": {"thinkingConfig": {"thinkingBudget": 0}},
                "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "OFF"}],
            }
        },
    )
    body = gemini().build_chat(req, "m").json()
    assert body["generationConfig"] == {"temperature": 0.1, "thinkingConfig": {"thinkingBudget": 0}}
    assert body["safetySettings"][0]["threshold"] == "OFF"


def openai_history() -> list[Message]:
    """A tool conversation as OpenAI produced it: OpenAI ids, parallel calls, two results."""
    return [
        Message("system", "Be brief."),
        Message("user", "Where is order 123, and is it raining in Paris?"),
        Message(
            "assistant",
            None,
            [
                ToolCall("call_Xa1", "lookup_order", {"order_id": "123"}),
                ToolCall("call_Xa2", "get_weather", {"city": "Paris"}),
            ],
        ),
        tool_result("call_Xa1", {"status": "shipped"}),
        tool_result("call_Xa2", "light rain"),
        Message("assistant", "Shipped; light rain in Paris."),
        Message("user", "Thanks!"),
    ]


def test_foreign_tool_history_is_replayed_with_names_ids_and_placeholder_signature() -> None:
    body = gemini().build_chat(ChatRequest(openai_history()), "m").json()
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Where is order 123, and is it raining in Paris?"}]},
        {
            "role": "model",
            "parts": [
                {
                    "functionCall": {
                        "name": "lookup_order",
                        "args": {"order_id": "123"},
                        "id": "call_Xa1",
                    },
                    "thoughtSignature": SKIP_SIGNATURE,
                },
                {
                    "functionCall": {
                        "name": "get_weather",
                        "args": {"city": "Paris"},
                        "id": "call_Xa2",
                    }
                },
            ],
        },
        {
            "role": "user",
            "parts": [
                {
                    "functionResponse": {
                        "name": "lookup_order",
                        "response": {"status": "shipped"},
                        "id": "call_Xa1",
                    }
                },
                {
                    "functionResponse": {
                        "name": "get_weather",
                        "response": {"result": "light rain"},
                        "id": "call_Xa2",
                    }
                },
            ],
        },
        {"role": "model", "parts": [{"text": "Shipped; light rain in Paris."}]},
        {"role": "user", "parts": [{"text": "Thanks!"}]},
    ]


def test_error_tool_result_is_sent_under_error_key() -> None:
    history = [
        Message("user", "x"),
        Message("assistant", None, [ToolCall("c1", "lookup_order", {"order_id": "1"})]),
        tool_result("c1", "order service down", is_error=True),
    ]
    body = gemini().build_chat(ChatRequest(history), "m").json()
    part = body["contents"][-1]["parts"][0]["functionResponse"]
    assert part["response"] == {"error": "order service down"}


def test_tool_result_whose_call_is_unknown_needs_a_name() -> None:
    history = [Message("user", "x"), tool_result("call_missing", "42")]
    with pytest.raises(ContractError, match="call_missing"):
        gemini().build_chat(ChatRequest(history), "m")
    named = [Message("user", "x"), tool_result("call_missing", "42", name="calc")]
    part = gemini().build_chat(ChatRequest(named), "m").json()["contents"][1]["parts"][0]
    assert part["functionResponse"]["name"] == "calc"


# ---------------------------------------------------------------------------- responses


def test_text_reply_and_usage() -> None:
    resp = gemini().parse_chat(reply("text.json"), "gemini-2.5-flash")
    assert resp.text == "Your order 123 shipped yesterday and arrives Friday."
    assert resp.finish_reason == "stop"
    assert resp.raw_finish_reason == "STOP"
    assert resp.model == "gemini-2.5-flash"
    assert resp.request_id == "mQ3KaL2zBr-Gz7IPo9K8sAw"
    # prompt includes the cached tokens; thoughts are billed as output
    assert (resp.usage.input_tokens, resp.usage.cached_input_tokens) == (1250, 1024)
    assert (resp.usage.output_tokens, resp.usage.reasoning_tokens) == (14 + 96, 96)
    assert resp.usage.total_tokens == 1360
    assert resp.provider_details["safetyRatings"][0]["category"] == "HARM_CATEGORY_HARASSMENT"


def test_parallel_tool_calls_get_stable_distinct_ids() -> None:
    adapter = gemini()
    first = adapter.parse_chat(reply("tool_calls.json"), "m")
    again = adapter.parse_chat(reply("tool_calls.json"), "m")
    assert first.finish_reason == "tool_calls"
    assert [(c.name, c.arguments) for c in first.tool_calls] == [
        ("lookup_order", {"order_id": "123"}),
        ("get_weather", {"city": "Paris", "unit": "celsius"}),
    ]
    ids = [c.id for c in first.tool_calls]
    assert ids == [c.id for c in again.tool_calls]
    assert len(set(ids)) == 2
    assert all(i.startswith("call_") and i.replace("_", "").isalnum() for i in ids)
    assert first.usage.output_tokens == 41 + 120


def test_vendor_call_id_and_thought_signature_round_trip() -> None:
    resp = gemini().parse_chat(reply("tool_call_with_id.json"), "m")
    call = resp.tool_calls[0]
    assert call.id == "7x2kq9mh"
    signature = "EpQECpEEAdHtim9ZkZ1fKq3Xr0k2V1n8Zc4c2hWb5Qz1lY7s0wE="
    assert call.provider_data == {"gemini": {"thought_signature": signature}}
    history = [
        Message("user", "Where is 987?"),
        resp.to_message(),
        tool_result("7x2kq9mh", {"status": "delivered"}),
    ]
    # the signature travels with the message: a fresh adapter (another process) replays it
    contents = gemini().build_chat(ChatRequest(history), "m").json()["contents"]
    call_part = contents[1]["parts"][0]
    assert call_part["functionCall"]["id"] == "7x2kq9mh"
    assert call_part["thoughtSignature"] == signature
    assert contents[2]["parts"][0]["functionResponse"]["name"] == "lookup_order"


def test_parallel_calls_replay_each_signature_where_it_came() -> None:
    """Gemini signs only the first of parallel calls; the unsigned one goes back unsigned, and
    the same turn replays the same way on Vertex (same models, same signatures)."""
    resp = gemini().parse_chat(reply("tool_calls.json"), "m")
    first, second = resp.tool_calls
    assert first.provider_data == {
        "gemini": {"thought_signature": "CiQB0e2Kb1ZL0mYqz0lPpTf5aM1rT4h8Yb0u6nq3E9cJ+fQ1eZ0="}
    }
    assert second.provider_data is None
    history = [Message("user", "x"), resp.to_message()]
    for adapter in (gemini(), vertex()):
        parts = adapter.build_chat(ChatRequest(history), "m").json()["contents"][1]["parts"]
        assert [p.get("thoughtSignature") for p in parts] == [
            "CiQB0e2Kb1ZL0mYqz0lPpTf5aM1rT4h8Yb0u6nq3E9cJ+fQ1eZ0=",
            None,
        ]


def test_other_vendors_provider_data_is_not_sent_and_gets_the_placeholder() -> None:
    calls = [
        ToolCall(
            "toolu_1", "lookup_order", {"order_id": "1"}, provider_data={"acme": {"blob": "zq-9"}}
        ),
        ToolCall(
            "call_2",
            "get_weather",
            {"city": "Oslo"},
            provider_data={"gemini": {"thought_signature": "SIG-B"}},
        ),
    ]
    history = [Message("user", "x"), Message("assistant", None, calls)]
    wire = gemini().build_chat(ChatRequest(history), "m")
    parts = wire.json()["contents"][1]["parts"]
    assert [p.get("thoughtSignature") for p in parts] == [SKIP_SIGNATURE, "SIG-B"]
    assert b"zq-9" not in (wire.body or b"") and b"acme" not in (wire.body or b"")


def test_structured_output_reply_is_the_json_text() -> None:
    resp = gemini().parse_chat(reply("structured.json"), "m")
    assert ANSWER.parse(resp.text) == {"answer": "It shipped.", "confidence": 0.92}


def test_max_tokens_maps_to_length() -> None:
    resp = gemini().parse_chat(reply("max_tokens.json"), "m")
    assert (resp.finish_reason, resp.text) == ("length", "The history of the")


def test_prompt_block_raises_content_filtered() -> None:
    with pytest.raises(ContentFiltered, match="blockReason SAFETY"):
        gemini().parse_chat(reply("prompt_blocked.json"), "m")


def test_safety_stop_with_nothing_produced_raises_content_filtered() -> None:
    with pytest.raises(ContentFiltered, match="SAFETY") as info:
        gemini().parse_chat(reply("safety_stop.json"), "m")
    assert info.value.code == "SAFETY"


@pytest.mark.parametrize(
    ("raw", "parts", "expected"),
    [
        ("OTHER", [{"text": "partial"}], "stop"),
        ("SOME_FUTURE_REASON", [{"text": "partial"}], "stop"),
        ("OTHER", [], "error"),
        ("MALFORMED_FUNCTION_CALL", [], "error"),
        ("RECITATION", [{"text": "partly quoted"}], "content_filter"),
    ],
)
def test_finish_reason_defaults(raw: str, parts: list[Any], expected: str) -> None:
    body = {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": raw}]}
    resp = gemini().parse_chat(WireReply(200, {}, json.dumps(body).encode()), "m")
    assert resp.finish_reason == expected
    assert resp.raw_finish_reason == raw


# ------------------------------------------------------------------------------ streams


@pytest.mark.parametrize("size", [1, 5, 64, 10_000])
def test_stream_text_with_usage_any_chunking(size: int) -> None:
    events, parser = stream(gemini(), "stream_text.sse", size)
    assert "".join(e.text for e in events if e.type == "text") == (
        "Your order shipped yesterday — arrives Friday."
    )
    usage_events = [e for e in events if e.type == "usage"]
    assert len(usage_events) == 1 and usage_events[0].usage.output_tokens == 14 + 96
    resp = parser.finish()
    assert resp.text == "Your order shipped yesterday — arrives Friday."
    assert resp.finish_reason == "stop"
    assert resp.usage.cached_input_tokens == 1024
    assert resp.request_id == "sT4KaP2iBc6Fz7IPq-zEsAc"


def test_stream_parallel_tool_calls_across_chunks() -> None:
    events, parser = stream(gemini(), "stream_tools.sse")
    streamed = [e.tool_call for e in events if e.type == "tool_call"]
    resp = parser.finish()
    assert [(c.name, c.arguments) for c in resp.tool_calls] == [
        ("lookup_order", {"order_id": "123"}),
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Lyon"}),
    ]
    assert [c.id for c in streamed] == [c.id for c in resp.tool_calls]
    assert len({c.id for c in resp.tool_calls}) == 3
    assert [c.provider_data for c in resp.tool_calls] == [
        {"gemini": {"thought_signature": "CiQB0e2Kb2stream0sigAAAA"}},
        None,
        None,
    ]
    replayed = (
        gemini().build_chat(ChatRequest([Message("user", "x"), resp.to_message()]), "m").json()
    )
    assert replayed["contents"][1]["parts"][1]["thoughtSignature"] == "CiQB0e2Kb2stream0sigAAAA"
    assert resp.finish_reason == "tool_calls"
    assert resp.text == "Checking both."
    assert resp.usage.output_tokens == 52 + 30


def test_stream_cut_before_finish_reason_keeps_partial_text_and_usage() -> None:
    _, parser = stream(gemini(), "stream_cut.sse")
    with pytest.raises(StreamInterrupted) as info:
        parser.finish()
    assert info.value.partial_text == "The three causes were first, the"
    assert info.value.usage.output_tokens == 7


def test_error_inside_stream_is_classified() -> None:
    with pytest.raises(errors.Overloaded, match="overloaded"):
        stream(gemini(), "stream_error.sse")


def test_error_inside_stream_keeps_the_status_it_carries_and_invents_none() -> None:
    parser = gemini().stream_parser(ChatRequest([Message("user", "x")], stream=True), "m")
    with pytest.raises(errors.RateLimited) as info:
        parser.feed(
            b'data: {"error": {"message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED"}}\n\n'
        )
    assert info.value.status is None
    parser = gemini().stream_parser(ChatRequest([Message("user", "x")], stream=True), "m")
    with pytest.raises(errors.Overloaded) as over:
        parser.feed(
            b'data: {"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}\n\n'
        )
    assert over.value.status == 503


def test_prompt_block_inside_stream_raises_content_filtered() -> None:
    parser = gemini().stream_parser(ChatRequest([Message("user", "x")], stream=True), "m")
    chunk = b'data: {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}\n\n'
    with pytest.raises(ContentFiltered, match="PROHIBITED_CONTENT"):
        parser.feed(chunk)


def test_stream_request_uses_sse_endpoint() -> None:
    req = ChatRequest([Message("user", "hi")], stream=True)
    wire = gemini().build_chat(req, "gemini-2.5-flash")
    assert wire.url == BASE + ":streamGenerateContent?alt=sse"
    assert wire.headers["accept"] == "text/event-stream"


# ------------------------------------------------------------------------------- errors

ERROR_FIXTURES = sorted(p.name for p in (FIXTURES / "gemini").glob("error_*.json"))


@pytest.mark.parametrize("name", ERROR_FIXTURES)
def test_error_fixtures_classify(name: str) -> None:
    fixture = json.loads((FIXTURES / "gemini" / name).read_text())
    wire = WireReply(fixture["status"], fixture["headers"], json.dumps(fixture["body"]).encode())
    error = gemini().parse_error(wire, "gemini-2.5-flash")
    assert type(error).__name__ == fixture["expected"]
    assert error.status == fixture["status"]
    assert error.message == fixture["body"]["error"]["message"]


def test_retry_delay_comes_from_retry_info_unless_a_header_says_otherwise() -> None:
    fixture = json.loads((FIXTURES / "gemini" / "error_rate_limited.json").read_text())
    body = json.dumps(fixture["body"]).encode()
    assert gemini().parse_error(WireReply(429, {}, body), "m").retry_after == 31.0
    assert gemini().parse_error(WireReply(429, {"retry-after": "4"}, body), "m").retry_after == 4.0


# --------------------------------------------------------------------------- embeddings


def test_embeddings_request_and_reply() -> None:
    req = EmbedRequest(
        ["where is my order", "orders ship fast"], dimensions=768, input_type="query"
    )
    wire = gemini().build_embed(req, "text-embedding-004")
    assert wire.url == (
        "https://generativelanguage.googleapis.com/v1beta/models/text-embedding-004"
        ":batchEmbedContents"
    )
    item = {
        "model": "models/text-embedding-004",
        "taskType": "RETRIEVAL_QUERY",
        "outputDimensionality": 768,
    }
    assert wire.json() == {
        "requests": [
            {**item, "content": {"parts": [{"text": "where is my order"}]}},
            {**item, "content": {"parts": [{"text": "orders ship fast"}]}},
        ]
    }
    resp = gemini().parse_embed(reply("embed.json"), "text-embedding-004")
    assert resp.vectors == [[0.0132, -0.0561, 0.0088, 0.0412], [-0.0217, 0.0349, 0.0101, -0.0075]]


def test_embeddings_batch_limit() -> None:
    with pytest.raises(ContractError, match="at most 100"):
        gemini().build_embed(EmbedRequest(["x"] * 101), "text-embedding-004")
    assert gemini().embed_batch_size("text-embedding-004") == 100  # so the client splits first


# -------------------------------------------------------------------------------- vertex


def test_vertex_url_bearer_token_and_no_call_ids() -> None:
    adapter = vertex(location="europe-west4")
    wire = adapter.build_chat(ChatRequest(openai_history()), "gemini-2.5-flash")
    assert wire.url == (
        "https://europe-west4-aiplatform.googleapis.com/v1/projects/acme-prod/locations/"
        "europe-west4/publishers/google/models/gemini-2.5-flash:generateContent"
    )
    assert wire.headers["authorization"] == "Bearer ya29.token"
    assert "x-goog-api-key" not in wire.headers
    contents = wire.json()["contents"]
    assert "id" not in contents[1]["parts"][0]["functionCall"]
    assert contents[2]["parts"][0]["functionResponse"] == {
        "name": "lookup_order",
        "response": {"status": "shipped"},
    }


def test_vertex_global_location_and_reply_without_ids() -> None:
    adapter = vertex(location="global")
    assert adapter.build_chat(ChatRequest([Message("user", "x")]), "m").url.startswith(
        "https://aiplatform.googleapis.com/v1/projects/acme-prod/locations/global/"
    )
    resp = adapter.parse_chat(reply("text.json", "vertex"), "gemini-2.5-flash")
    assert resp.finish_reason == "tool_calls"
    assert resp.tool_calls[0].id.startswith("call_")
    assert resp.usage.input_tokens == 61


def test_vertex_without_google_auth_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "google.auth", None)
    adapter = VertexAdapter(
        ProviderSettings(name="gcp", kind="vertex", options={"project": "acme-prod"})
    )
    with pytest.raises(ConfigError, match=r"vertex extra"):
        adapter.build_chat(ChatRequest([Message("user", "x")]), "m")


def test_vertex_mints_and_reuses_adc_token(monkeypatch: pytest.MonkeyPatch) -> None:
    refreshes: list[Any] = []

    class Creds:
        token: str | None = None
        valid = False

        def refresh(self, request: Any) -> None:
            refreshes.append(request)
            self.token, self.valid = f"adc-token-{len(refreshes)}", True

    google = types.ModuleType("google")
    auth = types.ModuleType("google.auth")
    auth_exceptions = types.ModuleType("google.auth.exceptions")
    transport = types.ModuleType("google.auth.transport")
    requests_mod = types.ModuleType("google.auth.transport.requests")

    class DefaultCredentialsError(Exception):
        pass

    auth_exceptions.DefaultCredentialsError = DefaultCredentialsError  # type: ignore[attr-defined]
    creds = Creds()
    auth.default = lambda scopes: (creds, "adc-project")  # type: ignore[attr-defined]
    auth.exceptions = auth_exceptions  # type: ignore[attr-defined]
    auth.transport = transport  # type: ignore[attr-defined]
    requests_mod.Request = lambda: "http-request"  # type: ignore[attr-defined]
    transport.requests = requests_mod  # type: ignore[attr-defined]
    google.auth = auth  # type: ignore[attr-defined]
    for name, module in {
        "google": google,
        "google.auth": auth,
        "google.auth.exceptions": auth_exceptions,
        "google.auth.transport": transport,
        "google.auth.transport.requests": requests_mod,
    }.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    adapter = VertexAdapter(ProviderSettings(name="gcp", kind="vertex"))
    first = adapter.build_chat(ChatRequest([Message("user", "x")]), "gemini-2.5-flash")
    second = adapter.build_chat(ChatRequest([Message("user", "y")]), "gemini-2.5-flash")
    assert first.headers["authorization"] == "Bearer adc-token-1"
    assert second.headers["authorization"] == "Bearer adc-token-1"
    assert refreshes == ["http-request"]
    assert "/projects/adc-project/locations/us-central1/" in first.url


def test_vertex_embeddings_through_predict() -> None:
    req = EmbedRequest(["a", "b"], dimensions=256, input_type="document")
    wire = vertex().build_embed(req, "text-embedding-005")
    assert wire.url.endswith("/publishers/google/models/text-embedding-005:predict")
    assert wire.json() == {
        "instances": [
            {"content": "a", "task_type": "RETRIEVAL_DOCUMENT"},
            {"content": "b", "task_type": "RETRIEVAL_DOCUMENT"},
        ],
        "parameters": {"outputDimensionality": 256},
    }
    resp = vertex().parse_embed(reply("embed_predict.json", "vertex"), "text-embedding-005")
    assert resp.vectors == [[0.0231, -0.0412, 0.0113], [-0.0198, 0.0377, 0.0051]]
    assert resp.usage.input_tokens == 15


# -------------------------------------------------------------------- wire round trip


def test_round_trip_through_httpx_mock_transport() -> None:
    adapter = gemini()
    seen: dict[str, Any] = {}

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen["url"] = str(request.url)
        seen["key"] = request.headers["x-goog-api-key"]
        seen["body"] = json.loads(request.content)
        name = "stream_tools.sse" if "alt=sse" in str(request.url) else "tool_calls.json"
        ctype = "text/event-stream" if name.endswith(".sse") else "application/json"
        return httpx2.Response(
            200, headers={"content-type": ctype}, content=(FIXTURES / "gemini" / name).read_bytes()
        )

    client = httpx2.Client(transport=httpx2.MockTransport(handler))
    req = ChatRequest([Message("user", "Order 123?")], tools=[LOOKUP], tool_choice="required")
    wire = adapter.build_chat(req, "gemini-2.5-flash")
    http = client.request(wire.method, wire.url, headers=wire.headers, content=wire.body)
    resp = adapter.parse_chat(WireReply(http.status_code, http.headers, http.content), "m")
    assert seen["url"] == BASE + ":generateContent"
    assert seen["key"] == "g-key"
    assert seen["body"]["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    assert resp.tool_calls[0].name == "lookup_order"

    req.stream = True
    wire = adapter.build_chat(req, "gemini-2.5-flash")
    parser = adapter.stream_parser(req, "gemini-2.5-flash")
    with client.stream(wire.method, wire.url, headers=wire.headers, content=wire.body) as http:
        for chunk in http.iter_bytes(chunk_size=11):
            parser.feed(chunk)
    assert [c.name for c in parser.finish().tool_calls] == [
        "lookup_order",
        "get_weather",
        "get_weather",
    ]


# ---------------------------------------------------------------- schema translator


class Item(BaseModel):
    sku: str
    qty: int = Field(gt=0)


class Order(BaseModel):
    """An order."""

    id: str
    status: Literal["open", "shipped"]
    note: str | None = None
    items: list[Item]
    total: float = Field(ge=0)
    code: int | str


def test_pydantic_model_translates_with_inlined_defs() -> None:
    assert to_gemini_schema(Order.model_json_schema(), "output") == {
        "type": "OBJECT",
        "description": "An order.",
        "properties": {
            "id": {"type": "STRING"},
            "status": {"type": "STRING", "enum": ["open", "shipped"]},
            "note": {"type": "STRING", "default": None, "nullable": True},
            "items": {
                "type": "ARRAY",
                "items": {
                    "type": "OBJECT",
                    "properties": {
                        "sku": {"type": "STRING"},
                        "qty": {"type": "INTEGER", "minimum": 1},
                    },
                    "required": ["sku", "qty"],
                },
            },
            "total": {"type": "NUMBER", "minimum": 0},
            "code": {"anyOf": [{"type": "INTEGER"}, {"type": "STRING"}]},
        },
        "required": ["id", "status", "items", "total", "code"],
    }


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"const": "yes"}, {"type": "STRING", "enum": ["yes"]}),
        ({"type": ["string", "null"]}, {"type": "STRING", "nullable": True}),
        ({"enum": ["a", None]}, {"type": "STRING", "enum": ["a"], "nullable": True}),
        (
            {"oneOf": [{"type": "string"}, {"type": "integer"}]},
            {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]},
        ),
        (
            {"allOf": [{"type": "string", "maxLength": 5}], "description": "d"},
            {"type": "STRING", "maxLength": 5, "description": "d"},
        ),
        (
            {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 10},
            {"type": "INTEGER", "minimum": 1, "maximum": 9},
        ),
        (
            {"type": "string", "format": "date-time", "title": "When", "examples": ["2025-01-01"]},
            {"type": "STRING", "format": "date-time", "example": "2025-01-01"},
        ),
        ({"type": "object", "additionalProperties": False}, {"type": "OBJECT"}),
    ],
)
def test_schema_translations(schema: dict[str, Any], expected: dict[str, Any]) -> None:
    assert to_gemini_schema(schema, "s") == expected


@pytest.mark.parametrize(
    ("schema", "keyword", "pointer"),
    [
        (
            {"type": "object", "properties": {"a": {"not": {"type": "string"}}}},
            "not",
            "/properties/a/not",
        ),
        ({"type": "object", "if": {}, "then": {}}, "if", "/if"),
        (
            {"type": "object", "patternProperties": {"^x": {"type": "string"}}},
            "patternProperties",
            "/patternProperties",
        ),
        (
            {"type": "object", "additionalProperties": {"type": "integer"}},
            "additionalProperties",
            "/additionalProperties",
        ),
        ({"type": "array", "prefixItems": [{"type": "string"}]}, "prefixItems", "/prefixItems"),
        ({"type": "integer", "enum": [1, 2]}, "enum", "/enum"),
        ({"type": "object", "properties": {"any": {}}}, "type", "/properties/any/type"),
        (
            {
                "type": "object",
                "properties": {"root": {"$ref": "#/$defs/Node"}},
                "$defs": {
                    "Node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/Node"}}}
                },
            },
            "$ref",
            "/$defs/Node/properties/child/$ref",
        ),
        (
            {"type": "object", "properties": {"x": {"$ref": "https://x.test/s.json"}}},
            "$ref",
            "/properties/x/$ref",
        ),
    ],
)
def test_untranslatable_keywords_are_refused_with_pointer(
    schema: dict[str, Any], keyword: str, pointer: str
) -> None:
    with pytest.raises(ContractError) as info:
        to_gemini_schema(schema, "output 'Answer'")
    assert {"keyword": keyword, "pointer": pointer} in [
        {"keyword": d["keyword"], "pointer": d["pointer"]} for d in info.value.details
    ]
    assert keyword in str(info.value) and "output 'Answer'" in str(info.value)


def test_refusal_surfaces_when_building_a_request() -> None:
    bad = ToolSpec(
        "tag",
        "Tag it.",
        {
            "type": "object",
            "properties": {"tags": {"type": "object", "patternProperties": {".*": {}}}},
        },
    )
    with pytest.raises(ContractError, match="patternProperties") as info:
        gemini().build_chat(ChatRequest([Message("user", "x")], tools=[bad]), "m")
    assert "tool 'tag'" in str(info.value)
    # the JSON Schema option accepts what the subset cannot express
    body = gemini(json_schema=True).build_chat(
        ChatRequest([Message("user", "x")], tools=[bad]), "m"
    )
    assert (
        body.json()["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"] == bad.parameters
    )


def test_string_enum_on_a_non_string_type_is_refused_with_its_pointer() -> None:
    """Gemini answers 400 to an enum on an INTEGER/NUMBER schema, even with string values."""
    params = {
        "type": "object",
        "properties": {"level": {"type": "integer", "enum": ["1", "2", "3"]}},
        "required": ["level"],
    }
    with pytest.raises(ContractError, match="/properties/level/enum") as info:
        to_gemini_schema(params, "tool 'set_level': parameters")
    assert [(d["pointer"], d["keyword"]) for d in info.value.details] == [
        ("/properties/level/enum", "enum")
    ]
    tool = ToolSpec("set_level", "Set it.", params)
    with pytest.raises(ContractError, match="enum on a string schema only"):
        gemini().build_chat(ChatRequest([Message("user", "x")], tools=[tool]), "gemini-2.5-flash")
    # a string enum stays as it is
    ok = to_gemini_schema({"type": "string", "enum": ["a", "b"]}, "output")
    assert ok == {"type": "STRING", "enum": ["a", "b"]}


def test_required_naming_an_undefined_property_is_refused() -> None:
    params = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city", "country"],
    }
    with pytest.raises(ContractError, match="'country' is required but not defined") as info:
        to_gemini_schema(params, "tool 'weather': parameters")
    assert [(d["pointer"], d["keyword"]) for d in info.value.details] == [("/required", "required")]


def test_every_gemini_problem_of_a_schema_is_listed_in_one_error() -> None:
    params = {
        "type": "object",
        "properties": {
            "a": {"not": {"type": "string"}},
            "b": {"type": "number", "enum": ["1"]},
        },
        "required": ["a", "zz"],
    }
    with pytest.raises(ContractError) as info:
        to_gemini_schema(params, "tool 't': parameters")
    message = str(info.value)
    assert "3 parts of this schema" in message
    for pointer in ("/properties/a/not", "/properties/b/enum", "/required"):
        assert pointer in message
