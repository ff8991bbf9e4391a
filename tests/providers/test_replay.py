"""A tool conversation started on one vendor continues on another.

Forward: OpenAI's reply (fixture reply_tool_calls.json, ids ``call_...``) plus the tool results
is replayed to anthropic, gemini, bedrock, cohere (and the OpenAI-family kinds); each vendor's
body must carry both calls with their arguments, and each result paired with its call by id
(Gemini: by id when it sends one, and always by name and position).
Backward: calls whose ids came from Anthropic (``toolu_...``) and from Gemini (synthesized
``call_<hex>`` ids for a reply without ids) go to openai, openai-responses and mistral, where
Mistral's 9-character ids must stay paired between the call and its result.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from portal.contracts.messages import Message, ToolCall
from portal.contracts.request import ChatRequest
from portal.errors import ConfigError
from portal.providers.adapter import Adapter
from portal.providers.registry import adapter_class
from portal.providers.settings import ProviderSettings
from portal.secret import Secret
from portal.wire import WireReply
from tests.providers._cases import LOOKUP, WEATHER, fixture, reply

RESULTS = {"lookup_order": {"status": "shipped", "eta": "Tuesday"}, "get_weather": {"temp_c": 18}}
MODEL = {"bedrock": "anthropic.claude-3-5-sonnet-20240620-v1:0"}
OPTIONS: dict[str, dict[str, Any]] = {
    "bedrock": {"region_name": "us-east-1", "access_key_id": "AKID", "secret_access_key": "s"},
    "openai-compatible": {"preset": "vllm"},
    "vertex": {"project": "acme-prod", "location": "us-central1"},
}
BASE = {"azure-openai": "https://acme.openai.azure.com"}


def make(kind: str) -> Adapter:
    try:
        cls = adapter_class(kind)
    except ConfigError as exc:
        pytest.skip(f"{kind}: adapter not importable yet ({exc})")
    return cls(
        ProviderSettings(
            kind, kind, api_key=Secret("k"), base_url=BASE.get(kind), options=OPTIONS.get(kind, {})
        )
    )


def conversation(calls: list[ToolCall]) -> list[Message]:
    return [
        Message("system", "You are the ACME support agent."),
        Message("user", "Where is order 123, and what's the weather in Paris?"),
        Message("assistant", None, calls),
        *[
            Message("tool", json.dumps(RESULTS[c.name]), tool_call_id=c.id, name=c.name)
            for c in calls
        ],
        Message("user", "Thanks! Summarize."),
    ]


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        item = value[0]  # one content block: {"type": "text", "text": ...}, {"json": ...}, ...
        for key in ("json", "text", "data"):
            if key in item:
                return _json(item[key])
        if isinstance(item.get("document"), dict):
            return _json(item["document"].get("data"))
    return value


def extract(
    kind: str, body: dict[str, Any]
) -> tuple[list[tuple[str | None, str, Any]], list[tuple[str | None, str | None, Any]]]:
    """(calls as (id, name, args), results as (id, name, value)) in the vendor's body."""
    calls: list[tuple[str | None, str, Any]] = []
    results: list[tuple[str | None, str | None, Any]] = []
    if kind == "openai-responses":
        for item in body["input"]:
            if item.get("type") == "function_call":
                calls.append((item["call_id"], item["name"], json.loads(item["arguments"])))
            elif item.get("type") == "function_call_output":
                results.append((item["call_id"], None, _json(item["output"])))
        return calls, results
    turns = body.get("messages") or body.get("contents") or []
    for turn in turns:
        for call in turn.get("tool_calls") or []:  # openai family, cohere
            fn = call["function"]
            calls.append((call["id"], fn["name"], _json(fn["arguments"])))
        if turn.get("role") == "tool":
            results.append((turn["tool_call_id"], turn.get("name"), _json(turn["content"])))
        blocks = (
            turn.get("content")
            if isinstance(turn.get("content"), list)
            else turn.get("parts") or []
        )
        for b in blocks:
            if not isinstance(b, dict):
                continue
            if b.get("type") == "tool_use":  # anthropic
                calls.append((b["id"], b["name"], b["input"]))
            elif b.get("type") == "tool_result":
                results.append((b["tool_use_id"], None, _json(b["content"])))
            elif "toolUse" in b:  # bedrock
                calls.append(
                    (b["toolUse"]["toolUseId"], b["toolUse"]["name"], b["toolUse"]["input"])
                )
            elif "toolResult" in b:
                results.append(
                    (b["toolResult"]["toolUseId"], None, _json(b["toolResult"]["content"]))
                )
            elif "functionCall" in b:  # gemini
                fc = b["functionCall"]
                calls.append((fc.get("id"), fc["name"], fc.get("args", {})))
            elif "functionResponse" in b:
                fr = b["functionResponse"]
                results.append((fr.get("id"), fr["name"], fr.get("response")))
    return calls, results


