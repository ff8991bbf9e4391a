"""Values a vendor adds after portal shipped.

- An unknown finish reason is kept raw in `raw_finish_reason` and mapped to the documented
  default ("stop" when text came back).
- An unknown content block / part / output item is kept as the vendor sent it in
  ``provider_details["unknown_content"]``, in reply order, and never mixed into the text;
  reasoning blocks (known, deliberately omitted) are neither in the text nor kept there.
- In a stream, unknown events (and the events of an unknown block) are kept in the final
  reply's ``provider_details["unknown_events"]``, capped at `MAX_UNKNOWN_EVENTS`, and the text
  is the same as without them.

One case per wire API. OpenAI's and Azure's chat replies have no typed content blocks
(``message.content`` is a string, stream deltas carry string ``content``), so only the finish
reason applies to them; Mistral (reasoning models) sends ``content`` as a list of typed
chunks, and OpenAI-compatible servers share that parser.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from portal.providers.unknown import MAX_UNKNOWN_EVENTS
from portal.wire import WireReply
from tests.reliability import _vendors as v

TEXT = "Your order 123 ships on Tuesday."
NEW = "brand_new_reason_2031"
#: kinds whose chat wire format has no typed content blocks (see the module docstring)
UNTYPED = ("openai", "azure-openai")

Blocks = list[dict[str, Any]]


def _openai(d: dict[str, Any]) -> Blocks:
    d["choices"][0]["finish_reason"] = NEW
    return []


def _mistral(d: dict[str, Any]) -> Blocks:
    d["choices"][0]["finish_reason"] = NEW
    first = {"type": "brand_new_chunk", "payload": {"x": 1}}
    last = {"type": "brand_new_chunk", "payload": {"x": 2}}
    d["choices"][0]["message"]["content"] = [
        first,
        {"type": "thinking", "thinking": [{"type": "text", "text": "Let me check the order."}]},
        {"type": "text", "text": TEXT},
        last,
    ]
    return [first, last]


def _anthropic(d: dict[str, Any]) -> Blocks:
    d["stop_reason"] = NEW
    first = {"type": "brand_new_block", "payload": {"x": 1}}
    last = {"type": "brand_new_block", "payload": {"x": 2}}
    d["content"].insert(0, {"type": "thinking", "thinking": "Let me check.", "signature": "c2ln"})
    d["content"].insert(0, first)
    d["content"].append(last)
    return [first, last]


def _gemini(d: dict[str, Any]) -> Blocks:
    d["candidates"][0]["finishReason"] = NEW
    first = {"brandNewPart": {"x": 1}}
    last = {"executableCode": {"language": "PYTHON", "code": "print(1)"}}
    parts = d["candidates"][0]["content"]["parts"]
    parts.insert(0, {"text": "Let me check.", "thought": True})
    parts.insert(0, first)
    parts.append({"thoughtSignature": "c2ln"})  # metadata only: nothing to keep
    parts.append(last)
    return [first, last]


def _bedrock(d: dict[str, Any]) -> Blocks:
    d["stopReason"] = NEW
    first = {"brandNewBlock": {"x": 1}}
    last = {"brandNewBlock": {"x": 2}}
    content = d["output"]["message"]["content"]
    content.insert(0, {"reasoningContent": {"reasoningText": {"text": "Let me check."}}})
    content.insert(0, first)
    content.append(last)
    return [first, last]


def _cohere(d: dict[str, Any]) -> Blocks:
    d["finish_reason"] = NEW
    first = {"type": "brand_new", "x": 1}
    last = {"type": "brand_new", "text": "not part of the answer"}
    content = d["message"]["content"]
    content.insert(0, {"type": "thinking", "thinking": "Let me check."})
    content.insert(0, first)
    content.append(last)
    return [first, last]


def _responses(d: dict[str, Any]) -> Blocks:
    first = {"type": "brand_new_item", "id": "x1"}
    part = {"type": "brand_new_part", "text": "not part of the answer"}
    d["output"].insert(0, first)
    message = next(item for item in d["output"] if item["type"] == "message")
    message["content"].append(part)
    return [first, part]


MUTATE: dict[str, Callable[[dict[str, Any]], Blocks]] = {
    "openai": _openai,
    "azure-openai": _openai,
    "mistral": _mistral,
    "openai-compatible": _mistral,
    "anthropic": _anthropic,
    "gemini": _gemini,
    "vertex": _gemini,
    "bedrock": _bedrock,
    "cohere": _cohere,
    "openai-responses": _responses,
}


@pytest.mark.parametrize("kind", v.KINDS)
def test_unknown_values_keep_raw_and_default(kind: str) -> None:
    path = v.FIXTURES / kind / "reply_text.json"
    doc = json.loads(path.read_bytes())
    unknown = MUTATE[kind](doc)
    assert bool(unknown) == (kind not in UNTYPED)
    sent = json.loads(json.dumps(unknown))  # a copy: the parser must keep them unchanged
    resp = v.make_adapter(kind).parse_chat(
        WireReply(200, {}, json.dumps(doc).encode()), v.model_of(kind)
    )
    assert resp.text == TEXT
    assert resp.finish_reason == "stop"
    assert resp.tool_calls == []
    if kind != "openai-responses":  # its finish reason is derived from status, unchanged here
        assert resp.raw_finish_reason == NEW
    if unknown:
        assert resp.provider_details["unknown_content"] == sent
    else:
        assert "unknown_content" not in resp.provider_details


# --------------------------------------------------------------------------- streams

Events = list[tuple[str, str]]


def _msg(name: str, obj: dict[str, Any]) -> tuple[str, str]:
    return name, json.dumps(obj)


def _s_openai_format(events: Events) -> tuple[Events, Blocks]:
    """A chunk's string ``content`` becomes typed chunks: the text, a reasoning chunk and an
    unknown one (Mistral's reasoning models stream ``delta.content`` this way)."""
    unknown = {"type": "brand_new_chunk", "payload": {"x": 1}}
    out = list(events)
    for i, (name, data) in enumerate(out):
        obj = json.loads(data) if data.startswith("{") else {}
        choices = obj.get("choices") or []
        content = choices[0].get("delta", {}).get("content") if choices else None
        if isinstance(content, str) and content:
            choices[0]["delta"]["content"] = [
                {"type": "thinking", "thinking": [{"type": "text", "text": "hmm"}]},
                unknown,
                {"type": "text", "text": content},
            ]
            out[i] = _msg(name, obj)
            return out, [unknown]
    raise AssertionError("fixture has no text chunk")


def _s_anthropic(events: Events) -> tuple[Events, Blocks]:
    new_event = {"type": "brand_new_event", "x": 1}
    start = {"type": "content_block_start", "index": 7, "content_block": {"type": "brand_new"}}
    # a block portal does not know, with tool-like deltas: kept, never a tool call
    delta = {
        "type": "content_block_delta",
        "index": 7,
        "delta": {"type": "input_json_delta", "partial_json": '{"q": 1}'},
    }
    new_delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "brand_new_delta"}}
    thinking = [
        {"type": "content_block_start", "index": 8, "content_block": {"type": "thinking"}},
        {"type": "content_block_delta", "index": 8, "delta": {"type": "thinking_delta"}},
    ]
    kept = [new_event, start, delta, new_delta]
    inserted = [_msg(str(e["type"]), e) for e in [*kept[:3], *thinking, new_delta]]
    return [events[0], *inserted, *events[1:]], kept


