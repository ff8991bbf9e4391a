"""OpenAI-compatible servers: one adapter, per-server quirks as data (PRESETS).

References: vLLM "OpenAI-Compatible Server" (max_tokens, guided json_schema, error body
``{"object": "error", "message", "type", "param", "code"}``), Ollama "OpenAI compatibility"
(/v1, no key), Groq "OpenAI Compatibility" (max_completion_tokens, ``x_groq.usage`` in the
last stream chunk), OpenRouter API reference (HTTP-Referer / X-Title headers), DeepInfra and
DeepSeek JSON mode (response_format json_object).
"""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest

from portal.contracts.messages import Message
from portal.contracts.request import ChatRequest, EmbedRequest
from portal.errors import (
    AuthenticationError,
    BadRequest,
    ConfigError,
    ContentFiltered,
    ContextTooLong,
    ContractError,
    NotFound,
    Overloaded,
    RateLimited,
    ServerError,
)
from portal.providers.openai_compatible import PRESETS, OpenAICompatibleAdapter
from portal.providers.settings import ProviderSettings
from portal.secret import Secret
from portal.wire import WireReply
from tests.providers._cases import (
    ANSWER,
    SYSTEM,
    TEXT,
    error_reply,
    feed_all,
    fixture,
    full_request,
    reply,
)

KIND = "openai-compatible"


def make(
    name: str = "local", base_url: str | None = None, key: str | None = "ck-1", **options: object
) -> OpenAICompatibleAdapter:
    return OpenAICompatibleAdapter(
        ProviderSettings(
            name,
            KIND,
            base_url=base_url,
            api_key=Secret(key) if key else None,
            options=dict(options),
        )
    )


def test_preset_from_option_host_or_provider_name() -> None:
    assert make(preset="vllm").base_url == "http://localhost:8000/v1"
    assert make(base_url="https://api.groq.com/openai/v1").preset == "groq"
    assert make(name="together").preset == "together"
    assert make(base_url="https://llm.internal.example/v1").preset == "generic"
    with pytest.raises(ConfigError, match="unknown preset 'vlm'; known presets: cerebras"):
        make(preset="vlm")
    with pytest.raises(ConfigError, match="base_url is required"):
        make()


def test_quirks_change_the_body_not_the_code() -> None:
    req = full_request(stream=True)
    vllm = make(preset="vllm").build_chat(req, "meta-llama/Llama-3.3-70B-Instruct").json()
    assert vllm["max_tokens"] == 256 and vllm["stream_options"] == {"include_usage": True}
    assert vllm["response_format"]["json_schema"]["schema"] == ANSWER.schema  # not strict-rewritten
    groq = make(preset="groq").build_chat(req, "llama-3.3-70b-versatile").json()
    assert groq["max_completion_tokens"] == 256 and "max_tokens" not in groq
    router = make(preset="openrouter", app_url="https://acme.dev", app_name="ACME")
    wire = router.build_chat(req, "openai/gpt-4o")
    assert wire.headers["HTTP-Referer"] == "https://acme.dev" and wire.headers["X-Title"] == "ACME"
    assert wire.json()["response_format"]["json_schema"]["strict"] is True


def test_options_override_each_quirk() -> None:
    body = (
        make(preset="vllm", stream_usage=False, max_tokens_field="max_completion_tokens")
        .build_chat(full_request(stream=True), "m")
        .json()
    )
    assert "stream_options" not in body and body["max_completion_tokens"] == 256
    with pytest.raises(ConfigError, match="structured_output"):
        make(preset="vllm", structured_output="yaml")


def test_json_object_servers_get_the_schema_in_the_system_prompt() -> None:
    body = make(preset="deepseek").build_chat(full_request(), "deepseek-chat").json()
    assert body["response_format"] == {"type": "json_object"}
    system = body["messages"][0]["content"]
    assert system.startswith(SYSTEM) and '"confidence"' in system and "JSON Schema" in system
    none = make(preset="vllm", structured_output="none").build_chat(full_request(), "m").json()
    assert "response_format" not in none and "JSON Schema" in none["messages"][0]["content"]


