"""Reasoning through a Bedrock Converse tool loop: with reasoning enabled (e.g. Claude's
``thinking`` in ``additionalModelRequestFields``), the assistant turn that made tool calls must
be sent back with its ``reasoningContent`` blocks, text and signature unmodified.

Shapes written from the AWS Bedrock Runtime API reference (API_runtime_ReasoningContentBlock,
API_runtime_ReasoningTextBlock: "If you pass a reasoning block back to the API in a multi-turn
conversation, include the text and its signature unmodified", API_runtime_ReasoningContentBlockDelta,
API_runtime_ContentBlockDelta) and botocore's bedrock-runtime service model (shapes
ReasoningContentBlock, ReasoningTextBlock, ReasoningContentBlockDelta). Fixtures are made up.
"""

from __future__ import annotations

import json
from itertools import pairwise
from typing import Any

import pytest

from portal.contracts.messages import Message, ToolCall, coerce_messages, tool_result, user
from portal.contracts.request import ChatRequest
from portal.contracts.responses import Response
from portal.providers.bedrock import PROVIDER_DATA_KEY, BedrockAdapter, reasoning_blocks
from portal.providers.settings import ProviderSettings
from portal.secret import Secret
from portal.wire import WireReply
from tests.providers._cases import LOOKUP, WEATHER, frame

MODEL = "us.anthropic.claude-sonnet-4-20250514-v1:0"
THINKING = {
    "additionalModelRequestFields": {"thinking": {"type": "enabled", "budget_tokens": 2048}}
}

R1 = {
    "reasoningText": {
        "text": "The user asks about order 9. I should look it up first.",
        "signature": "EqoBCkgIARABGAIiQPk3s2xZr0Qm4Vd1cHw8bT5n0k+Yq2rJ6uLw9sAaBcDeFgHiJkLmNoPq",
    }
}
R2 = {
    "reasoningText": {
        "text": "Shipped. Now the weather in Oslo.",
        "signature": "EqoBCkgIARABGAIiQE1z9yXwVuTsRqPoNmLkJiHgFeDcBa0Z1Y2X3W4V5U6T7S8R9Q0P",
    }
}
REDACTED = {"redactedContent": "RW5jcnlwdGVkIHJlYXNvbmluZyBieXRlcyBmb3IgdGVzdHM="}


