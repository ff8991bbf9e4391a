"""Visible reasoning (``Response.reasoning`` and ``reasoning`` stream events) from Gemini /
Vertex thought summaries and OpenAI Responses ``reasoning`` items.

Shapes written from:

- Gemini API: ``Part.thought`` / ``Part.text`` / ``Part.thoughtSignature`` (REST reference and
  googleapis/python-genai ``google/genai/types.py``); thought summaries are parts with
  ``"thought": true`` and a ``text``, returned when
  ``generationConfig.thinkingConfig.includeThoughts`` is true, streamed as deltas over
  ``streamGenerateContent?alt=sse`` chunks.
- OpenAI: shared/specs/openai-openapi.yaml, components ``ReasoningItem`` (``summary`` of
  ``SummaryTextContent``, ``content`` of ``ReasoningTextContent``),
  ``ResponseReasoningSummaryPartAddedEvent``, ``ResponseReasoningSummaryTextDeltaEvent`` /
  ``...DoneEvent``, ``ResponseReasoningSummaryPartDoneEvent``,
  ``ResponseReasoningTextDeltaEvent`` / ``...DoneEvent``; every body below is validated
  against the spec.

All fixtures are made up.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from portal.contracts.messages import Message, tool_result
from portal.contracts.request import ChatRequest
from portal.contracts.responses import Response, StreamEvent
from portal.providers.gemini import GeminiAdapter, VertexAdapter
from portal.providers.openai_responses import OpenAIResponsesAdapter
from portal.providers.settings import ProviderSettings
from portal.secret import Secret
from portal.wire import WireReply
from tests.providers._cases import feed_all, fixture
from tests.providers._openai_spec import errors as spec_errors

# -- Gemini / Vertex ----------------------------------------------------------------------

SIGNATURE = "CpcBAdHtim8q1TtkW3B0P1eXk7m3vQ2cZ9y8x7w6v5u4t3s2r1q0p=="
THOUGHT_1 = "**Finding the order**\n\nThe user wants the status of order 987. "
THOUGHT_2 = "I should call lookup_order before answering."
THOUGHT_3 = "**Reporting back**\n\nThe tool says it was delivered; say so briefly."


def gemini() -> GeminiAdapter:
    return GeminiAdapter(
        ProviderSettings(name="google", kind="gemini", api_key=Secret("g-key"), options={})
    )


def vertex() -> VertexAdapter:
    return VertexAdapter(
        ProviderSettings(
            name="gcp",
            kind="vertex",
            api_key=Secret("ya29.token"),
            options={"project": "acme-prod"},
        )
    )


def gemini_body(parts: list[dict[str, Any]], finish: str | None = "STOP") -> dict[str, Any]:
    cand: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        cand["finishReason"] = finish
    return {
        "candidates": [cand],
        "usageMetadata": {
            "promptTokenCount": 40,
            "candidatesTokenCount": 12,
            "thoughtsTokenCount": 180,
            "totalTokenCount": 232,
        },
        "modelVersion": "gemini-2.5-flash",
        "responseId": "r3aSaK2nF4eRz7IPwqv0oAk",
    }


def gemini_json(adapter: GeminiAdapter, parts: list[dict[str, Any]]) -> Response:
    body = json.dumps(gemini_body(parts)).encode()
    return adapter.parse_chat(WireReply(200, {}, body), "gemini-2.5-flash")


def gemini_sse(chunks: list[list[dict[str, Any]]]) -> bytes:
    out = []
    for i, parts in enumerate(chunks):
        last = i == len(chunks) - 1
        out.append(b"data: " + json.dumps(gemini_body(parts, "STOP" if last else None)).encode())
    return b"\r\n\r\n".join(out) + b"\r\n\r\n"


def gemini_stream(raw: bytes, size: int) -> tuple[list[StreamEvent], Response]:
    req = ChatRequest([Message("user", "Where is order 987?")], stream=True)
    parser = gemini().stream_parser(req, "gemini-2.5-flash")
    events = feed_all(parser, raw, size=size)
    return events, parser.finish()


def of_type(events: list[StreamEvent], kind: str) -> list[str]:
    return [e.text for e in events if e.type == kind]


@pytest.mark.parametrize("make", [gemini, vertex], ids=["gemini", "vertex"])
def test_gemini_thought_summary_is_reasoning_not_text(make: Any) -> None:
    parts = [
        {"text": THOUGHT_1 + THOUGHT_2, "thought": True},
        {"text": "Order 987 was delivered on Monday."},
    ]
    resp = gemini_json(make(), parts)
    assert resp.text == "Order 987 was delivered on Monday."
    assert resp.reasoning == THOUGHT_1 + THOUGHT_2
    assert resp.finish_reason == "stop"
    assert resp.usage.reasoning_tokens == 180
    assert "unknown_content" not in resp.provider_details
    # a reply without thought parts has no reasoning
    plain = make().parse_chat(WireReply(200, {}, fixture("gemini", "reply_text.json")), "m")
    assert plain.text == "Your order 123 ships on Tuesday." and plain.reasoning == ""


def test_gemini_thoughts_around_a_signed_call_are_blocks_and_the_signature_round_trips() -> None:
    """Consecutive thought parts are one block; a call (or answer text) ends it. The call keeps
    its thoughtSignature exactly as before, and the thought text is never sent back."""
    parts = [
        {"text": THOUGHT_1, "thought": True},
        {"text": THOUGHT_2, "thought": True},
        {
            "functionCall": {"id": "k2v9", "name": "lookup_order", "args": {"order_id": "987"}},
            "thoughtSignature": SIGNATURE,
        },
        {"text": THOUGHT_3, "thought": True},
        {"text": "Checking now."},
    ]
    resp = gemini_json(gemini(), parts)
    assert resp.text == "Checking now."
    assert resp.reasoning == THOUGHT_1 + THOUGHT_2 + "\n\n" + THOUGHT_3
    assert resp.finish_reason == "tool_calls"
    (call,) = resp.tool_calls
    assert call.id == "k2v9" and call.arguments == {"order_id": "987"}
    assert call.provider_data == {"gemini": {"thought_signature": SIGNATURE}}
    history = [
        Message("user", "Where is order 987?"),
        resp.to_message(),
        tool_result("k2v9", {"status": "delivered"}),
    ]
    contents = gemini().build_chat(ChatRequest(history), "m").json()["contents"]
    assert contents[1]["parts"] == [
        {"text": "Checking now."},
        {
            "functionCall": {"name": "lookup_order", "args": {"order_id": "987"}, "id": "k2v9"},
            "thoughtSignature": SIGNATURE,
        },
    ]
    assert "Finding the order" not in json.dumps(contents)


@pytest.mark.parametrize("size", [1, 5, 64, 100_000])
def test_gemini_stream_emits_reasoning_events_and_joins_them(size: int) -> None:
    pieces = ["**Finding the order**\n\n", "The user wants order 987. ", "Look it up."]
    answer = ["Order 987 ", "was delivered ", "on Monday."]
    chunks = [[{"text": p, "thought": True}] for p in pieces]
    chunks += [[{"text": a}] for a in answer]
    events, resp = gemini_stream(gemini_sse(chunks), size)
    assert [e.type for e in events] == ["reasoning"] * 3 + ["text"] * 3 + ["usage"]
    assert of_type(events, "reasoning") == pieces
    assert of_type(events, "text") == answer
    assert resp.text == "".join(answer)
    assert resp.reasoning == "".join(pieces)
    # the same reply as one JSON body gives the same reasoning
    whole = [{"text": "".join(pieces), "thought": True}, {"text": "".join(answer)}]
    assert gemini_json(gemini(), whole).reasoning == resp.reasoning
    # a stream without thought parts has no reasoning events and no reasoning
    events, plain = gemini_stream(fixture("gemini", "stream_text.sse"), size)
    assert of_type(events, "reasoning") == [] and plain.reasoning == ""
    assert plain.text == "Your order shipped yesterday — arrives Friday."


def test_gemini_stream_blocks_split_by_a_call_keep_the_signature() -> None:
    call_part = {
        "functionCall": {"name": "lookup_order", "args": {"order_id": "987"}},
        "thoughtSignature": SIGNATURE,
    }
    chunks = [
        [{"text": THOUGHT_1, "thought": True}],
        [{"text": THOUGHT_2, "thought": True}, call_part],
        [{"text": THOUGHT_3, "thought": True}],
        [{"text": "Checking now."}],
    ]
    events, resp = gemini_stream(gemini_sse(chunks), 3)
    assert of_type(events, "reasoning") == [THOUGHT_1, THOUGHT_2, THOUGHT_3]
    assert of_type(events, "text") == ["Checking now."]
    assert resp.reasoning == THOUGHT_1 + THOUGHT_2 + "\n\n" + THOUGHT_3
    assert resp.text == "Checking now."
    (call,) = resp.tool_calls
    assert call.provider_data == {"gemini": {"thought_signature": SIGNATURE}}


# -- OpenAI Responses ---------------------------------------------------------------------

KIND = "openai-responses"
SUMMARY_1 = "**Looking up the order**\n\nThe user asks where order 987 is."
SUMMARY_2 = "**Answering**\n\nIt shipped Monday; answer in one sentence."
REASONING_TEXT = "Order 987: shipped Monday per the context. Keep it short."
ANSWER = "Order 987 shipped on Monday."
RESP_ID = "resp_68a1c0ffee0123456789abcdef0123456789abcdef012345"
RS_ID = "rs_68a1c0ffee0123456789abcdef0123456789abcdef0123ab"
MSG_ID = "msg_68a1c0ffee0123456789abcdef0123456789abcdef0123cd"


def responses() -> OpenAIResponsesAdapter:
    return OpenAIResponsesAdapter(ProviderSettings("openai", KIND, api_key=Secret("sk-r")))


def reasoning_item(
    summary: list[str], content: list[str] | None = None, status: str = "completed"
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "type": "reasoning",
        "id": RS_ID,
        "summary": [{"type": "summary_text", "text": s} for s in summary],
        "status": status,
    }
    if content is not None:
        item["content"] = [{"type": "reasoning_text", "text": c} for c in content]
    return item


def message_item(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": MSG_ID,
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def response_object(output: list[dict[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(fixture(KIND, "reply_text.json"))
    data.update(id=RESP_ID, model="o4-mini-2025-04-16", output=output)
    data["reasoning"] = {"effort": "medium", "summary": "auto"}
    return data


def responses_json(output: list[dict[str, Any]]) -> Response:
    body = response_object(output)
    assert spec_errors(body, "Response") == []
    return responses().parse_chat(WireReply(200, {}, json.dumps(body).encode()), "o4-mini")


def sse(events: list[dict[str, Any]]) -> bytes:
    out = []
    for n, event in enumerate(events):
        event = {"type": event["type"], "sequence_number": n, **event}
        assert spec_errors(event, "ResponseStreamEvent") == [], event
        out.append(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
    return b"".join(out)


def created() -> dict[str, Any]:
    response = response_object([])
    response.update(status="in_progress", completed_at=None, output=[])
    del response["usage"]
    return {"type": "response.created", "response": response}


def completed(output: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "response.completed", "response": response_object(output)}


def summary_events(output_index: int, index: int, deltas: list[str]) -> list[dict[str, Any]]:
    at = {"item_id": RS_ID, "output_index": output_index, "summary_index": index}
    text = "".join(deltas)
    return [
        {
            "type": "response.reasoning_summary_part.added",
            **at,
            "part": {"type": "summary_text", "text": ""},
        },
        *({"type": "response.reasoning_summary_text.delta", **at, "delta": d} for d in deltas),
        {"type": "response.reasoning_summary_text.done", **at, "text": text},
        {
            "type": "response.reasoning_summary_part.done",
            **at,
            "part": {"type": "summary_text", "text": text},
        },
    ]


def reasoning_text_events(output_index: int, deltas: list[str]) -> list[dict[str, Any]]:
    at = {"item_id": RS_ID, "output_index": output_index, "content_index": 0}
    return [
        *({"type": "response.reasoning_text.delta", **at, "delta": d} for d in deltas),
        {"type": "response.reasoning_text.done", **at, "text": "".join(deltas)},
    ]


def message_events(output_index: int, deltas: list[str]) -> list[dict[str, Any]]:
    at = {"item_id": MSG_ID, "output_index": output_index, "content_index": 0}
    text = "".join(deltas)
    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    added = copy.deepcopy(message_item(""))
    added.update(status="in_progress", content=[])
    return [
        {"type": "response.output_item.added", "output_index": output_index, "item": added},
        {"type": "response.content_part.added", **at, "part": part},
        *({"type": "response.output_text.delta", **at, "delta": d, "logprobs": []} for d in deltas),
        {"type": "response.output_text.done", **at, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **at, "part": {**part, "text": text}},
        {
            "type": "response.output_item.done",
            "output_index": output_index,
            "item": message_item(text),
        },
    ]


def responses_stream(raw: bytes, size: int = 5) -> tuple[list[StreamEvent], Response]:
    req = ChatRequest([Message("user", "Where is order 987?")], stream=True)
    parser = responses().stream_parser(req, "o4-mini")
    events = feed_all(parser, raw, size=size)
    return events, parser.finish()


def test_responses_reasoning_item_is_reasoning_not_text() -> None:
    resp = responses_json(
        [reasoning_item([SUMMARY_1, SUMMARY_2], [REASONING_TEXT]), message_item(ANSWER)]
    )
    assert resp.text == ANSWER
    assert resp.reasoning == f"{SUMMARY_1}\n\n{SUMMARY_2}\n\n{REASONING_TEXT}"
    assert resp.finish_reason == "stop"
    assert "unknown_content" not in resp.provider_details
    # a reasoning item with an empty summary (no summary asked for) gives no reasoning
    plain = responses().parse_chat(WireReply(200, {}, fixture(KIND, "reply_text.json")), "m")
    assert plain.text == "Your order 123 ships on Tuesday." and plain.reasoning == ""
    assert "unknown_content" not in plain.provider_details


def test_responses_stream_emits_summary_deltas_and_joins_them() -> None:
    s1 = ["**Looking up the order**\n\n", "The user asks ", "where order 987 is."]
    s2 = ["**Answering**\n\n", "It shipped Monday; ", "answer in one sentence."]
    answer = ["Order 987 ", "shipped ", "on Monday."]
    item = reasoning_item([SUMMARY_1, SUMMARY_2])
    events = [
        created(),
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": reasoning_item([], status="in_progress"),
        },
        *summary_events(0, 0, s1),
        *summary_events(0, 1, s2),
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        *message_events(1, answer),
        completed([item, message_item(ANSWER)]),
    ]
    out, resp = responses_stream(sse(events), size=5)
    assert [e.type for e in out] == ["reasoning"] * 6 + ["text"] * 3 + ["usage"]
    assert of_type(out, "reasoning") == s1 + s2
    assert of_type(out, "text") == answer
    assert resp.text == ANSWER
    assert resp.reasoning == "".join(s1) + "\n\n" + "".join(s2)
    assert resp.reasoning == f"{SUMMARY_1}\n\n{SUMMARY_2}"
    # a stream without reasoning has no reasoning events and no reasoning
    out, plain = responses_stream(fixture(KIND, "stream_text.sse"), size=3)
    assert of_type(out, "reasoning") == [] and plain.reasoning == ""
    assert plain.text == "Your order 123 ships on Tuesday."


def test_responses_stream_reasoning_text_deltas() -> None:
    pieces = ["Order 987: ", "shipped Monday ", "per the context. Keep it short."]
    item = reasoning_item([], ["".join(pieces)])
    events = [
        created(),
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": reasoning_item([], status="in_progress"),
        },
        *reasoning_text_events(0, pieces),
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        *message_events(1, [ANSWER]),
        completed([item, message_item(ANSWER)]),
    ]
    out, resp = responses_stream(sse(events), size=4)
    assert of_type(out, "reasoning") == pieces
    assert of_type(out, "text") == [ANSWER]
    assert resp.reasoning == REASONING_TEXT == "".join(pieces)
    assert resp.text == ANSWER


def test_responses_stream_without_reasoning_deltas_takes_the_completed_items() -> None:
    """Reasoning items that arrive only whole (no delta events) still fill the final reply."""
    item = reasoning_item([SUMMARY_1])
    events = [
        created(),
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        *message_events(1, [ANSWER]),
        completed([item, message_item(ANSWER)]),
    ]
    out, resp = responses_stream(sse(events), size=6)
    assert of_type(out, "reasoning") == []
    assert resp.reasoning == SUMMARY_1 and resp.text == ANSWER
