"""Breaking-change analysis between two versions of a feature contract.

Who reads what decides what breaks:

- ``input`` is what callers send. Narrowing it (a new required property, a narrowed type, a
  removed enum value, a tightened bound, a closed object) breaks callers; widening does not.
- ``output`` is what callers read. A removed or renamed property, a property that became
  optional, a changed or narrowed type, a removed enum value, and anything that lets new
  values through (an added enum value, a loosened bound, an opened object) break callers:
  their code matches on the old shape, and recorded outputs were validated against it.
  Adding properties and tightening bounds do not.
- ``tools`` are called by the model and implemented by the application. A removed or renamed
  tool or parameter breaks the implementation, as do a new required parameter and any change
  that lets new argument values through.

A breaking change needs a major version bump; with one, `Comparison.verdict` is "intended".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from portal.contracts.feature import FeatureContract, parse_version

__all__ = ["Change", "Comparison", "compare", "compare_schemas"]

Area = Literal["input", "output", "tools", "contract"]
Verdict = Literal["unchanged", "compatible", "intended", "breaking"]

_ALL_TYPES = frozenset({"string", "number", "integer", "boolean", "object", "array", "null"})
_LOWER = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties", "minContains")
_UPPER = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties", "maxContains")
_EXACT = ("pattern", "format", "multipleOf", "const", "contentMediaType", "contentEncoding")

# rule -> (breaking for input, breaking for output, breaking for tool parameters)
_RULES: dict[str, tuple[bool, bool, bool]] = {
    "property-removed": (False, True, True),  # input: breaking only when the object is closed
    "property-renamed": (True, True, True),
    "property-added": (False, False, False),
    "property-added-required": (True, False, True),
    "required-added": (True, False, False),
    "required-removed": (False, True, True),
    "type-narrowed": (True, True, True),
    "type-widened": (False, True, True),
    "type-changed": (True, True, True),
    "enum-value-removed": (True, True, True),
    "enum-value-added": (False, True, True),
    "enum-added": (True, False, False),
    "enum-removed": (False, True, True),
    "bound-tightened": (True, False, False),
    "bound-loosened": (False, True, True),
    "constraint-added": (True, False, False),
    "constraint-removed": (False, True, True),
    "constraint-changed": (True, True, True),
    "additional-closed": (True, False, False),
    "additional-opened": (False, True, True),
    "alternative-removed": (True, True, True),
    "alternative-added": (False, True, True),
    "schema-added": (True, False, False),
    "schema-removed": (False, True, True),
}


@dataclass(slots=True, frozen=True)
class Change:
    """One difference. ``pointer`` points into the *new* contract document where possible."""

    area: Area
    pointer: str
    rule: str
    message: str
    breaking: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "area": self.area,
            "pointer": self.pointer,
            "rule": self.rule,
            "message": self.message,
            "breaking": self.breaking,
        }


@dataclass(slots=True)
class Comparison:
    old_version: str
    new_version: str
    changes: list[Change] = field(default_factory=list)

    @property
    def breaking(self) -> list[Change]:
        return [c for c in self.changes if c.breaking]

    @property
    def non_breaking(self) -> list[Change]:
        return [c for c in self.changes if not c.breaking]

    @property
    def major_bump(self) -> bool:
        try:
            return parse_version(self.new_version)[0] > parse_version(self.old_version)[0]
        except Exception:
            return False

    @property
    def verdict(self) -> Verdict:
        if not self.changes:
            return "unchanged"
        if not self.breaking:
            return "compatible"
        return "intended" if self.major_bump else "breaking"


def compare(old: FeatureContract, new: FeatureContract) -> Comparison:
    """Every change from ``old`` to ``new``, each classified as breaking or not."""
    result = Comparison(old.version, new.version)
    changes = result.changes
    changes.extend(_schema_section("input", old.input_schema, new.input_schema))
    changes.extend(_schema_section("output", old.output_schema, new.output_schema))
    changes.extend(_tools(old, new))
    if old.description != new.description:
        changes.append(
            Change("contract", "/description", "description-changed", "description changed", False)
        )
    for which in ("system", "user"):
        a = getattr(old, f"prompt_{which}")
        b = getattr(new, f"prompt_{which}")
        if a != b:
            changes.append(
                Change(
                    "contract",
                    f"/prompt/{which}",
                    "prompt-changed",
                    f"prompt.{which} changed",
                    False,
                )
            )
    if old.name != new.name:
        changes.append(
            Change(
                "contract",
                "/name",
                "name-changed",
                f"name changed from {old.name!r} to {new.name!r}",
                False,
            )
        )
    return result


def compare_schemas(
    old: Any, new: Any, area: Literal["input", "output", "tools"], base: str = ""
) -> list[Change]:
    """Compare two JSON Schemas as the ``area`` of a contract (see the module docstring)."""
    diff = _Diff(area, old, new)
    diff.node(old, new, base)
    return diff.changes


# -------------------------------------------------------------------------------- sections


def _schema_section(area: Literal["input", "output"], old: Any, new: Any) -> list[Change]:
    base = f"/{area}"
    if old is None and new is None:
        return []
    if old is None:
        breaking = _RULES["schema-added"][0 if area == "input" else 1]
        return [Change(area, base, "schema-added", f"[{area}] schema added", breaking)]
    if new is None:
        breaking = _RULES["schema-removed"][0 if area == "input" else 1]
        return [Change(area, base, "schema-removed", f"[{area}] schema removed", breaking)]
    return compare_schemas(old, new, area, base)


def _tools(old: FeatureContract, new: FeatureContract) -> list[Change]:
    out: list[Change] = []
    old_by = {t.name: t for t in old.tools}
    new_by = {t.name: t for t in new.tools}
    new_index = {t.name: i for i, t in enumerate(new.tools)}
    removed = [n for n in old_by if n not in new_by]
    added = [n for n in new_by if n not in old_by]
    for name in removed:
        twin = next(
            (a for a in added if _canon(new_by[a].parameters) == _canon(old_by[name].parameters)),
            None,
        )
        if twin is not None:
            added.remove(twin)
            out.append(
                Change(
                    "tools",
                    f"/tools/{new_index[twin]}/name",
                    "tool-renamed",
                    f"tool {name!r} renamed to {twin!r}",
                    True,
                )
            )
        else:
            out.append(Change("tools", "/tools", "tool-removed", f"tool {name!r} removed", True))
    for name in added:
        out.append(
            Change(
                "tools", f"/tools/{new_index[name]}", "tool-added", f"tool {name!r} added", False
            )
        )
    for name, t_new in new_by.items():
        t_old = old_by.get(name)
        if t_old is None:
            continue
        base = f"/tools/{new_index[name]}"
        if t_old.description != t_new.description:
            out.append(
                Change(
                    "tools",
                    f"{base}/description",
                    "tool-description-changed",
                    f"tool {name!r}: description changed",
                    False,
                )
            )
        for c in compare_schemas(t_old.parameters, t_new.parameters, "tools", f"{base}/parameters"):
            out.append(Change(c.area, c.pointer, c.rule, f"tool {name!r}: {c.message}", c.breaking))
    return out


# ------------------------------------------------------------------------------ schema diff


class _Diff:
    def __init__(self, area: Literal["input", "output", "tools"], old_root: Any, new_root: Any):
        self.area = area
        self.column = {"input": 0, "output": 1, "tools": 2}[area]
        self.old_root = old_root
        self.new_root = new_root
        self.changes: list[Change] = []
        self._seen: set[tuple[str, str]] = set()

    def add(self, ptr: str, rule: str, message: str, breaking: bool | None = None) -> None:
        if breaking is None:
            breaking = _RULES[rule][self.column]
        where = ptr or "/"
        self.changes.append(Change(self.area, where, rule, f"{where}: {message}", breaking))

    # -- a node ------------------------------------------------------------------------------
    def node(self, old: Any, new: Any, ptr: str) -> None:
        old, new = self._deref(old, new)
        if old is None or new is None:
            return
        if _canon(old) == _canon(new):
            return
        old_s = _as_schema(old)
        new_s = _as_schema(new)
        self.types(old_s, new_s, ptr)
        self.enum(old_s, new_s, ptr)
        self.bounds(old_s, new_s, ptr)
        self.objects(old_s, new_s, ptr)
        if isinstance(old_s.get("items"), (Mapping, bool)) or isinstance(
            new_s.get("items"), (Mapping, bool)
        ):
            self.node(old_s.get("items", {}), new_s.get("items", {}), f"{ptr}/items")
        for kw in ("anyOf", "oneOf"):
            self.alternatives(old_s.get(kw), new_s.get(kw), f"{ptr}/{kw}", kw)
        for kw in ("allOf", "not", "if", "then", "else", "prefixItems", "patternProperties"):
            if _canon(old_s.get(kw)) != _canon(new_s.get(kw)):
                self.add(f"{ptr}/{kw}", "constraint-changed", f"{kw} changed")

    def _deref(self, old: Any, new: Any) -> tuple[Any, Any]:
        old_ref = old.get("$ref") if isinstance(old, Mapping) else None
        new_ref = new.get("$ref") if isinstance(new, Mapping) else None
        if isinstance(old_ref, str) or isinstance(new_ref, str):
            key = (str(old_ref), str(new_ref))
            if key in self._seen:  # recursive schema: this pair is already being compared
                return None, None
            self._seen.add(key)
        if isinstance(old_ref, str):
            old = _merge_ref(old, _resolve(self.old_root, old_ref))
        if isinstance(new_ref, str):
            new = _merge_ref(new, _resolve(self.new_root, new_ref))
        return old, new

    # -- keywords ----------------------------------------------------------------------------
    def types(self, old: Mapping[str, Any], new: Mapping[str, Any], ptr: str) -> None:
        a, b = _types(old), _types(new)
        if a == b:
            return
        shown_a = ", ".join(sorted(_declared(old))) or "any"
        shown_b = ", ".join(sorted(_declared(new))) or "any"
        if b < a:
            self.add(f"{ptr}/type", "type-narrowed", f"type narrowed from {shown_a} to {shown_b}")
        elif a < b:
            self.add(f"{ptr}/type", "type-widened", f"type widened from {shown_a} to {shown_b}")
        else:
            self.add(f"{ptr}/type", "type-changed", f"type changed from {shown_a} to {shown_b}")

    def enum(self, old: Mapping[str, Any], new: Mapping[str, Any], ptr: str) -> None:
        a, b = old.get("enum"), new.get("enum")
        if a is None and b is None:
            return
        if a is None:
            self.add(f"{ptr}/enum", "enum-added", f"values restricted to {_short(b)}")
            return
        if b is None:
            self.add(f"{ptr}/enum", "enum-removed", "enum restriction removed")
            return
        old_vals = {_canon(v): v for v in a}
        new_vals = {_canon(v): v for v in b}
        removed = [old_vals[k] for k in old_vals if k not in new_vals]
        added = [new_vals[k] for k in new_vals if k not in old_vals]
        if removed:
            self.add(
                f"{ptr}/enum", "enum-value-removed", f"enum value(s) removed: {_short(removed)}"
            )
        if added:
            self.add(f"{ptr}/enum", "enum-value-added", f"enum value(s) added: {_short(added)}")

    def bounds(self, old: Mapping[str, Any], new: Mapping[str, Any], ptr: str) -> None:
        for kw in (*_LOWER, *_UPPER):
            a, b = old.get(kw), new.get(kw)
            if a == b or isinstance(a, bool) or isinstance(b, bool):
                continue
            lower = kw in _LOWER
            if a is None:
                self.add(f"{ptr}/{kw}", "bound-tightened", f"{kw} {b} added")
            elif b is None:
                self.add(f"{ptr}/{kw}", "bound-loosened", f"{kw} {a} removed")
            elif (b > a) == lower:
                self.add(f"{ptr}/{kw}", "bound-tightened", f"{kw} tightened from {a} to {b}")
            else:
                self.add(f"{ptr}/{kw}", "bound-loosened", f"{kw} loosened from {a} to {b}")
        for kw in _EXACT:
            has_a, has_b = kw in old, kw in new
            if not has_a and not has_b:
                continue
            if has_a and has_b:
                if _canon(old[kw]) != _canon(new[kw]):
                    self.add(
                        f"{ptr}/{kw}",
                        "constraint-changed",
                        f"{kw} changed from {_short(old[kw])} to {_short(new[kw])}",
                    )
            elif has_b:
                self.add(f"{ptr}/{kw}", "constraint-added", f"{kw} {_short(new[kw])} added")
            else:
                self.add(f"{ptr}/{kw}", "constraint-removed", f"{kw} {_short(old[kw])} removed")
        ua, ub = old.get("uniqueItems") is True, new.get("uniqueItems") is True
        if ub and not ua:
            self.add(f"{ptr}/uniqueItems", "constraint-added", "uniqueItems added")
        elif ua and not ub:
            self.add(f"{ptr}/uniqueItems", "constraint-removed", "uniqueItems removed")

    def objects(self, old: Mapping[str, Any], new: Mapping[str, Any], ptr: str) -> None:
        old_props: Mapping[str, Any] = old.get("properties") or {}
        new_props: Mapping[str, Any] = new.get("properties") or {}
        old_req = set(old.get("required") or [])
        new_req = set(new.get("required") or [])
        new_closed = new.get("additionalProperties") is False
        removed = [k for k in old_props if k not in new_props]
        added = [k for k in new_props if k not in old_props]
        for name in removed:
            twin = next((a for a in added if _canon(new_props[a]) == _canon(old_props[name])), None)
            if twin is not None:
                added.remove(twin)
                self.add(
                    f"{ptr}/properties/{_esc(twin)}",
                    "property-renamed",
                    f"property {name!r} renamed to {twin!r}",
                )
                continue
            breaking = None
            if self.area == "input":
                breaking = new_closed  # callers still sending it are now refused
            self.add(
                f"{ptr}/properties/{_esc(name)}",
                "property-removed",
                f"property {name!r} removed",
                breaking,
            )
        for name in added:
            rule = "property-added-required" if name in new_req else "property-added"
            kind = "required" if name in new_req else "optional"
            self.add(f"{ptr}/properties/{_esc(name)}", rule, f"{kind} property {name!r} added")
        for name in old_props:
            if name not in new_props:
                continue
            sub = f"{ptr}/properties/{_esc(name)}"
            if name in new_req and name not in old_req:
                self.add(sub, "required-added", f"property {name!r} became required")
            elif name in old_req and name not in new_req:
                self.add(sub, "required-removed", f"property {name!r} became optional")
            self.node(old_props[name], new_props[name], sub)
        # required names without a property schema
        for name in sorted(new_req - old_req - set(new_props)):
            self.add(f"{ptr}/required", "required-added", f"{name!r} became required")
        for name in sorted(old_req - new_req - set(old_props)):
            self.add(f"{ptr}/required", "required-removed", f"{name!r} is no longer required")
        a, b = old.get("additionalProperties"), new.get("additionalProperties")
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            self.node(a, b, f"{ptr}/additionalProperties")
        elif _closed(a) != _closed(b):
            if _closed(b):
                self.add(
                    f"{ptr}/additionalProperties",
                    "additional-closed",
                    "additional properties are no longer allowed",
                )
            else:
                self.add(
                    f"{ptr}/additionalProperties",
                    "additional-opened",
                    "additional properties are now allowed",
                )
        elif isinstance(a, Mapping) != isinstance(b, Mapping) and not (_closed(a) or _closed(b)):
            if isinstance(b, Mapping):
                self.add(
                    f"{ptr}/additionalProperties",
                    "constraint-added",
                    "additional properties are now constrained by a schema",
                )
            else:
                self.add(
                    f"{ptr}/additionalProperties",
                    "constraint-removed",
                    "additional properties are no longer constrained",
                )

    def alternatives(self, old: Any, new: Any, ptr: str, kw: str) -> None:
        if old is None and new is None:
            return
        a = list(old or [])
        b = list(new or [])
        if len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                self.node(x, y, f"{ptr}/{i}")
            return
        old_c = [_canon(x) for x in a]
        new_c = [_canon(y) for y in b]
        for i, c in enumerate(old_c):
            if c not in new_c:
                self.add(f"{ptr}/{i}", "alternative-removed", f"{kw} alternative {i} removed")
        for i, c in enumerate(new_c):
            if c not in old_c:
                self.add(f"{ptr}/{i}", "alternative-added", f"{kw} alternative {i} added")


# ------------------------------------------------------------------------------- helpers


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _as_schema(value: Any) -> Mapping[str, Any]:
    if value is True or value is None:
        return {}
    if value is False:
        return {"not": {}}
    return value if isinstance(value, Mapping) else {}


def _declared(schema: Mapping[str, Any]) -> set[str]:
    t = schema.get("type")
    out = {t} if isinstance(t, str) else set(t or [])
    if schema.get("nullable") is True and out:
        out.add("null")
    return out


def _types(schema: Mapping[str, Any]) -> frozenset[str]:
    """The instance types a schema admits; integer counts as a kind of number."""
    declared = _declared(schema)
    if not declared:
        return _ALL_TYPES
    if "number" in declared:
        declared.add("integer")
    return frozenset(declared)


def _closed(value: Any) -> bool:
    return value is False


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


def _merge_ref(node: Mapping[str, Any], target: Any) -> Any:
    if not isinstance(target, Mapping):
        return node
    siblings = {k: v for k, v in node.items() if k != "$ref"}
    return {**target, **siblings}


def _esc(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."