def adapter() -> BedrockAdapter:
    opts = {
        "region_name": "us-east-1",
        "access_key_id": "AKIDEXAMPLE",
        "secret_access_key": Secret("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
    }
    return BedrockAdapter(ProviderSettings(name="aws", kind="bedrock", options=opts))


def tool_use(use_id: str, name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"toolUse": {"toolUseId": use_id, "name": name, "input": args}}


def converse(content: list[dict[str, Any]], stop: str = "tool_use") -> Response:
    body = {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": {"inputTokens": 120, "outputTokens": 95, "totalTokens": 215},
        "metrics": {"latencyMs": 1500},
    }
    return adapter().parse_chat(WireReply(200, {}, json.dumps(body).encode()), MODEL)


def event(kind: str, payload: dict[str, Any]) -> bytes:
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    return frame(headers, json.dumps(payload).encode())


def delta(index: int, value: dict[str, Any]) -> bytes:
    return event("contentBlockDelta", {"contentBlockIndex": index, "delta": value})


def stream_tool_block(index: int, use_id: str, name: str, args: dict[str, Any]) -> bytes:
    start = {"toolUse": {"toolUseId": use_id, "name": name}}
    text = json.dumps(args)
    return b"".join(
        [
            event("contentBlockStart", {"contentBlockIndex": index, "start": start}),
            delta(index, {"toolUse": {"input": text[:7]}}),
            delta(index, {"toolUse": {"input": text[7:]}}),
            event("contentBlockStop", {"contentBlockIndex": index}),
        ]
    )


def stream_reasoning_block(index: int, value: dict[str, Any]) -> bytes:
    """A reasoningText block as ConverseStream sends it: text in pieces, then the signature."""
    if "redactedContent" in value:
        pieces = [delta(index, {"reasoningContent": {"redactedContent": value["redactedContent"]}})]
    else:
        text, signature = value["reasoningText"]["text"], value["reasoningText"]["signature"]
        cuts = [0, 9, 23, len(text)]
        pieces = [
            delta(index, {"reasoningContent": {"text": text[a:b]}}) for a, b in pairwise(cuts)
        ]
        pieces.append(delta(index, {"reasoningContent": {"signature": signature}}))
    return b"".join([*pieces, event("contentBlockStop", {"contentBlockIndex": index})])


def stream(
    blocks: list[bytes], stop: str = "tool_use", chunk: int = 11, events: list[Any] | None = None
) -> Response:
    raw = b"".join(
        [
            event("messageStart", {"role": "assistant"}),
            *blocks,
            event("messageStop", {"stopReason": stop}),
            event(
                "metadata",
                {
                    "usage": {"inputTokens": 120, "outputTokens": 95, "totalTokens": 215},
                    "metrics": {"latencyMs": 1500},
                },
            ),
        ]
    )
    req = ChatRequest([user("hi")], tools=[LOOKUP, WEATHER], stream=True)
    parser = adapter().stream_parser(req, MODEL)
    for i in range(0, len(raw), chunk):
        got = parser.feed(raw[i : i + chunk])
        if events is not None:
            events.extend(got)
    return parser.finish()


def next_turn(reply: Response, *, position: int = 1) -> list[dict[str, Any]]:
    """The assistant content of the tool loop's next request, as sent."""
    convo = [
        user("Where is order 9, and what's the weather in Oslo?"),
        reply.to_message(),
        *(tool_result(c.id, {"ok": True}) for c in reply.tool_calls),
    ]
    req = ChatRequest(convo, tools=[LOOKUP, WEATHER], provider_options={"bedrock": THINKING})
    body = adapter().build_chat(req, MODEL).json()
    assert body["additionalModelRequestFields"] == THINKING["additionalModelRequestFields"]
    assistant = body["messages"][position]
    assert assistant["role"] == "assistant"
    return assistant["content"]  # type: ignore[no-any-return]


# ------------------------------------------------------------------ one call


def test_json_reasoning_travels_on_the_call_and_opens_the_replayed_turn() -> None:
    reply = converse(
        [
            {"reasoningContent": R1},
            {"text": "Let me check that order."},
            tool_use("tooluse_aB3dE5fG7hI9jK1lM3nO5p", "lookup_order", {"order_id": "9"}),
        ]
    )
    assert reply.text == "Let me check that order."
    assert reply.finish_reason == "tool_calls"
    (call,) = reply.tool_calls
    assert call.provider_data == {"bedrock": {"reasoning": [R1]}}
    assert reasoning_blocks(call) == [R1]
    assert reply.reasoning == R1["reasoningText"]["text"]
    assert "unknown_content" not in reply.provider_details
    assert next_turn(reply) == [
        {"reasoningContent": R1},
        {"text": "Let me check that order."},
        tool_use("tooluse_aB3dE5fG7hI9jK1lM3nO5p", "lookup_order", {"order_id": "9"}),
    ]


@pytest.mark.parametrize("chunk", [1, 11, 65536])
def test_stream_reassembles_reasoning_and_keeps_redacted_content(chunk: int) -> None:
    events: list[Any] = []
    reply = stream(
        [
            stream_reasoning_block(0, R1),
            stream_reasoning_block(1, REDACTED),
            delta(2, {"text": "Let me check "}),
            delta(2, {"text": "that order."}),
            event("contentBlockStop", {"contentBlockIndex": 2}),
            stream_tool_block(
                3, "tooluse_aB3dE5fG7hI9jK1lM3nO5p", "lookup_order", {"order_id": "9"}
            ),
        ],
        chunk=chunk,
        events=events,
    )
    assert reply.text == "Let me check that order."
    thoughts = "".join(e.text for e in events if e.type == "reasoning")
    assert thoughts == reply.reasoning  # streamed as it came, never as answer text
    (call,) = reply.tool_calls
    assert call == ToolCall("tooluse_aB3dE5fG7hI9jK1lM3nO5p", "lookup_order", {"order_id": "9"})
    assert call.provider_data == {PROVIDER_DATA_KEY: {"reasoning": [R1, REDACTED]}}
    assert reply.reasoning == R1["reasoningText"]["text"]
    assert "unknown_events" not in reply.provider_details
    assert next_turn(reply) == [
        {"reasoningContent": R1},
        {"reasoningContent": REDACTED},
        {"text": "Let me check that order."},
        tool_use("tooluse_aB3dE5fG7hI9jK1lM3nO5p", "lookup_order", {"order_id": "9"}),
    ]


# ------------------------------------------------------------------ several calls

TWO_CALLS = [
    {"reasoningContent": R1},
    {"text": "Checking the order first."},
    tool_use("tooluse_1111aaaa2222bbbb3333cc", "lookup_order", {"order_id": "9"}),
    {"reasoningContent": R2},
    tool_use("tooluse_4444dddd5555eeee6666ff", "get_weather", {"city": "Oslo"}),
]


def _two_calls_streamed() -> Response:
    return stream(
        [
            stream_reasoning_block(0, R1),
            delta(1, {"text": "Checking the order first."}),
            event("contentBlockStop", {"contentBlockIndex": 1}),
            stream_tool_block(
                2, "tooluse_1111aaaa2222bbbb3333cc", "lookup_order", {"order_id": "9"}
            ),
            stream_reasoning_block(3, R2),
            stream_tool_block(4, "tooluse_4444dddd5555eeee6666ff", "get_weather", {"city": "Oslo"}),
        ]
    )


@pytest.mark.parametrize("source", ["json", "stream"])
def test_each_call_carries_its_own_reasoning_and_the_replay_interleaves(source: str) -> None:
    reply = converse(TWO_CALLS) if source == "json" else _two_calls_streamed()
    first, second = reply.tool_calls
    assert reasoning_blocks(first) == [R1]
    assert reasoning_blocks(second) == [R2]
    assert reply.reasoning == (R1["reasoningText"]["text"] + "\n\n" + R2["reasoningText"]["text"])
    assert next_turn(reply) == [
        {"reasoningContent": R1},
        {"text": "Checking the order first."},
        tool_use("tooluse_1111aaaa2222bbbb3333cc", "lookup_order", {"order_id": "9"}),
        {"reasoningContent": R2},
        tool_use("tooluse_4444dddd5555eeee6666ff", "get_weather", {"city": "Oslo"}),
    ]


def test_provider_data_survives_the_message_dict_form() -> None:
    """A call rebuilt from a stored dict (``provider_data`` kept) replays the same way."""
    reply = converse(TWO_CALLS)
    stored = [
        {
            "id": c.id,
            "function": {"name": c.name, "arguments": c.arguments_json()},
            "provider_data": json.loads(json.dumps(c.provider_data)),
        }
        for c in reply.tool_calls
    ]
    convo: list[Any] = [
        user("Where is order 9, and what's the weather in Oslo?"),
        {"role": "assistant", "content": reply.text, "tool_calls": stored},
        *(tool_result(c.id, "ok") for c in reply.tool_calls),
    ]
    req = ChatRequest(coerce_messages(convo), tools=[LOOKUP, WEATHER])
    body = adapter().build_chat(req, MODEL).json()
    assert body["messages"][1]["content"] == TWO_CALLS


# ------------------------------------------------------------------ not attached


@pytest.mark.parametrize("source", ["json", "stream"])
def test_reasoning_without_tool_calls_is_not_attached_or_replayed(source: str) -> None:
    answer = "Order 9 shipped on Monday."
    if source == "json":
        reply = converse([{"reasoningContent": R1}, {"text": answer}], stop="end_turn")
    else:
        reply = stream(
            [
                stream_reasoning_block(0, R1),
                delta(1, {"text": answer}),
                event("contentBlockStop", {"contentBlockIndex": 1}),
            ],
            stop="end_turn",
        )
    assert (reply.text, reply.tool_calls, reply.finish_reason) == (answer, [], "stop")
    assert reply.reasoning == R1["reasoningText"]["text"]
    convo = [user("Where is order 9?"), reply.to_message(), user("Thanks. And order 10?")]
    body = adapter().build_chat(ChatRequest(convo), MODEL).json()
    assert body["messages"][1] == {"role": "assistant", "content": [{"text": answer}]}
    assert "reasoningContent" not in json.dumps(body)


@pytest.mark.parametrize("source", ["json", "stream"])
def test_reasoning_after_the_last_call_is_not_attached(source: str) -> None:
    if source == "json":
        reply = converse(
            [
                {"reasoningContent": R1},
                tool_use("tooluse_1111aaaa2222bbbb3333cc", "lookup_order", {"order_id": "9"}),
                {"reasoningContent": R2},
            ]
        )
    else:
        reply = stream(
            [
                stream_reasoning_block(0, R1),
                stream_tool_block(
                    1, "tooluse_1111aaaa2222bbbb3333cc", "lookup_order", {"order_id": "9"}
                ),
                stream_reasoning_block(2, R2),
            ]
        )
    (call,) = reply.tool_calls
    assert reasoning_blocks(call) == [R1]
    assert next_turn(reply) == [
        {"reasoningContent": R1},
        tool_use("tooluse_1111aaaa2222bbbb3333cc", "lookup_order", {"order_id": "9"}),
    ]


def test_other_vendors_provider_data_is_never_sent() -> None:
    """Only the ``bedrock`` namespace is read: a Gemini signature (or anything else) on a call
    sends no reasoning block, while a Bedrock call in the same history still replays its own."""
    ours = converse(
        [
            {"reasoningContent": R1},
            tool_use("tooluse_1111aaaa2222bbbb3333cc", "lookup_order", {"order_id": "9"}),
        ]
    )
    foreign = Message(
        "assistant",
        "Checking the weather.",
        [
            ToolCall(
                "fc_weather_1",
                "get_weather",
                {"city": "Oslo"},
                provider_data={
                    "gemini": {"thought_signature": "CiQB0e2Kb3Y0dGVzdHNpZ25hdHVyZQ=="},
                    "anthropic": {
                        "thinking": [{"type": "thinking", "thinking": "x", "signature": "s"}]
                    },
                },
            )
        ],
    )
    convo = [
        user("Where is order 9?"),
        ours.to_message(),
        tool_result("tooluse_1111aaaa2222bbbb3333cc", {"status": "shipped"}),
        user("And the weather in Oslo?"),
        foreign,
        tool_result("fc_weather_1", {"temp_c": 4}),
    ]
    body = adapter().build_chat(ChatRequest(convo, tools=[LOOKUP, WEATHER]), MODEL).json()
    assert body["messages"][1]["content"] == [
        {"reasoningContent": R1},
        tool_use("tooluse_1111aaaa2222bbbb3333cc", "lookup_order", {"order_id": "9"}),
    ]
    assert body["messages"][3]["content"] == [
        {"text": "Checking the weather."},
        tool_use("fc_weather_1", "get_weather", {"city": "Oslo"}),
    ]
    sent = json.dumps(body)
    assert sent.count("reasoningContent") == 1
    assert "thought_signature" not in sent and "CiQB0e2K" not in sent and '"thinking"' not in sent
