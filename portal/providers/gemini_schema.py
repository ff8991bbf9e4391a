"""JSON Schema -> the OpenAPI 3.0 subset Gemini's ``responseSchema`` and function
``parameters`` take (the ``Schema`` object of the Gemini API / Vertex AI reference; field list
checked against googleapis/python-genai ``google/genai/types.py`` class ``Schema``).

Why translate instead of sending ``responseJsonSchema`` / ``parametersJsonSchema`` (the newer
fields that take full JSON Schema)? The OpenAPI-subset fields work on every Gemini model on
both the Gemini API and Vertex AI, and translating here lets ``portal contracts check`` refuse
an untranslatable contract in CI instead of a vendor 400 in production. A provider can opt in
to the JSON Schema fields with ``options = { json_schema = true }`` (see gemini.py).

The rules, in four groups:

- translated: ``type`` (upper-cased; ``["T", "null"]`` -> ``nullable``; several types ->
  ``anyOf``), ``const`` -> one-value ``enum``, ``null`` in ``enum`` / ``anyOf`` -> ``nullable``,
  ``oneOf`` -> ``anyOf``, one-element ``allOf`` merged, local ``$ref`` inlined (``$defs`` /
  ``definitions``), ``examples`` -> ``example``, integer ``exclusiveMinimum``/``Maximum`` -> exact
  ``minimum``/``maximum``;
- kept as is: ``description``, ``enum`` (strings), ``format`` (the documented ones),
  ``properties``, ``required``, ``items``, ``minItems``/``maxItems``, ``minLength``/``maxLength``,
  ``pattern``, ``minimum``/``maximum``, ``minProperties``/``maxProperties``, ``default``,
  ``example``, ``nullable``, ``propertyOrdering``;
- dropped (annotations, or value refinements Gemini cannot state, which portal still enforces by
  validating the reply against the original schema): ``$schema``, ``$id``, ``$comment``,
  ``title``, ``deprecated``, ``readOnly``, ``writeOnly``, ``discriminator``, boolean
  ``additionalProperties``, ``multipleOf``, ``uniqueItems``, number ``exclusiveMinimum`` /
  ``exclusiveMaximum`` (loosened to ``minimum``/``maximum``), other ``format`` values;
- refused with `ContractError` naming keyword and JSON pointer (they change the shape the model
  must generate, and Gemini has no way to say it): recursive ``$ref``, non-local ``$ref``,
  ``not``, ``if``/``then``/``else``, ``patternProperties``, ``additionalProperties`` as a schema,
  ``propertyNames``, ``dependentSchemas``/``dependentRequired``/``dependencies``,
  ``unevaluatedProperties``/``unevaluatedItems``, ``prefixItems``, array-form ``items``,
  ``additionalItems``, ``contains``, ``allOf`` with several members, non-string ``enum``/``const``,
  an ``enum`` / ``const`` on a schema whose type is not string, a ``required`` entry naming a
  property that is not defined, a schema with no type (``{}``, "any"), ``$dynamicRef``. Every
  such problem of a schema is listed in one error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from portal.contracts.schema import json_pointer
from portal.contracts.schema_issues import CapabilityIssue, escape_key, join_pointer, resolve_ref
from portal.errors import ContractError

__all__ = ["REFUSED_KEYWORDS", "gemini_issues", "to_gemini_schema"]

_TYPES = {
    "string": "STRING",
    "number": "NUMBER",
    "integer": "INTEGER",
    "boolean": "BOOLEAN",
    "array": "ARRAY",
    "object": "OBJECT",
}
#: formats the Gemini API reference documents per type; others are dropped (annotations)
_FORMATS = {
    "STRING": {"enum", "date-time"},
    "NUMBER": {"float", "double"},
    "INTEGER": {"int32", "int64"},
}
_COPY = (
    "description",
    "pattern",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "minimum",
    "maximum",
    "default",
    "example",
    "nullable",
    "propertyOrdering",
)
_DROPPED = frozenset(
    {
        "$schema",
        "$id",
        "$comment",
        "$anchor",
        "$defs",
        "definitions",
        "title",
        "deprecated",
        "readOnly",
        "writeOnly",
        "discriminator",
        "multipleOf",
        "uniqueItems",
        "contentEncoding",
        "contentMediaType",
        "examples",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "format",
        "additionalProperties",
    }
)
REFUSED_KEYWORDS: dict[str, str] = {
    "not": "negation cannot be expressed",
    "if": "conditional schemas cannot be expressed",
    "then": "conditional schemas cannot be expressed",
    "else": "conditional schemas cannot be expressed",
    "patternProperties": "property-name patterns cannot be expressed",
    "propertyNames": "property-name constraints cannot be expressed",
    "dependentSchemas": "dependencies between properties cannot be expressed",
    "dependentRequired": "dependencies between properties cannot be expressed",
    "dependencies": "dependencies between properties cannot be expressed",
    "unevaluatedProperties": "unevaluated properties cannot be expressed",
    "unevaluatedItems": "unevaluated items cannot be expressed",
    "prefixItems": "tuples cannot be expressed",
    "additionalItems": "tuples cannot be expressed",
    "contains": "'contains' cannot be expressed",
    "minContains": "'contains' cannot be expressed",
    "maxContains": "'contains' cannot be expressed",
    "$dynamicRef": "dynamic references cannot be expressed",
    "$recursiveRef": "recursive references cannot be expressed",
}
#: inlining refs can blow up exponentially; past this many nodes the schema is refused
MAX_NODES = 5000


class _Translator:
    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root
        self.findings: list[dict[str, str]] = []
        self.nodes = 0

    def refuse(self, path: list[Any], keyword: str, why: str) -> None:
        finding = {"pointer": json_pointer([*path, keyword]), "keyword": keyword, "message": why}
        if finding not in self.findings:
            self.findings.append(finding)

    def resolve(self, ref: str, path: list[Any]) -> Mapping[str, Any] | None:
        if not ref.startswith("#"):
            self.refuse(path, "$ref", f"only local references (#/...) can be inlined, got {ref!r}")
            return None
        node: Any = self.root
        for raw in [p for p in ref[1:].split("/") if p]:
            key = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and key in node:
                node = node[key]
            else:
                self.refuse(path, "$ref", f"reference {ref!r} does not resolve")
                return None
        if not isinstance(node, Mapping):
            self.refuse(path, "$ref", f"reference {ref!r} is not a schema object")
            return None
        return node

    def node(self, schema: Any, path: list[Any], refs: tuple[str, ...]) -> dict[str, Any]:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            if self.nodes == MAX_NODES + 1:
                self.refuse(path, "$ref", f"schema expands past {MAX_NODES} nodes once inlined")
            return {}
        if schema is True or schema == {}:
            self.refuse(path, "type", "a schema without a type ('any') cannot be expressed")
            return {}
        if not isinstance(schema, Mapping):
            self.refuse(path, "type", f"expected a schema object, got {type(schema).__name__}")
            return {}
        if "$ref" in schema:
            ref = str(schema["$ref"])
            if ref in refs:
                self.refuse(path, "$ref", f"recursive reference {ref!r} cannot be inlined")
                return {}
            target = self.resolve(ref, path)
            if target is None:
                return {}
            merged = {k: v for k, v in target.items()}
            merged.update({k: v for k, v in schema.items() if k != "$ref"})
            # findings inside the target are reported where it is defined, once
            where = [p.replace("~1", "/").replace("~0", "~") for p in ref[1:].split("/") if p]
            return self.node(merged, where, (*refs, ref))
        refused = [k for k in REFUSED_KEYWORDS if k in schema]
        for keyword in refused:
            self.refuse(path, keyword, REFUSED_KEYWORDS[keyword])
        if refused and not any(k in schema for k in ("type", "properties", "items", "enum")):
            return {}  # e.g. {"not": ...}: one finding, not a second about the missing type
        if isinstance(schema.get("items"), list):
            self.refuse(path, "items", "tuples (array-form items) cannot be expressed")
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping) and extra:
            self.refuse(
                path,
                "additionalProperties",
                "maps (additionalProperties as a schema) cannot be expressed",
            )
        if "allOf" in schema:
            members = schema["allOf"]
            if not isinstance(members, list) or len(members) != 1:
                self.refuse(path, "allOf", "only a one-member allOf can be merged")
            else:
                merged = dict(members[0]) if isinstance(members[0], Mapping) else {}
                merged.update({k: v for k, v in schema.items() if k != "allOf"})
                if "$ref" in merged:
                    return self.node(merged, path, refs)
                return self.node(merged, [*path, "allOf", 0], refs)
        return self.plain(schema, path, refs)

    def plain(
        self, schema: Mapping[str, Any], path: list[Any], refs: tuple[str, ...]
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in _COPY:
            if key in schema:
                out[key] = schema[key]
        if "example" not in out and isinstance(schema.get("examples"), list) and schema["examples"]:
            out["example"] = schema["examples"][0]
        nullable = False
        gtype = self.type_of(schema, path)
        if gtype == "NULL_ONLY":
            self.refuse(path, "type", "a schema that only allows null cannot be expressed")
            return {}
        if isinstance(gtype, list):
            # several non-null types: one anyOf branch per type
            nullable = "null" in gtype
            branches = []
            for t in (t for t in gtype if t != "null"):
                sub = {k: v for k, v in schema.items() if k not in ("type", "nullable")}
                sub["type"] = t
                branches.append(self.plain(sub, path, refs))
            out = {k: v for k, v in out.items() if k in ("description", "default", "example")}
            out["anyOf"] = branches
            if nullable:
                out["nullable"] = True
            return out
        if gtype is not None:
            out["type"], nullable = gtype
        values = self.enum_values(schema, path)
        if values is not None:
            strings = [v for v in values if v is not None]
            if None in values:
                nullable = True
            if out.get("type", "STRING") != "STRING":
                keyword = "const" if "const" in schema else "enum"
                self.refuse(
                    path,
                    keyword,
                    f"Gemini takes an enum on a string schema only, this one is "
                    f"{schema.get('type')!r}; make the type string or drop the {keyword}",
                )
            out["enum"] = strings
            out.setdefault("type", "STRING")
        fmt = schema.get("format")
        if isinstance(fmt, str) and fmt in _FORMATS.get(out.get("type", ""), ()):
            out["format"] = fmt
        if "type" in out:
            self.bounds(schema, out)
        if isinstance(schema.get("properties"), Mapping):
            out["properties"] = {
                name: self.node(sub, [*path, "properties", name], refs)
                for name, sub in schema["properties"].items()
            }
            out.setdefault("type", "OBJECT")
        if isinstance(schema.get("required"), list):
            out["required"] = list(schema["required"])
            out.setdefault("type", "OBJECT")
            defined = schema.get("properties")
            defined = defined if isinstance(defined, Mapping) else {}
            for name in out["required"]:
                if name not in defined:
                    self.refuse(
                        path,
                        "required",
                        f"{name!r} is required but not defined in properties; Gemini refuses "
                        "it: define the property or remove it from required",
                    )
        if isinstance(schema.get("items"), Mapping):
            out["items"] = self.node(schema["items"], [*path, "items"], refs)
            out.setdefault("type", "ARRAY")
        for key in ("anyOf", "oneOf"):
            if key not in schema:
                continue
            members = schema[key]
            if not isinstance(members, list) or not members:
                self.refuse(path, key, f"{key} must be a non-empty list")
                continue
            kept = []
            for i, member in enumerate(members):
                if (
                    isinstance(member, Mapping)
                    and member.get("type") == "null"
                    and len(member) == 1
                ):
                    nullable = True
                    continue
                kept.append(self.node(member, [*path, key, i], refs))
            if len(kept) == 1:
                inner = kept[0]
                for k, v in out.items():
                    inner.setdefault(k, v)
                out = inner
            else:
                out["anyOf"] = kept
        if nullable:
            out["nullable"] = True
        if "type" not in out and "anyOf" not in out:
            self.refuse(path, "type", "a schema without a type ('any') cannot be expressed")
        return out

    def type_of(self, schema: Mapping[str, Any], path: list[Any]) -> Any:
        raw = schema.get("type")
        if raw is None:
            return None
        names = raw if isinstance(raw, list) else [raw]
        for name in names:
            if name != "null" and name not in _TYPES:
                self.refuse(path, "type", f"unknown type {name!r}")
                return None
        non_null = [n for n in names if n != "null"]
        if not non_null:
            return "NULL_ONLY"
        if len(non_null) > 1:
            return non_null + (["null"] if "null" in names else [])
        return _TYPES[non_null[0]], "null" in names or bool(schema.get("nullable"))

    def enum_values(self, schema: Mapping[str, Any], path: list[Any]) -> list[Any] | None:
        if "const" in schema:
            values, keyword = [schema["const"]], "const"
        elif "enum" in schema:
            values, keyword = list(schema["enum"] or []), "enum"
        else:
            return None
        if not all(v is None or isinstance(v, str) for v in values):
            self.refuse(path, keyword, "Gemini enums take strings only; use string values")
            return None
        return values

    @staticmethod
    def bounds(schema: Mapping[str, Any], out: dict[str, Any]) -> None:
        step = 1 if out.get("type") == "INTEGER" else 0
        low = schema.get("exclusiveMinimum")
        if isinstance(low, (int, float)) and not isinstance(low, bool):
            out["minimum"] = max(out.get("minimum", low + step), low + step)
        high = schema.get("exclusiveMaximum")
        if isinstance(high, (int, float)) and not isinstance(high, bool):
            out["maximum"] = min(out.get("maximum", high - step), high - step)


def to_gemini_schema(schema: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Translate ``schema``; raise `ContractError` listing every keyword that cannot be
    expressed, each with its JSON pointer (``details``), so CI shows them all at once."""
    translator = _Translator(schema)
    out = translator.node(schema, [], ("#",))
    if translator.findings:
        found = translator.findings
        listed = "; ".join(f"{f['keyword']!r} at {f['pointer']}: {f['message']}" for f in found)
        what = f"{len(found)} parts of this schema: " if len(found) > 1 else ""
        raise ContractError(
            f"{where}: Gemini's schema subset cannot express {what}{listed}; simplify the "
            "schema, or set options.json_schema = true on the provider to send full JSON Schema",
            found,
        )
    return out