def assert_paired(kind: str, body: dict[str, Any], calls: list[ToolCall]) -> None:
    wire_calls, wire_results = extract(kind, body)
    assert [(n, a) for _, n, a in wire_calls] == [(c.name, c.arguments) for c in calls], kind
    assert len(wire_results) == len(calls), f"{kind}: {wire_results}"
    ids = [i for i, _, _ in wire_calls if i is not None]  # Vertex sends no ids: pairs by name
    assert len(set(ids)) == len(ids), f"{kind}: call ids collide: {ids}"
    for (call_id, name, _), (result_id, result_name, value) in zip(
        wire_calls, wire_results, strict=True
    ):
        if result_id is not None or call_id is not None:
            assert result_id == call_id, f"{kind}: result not paired with its call"
        if result_name is not None:
            assert result_name == name
        # the result reaches the vendor as its JSON value (or the JSON text of it)
        assert (
            _json(value) == RESULTS[name]
            or value == {"output": RESULTS[name]}
            or (isinstance(value, dict) and value.get("result") == RESULTS[name])
        ), f"{kind}: result of {name} is {value!r}"


TARGETS = [
    "anthropic",
    "gemini",
    "vertex",
    "bedrock",
    "cohere",
    "mistral",
    "openai-responses",
    "azure-openai",
    "openai-compatible",
    "openai",
]


def openai_calls() -> list[ToolCall]:
    adapter = make("openai")
    return adapter.parse_chat(reply("openai", "reply_tool_calls.json"), "gpt-4o").tool_calls


@pytest.mark.parametrize("target", TARGETS)
def test_openai_conversation_replays_on(target: str) -> None:
    calls = openai_calls()
    assert calls[0].id.startswith("call_")
    adapter = make(target)
    req = ChatRequest(conversation(calls), tools=[LOOKUP, WEATHER])
    body = adapter.build_chat(req, MODEL.get(target, "m")).json()
    assert_paired(target, body, calls)
    if target not in ("mistral", "gemini", "vertex"):
        # vendors without id constraints keep OpenAI's ids verbatim (or a safe mapping of them)
        ids = [i for i, _, _ in extract(target, body)[0]]
        assert all(i for i in ids)


def anthropic_calls() -> list[ToolCall]:
    adapter = make("anthropic")
    calls = adapter.parse_chat(
        WireReply(200, {}, fixture("anthropic", "tool_use.json")), "c"
    ).tool_calls
    assert calls and all(c.id.startswith("toolu_") for c in calls)
    return calls


def gemini_calls() -> list[ToolCall]:
    adapter = make("gemini")
    parser = adapter.stream_parser(ChatRequest([Message("user", "q")], stream=True), "g")
    parser.feed(fixture("gemini", "stream_tools.sse"))
    calls = parser.finish().tool_calls
    assert calls and all(c.id for c in calls)
    return calls


@pytest.mark.parametrize("source", ["anthropic", "gemini"])
@pytest.mark.parametrize("target", ["openai", "openai-responses", "mistral", "azure-openai"])
def test_foreign_ids_replay_on_openai_family(source: str, target: str) -> None:
    calls = anthropic_calls() if source == "anthropic" else gemini_calls()
    for c in calls:
        RESULTS.setdefault(c.name, RESULTS.get(c.name, {"ok": True}))
    adapter = make(target)
    body = adapter.build_chat(ChatRequest(conversation(calls), tools=[LOOKUP, WEATHER]), "m").json()
    wire_calls, wire_results = extract(target, body)
    assert [(n, a) for _, n, a in wire_calls] == [(c.name, c.arguments) for c in calls]
    assert [i for i, _, _ in wire_calls] == [i for i, _, _ in wire_results]  # paired by id
    if target == "mistral":
        assert all(len(i or "") == 9 and (i or "").isalnum() for i, _, _ in wire_calls)
        assert len({i for i, _, _ in wire_calls}) == len(calls)
    else:
        assert [i for i, _, _ in wire_calls] == [c.id for c in calls]


def test_mistral_reply_ids_continue_on_openai_and_back() -> None:
    mistral = make("mistral")
    calls = mistral.parse_chat(reply("mistral", "reply_tool_calls.json"), "m").tool_calls
    assert [c.id for c in calls] == ["D681PevKs", "g7YhQ2mZp"]
    req = ChatRequest(conversation(calls), tools=[LOOKUP, WEATHER])
    for kind in ("openai", "mistral"):
        wire_calls, wire_results = extract(kind, make(kind).build_chat(req, "m").json())
        assert [i for i, _, _ in wire_calls] == ["D681PevKs", "g7YhQ2mZp"]  # native ids untouched
        assert [i for i, _, _ in wire_results] == ["D681PevKs", "g7YhQ2mZp"]


@pytest.mark.parametrize("target", [t for t in TARGETS if t not in ("gemini", "vertex")])
def test_gemini_thought_signature_does_not_leak_to_other_vendors(target: str) -> None:
    """A Gemini call carries its thoughtSignature in provider_data; other vendors never see it."""
    calls = make("gemini").parse_chat(reply("gemini", "reply_tool_calls.json"), "g").tool_calls
    signature = (calls[0].provider_data or {})["gemini"]["thought_signature"]
    wire = make(target).build_chat(
        ChatRequest(conversation(calls), tools=[LOOKUP, WEATHER]), MODEL.get(target, "m")
    )
    raw = (wire.body or b"").decode()
    assert signature not in raw
    assert "thought_signature" not in raw and "thoughtSignature" not in raw
    assert "provider_data" not in raw