def _s_gemini(events: Events) -> tuple[Events, Blocks]:
    unknown = {"brandNewPart": {"x": 1}}
    chunk = json.loads(events[0][1])
    chunk["candidates"][0]["content"]["parts"] = [
        {"text": "pondering", "thought": True},
        unknown,
    ]
    chunk["candidates"][0].pop("finishReason", None)
    return [events[0], _msg(events[0][0], chunk), *events[1:]], [unknown]


def _cohere_delta(content: dict[str, Any]) -> dict[str, Any]:
    return {"message": {"content": content}}


def _s_cohere(events: Events) -> tuple[Events, Blocks]:
    new_event = {"type": "brand-new-event", "x": 1}
    msg = _cohere_delta
    start = {"type": "content-start", "index": 3, "delta": msg({"type": "brand_new"})}
    # an item of an unknown type may carry "text": it is not part of the answer
    delta = {"type": "content-delta", "index": 3, "delta": msg({"text": "not the answer"})}
    thinking = [
        {"type": "content-start", "index": 4, "delta": msg({"type": "thinking"})},
        {"type": "content-delta", "index": 4, "delta": msg({"thinking": "hmm"})},
    ]
    kept = [new_event, start, delta]
    inserted = [_msg(str(e["type"]), e) for e in [*kept, *thinking]]
    return [events[0], *inserted, *events[1:]], kept


def _s_responses(events: Events) -> tuple[Events, Blocks]:
    unknown = {"type": "response.brand_new_event", "sequence_number": 99}
    documented = {  # in the spec's union, not acted on: not kept
        "type": "response.reasoning_summary_text.delta",
        "sequence_number": 98,
        "item_id": "rs_1",
        "output_index": 0,
        "summary_index": 0,
        "delta": "hmm",
    }
    inserted = [_msg(str(e["type"]), e) for e in (documented, unknown)]
    return [events[0], *inserted, *events[1:]], [unknown]