GEMINI_FIELDS = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "maxItems",
        "minItems",
        "properties",
        "required",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "example",
        "anyOf",
        "propertyOrdering",
        "default",
        "items",
        "minimum",
        "maximum",
    }
)
GEMINI_FORMATS = {
    "string": frozenset({"enum", "date-time"}),
    "number": frozenset({"float", "double"}),
    "integer": frozenset({"int32", "int64"}),
}
#: dropped from what is sent, kept in portal's own validation of the reply
_GEMINI_VALIDATION_ONLY = ("exclusiveMinimum", "exclusiveMaximum", "multipleOf", "uniqueItems")
_ANNOTATIONS = ("$schema", "$id", "$comment", "examples", "deprecated", "readOnly", "writeOnly")
#: change which shapes are valid; no OpenAPI-subset equivalent
_GEMINI_STRUCTURAL = (
    "patternProperties",
    "propertyNames",
    "unevaluatedProperties",
    "unevaluatedItems",
    "dependentSchemas",
    "dependentRequired",
    "dependencies",
    "if",
    "then",
    "else",
    "not",
    "prefixItems",
    "contains",
    "minContains",
    "maxContains",
)

# ------------------------------------------------------------------------- Gemini subset


def gemini_issues(schema: Any, target: str, base: str) -> list[CapabilityIssue]:
    """Check a schema against Gemini's OpenAPI 3.0 subset: what portal rewrites (info) and
    what has no equivalent (error). The Gemini adapter's translator (`to_gemini_schema`,
    above) runs too: its refusals are the errors, so CI refuses exactly what the adapter would."""
    issues = _gemini_rules(schema, target, base)
    notes = [i for i in issues if i.severity != "error"]
    if not isinstance(schema, Mapping):
        return issues
    try:
        to_gemini_schema(schema, base.lstrip("/") or "schema")
    except ContractError as exc:
        errors = [
            CapabilityIssue(
                "error",
                target,
                str(d.get("keyword", "schema")),
                join_pointer(base, str(d.get("pointer", "/"))),
                f"Gemini's schema subset cannot express {d.get('keyword')!r} "
                f"({d.get('message')}); change the schema, route this feature to a target with "
                "full JSON Schema, or set options.json_schema = true on the provider",
            )
            for d in (exc.details or [{}])
        ]
        return errors + notes
    return notes


