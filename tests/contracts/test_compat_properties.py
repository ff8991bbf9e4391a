"""Properties of the compatibility analysis that hold for every schema."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from portal.contracts.compat import compare_schemas

_names = st.text("abcdefgh_", min_size=1, max_size=6)
_leaf = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["string", "integer", "number", "boolean"])}),
    st.fixed_dictionaries(
        {"type": st.just("string"), "enum": st.lists(_names, min_size=1, max_size=4, unique=True)}
    ),
    st.fixed_dictionaries(
        {"type": st.just("string")},
        optional={"maxLength": st.integers(0, 50), "pattern": st.just("^[a-z]+$")},
    ),
    st.fixed_dictionaries(
        {"type": st.just("integer")},
        optional={"minimum": st.integers(-5, 5), "maximum": st.integers(6, 50)},
    ),
)


def _object(children: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    @st.composite
    def build(draw: Any) -> dict[str, Any]:
        props = draw(st.dictionaries(_names, children, max_size=4))
        required = draw(st.lists(st.sampled_from(sorted(props)), unique=True)) if props else []
        schema: dict[str, Any] = {"type": "object", "properties": props}
        if required:
            schema["required"] = required
        if draw(st.booleans()):
            schema["additionalProperties"] = False
        return schema

    return build()


def _extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        _object(children),
        st.fixed_dictionaries({"type": st.just("array"), "items": children}),
        st.fixed_dictionaries({"anyOf": st.lists(children, min_size=1, max_size=3)}),
    )


schemas = st.recursive(_leaf, _extend, max_leaves=12)
objects = _object(schemas)


def _annotated(schema: Any) -> Any:
    """The same schema with a description on every subschema: equal in meaning, not in text,
    so the comparison has to walk it instead of stopping at a textual match."""
    if isinstance(schema, list):
        return [_annotated(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: (_annotated(v) if k in ("items", "anyOf") else v) for k, v in schema.items()}
    if "properties" in schema:
        out["properties"] = {k: _annotated(v) for k, v in schema["properties"].items()}
    out["description"] = "annotated"
    return out


@settings(max_examples=100, deadline=None)
@given(schemas)
def test_a_schema_compared_with_itself_is_never_breaking(schema: Any) -> None:
    for area in ("input", "output", "tools"):
        assert compare_schemas(schema, copy.deepcopy(schema), area) == []  # type: ignore[arg-type]
        assert compare_schemas(schema, _annotated(schema), area) == []  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(objects, _names, schemas)
def test_adding_an_optional_input_property_is_never_breaking(
    schema: dict[str, Any], name: str, prop: Any
) -> None:
    if name in schema["properties"]:
        return
    new = copy.deepcopy(schema)
    new["properties"][name] = prop
    changes = compare_schemas(schema, new, "input")
    assert [c for c in changes if c.breaking] == []
    assert [c.rule for c in changes] == ["property-added"]


@settings(max_examples=80, deadline=None)
@given(objects, _names, schemas)
def test_adding_a_required_input_property_is_always_breaking(
    schema: dict[str, Any], name: str, prop: Any
) -> None:
    if name in schema["properties"]:
        return
    new = copy.deepcopy(schema)
    new["properties"][name] = prop
    new["required"] = [*schema.get("required", []), name]
    assert [c.rule for c in compare_schemas(schema, new, "input") if c.breaking] == [
        "property-added-required"
    ]
