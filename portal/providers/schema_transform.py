"""JSON-Schema transformers for vendors that accept only a dialect of JSON Schema.

OpenAI strict mode (structured outputs and ``strict`` function tools) accepts a subset of
JSON Schema and adds rules of its own (OpenAI guide "Structured Outputs", section
"Supported schemas"):

- every object lists all its properties in ``required`` and has ``additionalProperties: false``;
  an optional property is expressed as a required one that may be ``null``;
- the root is an object, not ``anyOf``; ``anyOf``, ``$ref``/``$defs`` and recursion are allowed;
- supported keywords: strings ``pattern``, ``format`` (date-time, time, date, duration, email,
  hostname, ipv4, ipv6, uuid); numbers ``multipleOf``, ``minimum``, ``maximum``,
  ``exclusiveMinimum``, ``exclusiveMaximum``; arrays ``items``, ``minItems``, ``maxItems``;
- not supported: ``allOf``, ``not``, ``if``/``then``/``else``, ``dependentRequired``,
  ``dependentSchemas``, ``patternProperties``, ``unevaluatedProperties``, ``propertyNames``,
  ``minProperties``, ``maxProperties``, ``minLength``, ``maxLength``, ``unevaluatedItems``,
  ``contains``, ``minContains``, ``maxContains``, ``uniqueItems``, ``default``;
- limits: 5000 object properties in total, 10 levels of nesting, 1000 enum values in total.

What portal does with each keyword (portal always validates the reply against the caller's
*original* schema, so a keyword that only narrows the valid values can be left to portal):

- *validation-only* keywords (``minLength``, ``uniqueItems``, unsupported ``format``...) are
  removed from what is sent and listed in `StrictSchema.dropped`;
- annotations the API refuses (``default``, ``$schema``, ``examples``, ``discriminator``) are
  removed; ``oneOf`` becomes ``anyOf`` (portal still checks exclusivity); a one-element
  ``allOf`` is inlined; a ``$ref`` with siblings is wrapped in ``anyOf``;
- *structural* keywords that change which shapes are valid (``not``, ``if``, ``allOf`` with
  several branches, ``patternProperties``, schema-valued ``additionalProperties``...) cannot
  be expressed, and neither can an object below the root declared with no properties (any
  object: strict mode would close it to ``{}``), so `to_openai_strict` raises `ContractError`
  naming the keyword and the JSON pointer of every such problem of the schema, in one error.
  Use a non-strict target or change the schema.

`drop_added_nulls` undoes the optional→nullable rewrite on a reply, so the caller's schema
(where the property was optional, not nullable) accepts it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from portal.contracts.schema_issues import CapabilityIssue, escape_key, join_pointer, walk_schema
from portal.errors import ContractError

__all__ = [
    "OPENAI_STRICT_FORMATS",
    "close_objects",
    "StrictSchema",
    "drop_added_nulls",
    "openai_strict_issues",
    "to_openai_strict",
]

OPENAI_STRICT_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
)
#: narrow the set of valid values without changing its shape: safe to leave to portal
_VALIDATION_ONLY = (
    "minLength",
    "maxLength",
    "minProperties",
    "maxProperties",
    "uniqueItems",
    "minContains",
    "maxContains",
)
_ANNOTATIONS_REFUSED = ("default", "$schema", "$id", "examples", "discriminator", "$comment")
#: change which shapes are valid: cannot be dropped without changing the contract
_STRUCTURAL = (
    "not",
    "if",
    "then",
    "else",
    "dependentRequired",
    "dependentSchemas",
    "dependencies",
    "patternProperties",
    "unevaluatedProperties",
    "propertyNames",
    "contains",
    "unevaluatedItems",
)
#: keywords that make an object a map (already refused on their own)
_MAP_KEYWORDS = (
    "patternProperties",
    "additionalProperties",
    "propertyNames",
    "unevaluatedProperties",
)
MAX_PROPERTIES = 5000
MAX_NESTING = 10
MAX_ENUM_VALUES = 1000


@dataclass(slots=True, frozen=True)
class StrictSchema:
    """The schema to send, and what was dropped (pointer, keyword) for the docs and logs."""

    schema: dict[str, Any]
    dropped: tuple[tuple[str, str], ...] = field(default=())


def to_openai_strict(schema: dict[str, Any], where: str = "output") -> StrictSchema:
    """Rewrite ``schema`` for OpenAI strict mode, or raise `ContractError` if it cannot be.

    ``where`` names the schema in error messages ("output", "tool 'lookup': parameters")."""
    key = json.dumps(schema, default=str)  # keeps property order: models answer in it
    return _cached(key, where)


@lru_cache(maxsize=256)
def _cached(key: str, where: str) -> StrictSchema:
    schema = json.loads(key)
    walker = _Strict(where, schema)
    root = walker.root(schema)
    return StrictSchema(root, tuple(walker.dropped))


class _Strict:
    """One walk over a schema: the strict rewrite, and every problem found on the way (all
    of them are reported together, in one `ContractError`, not only the first)."""

    def __init__(self, where: str, original: dict[str, Any]) -> None:
        self.where = where
        self.original = original
        self.dropped: list[tuple[str, str]] = []
        self.problems: list[dict[str, str]] = []
        self.properties = 0
        self.enum_values = 0

    def fail(self, pointer: str, keyword: str, why: str) -> None:
        self.problems.append({"pointer": pointer or "/", "keyword": keyword, "message": why})

    def refusal(self) -> ContractError:
        found = self.problems
        fix = "route this feature to a target without strict mode"
        if len(found) == 1:
            p = found[0]
            return ContractError(
                f"{self.where}: OpenAI strict mode cannot express {p['keyword']!r} at "
                f"{p['pointer']} ({p['message']}); remove it, or {fix}",
                found,
            )
        listed = "; ".join(f"{p['keyword']!r} at {p['pointer']} ({p['message']})" for p in found)
        return ContractError(
            f"{self.where}: OpenAI strict mode cannot express {len(found)} parts of this "
            f"schema: {listed}; change them, or {fix}",
            found,
        )

    def root(self, schema: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(schema)
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/") and "type" not in out:
            # pydantic emits {"$ref": "#/$defs/Model", "$defs": {...}} for recursive models
            target = out.get("$defs", {}).get(ref[len("#/$defs/") :])
            if isinstance(target, dict):
                out.pop("$ref")
                defs = out.get("$defs", {})
                out = {**copy.deepcopy(target), "$defs": defs}
                out = json.loads(json.dumps(out).replace(json.dumps(ref), json.dumps("#")))
        if out.get("type") != "object":
            self.fail("", "type", "the root of a strict schema must be an object (type: object)")
        result = self.node(out, "", 0)
        if self.properties > MAX_PROPERTIES:
            self.fail("", "properties", f"more than {MAX_PROPERTIES} properties in total")
        if self.enum_values > MAX_ENUM_VALUES:
            self.fail("", "enum", f"more than {MAX_ENUM_VALUES} enum values in total")
        if self.problems:
            raise self.refusal()
        return result

    def node(self, s: Any, ptr: str, depth: int) -> Any:
        if isinstance(s, bool):
            self.fail(ptr, str(s).lower(), "boolean schemas are not supported")
            return s
        if not isinstance(s, dict):
            return s
        if depth > MAX_NESTING:
            self.fail(ptr, "properties", f"nesting deeper than {MAX_NESTING} levels")
            return s
        s = dict(s)
        map_like = any(k in s for k in _MAP_KEYWORDS)
        for kw in _STRUCTURAL:
            if kw in s:
                self.fail(f"{ptr}/{kw}", kw, "the keyword changes which shapes are valid")
                s.pop(kw)
        for kw in _ANNOTATIONS_REFUSED:
            s.pop(kw, None)
        for kw in _VALIDATION_ONLY:
            if kw in s:
                s.pop(kw)
                self.dropped.append((f"{ptr}/{kw}", kw))
        fmt = s.get("format")
        if fmt is not None and fmt not in OPENAI_STRICT_FORMATS:
            s.pop("format")
            self.dropped.append((f"{ptr}/format", "format"))
        if "allOf" in s:
            branches = s.pop("allOf")
            if isinstance(branches, list) and len(branches) == 1:
                return self.node({**branches[0], **s}, ptr, depth)
            self.fail(f"{ptr}/allOf", "allOf", "only a one-element allOf can be inlined")
        if "oneOf" in s:
            s["anyOf"] = s.pop("oneOf")
        if "enum" in s and isinstance(s["enum"], list):
            self.enum_values += len(s["enum"])
        if "$ref" in s and len(s) > 1:
            ref = s.pop("$ref")
            description = s.pop("description", None)
            for extra in s:
                self.fail(f"{ptr}/{extra}", extra, "a $ref cannot carry sibling keywords")
            s = {"anyOf": [{"$ref": ref}]}
            if description:
                s["description"] = description
        if "anyOf" in s:
            s["anyOf"] = [self.node(b, f"{ptr}/anyOf/{i}", depth) for i, b in enumerate(s["anyOf"])]
        for defs_kw in ("$defs", "definitions"):
            if isinstance(s.get(defs_kw), dict):
                s[defs_kw] = {
                    k: self.node(v, f"{ptr}/{defs_kw}/{_esc(k)}", depth)
                    for k, v in s[defs_kw].items()
                }
        types = s.get("type")
        type_list = types if isinstance(types, list) else [types]
        if "object" in type_list:
            s = self.object(s, ptr, depth, map_like)
        if "array" in type_list:
            if "prefixItems" in s:
                self.fail(f"{ptr}/prefixItems", "prefixItems", "tuples are not supported")
            if "items" not in s or s["items"] in ({}, True):
                self.fail(f"{ptr}/items", "items", "a strict array must type its items")
            else:
                s["items"] = self.node(s["items"], f"{ptr}/items", depth + 1)
        return s

    def object(self, s: dict[str, Any], ptr: str, depth: int, map_like: bool) -> dict[str, Any]:
        extra = s.get("additionalProperties")
        if extra not in (None, False):
            self.fail(
                f"{ptr}/additionalProperties",
                "additionalProperties",
                "free-form maps are not supported; every object must list its properties",
            )
        props: dict[str, Any] = s.get("properties") or {}
        if not props and extra is None and depth > 0 and not map_like:
            # any object: closing it (additionalProperties: false) would let the model send
            # only {}, a silent change of the contract
            self.fail(
                ptr,
                "type",
                "an object with no properties accepts any object, but strict mode would close "
                "it so the model could only send {}; list its properties, or set "
                "additionalProperties: false if an empty object is meant",
            )
        required = s.get("required") or []
        for name in sorted({r for r in required if r not in props}, key=str):
            self.fail(f"{ptr}/required", "required", f"{name!r} is required but not defined")
        self.properties += len(props)
        new_props: dict[str, Any] = {}
        for name, sub in props.items():
            sub_ptr = f"{ptr}/properties/{_esc(name)}"
            converted = self.node(sub, sub_ptr, depth + 1)
            if name not in required:
                converted = _nullable(converted)
            new_props[name] = converted
        s["properties"] = new_props
        s["required"] = list(props)
        s["additionalProperties"] = False
        return s


def _nullable(s: Any) -> Any:
    """The schema, also accepting null (how strict mode spells an optional property)."""
    if not isinstance(s, dict):
        return s
    t = s.get("type")
    if isinstance(t, str) and "enum" not in s and "anyOf" not in s:
        return {**s, "type": [t, "null"]} if t != "null" else s
    if isinstance(t, list) and "enum" not in s and "anyOf" not in s:
        return s if "null" in t else {**s, "type": [*t, "null"]}
    if "anyOf" in s and "type" not in s:
        branches = s["anyOf"]
        if any(isinstance(b, dict) and b.get("type") == "null" for b in branches):
            return s
        return {**s, "anyOf": [*branches, {"type": "null"}]}
    description = s.get("description")
    inner = {k: v for k, v in s.items() if k != "description"}
    out: dict[str, Any] = {"anyOf": [inner, {"type": "null"}]}
    if description:
        out["description"] = description
    return out


def _esc(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def drop_added_nulls(instance: Any, schema: dict[str, Any]) -> Any:
    """Remove ``null`` values that strict mode forced into properties the caller's ``schema``
    declares optional and not nullable, so the reply validates against the caller's schema."""
    return _undo(instance, schema, schema, 0)


