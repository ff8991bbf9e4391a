"""OpenAI Chat Completions and Embeddings adapter.

References: shared/specs/openai-openapi.yaml (components CreateChatCompletionRequest,
CreateChatCompletionResponse, CreateChatCompletionStreamResponse, CreateEmbeddingRequest,
CreateEmbeddingResponse, ErrorResponse) — request bodies and fixtures are validated against it
below; OpenAI guides "Structured Outputs" (supported schemas) and "Error codes"; response
headers x-request-id, retry-after(-ms), x-ratelimit-reset-* from the "Rate limits" guide.
"""

from __future__ import annotations

import json

import httpx2
import pytest

from portal.contracts.messages import Message
from portal.contracts.request import ChatRequest, EmbedRequest
from portal.contracts.tools import ToolSpec
from portal.errors import (
    AuthenticationError,
    BadRequest,
    ContentFiltered,
    ContextTooLong,
    NotFound,
    Overloaded,
    RateLimited,
    ServerError,
    StreamInterrupted,
)
from portal.providers.openai import OpenAIAdapter, parse_duration
from portal.providers.settings import ProviderSettings
from portal.secret import Secret
from portal.wire import WireReply
from tests.providers._cases import (
    ANSWER,
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

KIND = "openai"


@pytest.fixture
def adapter() -> OpenAIAdapter:
    return OpenAIAdapter(
        ProviderSettings("openai", "openai", api_key=Secret("sk-test-123"), headers={"x-team": "a"})
    )


def test_full_request_body_is_the_documented_shape(adapter: OpenAIAdapter) -> None:
    wire = adapter.build_chat(full_request(stream=True), "gpt-4o-mini")
    assert wire.method == "POST"
    assert wire.url == "https://api.openai.com/v1/chat/completions"
    assert wire.headers["authorization"] == "Bearer sk-test-123"
    assert wire.headers["x-team"] == "a"
    assert "sk-test-123" not in repr(wire)
    body = wire.json()
    assert body["messages"][0] == {"role": "system", "content": SYSTEM}
    assert body["messages"][1]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": f"data:image/png;base64,{PNG_B64}"},
    }
    assert [t["function"]["name"] for t in body["tools"]] == ["lookup_order", "get_weather"]
    assert body["tools"][0]["function"]["parameters"] == LOOKUP.parameters
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    schema = fmt["json_schema"]["schema"]
    assert schema["required"] == ["answer", "confidence", "note"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["note"]["type"] == ["string", "null"]
    assert "minLength" not in schema["properties"]["answer"]  # left to portal's validator
    assert body["max_completion_tokens"] == 256
    assert body["stream_options"] == {"include_usage": True}
    assert spec_errors(body, "CreateChatCompletionRequest") == []


def test_history_with_tool_calls_and_results_matches_the_spec(adapter: OpenAIAdapter) -> None:
    req = ChatRequest(tool_history(), tools=[LOOKUP, WEATHER], tool_choice="get_weather", seed=7)
    body = adapter.build_chat(req, "gpt-4o").json()
    assistant = body["messages"][2]
    assert assistant["content"] is None
    assert assistant["tool_calls"][1] == {
        "id": "call_Z9y8X7w6V5u4T3s2R1q0P9o8",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
    }
    assert body["messages"][3]["tool_call_id"] == "call_a1B2c3D4e5F6g7H8i9J0k1L2"
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["seed"] == 7
    assert spec_errors(body, "CreateChatCompletionRequest") == []


def test_spec_validation_is_not_vacuous() -> None:
    assert spec_errors({"model": "gpt-4o"}, "CreateChatCompletionRequest")


@pytest.mark.parametrize(
    "name",
    ["reply_text.json", "reply_tool_calls.json", "reply_structured.json", "reply_refusal.json"],
)
def test_reply_fixtures_follow_the_spec(name: str) -> None:
    assert spec_errors(json.loads(fixture(KIND, name)), "CreateChatCompletionResponse") == []


def test_stream_and_error_fixtures_follow_the_spec() -> None:
    for line in fixture(KIND, "stream_tool_calls.sse").decode().splitlines():
        if line.startswith("data: {"):
            assert spec_errors(json.loads(line[6:]), "CreateChatCompletionStreamResponse") == []
    for name in [
        "error_rate_limited.json",
        "error_context_too_long.json",
        "error_authentication.json",
    ]:
        assert spec_errors(json.loads(fixture(KIND, name))["body"], "ErrorResponse") == []
    assert (
        spec_errors(json.loads(fixture(KIND, "embeddings.json")), "CreateEmbeddingResponse") == []
    )


def test_plain_text_reply_with_cached_and_reasoning_tokens(adapter: OpenAIAdapter) -> None:
    resp = adapter.parse_chat(
        reply(KIND, "reply_text.json", headers={"x-request-id": "req_1"}), "m"
    )
    assert resp.text == TEXT and resp.finish_reason == "stop" and resp.raw_finish_reason == "stop"
    assert (resp.usage.input_tokens, resp.usage.cached_input_tokens) == (2006, 1920)
    assert (resp.usage.output_tokens, resp.usage.reasoning_tokens) == (300, 128)
    assert resp.request_id == "req_1"
    assert resp.provider_details["system_fingerprint"] == "fp_06737a9306"


def test_parallel_tool_calls(adapter: OpenAIAdapter) -> None:
    resp = adapter.parse_chat(reply(KIND, "reply_tool_calls.json"), "m")
    assert resp.finish_reason == "tool_calls"
    assert [(c.id, c.name, c.arguments) for c in resp.tool_calls] == [
        ("call_a1B2c3D4e5F6g7H8i9J0k1L2", "lookup_order", {"order_id": "123"}),
        ("call_Z9y8X7w6V5u4T3s2R1q0P9o8", "get_weather", {"city": "Paris"}),
    ]


def test_structured_output_nulls_added_by_strict_mode_are_removed(adapter: OpenAIAdapter) -> None:
    req = ChatRequest([Message("user", "q")], output=ANSWER)
    resp = adapter.finalize(req, adapter.parse_chat(reply(KIND, "reply_structured.json"), "m"))
    data = json.loads(resp.text)
    assert data == {"answer": "It ships Tuesday.", "confidence": 0.92}
    assert ANSWER.validate(data) == data


def test_refusal_without_text_raises_content_filtered(adapter: OpenAIAdapter) -> None:
    with pytest.raises(ContentFiltered, match="refused: I'm sorry"):
        adapter.parse_chat(reply(KIND, "reply_refusal.json"), "m")


def test_unknown_finish_reason_with_text_is_stop(adapter: OpenAIAdapter) -> None:
    resp = adapter.parse_chat(reply(KIND, "reply_unknown_finish.json"), "m")
    assert (resp.finish_reason, resp.raw_finish_reason) == ("stop", "end_turn_v2")


def test_stream_text_with_usage(adapter: OpenAIAdapter) -> None:
    parser = adapter.stream_parser(full_request(stream=True), "gpt-4o-mini")
    events = feed_all(parser, fixture(KIND, "stream_text.sse"), size=5)
    assert "".join(e.text for e in events if e.type == "text") == TEXT
    assert [e.usage.output_tokens for e in events if e.type == "usage" and e.usage] == [17]
    resp = parser.finish()
    assert resp.text == TEXT and resp.finish_reason == "stop" and resp.usage.input_tokens == 82


def test_stream_interleaved_parallel_tool_calls(adapter: OpenAIAdapter) -> None:
    parser = adapter.stream_parser(ChatRequest([Message("user", "q")], stream=True), "m")
    feed_all(parser, fixture(KIND, "stream_tool_calls.sse"), size=3)
    resp = parser.finish()
    assert resp.finish_reason == "tool_calls"
    assert [(c.name, c.arguments) for c in resp.tool_calls] == [
        ("lookup_order", {"order_id": "123"}),
        ("get_weather", {"city": "Paris"}),
    ]


def test_stream_cut_midway_keeps_partial_text(adapter: OpenAIAdapter) -> None:
    parser = adapter.stream_parser(ChatRequest([Message("user", "q")], stream=True), "m")
    feed_all(parser, fixture(KIND, "stream_cut.sse"))
    with pytest.raises(StreamInterrupted) as info:
        parser.finish()
    assert info.value.partial_text == "Your order 123 ships"
    assert info.value.retryable


def test_in_stream_error_chunk_is_classified_like_http(adapter: OpenAIAdapter) -> None:
    parser = adapter.stream_parser(ChatRequest([Message("user", "q")], stream=True), "m")
    with pytest.raises(RateLimited, match="Rate limit reached"):
        feed_all(parser, fixture(KIND, "stream_error.sse"))


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("error_rate_limited.json", RateLimited),
        ("error_quota.json", RateLimited),
        ("error_context_too_long.json", ContextTooLong),
        ("error_authentication.json", AuthenticationError),
        ("error_overloaded.json", Overloaded),
        ("error_not_found.json", NotFound),
        ("error_bad_request.json", BadRequest),
    ],
)
def test_error_classes(adapter: OpenAIAdapter, name: str, cls: type[Exception]) -> None:
    err = adapter.parse_error(error_reply(KIND, name), "gpt-4o")
    assert type(err) is cls
    assert err.message and "sk-test-123" not in str(err)


