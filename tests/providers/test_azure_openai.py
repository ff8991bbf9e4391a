"""Azure OpenAI adapter.

References: Microsoft Learn "Azure OpenAI in Azure AI Foundry Models REST API reference"
(chat completions and embeddings under /openai/deployments/{deployment-id}/...?api-version=,
``api-key`` header, ``prompt_filter_results`` / ``content_filter_results``), "Content
filtering" (finish_reason content_filter, error code content_filter with innererror
ResponsibleAIPolicyViolation), "Azure OpenAI API version lifecycle" (/openai/v1/ path),
and "Quotas and limits" (429 with retry-after / x-ms-retry-after-ms headers).
"""

from __future__ import annotations

import json

import httpx2
import pytest

from portal.contracts.messages import Message
from portal.contracts.request import ChatRequest, EmbedRequest
from portal.errors import ConfigError, ContentFiltered, NotFound, RateLimited
from portal.providers.azure_openai import DEFAULT_API_VERSION, AzureOpenAIAdapter
from portal.providers.settings import ProviderSettings
from portal.secret import Secret
from portal.wire import WireReply
from tests.providers._cases import TEXT, error_reply, feed_all, fixture, full_request, reply
from tests.providers._openai_spec import errors as spec_errors

KIND = "azure-openai"


def make(**options: object) -> AzureOpenAIAdapter:
    return AzureOpenAIAdapter(
        ProviderSettings(
            "azure",
            KIND,
            base_url="https://acme-eu.openai.azure.com/",
            api_key=Secret("azure-key-1"),
            options={"deployments": {"gpt-4o": "prod-gpt4o"}, **options},
        )
    )


def test_deployment_url_api_version_and_api_key_header() -> None:
    wire = make().build_chat(full_request(), "gpt-4o")
    assert wire.url == (
        "https://acme-eu.openai.azure.com/openai/deployments/prod-gpt4o/chat/completions"
        f"?api-version={DEFAULT_API_VERSION}"
    )
    assert wire.headers["api-key"] == "azure-key-1" and "authorization" not in wire.headers
    assert "azure-key-1" not in repr(wire)
    body = wire.json()
    assert "model" not in body  # the deployment decides
    assert body["response_format"]["json_schema"]["strict"] is True
    assert spec_errors({**body, "model": "gpt-4o"}, "CreateChatCompletionRequest") == []


def test_unmapped_model_is_the_deployment_and_bearer_auth() -> None:
    wire = make(auth="bearer", api_version="2025-01-01-preview").build_chat(
        ChatRequest([Message("user", "hi")]), "my-o3"
    )
    assert "/openai/deployments/my-o3/chat/completions?api-version=2025-01-01-preview" in wire.url
    assert wire.headers["authorization"] == "Bearer azure-key-1"


def test_v1_path_puts_the_deployment_in_the_body() -> None:
    adapter = make(api_version="v1")
    wire = adapter.build_chat(ChatRequest([Message("user", "hi")]), "gpt-4o")
    assert wire.url == "https://acme-eu.openai.azure.com/openai/v1/chat/completions"
    assert wire.json()["model"] == "prod-gpt4o"
    emb = adapter.build_embed(EmbedRequest(["a"]), "text-embedding-3-small")
    assert emb.url == "https://acme-eu.openai.azure.com/openai/v1/embeddings"


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match="base_url is required"):
        AzureOpenAIAdapter(ProviderSettings("azure", KIND, api_key=Secret("k")))
    with pytest.raises(ConfigError, match=r"options\.auth"):
        make(auth="cookie")


def test_reply_keeps_content_filter_results() -> None:
    resp = make().parse_chat(
        reply(KIND, "reply_text.json", headers={"apim-request-id": "apim-1"}), "gpt-4o"
    )
    assert resp.text == TEXT and resp.request_id == "apim-1"
    assert resp.provider_details["content_filter"]["prompt"][0]["prompt_index"] == 0
    assert resp.provider_details["content_filter"]["completion"]["hate"]["severity"] == "safe"
    assert resp.usage.cached_input_tokens == 1920


def test_filtered_completion_raises_content_filtered_naming_the_category() -> None:
    with pytest.raises(ContentFiltered, match="violence"):
        make().parse_chat(reply(KIND, "reply_content_filtered.json"), "gpt-4o")


def test_content_filter_error_and_rate_limit_headers() -> None:
    adapter = make()
    err = adapter.parse_error(error_reply(KIND, "error_content_filtered.json"), "gpt-4o")
    assert isinstance(err, ContentFiltered)
    assert err.request_id == "7f0e3b5c-2d1a-4c8e-9b6f-1a2b3c4d5e6f"
    rl = adapter.parse_error(error_reply(KIND, "error_rate_limited.json"), "gpt-4o")
    assert isinstance(rl, RateLimited) and rl.retry_after == pytest.approx(5.8)  # ms header wins
    assert rl.request_id == "0c9d8e7f-6a5b-4c3d-2e1f-0a9b8c7d6e5f"
    assert isinstance(adapter.parse_error(error_reply(KIND, "error_not_found.json"), "x"), NotFound)


def test_stream_with_prompt_filter_chunk_first() -> None:
    parser = make().stream_parser(full_request(stream=True), "gpt-4o")
    events = feed_all(parser, fixture(KIND, "stream_text.sse"))
    assert "".join(e.text for e in events if e.type == "text") == TEXT
    resp = parser.finish()
    assert resp.usage.output_tokens == 17 and "content_filter" in resp.provider_details


def test_embeddings_url() -> None:
    adapter = make()
    wire = adapter.build_embed(EmbedRequest(["x"]), "text-embedding-3-small")
    assert wire.url.endswith(
        f"/openai/deployments/text-embedding-3-small/embeddings?api-version={DEFAULT_API_VERSION}"
    )
    assert adapter.parse_embed(reply(KIND, "embeddings.json"), "e").vectors == [[0.1, 0.2, 0.3]]


def test_wire_round_trip() -> None:
    adapter = make()

    def handler(request: httpx2.Request) -> httpx2.Response:
        assert request.url.params["api-version"] == DEFAULT_API_VERSION
        assert request.headers["api-key"] == "azure-key-1"
        assert "model" not in json.loads(request.content)
        return httpx2.Response(200, content=fixture(KIND, "reply_tool_calls.json"))

    with httpx2.Client(transport=httpx2.MockTransport(handler)) as client:
        wire = adapter.build_chat(full_request(), "gpt-4o")
        r = client.request(wire.method, wire.url, headers=wire.headers, content=wire.body)
        resp = adapter.parse_chat(WireReply(r.status_code, dict(r.headers), r.content), "gpt-4o")
        assert [c.name for c in resp.tool_calls] == ["lookup_order", "get_weather"]


def test_filtered_choice_without_a_message_is_content_filtered() -> None:
    """Azure's filtered completion: ``finish_reason: content_filter`` and
    ``content_filter_results`` on a choice that has no ``message`` at all."""
    with pytest.raises(ContentFiltered, match="violence") as info:
        make().parse_chat(
            reply(KIND, "reply_filtered_no_message.json", headers={"apim-request-id": "a-1"}),
            "gpt-4o",
        )
    assert not info.value.retryable and info.value.request_id == "a-1"
    assert info.value.body["content_filter"]["completion"]["violence"]["filtered"] is True
