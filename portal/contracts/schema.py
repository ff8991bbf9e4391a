"""JSON Schema helpers shared by tools, structured output and feature contracts.

jsonschema is imported on first use, not with ``import portal``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from portal.errors import ContractError

__all__ = [
    "JSON_TYPES",
    "check_schema",
    "json_pointer",
    "plainly_valid",
    "schema_error",
    "schema_of",
    "schema_problems",
    "validate_instance",
]

DEFAULT_DRAFT = "https://json-schema.org/draft/2020-12/schema"


def json_pointer(path: Any) -> str:
    """RFC 6901 pointer for a jsonschema path deque: ``/properties/a~1b/type``."""
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in path]
    return "/" + "/".join(parts) if parts else "/"


def _validator_class(schema: Mapping[str, Any]) -> Any:
    from jsonschema import validators

    default = validators.validator_for({"$schema": DEFAULT_DRAFT})
    return validators.validator_for(schema, default=default)


def check_schema(schema: Any, where: str) -> None:
    """Raise `ContractError` naming ``where`` and the JSON pointer if ``schema`` is no schema."""
    if isinstance(schema, bool):
        return
    if not isinstance(schema, Mapping):
        raise ContractError(
            f"{where}: a JSON Schema must be an object, got {type(schema).__name__}"
        )
    _check_cached(_freeze(schema), where)


@lru_cache(maxsize=512)
def _check_cached(frozen: Any, where: str) -> None:
    schema = _thaw(frozen)
    if plainly_valid(schema):
        return  # no need to load jsonschema (4 MB) for a schema this simple
    from jsonschema.exceptions import SchemaError

    cls = _validator_class(schema)
    try:
        cls.check_schema(schema)
    except SchemaError:
        raise schema_error(where, schema_problems(schema, cls)) from None


def schema_error(where: str, found: list[dict[str, str]]) -> ContractError:
    """One `ContractError` listing every problem ``found`` (pointer: message), details kept."""
    listed = "; ".join(f"{p['pointer']}: {p['message']}" for p in found)
    what = f"({len(found)} problems) at " if len(found) > 1 else "at "
    hint = ""
    if any(p["message"].endswith(_NOT_A_TYPE) for p in found):
        lenient = (
            "; for a tool, portal.tool_from_schema(..., lenient=True) maps names such as "
            "dict, float, tuple and any, and reports each change"
            if "tool" in where
            else ""
        )
        hint = f" (JSON Schema types: {', '.join(JSON_TYPES)}{lenient})"
    return ContractError(f"{where}: invalid JSON Schema {what}{listed}{hint}", found)


#: the types JSON Schema knows; anything else in ``type`` is a schema error
JSON_TYPES = ("string", "number", "integer", "boolean", "object", "array", "null")


def schema_problems(schema: Mapping[str, Any], cls: Any = None) -> list[dict[str, str]]:
    """Every way ``schema`` breaks its draft's meta-schema (pointer, keyword, message), in
    pointer order: a schema from another ecosystem gets all its problems in one error.
    ``cls`` is the jsonschema validator class (default: the schema's ``$schema`` draft)."""
    cls = cls or _validator_class(schema)
    out: list[dict[str, str]] = []
    for err in sorted(
        cls(cls.META_SCHEMA).iter_errors(schema), key=lambda e: [str(p) for p in e.path]
    ):
        path = list(err.absolute_path)
        message = err.message
        if path and path[-1] == "type" and not _known_type(err.instance):
            message = f"{err.instance!r}{_NOT_A_TYPE}"
        out.append(
            {"pointer": json_pointer(path), "keyword": str(err.validator), "message": message}
        )
    return out


_NOT_A_TYPE = " is not a JSON Schema type"


def _known_type(value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    return all(v in JSON_TYPES for v in values)


def _unique(values: list[Any]) -> bool:
    # jsonschema's uniqueness: 1 == 1.0, but True is not 1
    return len({(isinstance(x, bool), x) for x in values}) == len(values)


def plainly_valid(schema: Any) -> bool:
    """True when ``schema`` is certainly valid against the meta-schema of every supported
    draft (4, 6, 7, 2019-09, 2020-12): only the keywords of the compiled fast path, each
    well-formed in every draft's terms (non-empty, unique ``required``/``enum``/``type``
    lists, non-negative integer lengths). False means "ask jsonschema", never "invalid"."""
    if not isinstance(schema, dict):
        return False
    for key, val in schema.items():
        if key in ("title", "description"):
            ok = isinstance(val, str)
        elif key == "type":
            names = [val] if isinstance(val, str) else val
            ok = (
                isinstance(names, list)
                and bool(names)
                and all(isinstance(n, str) and n in _TYPES for n in names)
                and len(set(names)) == len(names)
            )
        elif key == "properties":
            ok = isinstance(val, dict) and all(
                isinstance(v, dict) and plainly_valid(v) for v in val.values()
            )
        elif key == "additionalProperties":
            ok = isinstance(val, bool) or (isinstance(val, dict) and plainly_valid(val))
        elif key == "items":  # draft 4 has no boolean subschemas here
            ok = isinstance(val, dict) and plainly_valid(val)
        elif key in ("required", "enum"):
            ok = (
                isinstance(val, list)
                and bool(val)
                and all(isinstance(x, str if key == "required" else _SCALARS) for x in val)
                and _unique(val)
            )
        elif key == "const":
            ok = isinstance(val, _SCALARS)
        elif key in ("minLength", "maxLength", "minItems", "maxItems"):
            ok = _is_int(val) and val >= 0
        elif key in ("minimum", "maximum"):
            ok = _is_number(val)
        elif key == "pattern":
            ok = isinstance(val, str) and _keyword(key, val, schema) is not None
        else:
            return False
        if not ok:
            return False
    return True


def validate_instance(instance: Any, schema: Mapping[str, Any], where: str) -> None:
    """Validate ``instance``; raise `ContractError` listing every error with its pointer."""
    errors = list_errors(instance, schema)
    if errors:
        detail = "; ".join(f"{e['pointer']}: {e['message']}" for e in errors[:5])
        more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
        raise ContractError(f"{where}: {detail}{more}", errors)


def list_errors(
    instance: Any, schema: Mapping[str, Any], *, stable: bool = False
) -> list[dict[str, Any]]:
    """Every validation error of ``instance``, sorted by path (empty when it is valid).

    ``stable=True`` promises that ``schema`` is never changed in place (contracts' and output
    specs' own schemas): its compiled form is then found by identity instead of by content,
    which saves freezing the schema on every call. A valid instance of a simple schema is
    accepted by a compiled check in a few µs; anything else goes to jsonschema."""
    compiled = _by_identity(schema) if stable else _compiled(_freeze(schema))
    if compiled.fast is not None and compiled.fast(instance):
        return []
    validator = _validator(compiled.frozen)
    found = sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.path)))
    return [
        {"pointer": json_pointer(e.absolute_path), "keyword": e.validator, "message": e.message}
        for e in found
    ]