def test_retry_after_request_id_and_quota(adapter: OpenAIAdapter) -> None:
    err = adapter.parse_error(error_reply(KIND, "error_rate_limited.json"), "m")
    assert err.retry_after == pytest.approx(0.12)
    assert err.request_id == "req_5f1e6c0a3b2d4e8f9a7b6c5d4e3f2a1b"
    assert err.retryable
    quota = adapter.parse_error(error_reply(KIND, "error_quota.json"), "m")
    assert quota.code == "insufficient_quota" and not quota.retryable
    assert adapter.parse_error(error_reply(KIND, "error_overloaded.json"), "m").retry_after == 2.0
    only_reset = WireReply(429, {"x-ratelimit-reset-tokens": "6m0s"}, b'{"error":{"message":"x"}}')
    assert adapter.parse_error(only_reset, "m").retry_after == 360.0


def test_parse_duration() -> None:
    assert parse_duration("1s") == 1.0
    assert parse_duration("6m0s") == 360.0
    assert parse_duration("120ms") == pytest.approx(0.12)
    assert parse_duration("1h2m3s") == 3723.0
    assert parse_duration("soon") is None


def test_strict_tool_parameters_are_transformed_and_unsupported_ones_refused(
    adapter: OpenAIAdapter,
) -> None:
    strict = ToolSpec("get_weather", "w", WEATHER.parameters, strict=True)
    fn = adapter.map_tool(strict)["function"]
    assert fn["strict"] is True and fn["parameters"]["required"] == ["city", "unit"]
    bad = ToolSpec("t", "", {"type": "object", "patternProperties": {"^x": {}}}, strict=True)
    from portal.errors import ContractError

    with pytest.raises(ContractError, match="patternProperties"):
        adapter.map_tool(bad)