STREAM_MUTATE: dict[str, Callable[[Events], tuple[Events, Blocks]]] = {
    "anthropic": _s_anthropic,
    "cohere": _s_cohere,
    "gemini": _s_gemini,
    "vertex": _s_gemini,
    "mistral": _s_openai_format,
    "openai-compatible": _s_openai_format,
    "openai-responses": _s_responses,
}


def _run_sse(kind: str, events: Events) -> Any:
    parser = v.make_adapter(kind).stream_parser(v.stream_request(), v.model_of(kind))
    parser.feed(v.encode_sse(events))
    return parser.finish()


def _fixture(kind: str) -> Events:
    dec = v.SSEDecoder()
    raw = (v.FIXTURES / kind / "stream_text.sse").read_bytes()
    return [(e.event, e.data) for e in dec.feed(raw) + dec.close()]


@pytest.mark.parametrize("kind", sorted(STREAM_MUTATE))
def test_stream_keeps_unknown_events(kind: str) -> None:
    events = _fixture(kind)
    plain = _run_sse(kind, events)
    assert plain.text
    assert "unknown_events" not in plain.provider_details
    mutated, kept = STREAM_MUTATE[kind](events)
    resp = _run_sse(kind, mutated)
    assert resp.text == plain.text
    assert resp.tool_calls == []
    assert resp.finish_reason == plain.finish_reason
    assert resp.provider_details["unknown_events"] == kept
    assert "unknown_events_dropped" not in resp.provider_details


def test_stream_unknown_events_openai_untyped_kinds_keep_nothing() -> None:
    """OpenAI's and Azure's chunks have no typed blocks: their fixture streams parse with
    nothing kept (the typed-chunk path is the Mistral/compatible case above)."""
    for kind in UNTYPED:
        resp = _run_sse(kind, _fixture(kind))
        assert resp.text
        assert "unknown_events" not in resp.provider_details


def test_stream_unknown_events_are_capped() -> None:
    """An endless run of unknown events keeps `MAX_UNKNOWN_EVENTS` of them and counts the
    rest, so memory stays bounded; the text is unaffected."""
    events = _fixture("anthropic")
    extra = MAX_UNKNOWN_EVENTS + 57
    flood = [_msg("brand_new_event", {"type": "brand_new_event", "n": n}) for n in range(extra)]
    resp = _run_sse("anthropic", [events[0], *flood, *events[1:]])
    assert resp.text == _run_sse("anthropic", events).text
    kept = resp.provider_details["unknown_events"]
    assert [e["n"] for e in kept] == list(range(MAX_UNKNOWN_EVENTS))
    assert resp.provider_details["unknown_events_dropped"] == 57


def test_bedrock_stream_keeps_unknown_events() -> None:
    doc = json.loads((v.FIXTURES / "bedrock" / "stream_text.json").read_bytes())
    frames = [(f["event"], f["payload"]) for f in doc]
    new_event = {"x": 1}
    start = {"contentBlockIndex": 5, "start": {"brandNewStart": {"x": 1}}}
    # deltas of a block portal does not know: kept, never a tool call
    delta = {"contentBlockIndex": 5, "delta": {"toolUse": {"input": '{"q": 1}'}}}
    new_delta = {"contentBlockIndex": 0, "delta": {"brandNewDelta": {"x": 1}}}
    reasoning = {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "hmm"}}}
    inserted = [
        ("brandNewEvent", new_event),
        ("contentBlockStart", start),
        ("contentBlockDelta", delta),
        ("contentBlockDelta", reasoning),
        ("contentBlockDelta", new_delta),
    ]

    def run(pairs: list[tuple[str, Any]]) -> Any:
        adapter = v.make_adapter("bedrock")
        parser = adapter.stream_parser(v.stream_request(), v.model_of("bedrock"))
        raw = b"".join(v.bedrock_event(name, json.dumps(p).encode()) for name, p in pairs)
        parser.feed(raw)
        return parser.finish()

    plain = run(frames)
    resp = run([frames[0], *inserted, *frames[1:]])
    assert plain.text and resp.text == plain.text
    assert resp.tool_calls == []
    assert resp.provider_details["unknown_events"] == [
        {"brandNewEvent": new_event},
        {"contentBlockStart": start},
        {"contentBlockDelta": delta},
        {"contentBlockDelta": new_delta},
    ]
