"""Tool (function-calling) specs, independent of any vendor.

A `ToolSpec` is a name, a description and a JSON Schema for the arguments. It is built from
a typed Python function (signature + docstring, through pydantic), a pydantic model, or a
raw schema, and its schema is checked against the meta-schema once, when it is built.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from portal.contracts.cache import CacheHint, check_cache
from portal.contracts.schema import JSON_TYPES, schema_of, schema_problems
from portal.contracts.tool_normalize import SchemaChange, normalize_tool
from portal.errors import ContractError

__all__ = ["SchemaChange", "ToolChoice", "ToolSpec", "coerce_tools", "tool", "tool_from_schema"]

_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

#: "auto", "none", "required", or the name of one tool that must be called
ToolChoice = Literal["auto", "none", "required"] | str


@dataclass(slots=True, frozen=True)
class ToolSpec:
    """A tool the model may call. ``function`` (optional) is what portal runs in the tool loop."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    function: Callable[..., Any] | None = field(default=None, compare=False, repr=False)
    strict: bool = False
    #: the name the definition gave, when `tool_from_schema(..., lenient=True)` had to change
    #: it (``math.factorial`` -> ``math_factorial``): vendors see ``name``, the caller's
    #: tool calls carry this one
    original_name: str | None = None
    #: every rewrite the lenient normalization made to the definition (empty otherwise)
    changes: tuple[SchemaChange, ...] = field(default=(), compare=False, repr=False)
    #: the tool list up to and including this tool is a stable prefix worth caching
    #: (``True``, or ``"5m"`` / ``"1h"`` where the vendor takes a lifetime)
    cache: CacheHint | None = None

    def __post_init__(self) -> None:
        if self.cache is not None:
            check_cache(self.cache, f"tool {self.name!r}")
        problems: list[dict[str, str]] = []
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            problems.append(
                {
                    "field": "name",
                    "pointer": "",
                    "keyword": "name",
                    "message": "names must be 1-64 characters of letters, digits, _ or -",
                }
            )
        if not isinstance(self.parameters, Mapping):
            problems.append(
                {
                    "field": "parameters",
                    "pointer": "/",
                    "keyword": "root",
                    "message": "a JSON Schema must be an object, got "
                    f"{type(self.parameters).__name__}",
                }
            )
        else:
            if not _plain(self.parameters):
                problems.extend(
                    {"field": "parameters", **p} for p in schema_problems(self.parameters)
                )
            root = self.parameters.get("type", "object")
            if root != "object" and isinstance(root, str) and root in JSON_TYPES:
                problems.append(
                    {
                        "field": "parameters",
                        "pointer": "/type",
                        "keyword": "root",
                        "message": "parameters must be a JSON Schema of type 'object', got type "
                        f"{self.parameters.get('type')!r}",
                    }
                )
        if problems:
            raise _tool_error(self.name, problems)

    @classmethod
    def from_function(cls, fn: Callable[..., Any], name: str | None = None) -> ToolSpec:
        """Schema from the signature (via pydantic), description and argument docs from the
        docstring (Google, NumPy or Sphinx style)."""
        from pydantic import ConfigDict, create_model

        sig = inspect.signature(fn)
        doc = inspect.getdoc(fn) or ""
        summary, arg_docs = _parse_docstring(doc)
        fields: dict[str, Any] = {}
        for pname, param in sig.parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            if pname in ("self", "cls"):
                continue
            annotation = param.annotation if param.annotation is not param.empty else Any
            default = param.default if param.default is not param.empty else ...
            from pydantic import Field

            fields[pname] = (annotation, Field(default, description=arg_docs.get(pname)))
        tool_name = name or fn.__name__
        try:
            model = create_model(
                f"{tool_name}_args", __config__=ConfigDict(extra="forbid"), **fields
            )
            schema = model.model_json_schema()
        except Exception as exc:
            raise ContractError(
                f"tool {tool_name!r}: cannot derive a JSON Schema from its signature ({exc})"
            ) from None
        schema.pop("title", None)
        for prop in schema.get("properties", {}).values():
            prop.pop("title", None)
        return cls(tool_name, summary, schema, fn)

    @classmethod
    def from_model(cls, model: type[Any], name: str | None = None) -> ToolSpec:
        schema = schema_of(model, f"tool {name or model.__name__!r}")
        description = schema.pop("description", "") or ""
        schema.pop("title", None)
        return cls(name or model.__name__, description, schema)

    def to_dict(self) -> dict[str, Any]:
        """OpenAI-style ``{"type": "function", "function": {...}}`` dict."""
        fn: dict[str, Any] = {"name": self.name, "parameters": self.parameters}
        if self.description:
            fn["description"] = self.description
        return {"type": "function", "function": fn}


