"""Cross-vendor capability checks: what each vendor cannot serve is caught before any call."""

from __future__ import annotations

import json
from typing import Any

import pytest

from portal.contracts.feature import FeatureContract, parse_contract
from portal.errors import ContractError
from portal.providers.adapter import Capabilities
from portal.providers.capability import capabilities_for, check_target, ensure_servable
from portal.providers.registry import adapter_class
from portal.providers.settings import ProviderSettings


def contract(output: Any = None, tools: Any = None) -> FeatureContract:
    doc: dict[str, Any] = {"name": "f", "version": "1.0.0"}
    if output is not None:
        doc["output"] = output
    if tools is not None:
        doc["tools"] = tools
    return parse_contract(json.dumps(doc), "contracts/f.json")


MAP_OUTPUT = {
    "type": "object",
    "required": ["scores"],
    "properties": {
        "scores": {"type": "object", "patternProperties": {"^[a-z]+$": {"type": "number"}}}
    },
}
TREE = {
    "type": "object",
    "required": ["root"],
    "properties": {"root": {"$ref": "#/$defs/Node"}},
    "$defs": {
        "Node": {
            "type": "object",
            "properties": {
                "label": {"type": "string"},
                "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
            },
        }
    },
}
OPENAI = Capabilities(
    structured_output="json_schema", schema_dialect="openai-strict", max_tools=128
)
GEMINI = Capabilities(structured_output="response_schema", schema_dialect="openapi-3.0-subset")


def errors(issues: list[Any]) -> list[tuple[str, str]]:
    return [(i.keyword, i.pointer) for i in issues if i.severity == "error"]


def test_openai_strict_refuses_pattern_properties_with_target_keyword_pointer() -> None:
    issues = check_target(contract(MAP_OUTPUT), "openai:gpt-4.1-mini", "openai", OPENAI)
    assert errors(issues) == [("patternProperties", "/output/properties/scores/patternProperties")]
    err = next(i for i in issues if i.severity == "error")
    assert err.target == "openai:gpt-4.1-mini"
    assert "OpenAI strict mode cannot express 'patternProperties'" in err.message


def test_openai_strict_translates_optional_properties_and_open_objects() -> None:
    out = {"type": "object", "properties": {"a": {"type": "string", "minLength": 2}}}
    issues = check_target(contract(out), "openai:gpt-4.1-mini", "openai", OPENAI)
    assert errors(issues) == []
    infos = {i.keyword: i for i in issues if i.severity == "info"}
    assert set(infos) == {"additionalProperties", "required", "minLength"}
    assert all(i.translated and i.message.startswith("translated:") for i in infos.values())
    assert infos["minLength"].pointer == "/output/properties/a/minLength"


def test_openai_strict_nesting_limit() -> None:
    leaf: dict[str, Any] = {"type": "string"}
    for _ in range(12):
        leaf = {
            "type": "object",
            "properties": {"x": leaf},
            "required": ["x"],
            "additionalProperties": False,
        }
    assert errors(check_target(contract(leaf), "openai:m", "openai", OPENAI))[0][0] == "properties"
    shallow = leaf
    for _ in range(4):
        shallow = shallow["properties"]["x"]
    assert errors(check_target(contract(shallow), "openai:m", "openai", OPENAI)) == []


def test_openai_big_enum_character_limit() -> None:
    values = [f"value-{i:04d}-" + "x" * 60 for i in range(300)]
    out = {
        "type": "object",
        "required": ["v"],
        "additionalProperties": False,
        "properties": {"v": {"type": "string", "enum": values}},
    }
    assert errors(check_target(contract(out), "openai:m", "openai", OPENAI)) == [
        ("enum", "/output/properties/v/enum")
    ]


def test_gemini_refuses_recursive_refs_and_inlines_others() -> None:
    issues = check_target(contract(TREE), "gemini:gemini-2.5-flash", "gemini", GEMINI)
    assert errors(issues) == [("$ref", "/output/$defs/Node/properties/children/items/$ref")]
    flat = {
        "type": "object",
        "properties": {"a": {"$ref": "#/$defs/A"}},
        "$defs": {"A": {"type": ["string", "null"]}},
    }
    ok = check_target(contract(flat), "gemini:gemini-2.5-flash", "gemini", GEMINI)
    assert errors(ok) == []
    assert {i.keyword for i in ok if i.translated} == {"$ref", "$defs", "type"}


def test_gemini_refuses_maps_and_non_string_enums_in_tools_too() -> None:
    tools = [
        {
            "name": "rate",
            "parameters": {
                "type": "object",
                "properties": {
                    "level": {"type": "integer", "enum": [1, 2]},
                    "meta": {"type": "object", "additionalProperties": {"type": "string"}},
                },
            },
        }
    ]
    issues = check_target(contract(tools=tools), "gemini:g", "gemini", GEMINI)
    assert errors(issues) == [
        ("enum", "/tools/0/parameters/properties/level/enum"),
        ("additionalProperties", "/tools/0/parameters/properties/meta/additionalProperties"),
    ]


def test_forced_tool_output_needs_an_object_root() -> None:
    caps = Capabilities(structured_output="tool", schema_dialect="json-schema")
    issues = check_target(
        contract({"type": "array", "items": {"type": "string"}}),
        "anthropic:claude-haiku-4-5",
        "anthropic",
        caps,
    )
    assert errors(issues) == [("type", "/output")]