def _undo(value: Any, s: Any, root: dict[str, Any], depth: int) -> Any:
    if depth > 64 or not isinstance(s, dict):
        return value
    ref = s.get("$ref")
    if isinstance(ref, str) and ref.startswith("#"):
        s = _resolve(root, ref)
        if s is None:
            return value
    for kw in ("allOf", "anyOf", "oneOf"):
        branches = s.get(kw)
        if isinstance(branches, list) and len(branches) == 1:
            return _undo(value, branches[0], root, depth + 1)
    if isinstance(value, dict) and isinstance(s.get("properties"), dict):
        props = s["properties"]
        required = set(s.get("required") or [])
        out: dict[str, Any] = {}
        for k, v in value.items():
            sub = props.get(k)
            if v is None and k in props and k not in required and not _accepts_null(sub, root):
                continue
            out[k] = _undo(v, sub, root, depth + 1) if sub is not None else v
        return out
    if isinstance(value, list) and isinstance(s.get("items"), dict):
        return [_undo(v, s["items"], root, depth + 1) for v in value]
    return value


def _resolve(root: dict[str, Any], ref: str) -> dict[str, Any] | None:
    node: Any = root
    for part in ref.lstrip("#").split("/"):
        if not part:
            continue
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node if isinstance(node, dict) else None


