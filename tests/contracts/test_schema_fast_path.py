"""The compiled fast path of `list_errors` must agree with jsonschema: it may only accept
what jsonschema accepts, and every rejection still lists jsonschema's errors."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import validators

from portal.contracts.schema import _compile, list_errors

SCHEMAS: list[dict[str, Any]] = [
    {
        "type": "object",
        "required": ["answer", "order_id", "needs_human"],
        "additionalProperties": False,
        "properties": {
            "answer": {"type": "string", "minLength": 1, "pattern": "^a|d$"},
            "order_id": {"type": ["string", "null"]},
            "needs_human": {"type": "boolean"},
        },
    },
    {
        "type": "object",
        "properties": {
            "n": {"type": "integer", "minimum": 0, "maximum": 10},
            "x": {"type": "number"},
            "tags": {"type": "array", "items": {"enum": ["a", "b", 1]}, "maxItems": 2},
            "k": {"const": True},
        },
        "additionalProperties": {"type": "string", "maxLength": 3},
    },
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 12)
    | st.floats(allow_nan=False, allow_infinity=False, width=16)
    | st.sampled_from(["", "a", "b", "abcd"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["answer", "order_id", "needs_human", "n", "x", "tags", "k", "zz"]),
            inner,
            max_size=5,
        )
    ),
    max_leaves=12,
)


def _jsonschema_errors(instance: Any, schema: dict[str, Any]) -> int:
    cls = validators.validator_for(schema, default=validators.Draft202012Validator)
    return len(list(cls(schema).iter_errors(instance)))


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(range(len(SCHEMAS))), json_values)
def test_fast_path_agrees_with_jsonschema(which: int, instance: Any) -> None:
    schema = SCHEMAS[which]
    fast = _compile(schema)
    assert fast is not None  # these schemas only use compiled keywords
    expected = _jsonschema_errors(instance, schema)
    if fast(instance):
        assert expected == 0, f"fast path accepted an invalid instance {instance!r}"
    assert len(list_errors(instance, schema)) == expected
    assert len(list_errors(instance, schema, stable=True)) == expected


def test_unknown_keywords_are_left_to_jsonschema() -> None:
    for schema in (
        {"type": "number", "multipleOf": 2},
        {"type": "string", "pattern": "(?P<bad"},  # not a regex: jsonschema reports it
        {"anyOf": [{"type": "string"}]},
        {"$ref": "#/$defs/x", "$defs": {"x": {"type": "string"}}},
        {"type": "integer", "exclusiveMinimum": 1},
        {"type": "object", "patternProperties": {"^x": {}}, "additionalProperties": False},
    ):
        assert _compile(schema) is None, schema
    assert list_errors("b", {"type": "string", "pattern": "^a"})[0]["keyword"] == "pattern"


def test_integral_float_is_an_integer_as_in_jsonschema() -> None:
    assert list_errors(3.0, {"type": "integer"}) == []
    assert list_errors(True, {"type": "integer"})[0]["keyword"] == "type"
    assert list_errors(1, {"enum": [True]})[0]["keyword"] == "enum"


def test_plainly_valid_schemas_pass_every_drafts_meta_schema() -> None:
    """`plainly_valid` lets contracts skip loading jsonschema: it may only say yes to schemas
    that every supported draft's meta-schema accepts."""
    from portal.contracts.feature import DRAFTS
    from portal.contracts.schema import plainly_valid

    tricky: list[Any] = [
        *SCHEMAS,
        {"type": "string", "pattern": "^[a-z]+$", "title": "t", "description": "d"},
        {"required": []},  # draft 4 wants at least one name
        {"enum": [1, 1.0]},  # not unique for jsonschema
        {"enum": [True, 1]},  # unique: True is not 1
        {"type": []},
        {"type": ["string", "string"]},
        {"minLength": -1},
        {"title": 5},
        {"pattern": "(?P<bad"},
        {"items": False},
        {"properties": {"a": {"type": "strin"}}},
    ]
    said_yes = 0
    for schema in tricky:
        if not plainly_valid(schema):
            continue
        said_yes += 1
        for draft in DRAFTS:
            cls = validators.validator_for({"$schema": draft})
            cls.check_schema(schema)  # raises SchemaError if plainly_valid was wrong
    assert said_yes == len(SCHEMAS) + 2  # the bench-like schemas, the pattern one, True-vs-1
    assert plainly_valid(SCHEMAS[0]) and not plainly_valid({"required": []})