def _plain(schema: Mapping[str, Any]) -> bool:
    from portal.contracts.schema import check_schema

    try:
        check_schema(schema, "")
    except ContractError:
        return False
    return True


def _tool_error(name: Any, problems: list[dict[str, str]]) -> ContractError:
    """One error for every problem of a tool definition (name, schema, root type)."""

    def said(p: dict[str, str]) -> str:
        if p["keyword"] in ("name", "root"):
            return p["message"]
        return f"parameters: invalid JSON Schema at {p['pointer']}: {p['message']}"

    listed = "; ".join(said(p) for p in problems)
    what = f"{len(problems)} problems: " if len(problems) > 1 else ""
    hint = ""
    if any(p["message"].endswith("is not a JSON Schema type") for p in problems):
        hint = (
            " (portal.tool_from_schema(definition, lenient=True) maps dotted names and "
            "non-standard type names such as dict, float, tuple and any, and reports each "
            "change)"
        )
    return ContractError(f"tool {name!r}: {what}{listed}{hint}", problems)


def tool_from_schema(
    definition: Mapping[str, Any],
    *,
    lenient: bool = False,
    function: Callable[..., Any] | None = None,
) -> ToolSpec:
    """A `ToolSpec` from a function definition: OpenAI's ``{"type": "function", "function":
    {...}}``, a bare ``{"name", "description", "parameters"}``, or Anthropic's
    ``input_schema``. ``function`` (optional) is what the tool loop runs.

    By default the definition must already be standard (a vendor-legal name, JSON Schema
    parameters); otherwise one `ContractError` lists every problem. With ``lenient=True``,
    definitions written for other ecosystems are normalized first (`normalize_tool`):
    non-standard type names (``dict``, ``float``, ``tuple``, ``any``, ``int``, ``str``...)
    become JSON Schema types, per-property ``required: true`` flags move to ``required``,
    and an illegal name (``math.factorial``) becomes a legal one (``math_factorial``) whose
    ``original_name`` is kept: tool calls the caller sees carry the original name again,
    and a call under the legal name runs ``function``. Every change is on
    ``ToolSpec.changes``; what the normalization cannot map is still refused, all at once."""
    if not isinstance(definition, Mapping):
        raise ContractError(f"tool definition: expected a mapping, got {type(definition).__name__}")
    fn = definition.get("function", definition)
    if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
        raise ContractError("tool definition: needs a 'name' (or function.name) string")
    name = fn["name"]
    params = fn.get("parameters", fn.get("input_schema"))
    description = str(fn.get("description") or "")
    strict = bool(fn.get("strict") or definition.get("strict"))
    if not lenient:
        if params is None:
            params = {"type": "object", "properties": {}}
        return ToolSpec(
            name,
            description,
            dict(params) if isinstance(params, Mapping) else params,
            function,
            strict,
        )
    legal, normalized, changes = normalize_tool(name, params)
    return ToolSpec(
        legal,
        description,
        normalized,
        function,
        strict,
        original_name=name if legal != name else None,
        changes=changes,
    )