def test_embeddings(adapter: OpenAIAdapter) -> None:
    wire = adapter.build_embed(EmbedRequest(["a", "b"], dimensions=256), "text-embedding-3-small")
    assert wire.url == "https://api.openai.com/v1/embeddings"
    body = wire.json()
    assert body == {
        "model": "text-embedding-3-small",
        "input": ["a", "b"],
        "encoding_format": "float",
        "dimensions": 256,
    }
    assert spec_errors(body, "CreateEmbeddingRequest") == []
    out = adapter.parse_embed(reply(KIND, "embeddings.json"), "m")
    assert out.vectors[1] == [0.25, -0.5, 0.125]  # sorted by index
    assert out.usage.input_tokens == 8


def test_embed_batch_size_is_the_specs_limit(adapter: OpenAIAdapter) -> None:
    size = adapter.embed_batch_size("text-embedding-3-small")
    assert size == 2048  # the client splits a larger embed into requests of this size
    full = adapter.build_embed(EmbedRequest(["x"] * size), "text-embedding-3-small").json()
    assert spec_errors(full, "CreateEmbeddingRequest") == []
    over = adapter.build_embed(EmbedRequest(["x"] * (size + 1)), "text-embedding-3-small").json()
    assert spec_errors(over, "CreateEmbeddingRequest") != []


