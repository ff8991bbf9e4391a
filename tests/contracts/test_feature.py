"""Loading and rendering feature contracts: what the client and config rely on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from portal.contracts.feature import contract_schema, load_contract, parse_contract
from portal.contracts.output import OutputSpec
from portal.errors import ContractError

EXAMPLE = Path(__file__).parents[2] / "examples" / "contracts" / "contracts" / "support_answer.toml"

GOOD = """
version = "1.0.0"
[prompt]
system = "You are a support agent."
user = "Customer question: {question}"
[input]
type = "object"
required = ["question"]
[input.properties.question]
type = "string"
[output]
type = "object"
required = ["answer"]
[output.properties.answer]
type = "string"
[[tools]]
name = "lookup_order"
[tools.parameters]
type = "object"
[tools.parameters.properties.id]
type = "string"
[[examples]]
input = { question = "Where is my order?" }
output = { answer = "On its way." }
"""


def test_example_contract_loads_with_everything_the_client_needs() -> None:
    c = load_contract(EXAMPLE)
    assert (c.name, c.version) == ("support.answer", "1.2.0")
    assert c.input_schema is not None and c.input_schema["required"] == ["question"]
    assert [t.name for t in c.tools] == ["lookup_order"]
    assert c.tools[0].parameters["properties"]["order_id"]["pattern"] == "^[0-9]+$"
    assert len(c.examples) == 2
    spec = c.output_spec()
    assert isinstance(spec, OutputSpec) and spec.name == "support_answer"
    assert spec.parse('{"answer": "x", "order_id": null, "confidence": "low"}')["answer"] == "x"


def test_name_defaults_to_the_feature_name() -> None:
    c = parse_contract(GOOD, "contracts/x.toml", name="support.answer")
    assert c.name == "support.answer"


def test_render_fills_placeholders_after_validating_input() -> None:
    c = parse_contract(GOOD, "contracts/x.toml", name="f")
    messages = c.render({"question": "Where is 123?"})
    assert [(m.role, m.content) for m in messages] == [
        ("system", "You are a support agent."),
        ("user", "Customer question: Where is 123?"),
    ]


def test_render_rejects_input_naming_path_and_keyword() -> None:
    c = parse_contract(GOOD, "contracts/x.toml", name="f")
    with pytest.raises(ContractError) as info:
        c.render({"question": 5})
    assert str(info.value) == (
        "feature 'f': input does not match the contract: /question: 5 is not of type 'string' "
        "(keyword type)"
    )
    with pytest.raises(
        ContractError, match=r"/: 'question' is a required property \(keyword required\)"
    ):
        c.render({})


def test_render_names_a_placeholder_missing_from_the_input() -> None:
    text = GOOD.replace("{question}", "{question} in {locale}")
    c = parse_contract(text, "contracts/x.toml", name="f")
    with pytest.raises(ContractError) as info:
        c.render({"question": "hi"})
    assert "prompt.user uses {locale} but the input has no 'locale'" in str(info.value)


def test_undeclared_placeholder_in_a_closed_input_fails_at_load() -> None:
    text = GOOD.replace(
        'required = ["question"]', 'required = ["question"]\nadditionalProperties = false', 1
    )
    text = text.replace("{question}", "{qestion}")
    with pytest.raises(
        ContractError, match=r"contracts/x.toml: prompt.user: \{qestion\} is not a property"
    ):
        parse_contract(text, "contracts/x.toml")


def test_unknown_key_is_named_with_a_suggestion() -> None:
    with pytest.raises(ContractError) as info:
        parse_contract(GOOD.replace("[prompt]", "[promt]"), "contracts/x.toml")
    assert str(info.value) == "contracts/x.toml: promt: unknown key; did you mean 'prompt'?"
    assert info.value.details[0]["pointer"] == "/promt"


def test_bad_version_and_missing_version() -> None:
    with pytest.raises(ContractError) as info:
        parse_contract(GOOD.replace('"1.0.0"', '"1.0"'), "c.toml")
    assert str(info.value) == "c.toml: version: must be a semantic version like 1.2.0, got '1.0'"
    with pytest.raises(ContractError, match=r"^c.toml: version: missing \(required\)$"):
        parse_contract(GOOD.replace('version = "1.0.0"', ""), "c.toml")


def test_bad_schema_names_file_section_and_pointer() -> None:
    text = GOOD.replace(
        '[output.properties.answer]\ntype = "string"', '[output.properties.answer]\ntype = "text"'
    )
    with pytest.raises(ContractError) as info:
        parse_contract(text, "contracts/x.toml")
    assert str(info.value).startswith(
        "contracts/x.toml: output: invalid JSON Schema at /properties/answer/type: "
        "'text' is not a JSON Schema type"
    )
    assert info.value.details[0]["pointer"] == "/properties/answer/type"


def test_declared_draft_is_used_for_the_meta_schema() -> None:
    # exclusiveMinimum is a boolean in draft-04 and a number afterwards
    text = GOOD.replace(
        'version = "1.0.0"',
        'version = "1.0.0"\nschema_draft = "http://json-schema.org/draft-04/schema#"',
    )
    text = text.replace(
        '[output.properties.answer]\ntype = "string"',
        '[output.properties.answer]\ntype = "number"\nminimum = 0\nexclusiveMinimum = true',
    )
    assert parse_contract(text, "c.toml", check_examples=False).schema_draft.endswith(
        "draft-04/schema#"
    )
    with pytest.raises(
        ContractError, match="output: invalid JSON Schema at /properties/answer/exclusiveMinimum"
    ):
        parse_contract(
            text.replace('schema_draft = "http://json-schema.org/draft-04/schema#"', ""),
            "c.toml",
            check_examples=False,
        )


def test_invalid_examples_fail_loading_unless_the_check_collects_them() -> None:
    text = GOOD.replace('output = { answer = "On its way." }', "output = { answer = 3 }")
    with pytest.raises(ContractError) as info:
        parse_contract(text, "c.toml")
    assert (
        str(info.value)
        == "c.toml: examples[0].output: /answer: 3 is not of type 'string' (keyword type)"
    )
    c = parse_contract(text, "c.toml", check_examples=False)
    assert c.example_errors() == [
        {
            "example": 0,
            "part": "output",
            "pointer": "/answer",
            "keyword": "type",
            "message": "3 is not of type 'string'",
        }
    ]


def test_json_contracts_and_toml_syntax_errors() -> None:
    doc = {"version": "2.0.0", "input": {"type": "object"}}
    assert parse_contract(json.dumps(doc), "c.json").version == "2.0.0"
    with pytest.raises(ContractError, match=r"^c.json: line 1: not valid JSON"):
        parse_contract("{version", "c.json")
    with pytest.raises(ContractError, match=r"^c.toml: not valid TOML"):
        parse_contract("version = ", "c.toml")


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match=r"nope\.toml: contract file not found"):
        load_contract(tmp_path / "nope.toml")


def test_shipped_contract_schema_validates_the_example() -> None:
    import tomllib

    from jsonschema import Draft202012Validator

    schema = contract_schema()
    Draft202012Validator.check_schema(schema)
    Draft202012Validator(schema).validate(tomllib.loads(EXAMPLE.read_text()))