def test_local_servers_need_no_key_hosted_ones_do() -> None:
    wire = make(preset="ollama", key=None).build_chat(
        ChatRequest([Message("user", "hi")]), "llama3:8b"
    )
    assert "authorization" not in wire.headers
    with pytest.raises(AuthenticationError, match="no API key configured for provider 'together'"):
        make(name="together", key=None).build_chat(ChatRequest([Message("user", "hi")]), "m")


def test_unsupported_tool_choice_is_refused_naming_the_preset() -> None:
    req = full_request()
    req.tool_choice = "required"
    with pytest.raises(ContractError, match=r"preset 'ollama'.*tool_choice='required'"):
        make(preset="ollama").build_chat(req, "m")


def test_replies_and_groq_stream_usage() -> None:
    adapter = make(preset="vllm")
    assert adapter.parse_chat(reply(KIND, "reply_text.json"), "m").text == TEXT
    groq = make(preset="groq")
    parser = groq.stream_parser(full_request(stream=True), "m")
    feed_all(parser, fixture(KIND, "stream_groq_usage.sse"))
    resp = parser.finish()
    assert resp.text == TEXT and (resp.usage.input_tokens, resp.usage.output_tokens) == (82, 17)


def test_errors_from_vllm_and_groq_bodies() -> None:
    adapter = make(preset="vllm")
    assert isinstance(
        adapter.parse_error(error_reply(KIND, "error_context_too_long.json"), "m"), ContextTooLong
    )
    assert isinstance(adapter.parse_error(error_reply(KIND, "error_not_found.json"), "m"), NotFound)
    assert adapter.parse_error(error_reply(KIND, "error_rate_limited.json"), "m").retry_after == 2.0


def test_embeddings_where_the_server_has_them() -> None:
    adapter = make(preset="vllm")
    assert (
        adapter.build_embed(EmbedRequest(["a"]), "BAAI/bge-m3").url
        == "http://localhost:8000/v1/embeddings"
    )
    assert adapter.parse_embed(reply(KIND, "embeddings.json"), "m").vectors == [[0.5, 0.25]]
    with pytest.raises(ContractError, match="no embeddings endpoint"):
        make(preset="groq").build_embed(EmbedRequest(["a"]), "m")


def test_every_preset_builds_a_request() -> None:
    for name in PRESETS:
        opts = {"preset": name}
        base = None if PRESETS[name].base_url else "http://127.0.0.1:9/v1"
        body = make(base_url=base, **opts).build_chat(full_request(), "m").json()
        assert body["model"] == "m" and body["messages"][0]["role"] == "system"


def test_wire_round_trip_on_loopback_base_url() -> None:
    adapter = make(base_url="http://127.0.0.1:8000/v1", preset="vllm")

    def handler(request: httpx2.Request) -> httpx2.Response:
        assert str(request.url) == "http://127.0.0.1:8000/v1/chat/completions"
        assert json.loads(request.content)["max_tokens"] == 256
        return httpx2.Response(200, content=fixture(KIND, "reply_tool_calls.json"))

    with httpx2.Client(transport=httpx2.MockTransport(handler)) as client:
        wire = adapter.build_chat(full_request(), "m")
        r = client.request(wire.method, wire.url, headers=wire.headers, content=wire.body)
        resp = adapter.parse_chat(WireReply(r.status_code, dict(r.headers), r.content), "m")
        assert [c.arguments for c in resp.tool_calls] == [{"order_id": "123"}, {"city": "Paris"}]