def test_missing_key_names_the_env_var() -> None:
    adapter = OpenAIAdapter(ProviderSettings("openai", "openai"))
    with pytest.raises(AuthenticationError, match="OPENAI_API_KEY"):
        adapter.build_chat(ChatRequest([Message("user", "hi")]), "m")


def test_wire_round_trip_through_httpx_mock_transport(adapter: OpenAIAdapter) -> None:
    seen: list[dict[str, object]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        seen.append(body)
        assert request.url.path == "/v1/chat/completions"
        assert request.headers["authorization"] == "Bearer sk-test-123"
        if body.get("stream"):
            return httpx2.Response(
                200,
                headers={"content-type": "text/event-stream"},
                content=fixture(KIND, "stream_tool_calls.sse"),
            )
        return httpx2.Response(
            200, headers={"x-request-id": "req_rt"}, content=fixture(KIND, "reply_text.json")
        )

    with httpx2.Client(transport=httpx2.MockTransport(handler)) as client:
        req = full_request()
        wire = adapter.build_chat(req, "gpt-4o-mini")
        r = client.request(wire.method, wire.url, headers=wire.headers, content=wire.body)
        resp = adapter.parse_chat(
            WireReply(r.status_code, dict(r.headers), r.content), "gpt-4o-mini"
        )
        assert resp.text == TEXT and resp.request_id == "req_rt"
        sreq = full_request(stream=True)
        wire = adapter.build_chat(sreq, "gpt-4o-mini")
        parser = adapter.stream_parser(sreq, "gpt-4o-mini")
        with client.stream(wire.method, wire.url, headers=wire.headers, content=wire.body) as r:
            for chunk in r.iter_bytes():
                parser.feed(chunk)
        assert [c.name for c in parser.finish().tool_calls] == ["lookup_order", "get_weather"]
    assert seen[0]["messages"][0] == {"role": "system", "content": SYSTEM}


# -- schema_transform: OpenAI strict mode ------------------------------------------------------


def test_strict_transform_rules() -> None:
    from portal.errors import ContractError
    from portal.providers.schema_transform import drop_added_nulls, to_openai_strict

    schema = {
        "$defs": {
            "Item": {
                "type": "object",
                "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "default": 1}},
                "required": ["sku"],
            }
        },
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}, "uniqueItems": True},
            "kind": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
            "when": {"type": "string", "format": "date-time"},
            "site": {"type": "string", "format": "uri"},
        },
        "required": ["items"],
    }
    out = to_openai_strict(schema)
    s = out.schema
    assert s["additionalProperties"] is False and s["required"] == ["items", "kind", "when", "site"]
    assert s["properties"]["kind"] == {
        "anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]
    }
    assert s["properties"]["when"] == {"type": ["string", "null"], "format": "date-time"}
    assert "format" not in s["properties"]["site"]
    item = s["$defs"]["Item"]
    assert item["required"] == ["sku", "qty"] and item["properties"]["qty"] == {
        "type": ["integer", "null"]
    }
    assert ("/properties/items/uniqueItems", "uniqueItems") in out.dropped
    reply_data = {"items": [{"sku": "a", "qty": None}], "kind": None, "when": None, "site": "x"}
    assert drop_added_nulls(reply_data, schema) == {"items": [{"sku": "a"}], "site": "x"}
    for bad, keyword in [
        ({"type": "object", "properties": {"a": {"not": {"type": "null"}}}}, "not"),
        ({"type": "object", "additionalProperties": {"type": "string"}}, "additionalProperties"),
        (
            {
                "type": "object",
                "properties": {"a": {"allOf": [{"type": "string"}, {"minLength": 1}]}},
            },
            "allOf",
        ),
        ({"type": "array", "items": {"type": "string"}}, "type"),
        ({"type": "object", "properties": {"a": {"type": "array"}}}, "items"),
    ]:
        with pytest.raises(ContractError) as info:
            to_openai_strict(bad, "output")
        assert info.value.details[0]["keyword"] == keyword
        assert "output: OpenAI strict mode cannot express" in str(info.value)