def test_tool_count_and_tool_support() -> None:
    tools = [{"name": f"t{i}"} for i in range(3)]
    limited = Capabilities(max_tools=2)
    assert errors(check_target(contract(tools=tools), "x:m", "openai", limited)) == [
        ("tools", "/tools")
    ]
    none = Capabilities(tools=False)
    assert errors(check_target(contract(tools=tools), "x:m", "openai", none)) == [
        ("tools", "/tools")
    ]


def test_no_structured_output_mode_is_an_error_and_json_mode_is_translated() -> None:
    out = {"type": "object", "properties": {"a": {"type": "string"}}}
    assert errors(
        check_target(contract(out), "x:m", "sim", Capabilities(structured_output=None))
    ) == [("output", "/output")]
    json_only = check_target(
        contract(out), "x:m", "sim", Capabilities(structured_output="json_object")
    )
    assert [(i.severity, i.translated) for i in json_only] == [("info", True)]


def test_cohere_rules() -> None:
    caps = Capabilities(structured_output="json_object", schema_dialect="cohere")
    out = {
        "type": "object",
        "properties": {"a": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
    }
    assert errors(check_target(contract(out), "cohere:command-a", "cohere", caps)) == [
        ("required", "/output/required"),
        ("anyOf", "/output/properties/a/anyOf"),
    ]


def test_real_adapter_capabilities_are_read_from_the_registry() -> None:
    issues = check_target(contract(MAP_OUTPUT), "openai:gpt-4.1-mini", "openai")
    assert errors(issues) == [("patternProperties", "/output/properties/scores/patternProperties")]


def test_ensure_servable_raises_the_same_message_for_config_loading() -> None:
    with pytest.raises(ContractError) as info:
        ensure_servable(contract(MAP_OUTPUT), "openai:gpt-4.1-mini", "openai")
    text = str(info.value)
    assert text.startswith("feature 'f': target openai:gpt-4.1-mini cannot serve the contract:")
    assert (
        "contracts/f.json: openai:gpt-4.1-mini: /output/properties/scores/patternProperties" in text
    )
    ensure_servable(contract({"type": "object", "properties": {}}), "openai:gpt-4.1-mini", "openai")


def test_gemini_json_schema_option_lifts_the_subset_rules() -> None:
    issues = check_target(
        contract(TREE), "gemini:g", "gemini", GEMINI, options={"json_schema": True}
    )
    assert errors(issues) == []


def test_gemini_errors_come_from_the_adapters_translator() -> None:
    # a schema with no type is refused by portal.providers.gemini_schema
    out = {"type": "object", "properties": {"anything": {}}}
    assert errors(check_target(contract(out), "gemini:g", "gemini", GEMINI)) == [
        ("type", "/output/properties/anything/type")
    ]


def _compatible(name: str, **options: Any) -> ProviderSettings:
    return ProviderSettings(name, "openai-compatible", options=dict(options))


def test_configured_provider_is_judged_by_its_own_capabilities() -> None:
    """An OpenAI-compatible preset changes what the server can do; the check builds the
    configured adapter and reads its instance ``caps`` instead of the kind's class defaults."""
    c = contract(MAP_OUTPUT)
    # the kind in general takes full JSON Schema
    assert errors(check_target(c, "local:m", "openai-compatible")) == []
    # OpenRouter (strict schemas): patternProperties cannot be expressed
    strict = check_target(
        c, "openrouter:m", "openai-compatible", provider=_compatible("openrouter")
    )
    assert errors(strict) == [("patternProperties", "/output/properties/scores/patternProperties")]
    # DeepSeek only has JSON mode: translated, portal validates the reply
    deepseek = check_target(
        c, "ds:m", "openai-compatible", provider=_compatible("ds", preset="deepseek")
    )
    assert [(i.severity, i.keyword) for i in deepseek] == [("info", "output")]
    # a server with no JSON mode at all cannot honour [output]
    with pytest.raises(ContractError, match="no structured-output mode"):
        ensure_servable(
            c,
            "vllm:m",
            "openai-compatible",
            provider=_compatible("vllm", preset="vllm", structured_output="none"),
        )


def test_provider_that_cannot_be_set_up_falls_back_to_the_kind_with_a_note() -> None:
    caps, note = capabilities_for("openai-compatible", _compatible("mystery"))
    assert caps is adapter_class("openai-compatible").capabilities
    assert note is not None and "'mystery'" in note and "base_url is required" in note
    issues = check_target(
        contract(MAP_OUTPUT), "mystery:m", "openai-compatible", provider=_compatible("mystery")
    )
    assert [(i.severity, i.keyword) for i in issues] == [("warning", "kind")]


def test_openai_strict_reports_an_any_object_tool_parameter() -> None:
    tools = [
        {
            "name": "search",
            "strict": True,
            "parameters": {
                "type": "object",
                "properties": {"q": {"type": "string"}, "filters": {"type": "object"}},
                "required": ["q"],
            },
        }
    ]
    issues = check_target(contract(tools=tools), "openai:gpt-4.1-mini", "openai", OPENAI)
    assert errors(issues) == [("type", "/tools/0/parameters/properties/filters")]
    err = next(i for i in issues if i.severity == "error")
    assert "only send {}" in err.message
