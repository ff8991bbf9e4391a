"""Feature contracts: one file (TOML or JSON) per feature with a version, the input variables,
the structured output, the tools and examples that must validate.

A contract is vendor-neutral; whether each routed vendor can serve it is checked by
`portal.providers.capability` (above the providers), and whether a new version breaks callers by
`portal.contracts.compat`. Errors always name the file and the key, because the people who
read them are editing that file.
"""

from __future__ import annotations

import difflib
import json
import string
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from portal.contracts.messages import Message, system, user
from portal.contracts.output import OutputSpec
from portal.contracts.schema import (
    json_pointer,
    list_errors,
    plainly_valid,
    schema_error,
    schema_problems,
)
from portal.contracts.tools import ToolSpec
from portal.errors import ContractError

__all__ = [
    "DRAFTS",
    "DEFAULT_DRAFT",
    "Example",
    "FeatureContract",
    "contract_schema",
    "load_contract",
    "parse_contract",
    "parse_version",
]

DEFAULT_DRAFT = "https://json-schema.org/draft/2020-12/schema"
#: the drafts a contract may declare in ``schema_draft``
DRAFTS = (
    "https://json-schema.org/draft/2020-12/schema",
    "https://json-schema.org/draft/2019-09/schema",
    "http://json-schema.org/draft-07/schema#",
    "http://json-schema.org/draft-06/schema#",
    "http://json-schema.org/draft-04/schema#",
)


@dataclass(slots=True, frozen=True)
class Example:
    input: dict[str, Any]
    output: Any = None
    description: str = ""
    has_output: bool = False


@dataclass(slots=True)
class FeatureContract:
    """A parsed, schema-checked contract. ``source`` is the file it came from (for messages),
    ``raw`` the document as written (for compatibility analysis and line lookups)."""

    name: str
    version: str
    description: str = ""
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    tools: list[ToolSpec] = field(default_factory=list)
    prompt_system: str | None = None
    prompt_user: str | None = None
    examples: list[Example] = field(default_factory=list)
    schema_draft: str = DEFAULT_DRAFT
    source: str = "<contract>"
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    _output: OutputSpec | None = field(default=None, init=False, repr=False, compare=False)

    # -- runtime ---------------------------------------------------------------------------
    def validate_input(self, input: Mapping[str, Any]) -> None:
        """Raise `ContractError` naming the instance path and keyword of every mismatch."""
        if self.input_schema is None:
            return
        errors = list_errors(dict(input), self.input_schema, stable=True)
        if errors:
            detail = "; ".join(
                f"{e['pointer']}: {e['message']} (keyword {e['keyword']})" for e in errors[:5]
            )
            more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
            raise ContractError(
                f"feature {self.name!r}: input does not match the contract: {detail}{more}",
                errors,
            )

    def render(self, input: Mapping[str, Any]) -> list[Message]:
        """Validate ``input``, then fill the prompt templates' ``{var}`` placeholders."""
        self.validate_input(input)
        if self.prompt_user is None and self.prompt_system is None:
            raise ContractError(
                f"{self.source}: prompt: the contract has no prompt templates to render; "
                "add [prompt] system/user, or pass messages= instead of input="
            )
        out: list[Message] = []
        if self.prompt_system is not None:
            out.append(system(self._fill("system", self.prompt_system, input)))
        if self.prompt_user is not None:
            out.append(user(self._fill("user", self.prompt_user, input)))
        return out

    def _fill(self, which: str, template: str, input: Mapping[str, Any]) -> str:
        missing = [v for v in _placeholders(template) if v not in input]
        if missing:
            raise ContractError(
                f"feature {self.name!r}: prompt.{which} uses {{{missing[0]}}} but the input has "
                f"no {missing[0]!r}; pass it, or declare it in [input] as required"
            )
        try:
            return template.format_map(dict(input))
        except (KeyError, IndexError, AttributeError, ValueError) as exc:
            raise ContractError(
                f"feature {self.name!r}: prompt.{which}: cannot fill the template ({exc})"
            ) from None

    def output_spec(self) -> OutputSpec | None:
        if self.output_schema is None:
            return None
        spec = self._output
        if spec is None or spec.schema is not self.output_schema:  # built once per contract
            spec = self._output = OutputSpec(self.output_schema, _safe_name(self.name))
        return spec

    def example_errors(self) -> list[dict[str, Any]]:
        """Every example that does not validate: ``{"example", "part", "pointer", "keyword",
        "message"}``, ``pointer`` being the instance path inside that example part."""
        found: list[dict[str, Any]] = []
        for i, ex in enumerate(self.examples):
            parts: list[tuple[str, Any, dict[str, Any] | None]] = [
                ("input", ex.input, self.input_schema)
            ]
            if ex.has_output:
                parts.append(("output", ex.output, self.output_schema))
            for part, value, schema in parts:
                if schema is None:
                    continue
                for err in list_errors(value, schema):
                    found.append({"example": i, "part": part, **err})
        return found


