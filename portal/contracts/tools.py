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

from portal.contracts.schema import check_schema, schema_of
from portal.errors import ContractError

__all__ = ["ToolChoice", "ToolSpec", "coerce_tools", "tool"]

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

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ContractError(
                f"tool {self.name!r}: names must be 1-64 characters of letters, digits, _ or -"
            )
        check_schema(self.parameters, f"tool {self.name!r}: parameters")
        if self.parameters.get("type", "object") != "object":
            raise ContractError(
                f"tool {self.name!r}: parameters must be a JSON Schema of type 'object', "
                f"got type {self.parameters.get('type')!r}"
            )

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
            model = create_model(  # type: ignore[call-overload]
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
        str(fn["name"]), str(fn.get("description", "")), dict(params), strict=bool(fn.get("strict"))
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
