"""Lenient normalization of tool definitions written for other ecosystems.

Function definitions from other tool-calling ecosystems (benchmarks, older SDKs, hand-written
catalogues) often use Python or OpenAPI names where JSON Schema has its own (``"dict"``,
``"float"``, ``"tuple"``, ``"any"``, ``"int"``, ``"str"``, ``"bool"``, ``"list"``), put
``required: true`` on a property instead of listing it in the object's ``required``, and name
functions with dots (``math.factorial``), which no vendor accepts. `normalize_tool` rewrites
such a definition into standard JSON Schema and a vendor-legal name, and returns every change
it made (`SchemaChange`: where, before, after, why), so nothing is rewritten silently. It is
only used when asked for (``portal.tool_from_schema(definition, lenient=True)``); the strict
path refuses these definitions, listing all their problems at once.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from portal.contracts.schema import JSON_TYPES

__all__ = ["TYPE_ALIASES", "SchemaChange", "legal_tool_name", "normalize_tool"]

#: non-standard type names (lower-cased) and the JSON Schema type each means; "any" means
#: no type constraint at all (the ``type`` keyword is removed)
TYPE_ALIASES: dict[str, str | None] = {
    "dict": "object",
    "dictionary": "object",
    "map": "object",
    "mapping": "object",
    "hashmap": "object",
    "json": "object",
    "float": "number",
    "double": "number",
    "decimal": "number",
    "int": "integer",
    "long": "integer",
    "short": "integer",
    "str": "string",
    "text": "string",
    "char": "string",
    "bool": "boolean",
    "list": "array",
    "tuple": "array",
    "set": "array",
    "sequence": "array",
    "none": "null",
    "nonetype": "null",
    "any": None,
    "object": "object",
    "number": "number",
    "integer": "integer",
    "string": "string",
    "boolean": "boolean",
    "array": "array",
    "null": "null",
}
_LEGAL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_ILLEGAL_CHARS = re.compile(r"[^a-zA-Z0-9_-]")
#: keywords whose value is one subschema / a map of subschemas / a list of subschemas
_ONE = ("items", "additionalProperties", "not", "if", "then", "else", "contains")
_MAP = ("properties", "patternProperties", "$defs", "definitions")
_LIST = ("anyOf", "oneOf", "allOf", "prefixItems")


@dataclass(slots=True, frozen=True)
class SchemaChange:
    """One rewrite `normalize_tool` made: ``pointer`` into the original definition
    (``/name``, ``/parameters/properties/x/type``), the value before and after, and why."""

    pointer: str
    before: Any
    after: Any
    reason: str

    def __str__(self) -> str:
        return f"{self.pointer}: {self.before!r} -> {self.after!r} ({self.reason})"


def legal_tool_name(name: str) -> str:
    """``name`` as every vendor accepts it (``^[a-zA-Z0-9_-]{1,64}$``): other characters
    (dots, spaces, slashes) become ``_``; longer names are cut to 64 characters."""
    legal = _ILLEGAL_CHARS.sub("_", name)[:64]
    return legal or "tool"


def normalize_tool(name: str, parameters: Any) -> tuple[str, Any, tuple[SchemaChange, ...]]:
    """(legal name, standard JSON Schema parameters, every change made). What is not a
    mapping is returned as it came, for `ToolSpec` to refuse."""
    changes: list[SchemaChange] = []
    legal = name
    if not isinstance(name, str) or not _LEGAL_NAME.match(name):
        legal = legal_tool_name(str(name))
        changes.append(
            SchemaChange(
                "/name", name, legal, "vendors accept only letters, digits, _ and -, 1-64 long"
            )
        )
    params = copy.deepcopy(parameters) if isinstance(parameters, Mapping) else parameters
    if params is None:
        params = {"type": "object", "properties": {}}
        changes.append(SchemaChange("/parameters", None, params, "no parameters: none taken"))
    if isinstance(params, dict):
        _node(params, "/parameters", changes)
        if "type" not in params and ("properties" in params or not params):
            params["type"] = "object"
            changes.append(
                SchemaChange("/parameters/type", None, "object", "tool parameters are an object")
            )
    return legal, params, tuple(changes)


def _esc(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _node(s: dict[str, Any], ptr: str, changes: list[SchemaChange]) -> None:
    if "type" in s:
        _fix_type(s, ptr, changes)
    props = s.get("properties")
    if isinstance(props, dict):
        _lift_required(s, props, ptr, changes)
    items = s.get("items")
    if isinstance(items, list):  # the tuple form of older drafts
        s["prefixItems"] = s.pop("items")
        changes.append(
            SchemaChange(
                f"{ptr}/items", "[...]", "prefixItems", "a list of item schemas is prefixItems"
            )
        )
    for kw in _ONE:
        sub = s.get(kw)
        if isinstance(sub, dict):
            _node(sub, f"{ptr}/{kw}", changes)
    for kw in _MAP:
        subs = s.get(kw)
        if isinstance(subs, dict):
            for key, sub in subs.items():
                if isinstance(sub, dict):
                    _node(sub, f"{ptr}/{kw}/{_esc(str(key))}", changes)
    for kw in _LIST:
        subs = s.get(kw)
        if isinstance(subs, list):
            for i, sub in enumerate(subs):
                if isinstance(sub, dict):
                    _node(sub, f"{ptr}/{kw}/{i}", changes)


def _fix_type(s: dict[str, Any], ptr: str, changes: list[SchemaChange]) -> None:
    raw = s["type"]
    names = raw if isinstance(raw, list) else [raw]
    mapped: list[str] = []
    anything = False
    for name in names:
        if not isinstance(name, str):
            return  # not a name at all: left for the schema check to report
        if name in JSON_TYPES:
            mapped.append(name)
            continue
        alias = TYPE_ALIASES.get(name.strip().lower(), "?")
        if alias == "?":
            return  # unknown: left for the schema check to report, with its pointer
        if alias is None:
            anything = True
        elif alias not in mapped:
            mapped.append(alias)
    if anything:
        del s["type"]
        changes.append(SchemaChange(f"{ptr}/type", raw, None, "'any' is no type constraint"))
        return
    after: Any = mapped[0] if len(mapped) == 1 else mapped
    if after != raw:
        s["type"] = after
        changes.append(SchemaChange(f"{ptr}/type", raw, after, "standard JSON Schema type name"))


def _lift_required(
    s: dict[str, Any], props: dict[str, Any], ptr: str, changes: list[SchemaChange]
) -> None:
    """``{"x": {"type": "string", "required": true}}`` (draft 3 style) -> the object's
    ``required`` list; ``required: false`` is simply removed."""
    required = s.get("required")
    listed: list[Any] = list(required) if isinstance(required, list) else []
    lifted = False
    for key, sub in props.items():
        if isinstance(sub, dict) and isinstance(sub.get("required"), bool):
            flag = sub.pop("required")
            changes.append(
                SchemaChange(
                    f"{ptr}/properties/{_esc(str(key))}/required",
                    flag,
                    None,
                    "a property's own required flag goes in its object's required list",
                )
            )
            if flag and key not in listed:
                listed.append(key)
                lifted = True
    if lifted:
        changes.append(SchemaChange(f"{ptr}/required", required, listed, "required flags lifted"))
        s["required"] = listed
