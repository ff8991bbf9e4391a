"""Tool definitions written for other ecosystems: every problem in one error by default, and an
explicit lenient normalization that maps them to standard JSON Schema and vendor-legal names,
reporting each change; a renamed tool's calls reach the caller and the tool loop under the
original name while the vendor only ever sees the legal one.

The definitions below are written for these tests in the style of function-calling benchmark
catalogues (Python type names such as ``dict``/``float``/``tuple``/``any``, dotted names,
per-property ``required`` flags).
"""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest

import portal
from portal.contracts.schema import check_schema
from tests.helpers import BothClients

FACTORIAL = {
    "name": "math.factorial",
    "description": "Factorial of a whole number.",
    "parameters": {
        "type": "dict",
        "properties": {"number": {"type": "integer", "description": "The number."}},
        "required": ["number"],
    },
}
PLOT = {
    "type": "function",
    "function": {
        "name": "charts.plot points",
        "description": "Plot points on a chart.",
        "parameters": {
            "type": "dict",
            "properties": {
                "points": {
                    "type": "list",
                    "items": {"type": "tuple", "items": {"type": "float"}},
                },
                "style": {"type": "any", "description": "Anything the renderer takes."},
                "title": {"type": "str", "required": True},
                "dpi": {"type": "int", "required": False},
                "grid": {"type": "bool"},
            },
            "required": ["points"],
        },
    },
}


def test_strict_path_lists_every_problem_of_a_definition_in_one_error() -> None:
    with pytest.raises(portal.ContractError) as info:
        portal.tool_from_schema(PLOT)
    found = {(d.get("field"), d["pointer"]) for d in info.value.details}
    assert found == {
        ("name", ""),
        ("parameters", "/type"),
        ("parameters", "/properties/points/type"),
        ("parameters", "/properties/points/items/type"),
        ("parameters", "/properties/points/items/items/type"),
        ("parameters", "/properties/style/type"),
        ("parameters", "/properties/title/type"),
        ("parameters", "/properties/title/required"),
        ("parameters", "/properties/dpi/type"),
        ("parameters", "/properties/dpi/required"),
        ("parameters", "/properties/grid/type"),
    }
    message = str(info.value)
    assert message.startswith("tool 'charts.plot points': 11 problems: names must be")
    assert "'tuple' is not a JSON Schema type" in message
    assert "lenient=True" in message
    # the same through ToolSpec and an OpenAI-style dict in tools=
    with pytest.raises(portal.ContractError, match="2 problems"):
        portal.ToolSpec("math.factorial", "", FACTORIAL["parameters"])


def test_lenient_maps_types_and_names_and_reports_every_change() -> None:
    spec = portal.tool_from_schema(PLOT, lenient=True)
    assert (spec.name, spec.original_name) == ("charts_plot_points", "charts.plot points")
    assert spec.parameters == {
        "type": "object",
        "properties": {
            "points": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
            "style": {"description": "Anything the renderer takes."},
            "title": {"type": "string"},
            "dpi": {"type": "integer"},
            "grid": {"type": "boolean"},
        },
        "required": ["points", "title"],
    }
    check_schema(spec.parameters, "normalized")  # standard JSON Schema now
    changes = {(c.pointer, json.dumps(c.before), json.dumps(c.after)) for c in spec.changes}
    assert changes == {
        ("/name", '"charts.plot points"', '"charts_plot_points"'),
        ("/parameters/type", '"dict"', '"object"'),
        ("/parameters/properties/points/type", '"list"', '"array"'),
        ("/parameters/properties/points/items/type", '"tuple"', '"array"'),
        ("/parameters/properties/points/items/items/type", '"float"', '"number"'),
        ("/parameters/properties/style/type", '"any"', "null"),
        ("/parameters/properties/title/type", '"str"', '"string"'),
        ("/parameters/properties/title/required", "true", "null"),
        ("/parameters/properties/dpi/type", '"int"', '"integer"'),
        ("/parameters/properties/dpi/required", "false", "null"),
        ("/parameters/properties/grid/type", '"bool"', '"boolean"'),
        ("/parameters/required", '["points"]', '["points", "title"]'),
    }
    assert all(c.reason for c in spec.changes) and "->" in str(spec.changes[0])
    # a standard definition passes through untouched, with no changes
    plain = portal.tool_from_schema(
        {"name": "lookup", "parameters": {"type": "object", "properties": {}}}, lenient=True
    )
    assert plain.changes == () and plain.original_name is None


