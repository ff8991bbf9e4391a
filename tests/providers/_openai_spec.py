"""Validate bodies against the component schemas of OpenAI's OpenAPI description
(shared/specs/openai-openapi.yaml, OpenAPI 3.1 = JSON Schema 2020-12 plus annotations)."""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import pytest

SPEC_PATHS = [
    Path(os.environ.get("PORTAL_OPENAI_SPEC", "")),
    Path(__file__).resolve().parents[3] / "shared" / "specs" / "openai-openapi.yaml",
    Path("/work/shared/specs/openai-openapi.yaml"),
]


@cache
def spec() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml", reason="pyyaml reads the OpenAI spec")
    for path in SPEC_PATHS:
        if path.is_file():
            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
            with path.open() as f:
                data: dict[str, Any] = yaml.load(f, Loader=loader)
            _nullable(data)
            return data
    pytest.skip("shared/specs/openai-openapi.yaml not found (set PORTAL_OPENAI_SPEC)")


def errors(instance: Any, component: str) -> list[str]:
    """Every validation error of ``instance`` against ``#/components/schemas/<component>``."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    doc = spec()
    resource = Resource.from_contents(doc, default_specification=DRAFT202012)
    registry = Registry().with_resource("urn:openai", resource)
    validator = Draft202012Validator(
        {"$ref": f"urn:openai#/components/schemas/{component}"}, registry=registry
    )
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}"
        for e in validator.iter_errors(json.loads(json.dumps(instance)))
    ]


def _nullable(node: Any) -> None:
    """OpenAPI-isms to JSON Schema. The spec still marks some fields with OpenAPI 3.0's
    ``nullable: true`` (e.g. a stream
    chunk's ``finish_reason``); JSON Schema spells it ``type: [..., "null"]``."""
    if isinstance(node, dict):
        if "discriminator" in node and "oneOf" in node:
            # OpenAPI picks the branch by the discriminator; plain oneOf would reject items
            # that match two branches (e.g. EasyInputMessage and InputMessage)
            node["anyOf"] = node.pop("oneOf")
        if node.get("nullable") is True:
            t = node.get("type")
            if isinstance(t, str):
                node["type"] = [t, "null"]
            if isinstance(node.get("enum"), list) and None not in node["enum"]:
                node["enum"].append(None)
        for v in node.values():
            _nullable(v)
    elif isinstance(node, list):
        for v in node:
            _nullable(v)
