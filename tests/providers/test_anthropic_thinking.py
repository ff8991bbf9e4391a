"""Extended thinking through a tool loop: Anthropic rejects the next request unless the
assistant turn that made the calls comes back with its reasoning blocks, unmodified and
signed (docs.anthropic.com/en/docs/build-with-claude/extended-thinking, "Preserving thinking
blocks"; block shapes from anthropic-sdk-python's ThinkingBlock, RedactedThinkingBlock,
ThinkingDelta and SignatureDelta types). Fixtures written from those references."""

from __future__ import annotations

import json
from typing import Any

import pytest

from portal.contracts.messages import Message, ToolCall, tool_result, user
from portal.contracts.output import OutputSpec
from portal.contracts.request import ChatRequest
from portal.errors import ContractError
from portal.wire import WireReply

from .test_anthropic import LOOKUP, MODEL, WEATHER, adapter

THINKING = {
    "type": "thinking",
    "thinking": "The user wants order 9. Look it up.",
    "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3h",
}
REDACTED = {
    "type": "redacted_thinking",
    "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP",
}
LATER = {"type": "thinking", "thinking": "Now the weather.", "signature": "EqQBCgIYAhIMzz"}


def _reply(content: list[dict[str, Any]], stop: str = "tool_use") -> WireReply:
    body = {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 50, "output_tokens": 80},
    }
    return WireReply(200, {"request-id": "req_1"}, json.dumps(body).encode())


def _next_turn(reply: Any) -> list[Any]:
    """The assistant turn of the tool loop's next request, as sent."""
    calls = reply.tool_calls
    convo = [
        user("Where is order 9, and the weather in Oslo?"),
        reply.to_message(),
        *(tool_result(c.id, {"ok": True}) for c in calls),
    ]
    body = adapter().build_chat(ChatRequest(convo, tools=[LOOKUP, WEATHER]), MODEL).json()
    assistant = body["messages"][1]
    assert assistant["role"] == "assistant"
    return assistant["content"]  # type: ignore[no-any-return]


