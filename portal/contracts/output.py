"""Structured output: the shape a reply must have, given as a pydantic model or a JSON Schema."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from portal.contracts.schema import list_errors, schema_of
from portal.errors import ContractError

__all__ = ["OutputSpec"]

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


@dataclass(slots=True, frozen=True)
class OutputSpec:
    """``schema`` is what vendors are asked for; ``model`` (if given) is what callers get back."""

    schema: dict[str, Any]
    name: str = "output"
    model: Any = field(default=None, compare=False)

    @classmethod
    def of(cls, spec: Any) -> OutputSpec:
        """From a pydantic model class or a JSON Schema dict."""
        if isinstance(spec, OutputSpec):
            return spec
        schema = schema_of(spec, "output")
        if isinstance(spec, dict):
            name = str(spec.get("title") or "output")
            return cls(schema, _safe_name(name), None)
        return cls(schema, _safe_name(getattr(spec, "__name__", "output")), spec)

    def parse(self, text: str) -> Any:
        """Parse and validate a reply; raise `ContractError` with every validation finding."""
        raw = text.strip()
        fenced = _FENCE.match(raw)
        if fenced:
            raw = fenced.group(1)
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ContractError(
                f"output: the reply is not valid JSON ({exc.msg} at char {exc.pos})",
                [{"pointer": "/", "keyword": "json", "message": exc.msg}],
            ) from None
        return self.validate(data)

    def validate(self, data: Any) -> Any:
        if self.model is not None and hasattr(self.model, "model_validate"):
            from pydantic import ValidationError

            try:
                return self.model.model_validate(data)
            except ValidationError as exc:
                details = [
                    {
                        "pointer": "/" + "/".join(str(p) for p in e["loc"]),
                        "keyword": e["type"],
                        "message": e["msg"],
                    }
                    for e in exc.errors()
                ]
                summary = "; ".join(f"{d['pointer']}: {d['message']}" for d in details[:5])
                raise ContractError(
                    f"output does not match {self.name}: {summary}", details
                ) from None
        errors = list_errors(data, self.schema, stable=True)  # an OutputSpec is immutable
        if errors:
            summary = "; ".join(f"{d['pointer']}: {d['message']}" for d in errors[:5])
            raise ContractError(f"output does not match {self.name}: {summary}", errors)
        return data


def _safe_name(name: str) -> str:
    cleaned = re.sub(r"[^a-zA-Z0-9_-]", "_", name)[:64]
    return cleaned or "output"