def _accepts_null(s: Any, root: dict[str, Any]) -> bool:
    if not isinstance(s, dict):
        return True
    if isinstance(s.get("$ref"), str):
        target = _resolve(root, s["$ref"])
        return _accepts_null(target, root) if target is not None else True
    t = s.get("type")
    if t == "null" or (isinstance(t, list) and "null" in t):
        return True
    if "enum" in s:
        return None in s["enum"]
    if "const" in s:
        return s["const"] is None
    for kw in ("anyOf", "oneOf"):
        if isinstance(s.get(kw), list):
            return any(_accepts_null(b, root) for b in s[kw])
    return t is None and not any(k in s for k in ("properties", "items", "allOf"))


#: OpenAI strict mode limits not enforced by the transformer itself (see module docstring)
OPENAI_MAX_TOTAL_STRING = 120_000
OPENAI_BIG_ENUM = 250
OPENAI_BIG_ENUM_CHARS = 15_000


# --------------------------------------------------------------------------- OpenAI strict


def openai_strict_issues(schema: dict[str, Any], target: str, base: str) -> list[CapabilityIssue]:
    """Run portal's strict-mode transformer; its refusals are errors, its rewrites info."""
    try:
        result = to_openai_strict(schema, where=base.lstrip("/"))
    except ContractError as exc:
        return [
            CapabilityIssue(
                "error",
                target,
                str(detail.get("keyword", "schema")),
                join_pointer(base, str(detail.get("pointer", "/"))),
                f"OpenAI strict mode cannot express {detail.get('keyword', 'schema')!r} "
                f"({detail.get('message', exc)}); remove it, or route this feature to a target "
                "without strict mode",
            )
            for detail in (exc.details or [{}])
        ]
    issues: list[CapabilityIssue] = []
    issues.extend(_openai_size_issues(result.schema, target, base))
    closed, nullable = _strict_rewrites(schema)
    if closed:
        issues.append(
            CapabilityIssue(
                "info",
                target,
                "additionalProperties",
                join_pointer(base, closed[0]),
                f"translated: additionalProperties: false added to {len(closed)} object(s) "
                f"(first at {closed[0] or '/'})",
                translated=True,
            )
        )
    if nullable:
        issues.append(
            CapabilityIssue(
                "info",
                target,
                "required",
                join_pointer(base, nullable[0]),
                f"translated: {len(nullable)} optional propert(y/ies) sent as required and "
                "nullable; "
                f"portal removes the added nulls from replies (first at {nullable[0]})",
                translated=True,
            )
        )
    for pointer, keyword in result.dropped:
        issues.append(
            CapabilityIssue(
                "info",
                target,
                keyword,
                join_pointer(base, pointer),
                f"translated: {keyword!r} is not supported in strict mode; it is left out of the "
                "request and enforced by portal's validation of the reply",
                translated=True,
            )
        )
    return issues


