"""Cohere's structured-output schema rules (https://docs.cohere.com/docs/structured-outputs):
the top-level object needs at least one required property; schema composition (anyOf,
allOf, oneOf, not) is not supported; numeric, string-length and array-length ranges are not
enforced by the vendor, so portal validates the reply against them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from portal.contracts.schema_issues import CapabilityIssue, join_pointer, walk_schema

__all__ = ["cohere_issues"]

_COHERE_COMPOSITION = ("anyOf", "allOf", "oneOf", "not")
_COHERE_RANGES = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "uniqueItems",
)


def cohere_issues(
    schema: Any, target: str, base: str, need_required: bool = True
) -> list[CapabilityIssue]:
    """Cohere's rules for an output (``need_required``) or a tool's parameters schema."""
    issues: list[CapabilityIssue] = []
    if need_required and isinstance(schema, Mapping) and not schema.get("required"):
        issues.append(
            CapabilityIssue(
                "error",
                target,
                "required",
                join_pointer(base, "/required"),
                "Cohere structured outputs need at least one required property at the top level",
            )
        )
    for ptr, node in walk_schema(schema):
        for kw in _COHERE_COMPOSITION:
            if kw in node:
                issues.append(
                    CapabilityIssue(
                        "error",
                        target,
                        kw,
                        join_pointer(base, f"{ptr}/{kw}"),
                        f"Cohere structured outputs do not support schema composition ({kw!r}); "
                        "flatten the schema or route this feature elsewhere",
                    )
                )
        for kw in _COHERE_RANGES:
            if kw in node:
                issues.append(
                    CapabilityIssue(
                        "info",
                        target,
                        kw,
                        join_pointer(base, f"{ptr}/{kw}"),
                        f"translated: {kw!r} is not enforced by Cohere; portal validates the reply",
                        translated=True,
                    )
                )
    return issues