@lru_cache(maxsize=512)
def _validator(frozen: Any) -> Any:
    schema = _thaw(frozen)
    return _validator_class(schema)(schema)


# -- the fast path: simple schemas compiled to predicates -------------------------------------
# A predicate returns True only when the instance is certainly valid; False means "ask
# jsonschema", which also lists the errors. Only keywords whose meaning is the same in every
# supported draft are compiled; a schema with any other keyword gets no predicate at all.

Check = Callable[[Any], bool]

#: keywords that never affect validity here (``format`` is an annotation: no format checker)
_ANNOTATIONS = frozenset(
    {
        "$schema",
        "$id",
        "$comment",
        "title",
        "description",
        "default",
        "examples",
        "format",
        "deprecated",
        "readOnly",
        "writeOnly",
    }
)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)  # 1.0 goes to jsonschema


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_TYPES: dict[str, Check] = {
    "string": lambda v: isinstance(v, str),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": _is_int,
    "number": _is_number,
}
_SCALARS = (str, int, float, bool, type(None))


def _always(_: Any) -> bool:
    return True


def _compile(schema: Any) -> Check | None:
    """A predicate for ``schema``, or None when it uses a keyword not handled here."""
    if schema is True:
        return _always
    if not isinstance(schema, dict):
        return None
    checks: list[Check] = []
    for key, val in schema.items():
        if key in _ANNOTATIONS:
            continue
        check = _keyword(key, val, schema)
        if check is None:
            return None
        checks.append(check)
    if not checks:
        return _always
    if len(checks) == 1:
        return checks[0]
    return _all_of(tuple(checks))


# Plain loops instead of all()/any() over generators: a generator frame per check made the
# fast path cost several µs per object on every call.
def _all_of(checks: tuple[Check, ...]) -> Check:
    def check(v: Any) -> bool:
        for c in checks:  # noqa: SIM110 (a loop: no generator frame per call)
            if not c(v):
                return False
        return True

    return check