def tool(fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
    """Decorator: ``@portal.tool`` turns a typed function into a `ToolSpec` that can still be
    called like the function."""

    def wrap(f: Callable[..., Any]) -> ToolSpec:
        return ToolSpec.from_function(f, name=name)

    return wrap(fn) if fn is not None else wrap


def coerce_tools(tools: Any) -> list[ToolSpec]:
    """Accept ToolSpecs, functions, pydantic models and OpenAI-style dicts."""
    if tools is None:
        return []
    out: list[ToolSpec] = []
    for i, t in enumerate(tools):
        if isinstance(t, ToolSpec):
            out.append(t)
        elif isinstance(t, Mapping):
            out.append(_from_dict(t, i))
        elif isinstance(t, type):
            out.append(ToolSpec.from_model(t))
        elif callable(t):
            out.append(ToolSpec.from_function(t))
        else:
            raise ContractError(
                f"tools[{i}]: expected a function, a pydantic model, a ToolSpec or a dict, "
                f"got {type(t).__name__}"
            )
    names = [t.name for t in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ContractError(f"tools: duplicate tool name(s) {', '.join(dupes)}")
    return out


def _from_dict(d: Mapping[str, Any], i: int) -> ToolSpec:
    fn = d.get("function", d)
    if not isinstance(fn, Mapping) or "name" not in fn:
        raise ContractError(f"tools[{i}]: a tool dict needs 'name' (or function.name)")
    params = fn.get("parameters", fn.get("input_schema", {"type": "object", "properties": {}}))
    return ToolSpec(
        str(fn["name"]),
        str(fn.get("description", "")),
        dict(params),
        strict=bool(fn.get("strict")),
        cache=check_cache(d.get("cache"), f"tools[{i}]"),
    )


_SPHINX = re.compile(r"^:param\s+(?:\S+\s+)?(\w+):\s*(.*)$")
_NUMPY_ARG = re.compile(r"^(\w+)\s+:\s*(.*)$")  # "name : type", description below
_GOOGLE_ARG = re.compile(r"^(\w+)\s*(?:\([^)]*\))?:\s*(.*)$")  # "name (type): description"
_SECTION = re.compile(r"^(Args|Arguments|Parameters|Returns|Raises|Yields|Examples?|Notes?):?\s*$")


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The summary paragraph and a description per argument (Google, NumPy, Sphinx)."""
    summary: list[str] = []
    args: dict[str, str] = {}
    section: str | None = None
    base_indent: int | None = None
    current: str | None = None
    for raw in doc.splitlines():
        stripped = raw.strip()
        indent = len(raw) - len(raw.lstrip())
        sphinx = _SPHINX.match(stripped)
        if sphinx:
            current, section = sphinx.group(1), "sphinx"
            args[current] = sphinx.group(2).strip()
            continue
        if stripped.startswith(":"):
            section, current = "other", None
            continue
        header = _SECTION.match(stripped)
        if header:
            section = "args" if header.group(1) in ("Args", "Arguments", "Parameters") else "other"
            base_indent, current = None, None
            continue
        if section is None:
            if stripped:
                summary.append(stripped)
            elif summary:
                section = "body"
            continue
        if not stripped or set(stripped) <= {"-"}:
            continue
        if section == "args":
            if base_indent is None:
                base_indent = indent
            if indent <= base_indent:
                numpy = _NUMPY_ARG.match(stripped)
                google = None if numpy else _GOOGLE_ARG.match(stripped)
                if numpy:
                    current = numpy.group(1)
                    args[current] = ""
                elif google:
                    current = google.group(1)
                    args[current] = google.group(2).strip()
                else:
                    current = None
            elif current:
                args[current] = (args[current] + " " + stripped).strip()
        elif section == "sphinx" and current:
            args[current] = (args[current] + " " + stripped).strip()
    return " ".join(summary), {k: v for k, v in args.items() if v}