def test_lenient_still_refuses_what_it_cannot_map_listing_all_of_it() -> None:
    odd = {
        "name": "x.y",
        "parameters": {
            "type": "dict",
            "properties": {"a": {"type": "frobnicator"}, "b": {"type": "widget"}},
        },
    }
    with pytest.raises(portal.ContractError) as info:
        portal.tool_from_schema(odd, lenient=True)
    assert sorted(d["pointer"] for d in info.value.details) == [
        "/properties/a/type",
        "/properties/b/type",
    ]


def _reply(name: str, args: dict[str, Any] | None = None, text: str | None = None) -> Any:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if args is not None:
        message["tool_calls"] = [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)},
            }
        ]
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {"index": 0, "message": message, "finish_reason": "tool_calls" if args else "stop"}
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


CONFIG = {
    "portal": {"ledger": "none"},
    "providers": {
        "p": {"kind": "openai", "api_key": "sk-test-1234", "base_url": "http://p.test/v1"}
    },
    "features": {"f": {"primary": "p:gpt-x", "retry": {"attempts": 1}}},
}


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_renamed_tool_round_trip_through_a_client(mode: str) -> None:
    """The vendor sees only ``math_factorial``; the caller sees ``math.factorial``; the tool
    loop runs the original function for a call under the legal name."""
    seen: list[dict[str, Any]] = []
    queue = [_reply("math_factorial", {"number": 5}), _reply("", text="120")]

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(json.loads(request.content))
        return httpx2.Response(200, json=queue.pop(0))

    ran: list[int] = []

    def factorial(number: int) -> int:
        ran.append(number)
        out = 1
        for k in range(2, number + 1):
            out *= k
        return out

    spec = portal.tool_from_schema(FACTORIAL, lenient=True, function=factorial)
    client = BothClients(mode, CONFIG, transports={"p": httpx2.MockTransport(handler)})
    try:
        resp = client.chat(feature="f", messages=[portal.user("5!?")], tools=[spec])
    finally:
        client.close()
    assert ran == [5] and resp.text == "120"
    assert [t["function"]["name"] for t in seen[0]["tools"]] == ["math_factorial"]
    turn = seen[1]["messages"]
    assert turn[1]["tool_calls"][0]["function"]["name"] == "math_factorial"  # never the dot
    assert json.dumps(seen).count("math.factorial") == 0
    calls = [c for m in resp.messages for c in (m.tool_calls or [])]
    assert [c.name for c in calls] == ["math.factorial"]  # the caller's own name


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_renamed_tool_call_returned_to_the_caller_under_its_original_name(mode: str) -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(json.loads(request.content))
        return httpx2.Response(200, json=_reply("math_factorial", {"number": 3}))

    spec = portal.tool_from_schema(FACTORIAL, lenient=True)  # no function: the caller runs it
    client = BothClients(mode, CONFIG, transports={"p": httpx2.MockTransport(handler)})
    try:
        resp = client.chat(
            feature="f",
            messages=[portal.user("3!?")],
            tools=[spec],
            tool_choice="math.factorial",
        )
    finally:
        client.close()
    assert [(c.name, c.arguments) for c in resp.tool_calls] == [("math.factorial", {"number": 3})]
    assert seen[0]["tool_choice"] == {"type": "function", "function": {"name": "math_factorial"}}
