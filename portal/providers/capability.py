"""Can a target serve a contract? The capability check, above the providers whose rules it runs.

The facts come from two places:

- each adapter's ``capabilities`` ClassVar (`portal.providers.adapter.Capabilities`): tools, tool
  count, structured-output mode and schema dialect. Adapters are looked up through
  `portal.providers.registry.adapter_class`, imported only when a check runs. Given the
  configured provider's settings, the adapter is built from them and its instance ``caps``
  win, because settings can change what a provider can do (an OpenAI-compatible preset:
  tool_choice values, JSON mode only, strict schemas); building an adapter does no I/O;
- each vendor's schema rules, which live with its provider: OpenAI strict mode in
  `portal.providers.schema_transform`, Gemini's subset in `portal.providers.gemini_schema`,
  Cohere's in `portal.providers.cohere_schema`. Where a provider ships a schema translator
  (`to_openai_strict`, `to_gemini_schema`), its rules run that very translator, so "portal
  translates this" is what the adapter will send.

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

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from portal.contracts.schema_issues import CapabilityIssue, join_pointer
from portal.errors import ConfigError, ContractError
from portal.providers.adapter import Capabilities
from portal.providers.cohere_schema import cohere_issues
from portal.providers.gemini_schema import gemini_issues
from portal.providers.registry import adapter_class
from portal.providers.schema_transform import close_objects, openai_strict_issues

if TYPE_CHECKING:
    from portal.contracts.feature import FeatureContract
    from portal.providers.settings import ProviderSettings

__all__ = ["CapabilityIssue", "capabilities_for", "check_target", "ensure_servable"]

#: Anthropic strict tools ("Structured outputs"): at most this many per request
ANTHROPIC_MAX_STRICT_TOOLS = 20

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


def capabilities_for(
    kind: str, provider: ProviderSettings | None = None
) -> tuple[Capabilities, str | None]:
    """The `Capabilities` of a provider kind, and a note when portal had to fall back.

    With ``provider`` (the configured provider's settings), the adapter is built from them and
    its instance ``caps`` are returned; if the settings cannot build it, the kind's class
    ``capabilities`` are used and the note says why. Without an importable adapter, portal's
    built-in table is used."""
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
    if kind in ("anthropic", "bedrock"):
        issues: list[CapabilityIssue] = []
        for i in strict:
            try:
                close_objects(contract.tools[i].parameters, "parameters", kind)
            except ContractError as exc:
                issues.extend(
                    CapabilityIssue(
                        "error",
                        target,
                        str(d.get("keyword", "schema")),
                        join_pointer(f"/tools/{i}/parameters", str(d.get("pointer", "/"))),
                        f"strict tools of kind {kind!r} cannot express {d.get('keyword')!r} "
                        f"({d.get('message')}); change the schema, or drop strict",
                    )
                    for d in exc.details
                )
        return issues
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
