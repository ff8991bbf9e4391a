"""OpenAI-compatible servers: one adapter, per-server quirks as data (PRESETS).

References: vLLM "OpenAI-Compatible Server" (max_tokens, guided json_schema, error body
``{"object": "error", "message", "type", "param", "code"}``), Ollama "OpenAI compatibility"
(/v1, no key), Groq "OpenAI Compatibility" (max_completion_tokens, ``x_groq.usage`` in the
last stream chunk), OpenRouter API reference (HTTP-Referer / X-Title headers), DeepInfra and
DeepSeek JSON mode (response_format json_object).
"""

from __future__ import annotations

import json

import httpx2
import pytest

from portal.contracts.messages import Message
from portal.contracts.request import ChatRequest, EmbedRequest
from portal.errors import AuthenticationError, ConfigError, ContextTooLong, ContractError, NotFound
from portal.providers.base import ProviderSettings, Secret, WireReply
from portal.providers.openai_compatible import PRESETS, OpenAICompatibleAdapter
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