def _tool_use(id_: str, name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": id_, "name": name, "input": args}


def test_reasoning_before_a_call_is_replayed_first_and_verbatim() -> None:
    text = {"type": "text", "text": "Let me check."}
    call = _tool_use("toolu_01", "lookup_order", {"order_id": "9"})
    resp = adapter().parse_chat(_reply([THINKING, REDACTED, text, call]), MODEL)
    assert resp.text == "Let me check."
    assert resp.tool_calls[0].provider_data == {"anthropic": {"thinking": [THINKING, REDACTED]}}
    assert resp.reasoning == THINKING["thinking"]
    assert _next_turn(resp) == [THINKING, REDACTED, text, call]


def test_interleaved_reasoning_goes_back_before_its_own_call() -> None:
    first = _tool_use("toolu_01", "lookup_order", {"order_id": "9"})
    second = _tool_use("toolu_02", "get_weather", {"city": "Oslo"})
    resp = adapter().parse_chat(_reply([THINKING, first, LATER, second]), MODEL)
    assert [c.provider_data for c in resp.tool_calls] == [
        {"anthropic": {"thinking": [THINKING]}},
        {"anthropic": {"thinking": [LATER]}},
    ]
    assert _next_turn(resp) == [THINKING, first, LATER, second]


def test_a_final_answer_carries_nothing_to_replay() -> None:
    resp = adapter().parse_chat(
        _reply([THINKING, {"type": "text", "text": "Shipped."}], stop="end_turn"), MODEL
    )
    assert resp.text == "Shipped." and resp.tool_calls == []
    assert resp.to_message().tool_calls is None


def test_other_vendors_data_is_never_sent() -> None:
    call = ToolCall(
        "call_1", "lookup_order", {"order_id": "9"}, {"gemini": {"thought_signature": "x"}}
    )
    msg = Message("assistant", None, [call])
    convo = [user("hi"), msg, tool_result("call_1", "ok")]
    body = adapter().build_chat(ChatRequest(convo, tools=[LOOKUP]), MODEL).json()
    assert [b["type"] for b in body["messages"][1]["content"]] == ["tool_use"]


def _sse(events: list[dict[str, Any]]) -> bytes:
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


def _thinking_events(index: int, pieces: list[str], signature: str) -> list[dict[str, Any]]:
    start = {"type": "thinking", "thinking": ""}
    deltas = [{"type": "thinking_delta", "thinking": p} for p in pieces]
    deltas.append({"type": "signature_delta", "signature": signature})
    return _block_events(index, start, deltas)


def _tool_events(index: int, call_id: str, name: str, args: str) -> list[dict[str, Any]]:
    start = {"type": "tool_use", "id": call_id, "name": name, "input": {}}
    return _block_events(index, start, [{"type": "input_json_delta", "partial_json": args}])


def _block_events(
    index: int, start: dict[str, Any], deltas: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    return [
        {"type": "content_block_start", "index": index, "content_block": start},
        *({"type": "content_block_delta", "index": index, "delta": d} for d in deltas),
        {"type": "content_block_stop", "index": index},
    ]


def test_stream_rebuilds_signed_blocks_and_puts_them_on_the_calls() -> None:
    message = {"id": "msg_02", "model": MODEL, "usage": {"input_tokens": 50}}
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": message},
        *_thinking_events(0, ["The user wants ", "order 9. Look it up."], THINKING["signature"]),
        *_block_events(1, REDACTED, []),
        *_tool_events(2, "toolu_01", "lookup_order", '{"order_id": "9"}'),
        *_thinking_events(3, [LATER["thinking"]], LATER["signature"]),
        *_tool_events(4, "toolu_02", "get_weather", '{"city": "Oslo"}'),
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 90},
        },
        {"type": "message_stop"},
    ]
    parser = adapter().stream_parser(ChatRequest([user("x")], stream=True), MODEL)
    data = _sse(events)
    texts, thoughts = [], []
    for i in range(0, len(data), 13):  # small chunks: lines split anywhere
        for e in parser.feed(data[i : i + 13]):
            (texts if e.type == "text" else thoughts if e.type == "reasoning" else []).append(
                e.text
            )
    resp = parser.finish()
    assert texts == []  # reasoning is never streamed as answer text
    assert thoughts == ["The user wants ", "order 9. Look it up.", LATER["thinking"]]
    assert [c.provider_data for c in resp.tool_calls] == [
        {"anthropic": {"thinking": [THINKING, REDACTED]}},
        {"anthropic": {"thinking": [LATER]}},
    ]
    assert resp.reasoning == f"{THINKING['thinking']}\n\n{LATER['thinking']}"
    assert [b["type"] for b in _next_turn(resp)] == [
        "thinking",
        "redacted_thinking",
        "tool_use",
        "thinking",
        "tool_use",
    ]


def test_thinking_with_a_forced_tool_is_refused_before_sending() -> None:
    """Anthropic allows only tool_choice auto or none with thinking; structured output on
    Anthropic is a forced tool, so the combination is a clear ContractError, not a 400."""
    thinking = {"anthropic": {"thinking": {"type": "enabled", "budget_tokens": 2048}}}
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    structured = ChatRequest(
        [user("x")], output=OutputSpec.of(schema), provider_options=thinking, max_tokens=4096
    )
    with pytest.raises(ContractError, match="structured output on Anthropic is a forced tool"):
        adapter().build_chat(structured, MODEL)
    forced = ChatRequest(
        [user("x")], tools=[LOOKUP], tool_choice="required", provider_options=thinking
    )
    with pytest.raises(ContractError, match="tool_choice 'required' forces a tool call"):
        adapter().build_chat(forced, MODEL)
    auto = ChatRequest([user("x")], tools=[LOOKUP], provider_options=thinking, max_tokens=4096)
    body = adapter().build_chat(auto, MODEL).json()
    assert body["thinking"]["type"] == "enabled" and "tool_choice" not in body
