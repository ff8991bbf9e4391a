"""``strict: true`` on a tool is sent where the vendor documents it and refused where it
cannot be enforced; it is never dropped on the way.

References: Anthropic Messages ``tools[].strict`` ("When true, guarantees schema validation on
tool names and inputs", SDK ``ToolParam``); Bedrock Converse ``ToolSpecification.strict``
("Flag to enable structured output enforcement on a tool usage response"); Cohere Chat v2
``strict_tools`` (one switch for every tool of a request, "Structured Outputs (Tools)");
Gemini ``FunctionDeclaration`` (no strict flag); OpenAI ``function.strict``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from portal.contracts.feature import parse_contract
from portal.contracts.messages import Message
from portal.contracts.request import ChatRequest
from portal.contracts.tools import ToolSpec
from portal.errors import ContractError
from portal.providers.anthropic import AnthropicAdapter
from portal.providers.bedrock import BedrockAdapter
from portal.providers.capability import check_target
from portal.providers.cohere import CohereAdapter
from portal.providers.gemini import GeminiAdapter, VertexAdapter
from portal.providers.openai_compatible import OpenAICompatibleAdapter
from portal.providers.settings import ProviderSettings
from portal.secret import Secret

PARAMS = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}},
    "required": ["order_id"],
    "additionalProperties": False,
}
STRICT = ToolSpec("lookup_order", "Find an order.", PARAMS, strict=True)
LOOSE = ToolSpec("get_weather", "Weather.", PARAMS)


def request(*tools: ToolSpec) -> ChatRequest:
    return ChatRequest([Message("user", "Where is order 123?")], tools=list(tools))


def body(adapter: Any, req: ChatRequest, model: str) -> dict[str, Any]:
    data: dict[str, Any] = adapter.build_chat(req, model).json()
    return data


def test_anthropic_sends_strict_on_the_tool() -> None:
    adapter = AnthropicAdapter(ProviderSettings("claude", "anthropic", api_key=Secret("k" * 12)))
    tools = body(adapter, request(STRICT, LOOSE), "claude-sonnet-4-5")["tools"]
    assert tools[0] == {
        "name": "lookup_order",
        "input_schema": PARAMS,
        "description": "Find an order.",
        "strict": True,
    }
    assert "strict" not in tools[1]


def test_bedrock_sends_strict_on_the_tool_spec() -> None:
    adapter = BedrockAdapter(
        ProviderSettings(
            "aws",
            "bedrock",
            options={
                "region_name": "us-east-1",
                "access_key_id": "AKIAEXAMPLEKEY000000",
                "secret_access_key": Secret("s" * 40),
            },
        )
    )
    data = body(adapter, request(STRICT, LOOSE), "anthropic.claude-sonnet-4-5-v1:0")
    specs = [t["toolSpec"] for t in data["toolConfig"]["tools"]]
    assert specs[0]["strict"] is True and "strict" not in specs[1]


def test_cohere_sets_strict_tools_when_every_tool_is_strict_and_refuses_a_mix() -> None:
    adapter = CohereAdapter(ProviderSettings("cohere", "cohere", api_key=Secret("c" * 12)))
    assert body(adapter, request(STRICT), "command-a-03-2025")["strict_tools"] is True
    assert "strict_tools" not in body(adapter, request(LOOSE), "command-a-03-2025")
    with pytest.raises(ContractError, match="strict_tools applies to every tool"):
        adapter.build_chat(request(STRICT, LOOSE), "command-a-03-2025")


@pytest.mark.parametrize("cls", [GeminiAdapter, VertexAdapter])
def test_gemini_refuses_a_strict_tool_instead_of_dropping_it(cls: type[Any]) -> None:
    options = {"project": "p", "location": "us-central1"} if cls is VertexAdapter else {}
    adapter = cls(ProviderSettings("g", cls.kind, api_key=Secret("g" * 12), options=options))
    with pytest.raises(ContractError, match="'lookup_order': strict=True cannot be honoured"):
        adapter.build_chat(request(STRICT), "gemini-2.5-flash")
    assert adapter.build_chat(request(LOOSE), "gemini-2.5-flash")  # a loose tool still goes


def test_openai_compatible_sends_strict_only_where_the_server_enforces_it() -> None:
    def make(**options: Any) -> OpenAICompatibleAdapter:
        return OpenAICompatibleAdapter(
            ProviderSettings("srv", "openai-compatible", api_key=Secret("o" * 12), options=options)
        )

    fn = body(make(preset="openrouter"), request(STRICT), "openai/gpt-4o")["tools"][0]["function"]
    assert fn["strict"] is True
    with pytest.raises(ContractError, match=r"options\.strict = true"):
        make(preset="together").build_chat(request(STRICT), "m")
    fn = body(make(preset="together", strict=True), request(STRICT), "m")["tools"][0]["function"]
    assert fn["strict"] is True


def test_contracts_check_reports_strict_tools_a_target_cannot_enforce() -> None:
    doc = {
        "name": "f",
        "version": "1.0.0",
        "tools": [
            {"name": "lookup_order", "strict": True, "parameters": PARAMS},
            {"name": "get_weather", "parameters": PARAMS},
        ],
    }
    contract = parse_contract(json.dumps(doc), "contracts/f.json")

    def errors(kind: str) -> list[tuple[str, str]]:
        return [
            (i.keyword, i.pointer)
            for i in check_target(contract, f"{kind}:m", kind)
            if i.severity == "error"
        ]

    assert errors("gemini") == [("strict", "/tools/0/strict")]
    assert errors("cohere") == [("strict", "/tools")]
    assert errors("anthropic") == [] and errors("bedrock") == [] and errors("openai") == []


OPEN = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string"},
        "address": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
    "required": ["order_id"],
}
ANY_OBJECT = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}, "filters": {"type": "object"}},
}


def test_anthropic_and_bedrock_strict_schemas_have_every_object_closed() -> None:
    """Strict tool use needs ``additionalProperties: false`` on every object; an any-object
    parameter cannot be expressed and is refused naming its pointer."""
    tool = ToolSpec("lookup_order", "Find an order.", OPEN, strict=True)
    anthropic = AnthropicAdapter(ProviderSettings("c", "anthropic", api_key=Secret("k" * 12)))
    sent = body(anthropic, request(tool), "claude-sonnet-4-5")["tools"][0]["input_schema"]
    assert sent["additionalProperties"] is False
    assert sent["properties"]["address"]["additionalProperties"] is False
    assert "additionalProperties" not in OPEN  # the caller's schema is untouched
    loose = ToolSpec("lookup_order", "Find an order.", OPEN)
    assert body(anthropic, request(loose), "claude-sonnet-4-5")["tools"][0]["input_schema"] == OPEN
    bad = ToolSpec("search", "Search.", ANY_OBJECT, strict=True)
    with pytest.raises(ContractError, match="/properties/filters"):
        anthropic.build_chat(request(bad), "claude-sonnet-4-5")
    doc = {
        "name": "f",
        "version": "1.0.0",
        "tools": [{"name": "search", "strict": True, "parameters": ANY_OBJECT}],
    }
    contract = parse_contract(json.dumps(doc), "contracts/f.json")
    for kind in ("anthropic", "bedrock"):
        found = [
            (i.keyword, i.pointer)
            for i in check_target(contract, f"{kind}:m", kind)
            if i.severity == "error"
        ]
        assert found == [("type", "/tools/0/parameters/properties/filters")]
