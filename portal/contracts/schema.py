"""JSON Schema helpers shared by tools, structured output and feature contracts.

jsonschema is imported on first use, not with ``import portal``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from portal.errors import ContractError

__all__ = ["check_schema", "json_pointer", "schema_of", "validate_instance"]

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
    from jsonschema.exceptions import SchemaError

    schema = _thaw(frozen)
    cls = _validator_class(schema)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        pointer = json_pointer(exc.absolute_path)
        raise ContractError(
            f"{where}: invalid JSON Schema at {pointer}: {exc.message}",
            [{"pointer": pointer, "keyword": exc.validator, "message": exc.message}],
        ) from None


def validate_instance(instance: Any, schema: Mapping[str, Any], where: str) -> None:
    """Validate ``instance``; raise `ContractError` listing every error with its pointer."""
    errors = list_errors(instance, schema)
    if errors:
        detail = "; ".join(f"{e['pointer']}: {e['message']}" for e in errors[:5])
        more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
        raise ContractError(f"{where}: {detail}{more}", errors)


def list_errors(instance: Any, schema: Mapping[str, Any]) -> list[dict[str, Any]]:
    validator = _validator(_freeze(schema))
    found = sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.path)))
    return [
        {"pointer": json_pointer(e.absolute_path), "keyword": e.validator, "message": e.message}
        for e in found
    ]


@lru_cache(maxsize=512)
def _validator(frozen: Any) -> Any:
    schema = _thaw(frozen)
    return _validator_class(schema)(schema)


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