def test_capabilities_follow_the_preset_and_overrides() -> None:
    """Contract checks read ``adapter.caps``: each server's own limits, not the kind's."""
    generic = make(base_url="https://llm.internal.example/v1").caps
    assert generic.tool_choice == ("auto", "none", "required", "named")
    assert (generic.structured_output, generic.schema_dialect) == ("json_schema", "json-schema")
    assert generic.embed
    ollama = make(preset="ollama").caps
    assert ollama.tool_choice == ("auto", "none")
    assert make(preset="deepseek").caps.structured_output == "json_object"
    openrouter = make(preset="openrouter").caps
    assert (openrouter.schema_dialect, openrouter.embed) == ("openai-strict", False)
    overridden = make(preset="vllm", structured_output="none", tool_choice=["auto"]).caps
    assert (overridden.structured_output, overridden.tool_choice) == (None, ("auto",))
    # the class attribute stays the kind's general description
    assert OpenAICompatibleAdapter.capabilities.structured_output == "json_schema"
    assert OpenAICompatibleAdapter.capabilities.tool_choice == generic.tool_choice


def test_other_kinds_caps_default_to_the_class_capabilities() -> None:
    from portal.providers.openai import OpenAIAdapter

    adapter = OpenAIAdapter(ProviderSettings("openai", "openai", api_key=Secret("k")))
    assert adapter.caps is OpenAIAdapter.capabilities


def _stream(adapter: OpenAICompatibleAdapter, name: str) -> Any:
    parser = adapter.stream_parser(ChatRequest([Message("user", "q")], stream=True), "m")
    feed_all(parser, fixture(KIND, name))
    return parser.finish()


def test_groq_in_stream_tool_use_failed_is_the_bad_request_it_says() -> None:
    """Groq's in-stream error carries ``status_code: 400``: the same error as an HTTP 400
    (not retryable, fail over or fix the prompt), never a retryable 500."""
    with pytest.raises(BadRequest, match="Failed to call a function") as info:
        _stream(make(preset="groq"), "stream_groq_tool_use_failed.sse")
    err = info.value
    assert type(err) is BadRequest and err.status == 400 and err.code == "tool_use_failed"
    assert not err.retryable


def test_openrouter_error_chunk_with_a_numeric_code_is_that_status() -> None:
    with pytest.raises(ContextTooLong) as info:
        _stream(make(preset="openrouter"), "stream_openrouter_status_error.sse")
    assert info.value.status == 400 and not info.value.retryable


def test_openrouter_midstream_provider_error_is_a_server_error_without_a_status() -> None:
    with pytest.raises(ServerError, match="Provider disconnected") as info:
        _stream(make(preset="openrouter"), "stream_openrouter_midstream_error.sse")
    assert type(info.value) is ServerError and info.value.status is None
    assert info.value.retryable


@pytest.mark.parametrize(
    ("error", "cls"),
    [
        ({"code": 429, "message": "Rate limit exceeded: free-models-per-min"}, RateLimited),
        ({"code": 401, "message": "No auth credentials found"}, AuthenticationError),
        ({"code": 502, "message": "Upstream error"}, ServerError),
        ({"code": 503, "message": "No endpoints found"}, Overloaded),
    ],
)
def test_in_stream_error_classes_match_their_http_twins(error: dict[str, Any], cls: type) -> None:
    adapter = make(preset="openrouter")
    parser = adapter.stream_parser(ChatRequest([Message("user", "q")], stream=True), "m")
    with pytest.raises(cls) as info:
        parser.feed(f"data: {json.dumps({'error': error})}\n\n".encode())
    http = adapter.parse_error(
        WireReply(error["code"], {}, json.dumps({"error": error}).encode()), "m"
    )
    assert type(info.value) is type(http) and info.value.status == http.status
    assert info.value.retryable == http.retryable


def test_a_name_repeated_in_every_chunk_is_taken_once() -> None:
    resp = _stream(make(preset="ollama"), "stream_repeated_name.sse")
    assert [(c.id, c.name, c.arguments) for c in resp.tool_calls] == [
        ("call_x1y2z3w4", "lookup_order", {"order_id": "123"})
    ]


def test_filtered_choice_without_a_message_is_content_filtered() -> None:
    with pytest.raises(ContentFiltered, match="violence"):
        make(preset="generic", base_url="https://gw.example/v1").parse_chat(
            reply(KIND, "reply_filtered_no_message.json"), "gpt-4o"
        )