@lru_cache(maxsize=256)
def _placeholders(template: str) -> tuple[str, ...]:
    """The root names a template fills (parsed once per template: it runs on every call)."""
    names: list[str] = []
    for _, field_name, _, _ in string.Formatter().parse(template):
        if field_name is None or field_name == "":
            continue
        root = field_name.split(".", 1)[0].split("[", 1)[0]
        if root not in names:
            names.append(root)
    return tuple(names)


def _safe_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "_-" else "_" for c in name)[:64]
    return cleaned or "output"


# ------------------------------------------------------------------------------- loading


@lru_cache(maxsize=1)
def contract_schema() -> dict[str, Any]:
    """The JSON Schema of contract files (shipped as package data for editors and CI)."""
    text = resources.files("portal.contracts").joinpath("contract.schema.json").read_text("utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


#: tables, arrays and schemas of a contract nest at most this deep (recursion is what $ref is for)
MAX_CONTRACT_DEPTH = 100


def _nesting(doc: Any) -> int:
    """How deep ``doc``'s dicts and lists nest (iterative: a hostile file cannot overflow it)."""
    deepest = 0
    todo: list[tuple[Any, int]] = [(doc, 1)]
    while todo:
        value, depth = todo.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, depth)
        if depth > MAX_CONTRACT_DEPTH:
            return depth
        todo.extend((child, depth + 1) for child in children)
    return deepest