def test_strict_transform_limits_and_recursive_root() -> None:
    from portal.errors import ContractError
    from portal.providers.schema_transform import to_openai_strict

    deep: dict[str, object] = {"type": "string"}
    for _ in range(12):
        deep = {"type": "object", "properties": {"x": deep}, "required": ["x"]}
    with pytest.raises(ContractError, match="nesting deeper than 10"):
        to_openai_strict(deep)
    many = {
        "type": "object",
        "properties": {"e": {"type": "string", "enum": [str(i) for i in range(1001)]}},
    }
    with pytest.raises(ContractError, match="1000 enum values"):
        to_openai_strict(many)
    tree = {
        "$ref": "#/$defs/Node",
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/Node"}}},
                "required": ["kids"],
            }
        },
    }
    s = to_openai_strict(tree).schema
    assert s["type"] == "object" and s["properties"]["kids"]["items"] == {"$ref": "#"}


def test_in_stream_server_error_has_no_invented_status(adapter: OpenAIAdapter) -> None:
    """An error chunk in a 200 stream carries no HTTP status: its ``type`` classifies it and
    ``status`` stays None rather than a 500 that never was on the wire."""
    parser = adapter.stream_parser(ChatRequest([Message("user", "q")], stream=True), "m")
    with pytest.raises(ServerError, match="had an error") as info:
        feed_all(parser, fixture(KIND, "stream_server_error.sse"))
    assert type(info.value) is ServerError and info.value.status is None
    assert info.value.retryable


def test_in_stream_invalid_request_error_is_a_bad_request(adapter: OpenAIAdapter) -> None:
    chunk = {
        "error": {"message": "Invalid 'tools[0].function.name'", "type": "invalid_request_error"}
    }
    parser = adapter.stream_parser(ChatRequest([Message("user", "q")], stream=True), "m")
    with pytest.raises(BadRequest) as info:
        parser.feed(f"data: {json.dumps(chunk)}\n\n".encode())
    assert type(info.value) is BadRequest and info.value.status is None
    assert not info.value.retryable


def test_legacy_function_call_is_a_tool_call(adapter: OpenAIAdapter) -> None:
    data = json.loads(fixture(KIND, "reply_function_call.json"))
    assert spec_errors(data, "CreateChatCompletionResponse") == []
    resp = adapter.parse_chat(reply(KIND, "reply_function_call.json"), "gpt-3.5-turbo")
    assert resp.finish_reason == "tool_calls" and resp.raw_finish_reason == "function_call"
    assert [(c.name, c.arguments) for c in resp.tool_calls] == [
        ("lookup_order", {"order_id": "123"})
    ]
    assert resp.tool_calls[0].id == "call_chatcmpl-C1fLg7uWk2Qb9sR4tV6xY8zA0bD3e"


def test_legacy_function_call_streamed_is_a_tool_call(adapter: OpenAIAdapter) -> None:
    raw = fixture(KIND, "stream_function_call.sse")
    for line in raw.decode().splitlines():
        if line.startswith("data: {"):
            assert spec_errors(json.loads(line[6:]), "CreateChatCompletionStreamResponse") == []
    parser = adapter.stream_parser(ChatRequest([Message("user", "q")], stream=True), "m")
    feed_all(parser, raw)
    resp = parser.finish()
    assert resp.finish_reason == "tool_calls"
    assert [(c.name, c.arguments) for c in resp.tool_calls] == [
        ("lookup_order", {"order_id": "123"})
    ]
    assert resp.tool_calls[0].id == "call_chatcmpl-C1fLh2kPq8rS5tU7vW9xY1zA3bC4d"