def _gemini_rules(schema: Any, target: str, base: str) -> list[CapabilityIssue]:
    issues: list[CapabilityIssue] = []
    translated: dict[str, list[str]] = {}

    def note(keyword: str, ptr: str) -> None:
        translated.setdefault(keyword, []).append(ptr)

    def err(keyword: str, ptr: str, why: str) -> None:
        issues.append(
            CapabilityIssue(
                "error",
                target,
                keyword,
                join_pointer(base, ptr),
                f"Gemini's schema subset cannot express {keyword!r} ({why}); change the schema "
                "or route this feature to a target with full JSON Schema",
            )
        )

    def visit(node: Any, ptr: str, refs: tuple[str, ...]) -> None:
        if isinstance(node, bool):
            err(str(node).lower(), ptr or "/", "boolean schemas have no OpenAPI equivalent")
            return
        if not isinstance(node, Mapping):
            return
        for kw in _GEMINI_STRUCTURAL:
            if kw in node:
                err(kw, f"{ptr}/{kw}", "it changes which shapes are valid")
        ref = node.get("$ref")
        if isinstance(ref, str):
            if ref in refs:
                err("$ref", f"{ptr}/$ref", f"recursive reference to {ref}")
                return
            resolved = resolve_ref(schema, ref)
            if resolved is None:
                err("$ref", f"{ptr}/$ref", f"only local references can be inlined, got {ref}")
                return
            note("$ref", f"{ptr}/$ref")
            # report problems where they can be fixed: at the referenced definition
            visit(resolved, ref[1:] if ref.startswith("#/") else ptr, (*refs, ref))
            return
        for kw in ("$defs", "definitions"):
            if kw in node:
                note(kw, f"{ptr}/{kw}")
        for kw in _ANNOTATIONS:
            if kw in node:
                note(kw, f"{ptr}/{kw}")
        for kw in _GEMINI_VALIDATION_ONLY:
            if kw in node:
                note(kw, f"{ptr}/{kw}")
        extra = node.get("additionalProperties")
        if extra is False:
            note("additionalProperties", f"{ptr}/additionalProperties")
        elif extra is not None:
            err(
                "additionalProperties",
                f"{ptr}/additionalProperties",
                "free-form maps are not supported; list the properties",
            )
        types = node.get("type")
        type_list = [types] if isinstance(types, str) else list(types or [])
        if isinstance(types, list):
            non_null = [t for t in type_list if t != "null"]
            if len(non_null) > 1:
                note("type", f"{ptr}/type")  # becomes anyOf
            elif "null" in type_list:
                note("type", f"{ptr}/type")  # becomes nullable: true
        if "const" in node:
            if isinstance(node["const"], str):
                note("const", f"{ptr}/const")
            else:
                err("const", f"{ptr}/const", "only string constants map to a one-value enum")
        enum = node.get("enum")
        if isinstance(enum, list) and not all(isinstance(v, str) or v is None for v in enum):
            err("enum", f"{ptr}/enum", "enum values must be strings")
        fmt = node.get("format")
        if isinstance(fmt, str):
            allowed = set().union(*(GEMINI_FORMATS.get(t, frozenset()) for t in type_list))
            if fmt not in allowed:
                note("format", f"{ptr}/format")
        if "oneOf" in node:
            note("oneOf", f"{ptr}/oneOf")
        if "allOf" in node:
            branches = node["allOf"]
            if isinstance(branches, list) and len(branches) == 1:
                note("allOf", f"{ptr}/allOf")
                visit(branches[0], f"{ptr}/allOf/0", refs)
            else:
                err("allOf", f"{ptr}/allOf", "only a one-element allOf can be inlined")
        for kw in ("anyOf", "oneOf"):
            if isinstance(node.get(kw), list):
                for i, b in enumerate(node[kw]):
                    visit(b, f"{ptr}/{kw}/{i}", refs)
        for name, sub in (node.get("properties") or {}).items():
            visit(sub, f"{ptr}/properties/{escape_key(name)}", refs)
        if "items" in node:
            items = node["items"]
            if isinstance(items, list):
                err("items", f"{ptr}/items", "tuple-style items are not supported")
            else:
                visit(items, f"{ptr}/items", refs)
        known = GEMINI_FIELDS | {
            "$ref",
            "$defs",
            "definitions",
            "additionalProperties",
            "const",
            "oneOf",
            "allOf",
            *_ANNOTATIONS,
            *_GEMINI_VALIDATION_ONLY,
            *_GEMINI_STRUCTURAL,
        }
        for kw in node:
            if kw not in known and not kw.startswith("x-"):
                err(kw, f"{ptr}/{kw}", "not part of the OpenAPI 3.0 schema subset")

    visit(schema, "", ())
    unique: dict[tuple[str, str], CapabilityIssue] = {}
    for issue in issues:
        unique.setdefault((issue.keyword, issue.pointer), issue)
    issues = list(unique.values())
    for keyword, ptrs in translated.items():
        issues.append(
            CapabilityIssue(
                "info",
                target,
                keyword,
                join_pointer(base, ptrs[0]),
                f"translated: {keyword!r} rewritten for Gemini's OpenAPI subset at {len(ptrs)} "
                f"place(s) (first at {ptrs[0]}); "
                f"{_GEMINI_HOW.get(keyword, 'left to portal validation')}",
                translated=True,
            )
        )
    return issues


_GEMINI_HOW = {
    "$ref": "references are inlined",
    "$defs": "definitions are removed after inlining",
    "definitions": "definitions are removed after inlining",
    "additionalProperties": "dropped; Gemini only produces the listed properties",
    "type": "type lists become nullable: true or anyOf",
    "const": "becomes a one-value enum",
    "oneOf": "becomes anyOf; portal still checks exclusivity",
    "allOf": "the single branch is inlined",
    "format": "unsupported formats are dropped and checked by portal",
}
