"""Can a target serve a contract? Cross-vendor capability checks of contract schemas.

The facts come from two places:

- each adapter's ``capabilities`` ClassVar (`portal.providers.base.Capabilities`): tools, tool
  count, structured-output mode and schema dialect. Adapters are looked up through
  `portal.providers.registry.adapter_class`, imported only when a check runs. Given the
  configured provider's settings, the adapter is built from them and its instance ``caps``
  win, because settings can change what a provider can do (an OpenAI-compatible preset:
  tool_choice values, JSON mode only, strict schemas); building an adapter does no I/O;
- the per-dialect rules below, taken from the vendors' documentation. Where a provider helper
  ships a schema transformer (`portal.providers.schema_transform.to_openai_strict`), the check
  runs that very transformer, so "portal translates this" is what the adapter will send.

Every finding says the target, the keyword and the JSON pointer inside the contract file.
A construct portal rewrites is reported as ``info`` ("translated"); one it cannot express is
an ``error``. The same function backs `portal contracts check` and the refusal at config
load (`ensure_servable`), so CI and runtime give the same message.

Vendor references (checked 2025; limits change, so they live in one place):

- OpenAI strict mode ("Structured Outputs" guide, "Supported schemas",
  https://platform.openai.com/docs/guides/structured-outputs#supported-schemas): root must be
  an object, every property required, ``additionalProperties: false``; up to 5000 object
  properties and 10 levels of nesting; up to 1000 enum values in total; a single string enum
  with more than 250 values may total at most 15,000 characters; all property names,
  definition names, enum and const values may total at most 120,000 characters. Keyword rules
  are implemented in `portal.providers.schema_transform`.
- Gemini ``responseSchema`` and function declarations ("a select subset of an OpenAPI 3.0
  schema object", https://ai.google.dev/api/caching#Schema and
  https://cloud.google.com/vertex-ai/generative-ai/docs/reference/rest/v1/Schema): fields
  type, format, title, description, nullable, enum (strings), maxItems, minItems, properties,
  required, minProperties, maxProperties, minLength, maxLength, pattern, example, anyOf,
  propertyOrdering, default, items, minimum, maximum; string formats "enum" and "date-time".
  No ``$ref`` recursion, no ``patternProperties``, no free-form ``additionalProperties``.
- Anthropic tool ``input_schema`` (https://docs.anthropic.com/en/docs/build-with-claude/tool-use):
  a JSON Schema object; structured output is a forced tool call, so the output root must be
  an object. Strict tools (https://docs.claude.com/en/docs/build-with-claude/structured-outputs):
  at most 20 strict tools per request, no recursive schemas.
- Cohere structured outputs (https://docs.cohere.com/docs/structured-outputs): the top-level
  object needs at least one required property; schema composition (anyOf, allOf, oneOf, not)
  is not supported; numeric, string-length and array-length ranges are not enforced.
- Bedrock Converse ``toolSpec.inputSchema.json``
  (https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ToolSpecification.html):
  a JSON Schema object; structured output through a forced tool, root must be an object.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from portal.errors import ConfigError, ContractError

if TYPE_CHECKING:
    from portal.contracts.feature import FeatureContract
    from portal.providers.base import Capabilities, ProviderSettings

__all__ = [
    "CapabilityIssue",
    "capabilities_for",
    "check_target",
    "cohere_issues",
    "ensure_servable",
    "gemini_issues",
    "openai_strict_issues",
]

Severity = Literal["error", "warning", "info"]

#: OpenAI strict mode limits not enforced by the transformer itself (see module docstring)
OPENAI_MAX_TOTAL_STRING = 120_000
OPENAI_BIG_ENUM = 250
OPENAI_BIG_ENUM_CHARS = 15_000
ANTHROPIC_MAX_STRICT_TOOLS = 20

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

# Used only when an adapter module cannot be imported (not installed, not written yet), so
# the check still says something useful; an importable adapter's ClassVar always wins.
_FALLBACK: dict[str, dict[str, Any]] = {
    "openai": {
        "structured_output": "json_schema",
        "schema_dialect": "openai-strict",
        "max_tools": 128,
    },
    "azure-openai": {
        "structured_output": "json_schema",
        "schema_dialect": "openai-strict",
        "max_tools": 128,
    },
    "gemini": {
        "structured_output": "response_schema",
        "schema_dialect": "openapi-3.0-subset",
        "strict_tools": False,
    },
    "vertex": {
        "structured_output": "response_schema",
        "schema_dialect": "openapi-3.0-subset",
        "strict_tools": False,
    },
    "anthropic": {"structured_output": "tool", "schema_dialect": "json-schema"},
    "bedrock": {"structured_output": "tool", "schema_dialect": "json-schema"},
    "cohere": {"structured_output": "json_object", "schema_dialect": "cohere"},
    "mistral": {"structured_output": "json_schema", "schema_dialect": "json-schema"},
}


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


def capabilities_for(
    kind: str, provider: ProviderSettings | None = None
) -> tuple[Capabilities, str | None]:
    """The `Capabilities` of a provider kind, and a note when portal had to fall back.

    With ``provider`` (the configured provider's settings), the adapter is built from them and
    its instance ``caps`` are returned; if the settings cannot build it, the kind's class
    ``capabilities`` are used and the note says why. Without an importable adapter, portal's
    built-in table is used."""
    from portal.providers.base import Capabilities
    from portal.providers.registry import adapter_class

    try:
        cls = adapter_class(kind)
    except ConfigError as exc:
        if kind in _FALLBACK:
            note = f"adapter for kind {kind!r} not importable ({exc}); used portal's built-in table"
            return Capabilities(**_FALLBACK[kind]), note
        raise
    if provider is None:
        return cls.capabilities, None
    try:
        return cls(provider).caps, None
    except ConfigError as exc:
        note = (
            f"provider {provider.name!r} could not be set up ({exc}); checked against what "
            f"kind {kind!r} supports in general"
        )
        return cls.capabilities, note


def check_target(
    contract: FeatureContract,
    target: str,
    kind: str,
    caps: Capabilities | None = None,
    options: Mapping[str, Any] | None = None,
    provider: ProviderSettings | None = None,
) -> list[CapabilityIssue]:
    """Everything that stops ``target`` (``provider:model`` of provider kind ``kind``) from
    serving ``contract``, plus what portal will translate. ``options`` are the provider's
    ``options`` table (``json_schema = true`` makes Gemini take full JSON Schema), taken from
    ``provider`` when not given; ``provider`` (the configured provider's settings) makes the
    check use that provider's own capabilities (see `capabilities_for`). Never raises for the
    contract's sake: a `ConfigError` only when the kind itself is unknown."""
    note = None
    if options is None and provider is not None:
        options = provider.options
    if caps is None:
        caps, note = capabilities_for(kind, provider)
    out: list[CapabilityIssue] = []
    if note:
        out.append(CapabilityIssue("warning", target, "kind", "/", note))
    dialect = _dialect(kind, caps)
    if dialect == "openapi-3.0-subset" and (options or {}).get("json_schema"):
        from dataclasses import replace

        caps = replace(caps, structured_output="json_schema", schema_dialect="json-schema")
        dialect = "json-schema"

    if contract.tools:
        if not caps.tools:
            out.append(
                CapabilityIssue(
                    "error",
                    target,
                    "tools",
                    "/tools",
                    f"provider kind {kind!r} does not support tools; the contract declares "
                    f"{len(contract.tools)}. Route this feature to a target with tool calling",
                )
            )
        elif caps.max_tools is not None and len(contract.tools) > caps.max_tools:
            out.append(
                CapabilityIssue(
                    "error",
                    target,
                    "tools",
                    "/tools",
                    f"{len(contract.tools)} tools, but provider kind {kind!r} accepts at most "
                    f"{caps.max_tools} per request",
                )
            )
        else:
            out.extend(_tool_issues(contract, target, kind, dialect))
            out.extend(_strict_tool_issues(contract, target, kind, caps))

    if contract.output_schema is not None:
        out.extend(_output_issues(contract.output_schema, target, kind, caps, dialect))
    return out


def ensure_servable(
    contract: FeatureContract,
    target: str,
    kind: str,
    options: Mapping[str, Any] | None = None,
    provider: ProviderSettings | None = None,
) -> None:
    """Raise `ContractError` (same text as `portal contracts check`) if ``target`` cannot
    serve ``contract``; for config loading, so a bad route fails before any call. Pass the
    configured ``provider`` so its own capabilities (e.g. a preset's) are checked."""
    issues = check_target(contract, target, kind, options=options, provider=provider)
    errors = [i for i in issues if i.severity == "error"]
    if errors:
        lines = [f"{contract.source}: {e}" for e in errors]
        raise ContractError(
            f"feature {contract.name!r}: target {target} cannot serve the contract:\n  "
            + "\n  ".join(lines),
            [
                {"pointer": e.pointer, "keyword": e.keyword, "message": e.message, "target": target}
                for e in errors
            ],
        )


# ------------------------------------------------------------------------------ dispatch


def _dialect(kind: str, caps: Capabilities) -> str:
    if caps.schema_dialect == "json-schema" and kind == "cohere":
        return "cohere"
    return caps.schema_dialect


def _output_issues(
    schema: dict[str, Any], target: str, kind: str, caps: Capabilities, dialect: str
) -> list[CapabilityIssue]:
    mode = caps.structured_output
    base = "/output"
    if mode is None:
        return [
            CapabilityIssue(
                "error",
                target,
                "output",
                base,
                f"provider kind {kind!r} has no structured-output mode, so the [output] schema "
                "cannot be honoured; route this feature elsewhere or drop [output]",
            )
        ]
    if mode == "json_object":
        issues = [
            CapabilityIssue(
                "info",
                target,
                "output",
                base,
                "translated: the vendor only guarantees JSON; portal sends the schema where the "
                "API accepts it, validates the reply against [output] and retries once",
                translated=True,
            )
        ]
        if dialect == "cohere":
            issues.extend(cohere_issues(schema, target, base))
        return issues
    if mode == "tool":
        issues = []
        if schema.get("type") != "object":
            issues.append(
                CapabilityIssue(
                    "error",
                    target,
                    "type",
                    base,
                    f"provider kind {kind!r} returns structured output as a forced tool call, "
                    "whose "
                    'arguments must be an object: make the [output] root type = "object"',
                )
            )
        else:
            issues.append(
                CapabilityIssue(
                    "info",
                    target,
                    "output",
                    base,
                    "translated: [output] is sent as the input schema of a forced tool call",
                    translated=True,
                )
            )
        if dialect == "cohere":
            issues.extend(cohere_issues(schema, target, base))
        return issues
    if mode == "response_schema" or dialect == "openapi-3.0-subset":
        return gemini_issues(schema, target, base)
    if dialect == "openai-strict":
        return openai_strict_issues(schema, target, base)
    if dialect == "cohere":
        return cohere_issues(schema, target, base)
    return []


def _tool_issues(
    contract: FeatureContract, target: str, kind: str, dialect: str
) -> list[CapabilityIssue]:
    out: list[CapabilityIssue] = []
    strict_tools = [t for t in contract.tools if t.strict]
    if kind == "anthropic" and len(strict_tools) > ANTHROPIC_MAX_STRICT_TOOLS:
        out.append(
            CapabilityIssue(
                "error",
                target,
                "strict",
                "/tools",
                f"{len(strict_tools)} strict tools, but Anthropic accepts at most "
                f"{ANTHROPIC_MAX_STRICT_TOOLS} strict tools per request",
            )
        )
    for i, tool in enumerate(contract.tools):
        base = f"/tools/{i}/parameters"
        if dialect == "openapi-3.0-subset":
            out.extend(gemini_issues(tool.parameters, target, base))
        elif dialect == "openai-strict" and tool.strict:
            out.extend(openai_strict_issues(tool.parameters, target, base))
        elif dialect == "cohere":
            out.extend(cohere_issues(tool.parameters, target, base, need_required=False))
    return out


def _strict_tool_issues(
    contract: FeatureContract, target: str, kind: str, caps: Capabilities
) -> list[CapabilityIssue]:
    """A strict tool on a target that cannot enforce it is an error, never a silent drop;
    Cohere's single ``strict_tools`` switch cannot serve strict and loose tools together."""
    strict = [i for i, t in enumerate(contract.tools) if t.strict]
    if not strict:
        return []
    if not getattr(caps, "strict_tools", True):
        return [
            CapabilityIssue(
                "error",
                target,
                "strict",
                f"/tools/{i}/strict",
                f"provider kind {kind!r} cannot enforce strict tools (no strict flag on its "
                "tool definitions); drop strict, or route this feature to a target that "
                "enforces it",
            )
            for i in strict
        ]
    if kind == "cohere" and len(strict) != len(contract.tools):
        return [
            CapabilityIssue(
                "error",
                target,
                "strict",
                "/tools",
                "Cohere's strict_tools applies to every tool of a request; mark all tools "
                "strict or none",
            )
        ]
    return []


# --------------------------------------------------------------------------- OpenAI strict


def openai_strict_issues(schema: dict[str, Any], target: str, base: str) -> list[CapabilityIssue]:
    """Run portal's strict-mode transformer; its refusals are errors, its rewrites info."""
    from portal.providers.schema_transform import to_openai_strict

    try:
        result = to_openai_strict(schema, where=base.lstrip("/"))
    except ContractError as exc:
        return [
            CapabilityIssue(
                "error",
                target,
                str(detail.get("keyword", "schema")),
                _join(base, str(detail.get("pointer", "/"))),
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
                _join(base, closed[0]),
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
                _join(base, nullable[0]),
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
                _join(base, pointer),
                f"translated: {keyword!r} is not supported in strict mode; it is left out of the "
                "request and enforced by portal's validation of the reply",
                translated=True,
            )
        )
    return issues


def _openai_size_issues(schema: dict[str, Any], target: str, base: str) -> list[CapabilityIssue]:
    issues: list[CapabilityIssue] = []
    total = 0
    for ptr, node in _walk(schema):
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
                        _join(base, f"{ptr}/enum"),
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
    for ptr, node in _walk(schema):
        types = node.get("type")
        is_object = types == "object" or (isinstance(types, list) and "object" in types)
        if not is_object:
            continue
        if node.get("additionalProperties") is None:
            closed.append(ptr)
        props = node.get("properties") or {}
        required = set(node.get("required") or [])
        nullable.extend(f"{ptr}/properties/{_esc(k)}" for k in props if k not in required)
    return closed, nullable


# ------------------------------------------------------------------------- Gemini subset


def gemini_issues(schema: Any, target: str, base: str) -> list[CapabilityIssue]:
    """Check a schema against Gemini's OpenAPI 3.0 subset: what portal rewrites (info) and
    what has no equivalent (error). When the Gemini adapter's translator
    (`portal.providers.gemini_schema.to_gemini_schema`) is importable, its refusals are the
    errors, so CI refuses exactly what the adapter would."""
    issues = _gemini_rules(schema, target, base)
    try:
        from portal.providers.gemini_schema import to_gemini_schema
    except ImportError:
        return issues
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
                _join(base, str(d.get("pointer", "/"))),
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
                _join(base, ptr),
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
            resolved = _resolve(schema, ref)
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
            visit(sub, f"{ptr}/properties/{_esc(name)}", refs)
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
                _join(base, ptrs[0]),
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


# ------------------------------------------------------------------------------- Cohere


def cohere_issues(
    schema: Any, target: str, base: str, need_required: bool = True
) -> list[CapabilityIssue]:
    issues: list[CapabilityIssue] = []
    if need_required and isinstance(schema, Mapping) and not schema.get("required"):
        issues.append(
            CapabilityIssue(
                "error",
                target,
                "required",
                _join(base, "/required"),
                "Cohere structured outputs need at least one required property at the top level",
            )
        )
    for ptr, node in _walk(schema):
        for kw in _COHERE_COMPOSITION:
            if kw in node:
                issues.append(
                    CapabilityIssue(
                        "error",
                        target,
                        kw,
                        _join(base, f"{ptr}/{kw}"),
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
                        _join(base, f"{ptr}/{kw}"),
                        f"translated: {kw!r} is not enforced by Cohere; portal validates the reply",
                        translated=True,
                    )
                )
    return issues


# ------------------------------------------------------------------------------ helpers


def _walk(schema: Any, ptr: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every subschema with its pointer (no $ref following)."""
    if not isinstance(schema, Mapping):
        return
    yield ptr, schema
    for kw in ("properties", "$defs", "definitions", "patternProperties"):
        if isinstance(schema.get(kw), Mapping):
            for k, v in schema[kw].items():
                yield from _walk(v, f"{ptr}/{kw}/{_esc(k)}")
    for kw in ("items", "additionalProperties", "not", "if", "then", "else", "contains"):
        if isinstance(schema.get(kw), Mapping):
            yield from _walk(schema[kw], f"{ptr}/{kw}")
    for kw in ("anyOf", "oneOf", "allOf", "prefixItems"):
        if isinstance(schema.get(kw), list):
            for i, v in enumerate(schema[kw]):
                yield from _walk(v, f"{ptr}/{kw}/{i}")


def _resolve(root: Any, ref: str) -> Any:
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


def _esc(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def _join(base: str, pointer: str) -> str:
    if pointer in ("", "/"):
        return base or "/"
    return base + (pointer if pointer.startswith("/") else "/" + pointer)
