"""The provider option ``embed_batch_size``: how many inputs go in one embeddings request for
servers whose limit portal does not know (Mistral, vLLM, TEI...) or that the user wants lower
(a per-request token cap). It only ever lowers a vendor's documented limit."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest

import portal
from portal.config import ProviderSettings
from portal.providers.azure_openai import AzureOpenAIAdapter
from portal.providers.cohere import CohereAdapter
from portal.providers.openai_compatible import OpenAICompatibleAdapter
from portal.secret import Secret


def _openai_embeddings(bodies: list[dict[str, Any]]) -> httpx2.MockTransport:
    """An OpenAI-format embeddings server: one vector per input, ``[len(text)]``."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        assert request.url.path == "/v1/embeddings"
        body = json.loads(request.content)
        bodies.append(body)
        data = [
            {"object": "embedding", "index": i, "embedding": [float(len(t))]}
            for i, t in enumerate(body["input"])
        ]
        usage = {"prompt_tokens": len(body["input"]), "total_tokens": len(body["input"])}
        return httpx2.Response(
            200, json={"object": "list", "data": data, "model": body["model"], "usage": usage}
        )

    return httpx2.MockTransport(handler)


def _client(options: dict[str, Any], bodies: list[dict[str, Any]]) -> portal.Client:
    config = {
        "providers": {
            "local": {
                "kind": "openai-compatible",
                "base_url": "http://127.0.0.1:8000/v1",
                "options": {"preset": "vllm", **options},
            }
        }
    }
    return portal.Client(config, ledger=None, transports={"local": _openai_embeddings(bodies)})


def test_option_splits_an_embed_for_a_server_without_a_documented_limit() -> None:
    bodies: list[dict[str, Any]] = []
    texts = [f"text {i}" + "x" * i for i in range(7)]
    with _client({"embed_batch_size": 3}, bodies) as client:
        resp = client.embed(model="local:bge-m3", inputs=texts)
    assert [b["input"] for b in bodies] == [texts[0:3], texts[3:6], texts[6:7]]
    assert resp.vectors == [[float(len(t))] for t in texts]  # in input order
    assert resp.usage.input_tokens == 7  # summed over the requests
    assert len(resp.attempts) == 1  # one attempt, however many requests


def test_without_the_option_such_a_server_gets_one_request() -> None:
    bodies: list[dict[str, Any]] = []
    with _client({}, bodies) as client:
        client.embed(model="local:bge-m3", inputs=["a"] * 5000)
    assert [len(b["input"]) for b in bodies] == [5000]


def test_option_lowers_but_never_raises_a_documented_limit() -> None:
    def cohere(options: dict[str, Any]) -> CohereAdapter:
        return CohereAdapter(ProviderSettings("co", "cohere", api_key=Secret("k"), options=options))

    assert cohere({}).embed_batch_size("embed-v4.0") == 96
    assert cohere({"embed_batch_size": 20}).embed_batch_size("embed-v4.0") == 20
    assert cohere({"embed_batch_size": 500}).embed_batch_size("embed-v4.0") == 96
    compatible = OpenAICompatibleAdapter(
        ProviderSettings("m", "openai-compatible", options={"preset": "vllm"})
    )
    assert compatible.embed_batch_size("bge-m3") is None


def test_azure_openai_takes_2048_inputs_per_request() -> None:
    """Microsoft's embeddings how-to: an input array holds at most 2,048 entries."""
    azure = AzureOpenAIAdapter(
        ProviderSettings(
            "az", "azure-openai", base_url="https://acme.openai.azure.com", api_key=Secret("k")
        )
    )
    assert azure.embed_batch_size("text-embedding-3-small") == 2048


@pytest.mark.parametrize("value", [0, -5, "ten", True, 2.5])
def test_option_is_validated_in_config(value: Any) -> None:
    with pytest.raises(portal.ConfigError) as info:
        _client({"embed_batch_size": value}, [])
    assert str(info.value) == (
        "config: providers.local.options: embed_batch_size must be a positive integer "
        f"(inputs per embeddings request), got {value!r}"
    )