def _openai_size_issues(schema: dict[str, Any], target: str, base: str) -> list[CapabilityIssue]:
    issues: list[CapabilityIssue] = []
    total = 0
    for ptr, node in walk_schema(schema):
        for kw in ("properties", "$defs", "definitions"):
            if isinstance(node.get(kw), Mapping):
                total += sum(len(k) for k in node[kw])
        enum = node.get("enum")
        if isinstance(enum, list):
            strings = [v for v in enum if isinstance(v, str)]
            chars = sum(len(v) for v in strings)
            total += chars
            if len(enum) > OPENAI_BIG_ENUM and chars > OPENAI_BIG_ENUM_CHARS:
                issues.append(
                    CapabilityIssue(
                        "error",
                        target,
                        "enum",
                        join_pointer(base, f"{ptr}/enum"),
                        f"OpenAI strict mode: an enum of {len(enum)} values "
                        f"(> {OPENAI_BIG_ENUM}) may "
                        f"total at most {OPENAI_BIG_ENUM_CHARS} characters, this one has {chars}",
                    )
                )
        if isinstance(node.get("const"), str):
            total += len(node["const"])
    if total > OPENAI_MAX_TOTAL_STRING:
        issues.append(
            CapabilityIssue(
                "error",
                target,
                "properties",
                base or "/",
                "OpenAI strict mode: property names, definition names, enum and const values "
                f"total "
                f"{total} characters, more than the {OPENAI_MAX_TOTAL_STRING} allowed",
            )
        )
    return issues


