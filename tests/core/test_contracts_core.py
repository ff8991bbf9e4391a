"""Messages, tools and structured output: coercion and the exact errors users see."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

import portal
from portal.contracts.messages import coerce_messages
from portal.contracts.output import OutputSpec
from portal.contracts.tools import ToolSpec, coerce_tools


def test_helpers_build_messages() -> None:
    img = portal.ImagePart(data="iVBORw0KGgo=", media_type="image/png")
    msgs = [
        portal.system("be brief"),
        portal.user(["what is this?", img]),
        portal.assistant(tool_calls=[portal.ToolCall("c1", "lookup", {"q": 1})]),
        portal.tool_result("c1", {"ok": True}),
    ]
    assert [m.role for m in msgs] == ["system", "user", "assistant", "tool"]
    assert msgs[1].to_dict()["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
    }
    assert msgs[3].content == '{"ok": true}'


def test_a_stored_conversation_keeps_vendor_replay_data() -> None:
    """Signed reasoning and thought signatures survive to_dict and back: a tool loop stored
    as dicts and resumed later is still accepted by the vendor that signed it."""
    data = {"anthropic": {"thinking": [{"type": "thinking", "thinking": "t", "signature": "s"}]}}
    signed = portal.ToolCall("c1", "lookup", {"q": 1}, data)
    plain = portal.ToolCall("c2", "lookup", {"q": 2})
    stored = portal.assistant(tool_calls=[signed, plain]).to_dict()
    assert stored["tool_calls"][0]["provider_data"] == data
    assert "provider_data" not in stored["tool_calls"][1]  # plain calls stay OpenAI-shaped
    (back,) = coerce_messages([stored])
    assert back.tool_calls is not None
    assert [c.provider_data for c in back.tool_calls] == [data, None]


def test_openai_style_dicts_are_coerced() -> None:
    msgs = coerce_messages(
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "hi"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"a": 1}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "42"},
        ]
    )
    image = msgs[0].parts[1]
    assert isinstance(image, portal.ImagePart) and image.media_type == "image/jpeg"
    assert msgs[1].tool_calls == [portal.ToolCall("call_1", "f", {"a": 1})]
    assert msgs[2].tool_call_id == "call_1"


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        (
            "hello",
            "messages: expected a list of messages, got str; wrap it, e.g. messages=[portal.user('hi')]",
        ),
        ([], "messages: at least one message is required"),
        (
            [{"role": "robot", "content": "x"}],
            "messages[0].role: unknown role 'robot'; expected one of system, user, assistant, tool",
        ),
        (
            [{"content": "x"}],
            "messages[0].role: missing; expected one of system, user, assistant, tool",
        ),
        ([{"role": "user"}], "messages[0].content: missing; a 'user' message needs content"),
        (
            [{"role": "tool", "content": "x"}],
            "messages[0].tool_call_id: required for a 'tool' message",
        ),
        (
            [{"role": "user", "content": 5}],
            "messages[0].content: expected a string or a list of parts, got int",
        ),
        (
            [{"role": "user", "content": "x", "colour": 1}],
            "messages[0]: unknown key(s) 'colour'; allowed: cache, content, is_error, name, role, tool_call_id, tool_calls",
        ),
        (
            [{"role": "user", "content": [{"type": "video"}]}],
            "messages[0].content[0].type: unknown part type 'video'; expected 'text' or 'image_url'",
        ),
        (
            [
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{bad"}}],
                }
            ],
            "messages[0].tool_calls[0].function.arguments: not valid JSON (Expecting property name enclosed in double quotes)",
        ),
        (
            [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "data:image/png,abc"}}],
                }
            ],
            "messages[0].content[0]: data URLs must be base64, e.g. data:image/png;base64,...",
        ),
        (
            [3],
            "messages[0]: expected a portal.Message or a dict with 'role' and 'content', got int",
        ),
    ],
)
def test_bad_messages_have_exact_errors(messages: Any, error: str) -> None:
    with pytest.raises(portal.ContractError) as info:
        coerce_messages(messages)
    assert str(info.value) == error


def test_tool_result_must_be_serializable() -> None:
    with pytest.raises(portal.ContractError) as info:
        portal.tool_result("c9", object())
    assert str(info.value).startswith("tool_result for call 'c9': result is not JSON-serializable")


def test_tool_from_function_uses_signature_and_docstring() -> None:
    @portal.tool
    def lookup_order(order_id: str, include_items: bool = False) -> dict[str, Any]:
        """Find an order by its id.

        Args:
            order_id: the order number the customer gave
            include_items: also list the items
        """
        return {}

    assert isinstance(lookup_order, ToolSpec)
    assert lookup_order.description == "Find an order by its id."
    assert lookup_order.parameters == {
        "type": "object",
        "properties": {
            "order_id": {"type": "string", "description": "the order number the customer gave"},
            "include_items": {
                "type": "boolean",
                "default": False,
                "description": "also list the items",
            },
        },
        "required": ["order_id"],
        "additionalProperties": False,
    }


def test_tool_from_sphinx_and_numpy_docstrings() -> None:
    def a(x: int) -> None:
        """Do a.

        :param x: the x value
        """

    def b(y: float) -> None:
        """Do b.

        Parameters
        ----------
        y : float
            the y value
        """

    assert ToolSpec.from_function(a).parameters["properties"]["x"]["description"] == "the x value"
    assert ToolSpec.from_function(b).parameters["properties"]["y"]["description"] == "the y value"


def test_tool_from_pydantic_model_and_dict() -> None:
    class Weather(BaseModel):
        """Get the weather."""

        city: str

    tools = coerce_tools(
        [
            Weather,
            {
                "type": "function",
                "function": {
                    "name": "t",
                    "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
                },
            },
        ]
    )
    assert tools[0].name == "Weather" and tools[0].description == "Get the weather."
    assert tools[1].parameters["properties"] == {"q": {"type": "string"}}


def test_bad_tool_schema_names_tool_and_pointer() -> None:
    with pytest.raises(portal.ContractError) as info:
        ToolSpec("search", "", {"type": "object", "properties": {"q": {"type": "strng"}}})
    assert str(info.value).startswith(
        "tool 'search': parameters: invalid JSON Schema at /properties/q/type: 'strng' is not a JSON Schema type"
    )
    assert info.value.details[0]["pointer"] == "/properties/q/type"


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        (
            lambda: ToolSpec("bad name!"),
            "tool 'bad name!': names must be 1-64 characters of letters, digits, _ or -",
        ),
        (
            lambda: ToolSpec("t", "", {"type": "string"}),
            "tool 't': parameters must be a JSON Schema of type 'object', got type 'string'",
        ),
        (
            lambda: coerce_tools([42]),
            "tools[0]: expected a function, a pydantic model, a ToolSpec or a dict, got int",
        ),
        (lambda: coerce_tools([ToolSpec("a"), ToolSpec("a")]), "tools: duplicate tool name(s) a"),
    ],
)
def test_bad_tools_have_exact_errors(spec: Any, error: str) -> None:
    with pytest.raises(portal.ContractError) as info:
        spec()
    assert str(info.value) == error


def test_output_spec_validates_json_schema_dicts() -> None:
    spec = OutputSpec.of(
        {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    )
    assert spec.parse('```json\n{"n": 3}\n```') == {"n": 3}
    with pytest.raises(portal.ContractError) as info:
        spec.parse('{"n": "three"}')
    assert str(info.value) == "output does not match output: /n: 'three' is not of type 'integer'"
    assert info.value.details == [
        {"pointer": "/n", "keyword": "type", "message": "'three' is not of type 'integer'"}
    ]


def test_output_spec_rejects_non_schemas() -> None:
    with pytest.raises(portal.ContractError) as info:
        OutputSpec.of({"type": 12})
    assert str(info.value).startswith("output: invalid JSON Schema at /type:")
