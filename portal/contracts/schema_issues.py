"""What a capability check reports about a contract's schema, and how it walks one.

`CapabilityIssue` is vendor-neutral: a severity, the target, the keyword and a JSON pointer
into the contract document. The vendors' own rules that produce issues live with their
providers (`portal.providers.schema_transform`, `gemini_schema`, `cohere_schema`); the check
that picks the rules for a target is `portal.providers.capability`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "CapabilityIssue",
    "Severity",
    "escape_key",
    "join_pointer",
    "resolve_ref",
    "walk_schema",
]

Severity = Literal["error", "warning", "info"]


@dataclass(slots=True, frozen=True)
class CapabilityIssue:
    """One capability finding. ``pointer`` is a JSON pointer into the contract document
    (``/output/properties/tags``), so it can be mapped to a file line."""

    severity: Severity
    target: str
    keyword: str
    pointer: str
    message: str
    translated: bool = False

    def __str__(self) -> str:
        return f"{self.target}: {self.pointer}: {self.message}"


def walk_schema(schema: Any, ptr: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every subschema with its pointer (no $ref following)."""
    if not isinstance(schema, Mapping):
        return
    yield ptr, schema
    for kw in ("properties", "$defs", "definitions", "patternProperties"):
        if isinstance(schema.get(kw), Mapping):
            for k, v in schema[kw].items():
                yield from walk_schema(v, f"{ptr}/{kw}/{escape_key(k)}")
    for kw in ("items", "additionalProperties", "not", "if", "then", "else", "contains"):
        if isinstance(schema.get(kw), Mapping):
            yield from walk_schema(schema[kw], f"{ptr}/{kw}")
    for kw in ("anyOf", "oneOf", "allOf", "prefixItems"):
        if isinstance(schema.get(kw), list):
            for i, v in enumerate(schema[kw]):
                yield from walk_schema(v, f"{ptr}/{kw}/{i}")


def resolve_ref(root: Any, ref: str) -> Any:
    """The node a local ``#/...`` reference points at, or None."""
    if not ref.startswith("#"):
        return None
    node = root
    for part in ref[1:].split("/"):
        if not part:
            continue
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def escape_key(name: str) -> str:
    """A property name as one JSON pointer segment."""
    return name.replace("~", "~0").replace("/", "~1")


def join_pointer(base: str, pointer: str) -> str:
    """``pointer`` (relative to a subschema) under ``base`` (where it sits in the document)."""
    if pointer in ("", "/"):
        return base or "/"
    return base + (pointer if pointer.startswith("/") else "/" + pointer)