def _strict_rewrites(schema: dict[str, Any]) -> tuple[list[str], list[str]]:
    closed: list[str] = []
    nullable: list[str] = []
    for ptr, node in walk_schema(schema):
        types = node.get("type")
        is_object = types == "object" or (isinstance(types, list) and "object" in types)
        if not is_object:
            continue
        if node.get("additionalProperties") is None:
            closed.append(ptr)
        props = node.get("properties") or {}
        required = set(node.get("required") or [])
        nullable.extend(f"{ptr}/properties/{escape_key(k)}" for k in props if k not in required)
    return closed, nullable


def close_objects(schema: dict[str, Any], where: str, vendor: str) -> dict[str, Any]:
    """``schema`` for a vendor whose strict tools need every object closed (Anthropic's
    strict tool use, and Bedrock's for the same models): ``additionalProperties: false`` is
    added to every object that does not say it. An object below the root with no properties
    (any object, which closing would reduce to ``{}``) and a map (``additionalProperties`` as
    a schema) cannot be expressed: `ContractError` lists every such place at once."""
    problems: list[dict[str, str]] = []
    out = _close(copy.deepcopy(schema), "", 0, problems)
    if problems:
        listed = "; ".join(f"{p['keyword']!r} at {p['pointer']} ({p['message']})" for p in problems)
        raise ContractError(
            f"{where}: {vendor} strict tools cannot express {listed}; change the schema, or "
            "drop strict for this tool",
            problems,
        )
    return out


def _close(s: Any, ptr: str, depth: int, problems: list[dict[str, str]]) -> Any:
    if not isinstance(s, dict):
        return s
    types = s.get("type")
    is_object = types == "object" or (isinstance(types, list) and "object" in types)
    if is_object or "properties" in s:
        extra = s.get("additionalProperties")
        if isinstance(extra, dict) or extra is True:
            problems.append(
                {
                    "pointer": f"{ptr}/additionalProperties",
                    "keyword": "additionalProperties",
                    "message": "maps are not supported; list the object's properties",
                }
            )
        elif extra is None:
            if not s.get("properties") and depth > 0:
                problems.append(
                    {
                        "pointer": ptr or "/",
                        "keyword": "type",
                        "message": "an object with no properties accepts any object, which "
                        "strict tools cannot; list its properties, or set "
                        "additionalProperties: false if an empty object is meant",
                    }
                )
            s["additionalProperties"] = False
    props = s.get("properties")
    if isinstance(props, dict):
        s["properties"] = {
            k: _close(v, f"{ptr}/properties/{_esc(k)}", depth + 1, problems)
            for k, v in props.items()
        }
    if isinstance(s.get("items"), dict):
        s["items"] = _close(s["items"], f"{ptr}/items", depth + 1, problems)
    for kw in ("anyOf", "oneOf", "allOf"):
        if isinstance(s.get(kw), list):
            s[kw] = [_close(b, f"{ptr}/{kw}/{i}", depth, problems) for i, b in enumerate(s[kw])]
    for kw in ("$defs", "definitions"):
        if isinstance(s.get(kw), dict):
            s[kw] = {
                k: _close(v, f"{ptr}/{kw}/{_esc(k)}", depth + 1, problems) for k, v in s[kw].items()
            }
    return s
