"""A feature contract that declares ``[[tools]]`` decides what the feature may call: a call
passing a tool it does not declare, or one whose parameters differ from the declaration, is
refused; a declared tool's function runs under the contract's own definition."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import portal
from portal import testing
from portal.contracts.tools import ToolSpec
from portal.errors import ContractError

CONTRACT = """
name = "orders.answer"
version = "1.0.0"

[[tools]]
name = "lookup_order"
description = "Find an order by its id (the contract's words)."
[tools.parameters]
type = "object"
required = ["order_id"]
[tools.parameters.properties.order_id]
type = "string"
description = "the order number"
"""


@pytest.fixture
def config(tmp_path: Path) -> str:
    (tmp_path / "orders.toml").write_text(CONTRACT)
    path = tmp_path / "portal.toml"
    path.write_text(
        '[providers.o]\nkind = "openai"\napi_key = "k"\n'
        '[features.orders]\nprimary = "o:gpt-4o"\ncontract = "orders.toml"\n'
    )
    return str(path)


def _chat(config: str, tools: list[Any], script: testing.Script) -> Any:
    with testing.client(config, {"o": script}) as client:
        return client.chat(feature="orders", messages=[portal.user("Where is 7?")], tools=tools)


def test_an_undeclared_tool_is_refused_naming_it_and_the_fix(config: str) -> None:
    def cancel_order(order_id: str) -> str:
        """Cancel an order."""
        return "cancelled"

    script = testing.Script()
    with pytest.raises(ContractError) as err:
        _chat(config, [cancel_order], script)
    text = str(err.value)
    assert "'cancel_order' is not declared by the contract" in text
    assert "orders.answer" in text and "lookup_order" in text
    assert "declare it under [[tools]]" in text
    assert script.requests == []  # nothing was sent


def test_a_declared_tool_with_other_parameters_is_refused(config: str) -> None:
    def lookup_order(order_id: int) -> str:  # the contract says string
        return "shipped"

    with pytest.raises(ContractError) as err:
        _chat(config, [lookup_order], testing.Script())
    text = str(err.value)
    assert "'lookup_order' differs from the contract" in text
    assert "/tools/0/parameters/properties/order_id/type" in text

    extra = ToolSpec(
        "lookup_order",
        parameters={
            "type": "object",
            "properties": {"order_id": {"type": "string"}, "force": {"type": "boolean"}},
            "required": ["order_id"],
        },
    )
    with pytest.raises(ContractError, match="/properties/force"):
        _chat(config, [extra], testing.Script())


def test_a_declared_tools_function_runs_under_the_contracts_definition(config: str) -> None:
    ran: list[str] = []

    def lookup_order(order_id: str) -> str:
        """The app's own wording, which the contract overrides."""
        ran.append(order_id)
        return "shipped"

    script = testing.Script(testing.tool_call("lookup_order", order_id="7"), "It shipped.")
    resp = _chat(config, [lookup_order], script)
    assert resp.text == "It shipped." and ran == ["7"]
    sent = script.requests[0].body["tools"][0]["function"]
    assert sent["description"] == "Find an order by its id (the contract's words)."
    assert sent["parameters"]["properties"]["order_id"]["description"] == "the order number"


def test_without_tools_the_contracts_declarations_are_offered(config: str) -> None:
    script = testing.Script("Let me check.")
    _chat(config, [], script)
    assert script.requests[0].tools == ["lookup_order"]