def load_contract(
    path: str | Path, name: str | None = None, *, check_examples: bool = True
) -> FeatureContract:
    """Load and check a contract file. ``name`` is the feature name used when the file has
    none. With ``check_examples`` an example that does not validate is a `ContractError`."""
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except FileNotFoundError:
        raise ContractError(f"{path}: contract file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ContractError(f"{path}: cannot read the contract file ({exc})") from None
    return parse_contract(text, str(path), name=name, check_examples=check_examples)


def parse_contract(
    text: str,
    source: str,
    *,
    name: str | None = None,
    fmt: str | None = None,
    check_examples: bool = True,
) -> FeatureContract:
    """Parse contract text; ``fmt`` is "toml" or "json" (default: from ``source``'s suffix)."""
    try:
        doc = _parse_document(text, source, fmt)
    except RecursionError:
        doc = None
    if doc is None or _nesting(doc) > MAX_CONTRACT_DEPTH:
        raise ContractError(
            f"{source}: nested more than {MAX_CONTRACT_DEPTH} levels deep; a contract's schemas "
            "nest a few levels (use $ref / $defs for recursive shapes)"
        )
    _check_structure(doc, source)
    draft = str(doc.get("schema_draft", DEFAULT_DRAFT))
    input_schema = doc.get("input")
    output_schema = doc.get("output")
    if input_schema is not None:
        check_schema_for_draft(input_schema, draft, f"{source}: input")
    if output_schema is not None:
        check_schema_for_draft(output_schema, draft, f"{source}: output")
    tools: list[ToolSpec] = []
    seen: set[str] = set()
    for i, t in enumerate(doc.get("tools", [])):
        params = t.get("parameters", {"type": "object", "properties": {}})
        check_schema_for_draft(params, draft, f"{source}: tools[{i}].parameters")
        if t["name"] in seen:
            raise ContractError(f"{source}: tools[{i}].name: duplicate tool name {t['name']!r}")
        seen.add(t["name"])
        try:
            tools.append(
                ToolSpec(t["name"], t.get("description", ""), params, strict=t.get("strict", False))
            )
        except ContractError as exc:
            raise ContractError(f"{source}: tools[{i}]: {exc}", exc.details) from None
    examples = [
        Example(
            input=e["input"],
            output=e.get("output"),
            description=e.get("description", ""),
            has_output="output" in e,
        )
        for e in doc.get("examples", [])
    ]
    prompt = doc.get("prompt", {})
    contract = FeatureContract(
        name=str(doc.get("name") or name or Path(source).stem),
        version=str(doc["version"]),
        description=str(doc.get("description", "")),
        input_schema=input_schema,
        output_schema=output_schema,
        tools=tools,
        prompt_system=prompt.get("system"),
        prompt_user=prompt.get("user"),
        examples=examples,
        schema_draft=draft,
        source=source,
        raw=doc,
    )
    _check_prompt_vars(contract)
    if check_examples:
        errors = contract.example_errors()
        if errors:
            first = errors[0]
            raise ContractError(
                f"{source}: examples[{first['example']}].{first['part']}: {first['pointer']}: "
                f"{first['message']} (keyword {first['keyword']})"
                + (f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""),
                errors,
            )
    return contract


def _parse_document(text: str, source: str, fmt: str | None) -> dict[str, Any]:
    kind = fmt or ("json" if source.lower().endswith(".json") else "toml")
    if kind == "json":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ContractError(
                f"{source}: line {exc.lineno}: not valid JSON ({exc.msg})",
                [{"pointer": "/", "keyword": "json", "message": exc.msg, "line": exc.lineno}],
            ) from None
    elif kind == "toml":
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            line = _toml_error_line(str(exc))
            raise ContractError(
                f"{source}: not valid TOML ({exc})",
                [{"pointer": "/", "keyword": "toml", "message": str(exc), "line": line}],
            ) from None
    else:
        raise ContractError(f"{source}: unknown contract format {kind!r}; use toml or json")
    if not isinstance(doc, dict):
        raise ContractError(f"{source}: a contract must be an object/table at the top level")
    return doc


def _toml_error_line(message: str) -> int | None:
    import re

    m = re.search(r"line (\d+)", message)
    return int(m.group(1)) if m else None


def _dotted(path: Sequence[Any]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _check_structure(doc: dict[str, Any], source: str) -> None:
    """Check the document against contract.schema.json; name the key and say what to write."""
    errors = list_errors(doc, contract_schema())
    if not errors:
        return
    from jsonschema import validators

    schema = contract_schema()
    validator = validators.validator_for(schema)(schema)
    found = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    lines: list[str] = []
    details: list[dict[str, Any]] = []
    for err in found:
        path = list(err.absolute_path)
        message = err.message
        if err.validator == "additionalProperties":
            allowed = list((err.schema.get("properties") or {}).keys())
            extras = [k for k in err.instance if k not in allowed]
            for extra in extras:
                close = difflib.get_close_matches(extra, allowed, n=1)
                hint = (
                    f"; did you mean {close[0]!r}?" if close else f"; allowed: {', '.join(allowed)}"
                )
                key = _dotted([*path, extra])
                lines.append(f"{source}: {key}: unknown key{hint}")
                details.append(
                    {
                        "pointer": json_pointer([*path, extra]),
                        "keyword": "additionalProperties",
                        "message": f"unknown key{hint}",
                    }
                )
            continue
        if err.validator == "required":
            missing = message.split("'")[1] if "'" in message else message
            key = _dotted([*path, missing])
            lines.append(f"{source}: {key}: missing (required)")
            details.append(
                {
                    "pointer": json_pointer([*path, missing]),
                    "keyword": "required",
                    "message": "missing (required)",
                }
            )
            continue
        if err.validator == "pattern" and path == ["version"]:
            message = f"must be a semantic version like 1.2.0, got {err.instance!r}"
        lines.append(f"{source}: {_dotted(path)}: {message}")
        details.append(
            {"pointer": json_pointer(path), "keyword": err.validator, "message": message}
        )
    raise ContractError("\n".join(lines), details)


def check_schema_for_draft(schema: Any, draft: str, where: str) -> None:
    """Check ``schema`` against the meta-schema of its ``$schema`` or of ``draft``."""
    if isinstance(schema, bool):
        return
    if draft in DRAFTS and plainly_valid(schema):
        return  # valid in every draft: no need to load jsonschema (4 MB) for it
    from jsonschema import validators
    from jsonschema.exceptions import SchemaError

    if not isinstance(schema, Mapping):
        raise ContractError(
            f"{where}: a JSON Schema must be an object, got {type(schema).__name__}"
        )
    default = validators.validator_for({"$schema": draft}, default=None)
    if default is None:
        raise ContractError(f"{where}: unknown JSON Schema draft {draft!r}; use one of {DRAFTS}")
    cls = validators.validator_for(schema, default=default)
    try:
        cls.check_schema(schema)
    except SchemaError:
        raise schema_error(where, schema_problems(schema, cls)) from None


def _check_prompt_vars(contract: FeatureContract) -> None:
    """A ``{var}`` the input schema does not declare can never be filled: say so at load."""
    props = (contract.input_schema or {}).get("properties")
    if (
        not isinstance(props, Mapping)
        or (contract.input_schema or {}).get("additionalProperties", True) is not False
    ):
        return
    for which, template in (("system", contract.prompt_system), ("user", contract.prompt_user)):
        if template is None:
            continue
        for var in _placeholders(template):
            if var not in props:
                raise ContractError(
                    f"{contract.source}: prompt.{which}: {{{var}}} is not a property of [input]; "
                    "declare it under [input.properties] or fix the placeholder"
                )


def parse_version(version: str) -> tuple[int, int, int]:
    """(major, minor, patch) of a semantic version; pre-release and build are ignored."""
    core = version.split("+", 1)[0].split("-", 1)[0]
    parts = core.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ContractError(f"version: must be a semantic version like 1.2.0, got {version!r}")
    return int(parts[0]), int(parts[1]), int(parts[2])