def _keyword(key: str, val: Any, schema: dict[str, Any]) -> Check | None:
    if key == "type":
        names = [val] if isinstance(val, str) else val
        if not isinstance(names, list) or not all(n in _TYPES for n in names):
            return None
        preds = [_TYPES[n] for n in names]
        if len(preds) == 1:
            return preds[0]
        alts = tuple(preds)

        def any_type(v: Any) -> bool:
            for p in alts:  # noqa: SIM110 (a loop: no generator frame per call)
                if p(v):
                    return True
            return False

        return any_type
    if key == "properties":
        if not isinstance(val, dict):
            return None
        items: list[tuple[str, Check]] = []
        for name, sub in val.items():
            compiled = _compile(sub)
            if compiled is None:
                return None
            items.append((name, compiled))
        props = tuple(items)

        def properties(v: Any) -> bool:
            if not isinstance(v, dict):
                return True
            for k, c in props:  # noqa: SIM110 (a loop: no generator frame per call)
                if k in v and not c(v[k]):
                    return False
            return True

        return properties
    if key == "required":
        if not isinstance(val, list) or not all(isinstance(n, str) for n in val):
            return None
        names = tuple(val)

        def required(v: Any) -> bool:
            if not isinstance(v, dict):
                return True
            for n in names:  # noqa: SIM110 (a loop: no generator frame per call)
                if n not in v:
                    return False
            return True

        return required
    if key == "additionalProperties":
        if "patternProperties" in schema:
            return None
        known = frozenset(schema.get("properties") or ())
        if val is True:
            return _always
        if val is False:
            return lambda v: not isinstance(v, dict) or known.issuperset(v)
        extra = _compile(val)
        if extra is None:
            return None
        return lambda v: (
            not isinstance(v, dict) or all(extra(x) for k, x in v.items() if k not in known)
        )
    if key == "items":
        sub = _compile(val) if isinstance(val, dict) or val is True else None
        if sub is None:
            return None
        return lambda v: not isinstance(v, list) or all(sub(x) for x in v)
    if key in ("enum", "const"):
        values = val if key == "enum" else [val]
        if not isinstance(values, list) or not all(isinstance(x, _SCALARS) for x in values):
            return None
        allowed = [(type(x), x) for x in values]  # True is not 1 here, as in jsonschema
        return lambda v: any(type(v) is t and v == x for t, x in allowed)
    if key in ("minLength", "maxLength", "minItems", "maxItems"):
        if not _is_int(val):
            return None
        kind = str if key.endswith("Length") else list
        if key.startswith("min"):
            return lambda v: not isinstance(v, kind) or len(v) >= val
        return lambda v: not isinstance(v, kind) or len(v) <= val
    if key == "pattern":  # jsonschema's own test: re.search on strings
        if not isinstance(val, str):
            return None
        try:
            rx = re.compile(val)
        except re.error:
            return None
        return lambda v: not isinstance(v, str) or rx.search(v) is not None
    if key in ("minimum", "maximum"):
        if not _is_number(val):
            return None
        if key == "minimum":
            return lambda v: not _is_number(v) or v >= val
        return lambda v: not _is_number(v) or v <= val
    return None


class _Compiled:
    __slots__ = ("fast", "frozen", "schema")

    def __init__(self, schema: Any, frozen: Any, fast: Check | None) -> None:
        self.schema = schema
        self.frozen = frozen
        self.fast = fast


@lru_cache(maxsize=512)
def _compiled(frozen: Any) -> _Compiled:
    return _Compiled(None, frozen, _compile(_thaw(frozen)))


#: id(schema) -> compiled form, for ``stable`` schemas; holds the schema so ids stay unique
_IDENTITY: dict[int, _Compiled] = {}


def _by_identity(schema: Mapping[str, Any]) -> _Compiled:
    found = _IDENTITY.get(id(schema))
    if found is None or found.schema is not schema:
        frozen = _freeze(schema)
        found = _Compiled(schema, frozen, _compiled(frozen).fast)
        if len(_IDENTITY) >= 512:
            _IDENTITY.clear()
        _IDENTITY[id(schema)] = found
    return found


def schema_of(spec: Any, where: str) -> dict[str, Any]:
    """A JSON Schema dict from a pydantic model class, a schema dict, or a type pydantic knows."""
    if isinstance(spec, Mapping):
        schema = dict(spec)
    else:
        from pydantic import BaseModel, TypeAdapter

        if isinstance(spec, type) and issubclass(spec, BaseModel):
            schema = spec.model_json_schema()
        else:
            try:
                schema = TypeAdapter(spec).json_schema()
            except Exception as exc:  # pydantic raises several kinds here
                raise ContractError(
                    f"{where}: expected a pydantic model, a JSON Schema dict or a type, "
                    f"got {spec!r} ({exc})"
                ) from None
    check_schema(schema, where)
    return schema


# Schemas are dicts (unhashable); freeze them to cache validators by content.
def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return ("__d", *sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("__l", *(_freeze(v) for v in value))
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple) and value and value[0] == "__d":
        return {k: _thaw(v) for k, v in value[1:]}
    if isinstance(value, tuple) and value and value[0] == "__l":
        return [_thaw(v) for v in value[1:]]
    return value