def test_tool_call_cut_by_the_token_limit_is_length_with_the_partial_call_kept(
    adapter: OpenAIAdapter,
) -> None:
    data = json.loads(fixture(KIND, "reply_length_tool_call.json"))
    assert spec_errors(data, "CreateChatCompletionResponse") == []
    resp = adapter.parse_chat(reply(KIND, "reply_length_tool_call.json"), "m")
    assert resp.finish_reason == "length"
    assert [c.name for c in resp.tool_calls] == ["lookup_order"]  # the whole one
    cut = resp.provider_details["incomplete_tool_calls"]
    assert [(c["name"], c["arguments"]) for c in cut] == [("get_weather", '{"city": "Par')]
    assert resp.usage.output_tokens == data["usage"]["completion_tokens"]


def test_streamed_tool_call_cut_by_the_token_limit_is_length(adapter: OpenAIAdapter) -> None:
    chunks = [
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": '{"ci'},
                            }
                        ]
                    },
                    "finish_reason": None,
                }
            ]
        },
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]},
        {"choices": [], "usage": {"prompt_tokens": 40, "completion_tokens": 8, "total_tokens": 48}},
    ]
    raw = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    parser = adapter.stream_parser(ChatRequest([Message("user", "q")], stream=True), "m")
    feed_all(parser, raw.encode())
    resp = parser.finish()
    assert resp.finish_reason == "length" and resp.tool_calls == []
    assert resp.provider_details["incomplete_tool_calls"] == [
        {"id": "call_1", "name": "get_weather", "arguments": '{"ci'}
    ]
    assert resp.usage.output_tokens == 8


def test_strict_refuses_an_any_object_parameter_naming_pointer_and_fix() -> None:
    """``{"type": "object"}`` with no properties accepts any object; strict mode would close
    it (``additionalProperties: false``) so the model could only ever send ``{}``."""
    from portal.errors import ContractError
    from portal.providers.schema_transform import to_openai_strict

    params = {
        "type": "object",
        "properties": {"query": {"type": "string"}, "filters": {"type": "object"}},
        "required": ["query"],
    }
    with pytest.raises(ContractError, match="/properties/filters") as info:
        to_openai_strict(params, "tool 'search': parameters")
    assert "only send {}" in str(info.value) and "list its properties" in str(info.value)
    assert info.value.details == [
        {
            "pointer": "/properties/filters",
            "keyword": "type",
            "message": info.value.details[0]["message"],
        }
    ]
    # an empty object meant as such, and a tool without parameters, stay expressible
    closed = {"type": "object", "properties": {}, "additionalProperties": False}
    fine = {"type": "object", "properties": {"opts": closed}, "required": ["opts"]}
    assert to_openai_strict(fine).schema["properties"]["opts"]["additionalProperties"] is False
    assert to_openai_strict({"type": "object", "properties": {}}).schema["required"] == []


def test_strict_reports_every_problem_of_a_schema_in_one_error() -> None:
    from portal.errors import ContractError
    from portal.providers.schema_transform import to_openai_strict

    params = {
        "type": "object",
        "properties": {
            "a": {"not": {"type": "null"}},
            "b": {"type": "object"},
            "c": {"type": "array"},
        },
        "required": ["a", "zz"],
    }
    with pytest.raises(ContractError) as info:
        to_openai_strict(params, "tool 't': parameters")
    found = sorted((d["pointer"], d["keyword"]) for d in info.value.details)
    assert found == [
        ("/properties/a/not", "not"),
        ("/properties/b", "type"),
        ("/properties/c/items", "items"),
        ("/required", "required"),
    ]
    assert "cannot express 4 parts of this schema" in str(info.value)
