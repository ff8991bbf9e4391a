"""The model's visible reasoning: ``Response.reasoning`` and "reasoning" stream events, never
part of the answer text, for the OpenAI-format adapters (Mistral, OpenAI-compatible servers)
and Cohere.

Fixtures were written by hand from these documented shapes:

- Mistral reasoning models: ``message.content`` / ``delta.content`` is a list of chunks; a
  ``ThinkChunk`` is ``{"type": "thinking", "thinking": [TextChunk | ReferenceChunk | ...]}``
  (mistralai/client-python ``models/thinkchunk.py``, docs.mistral.ai/capabilities/reasoning);
  while thinking, a stream's ``delta.content`` is a list holding a ThinkChunk, afterwards plain
  strings, and the switch may carry a ThinkChunk and the first TextChunk in one list
  (client-python ``examples/mistral/chat/reasoning_with_streaming.py``).
- DeepSeek reasoning models: ``reasoning_content`` beside ``content`` on ``choices[].message``
  and on ``choices[].delta`` (api-docs.deepseek.com/guides/reasoning_model).
- Groq with ``reasoning_format: parsed``: a ``reasoning`` string on the message and the delta
  (groq/groq-python ``types/chat/chat_completion_message.py`` / ``chat_completion_chunk.py``);
  OpenRouter: "reasoning tokens will appear in the reasoning field of each message"
  (openrouter.ai/docs/use-cases/reasoning-tokens).
- Cohere v2: content items ``{"type": "thinking", "thinking": "..."}``; a stream's
  content-start carries ``{"type": "thinking"}`` and its content-deltas
  ``delta.message.content.thinking`` (cohere-ai/cohere-python
  ``types/assistant_message_response_content_item.py``,
  ``chat_content_start_event_delta_message_content.py``,
  ``chat_content_delta_event_delta_message_content.py``; docs.cohere.com/docs/reasoning).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx2

import portal
from portal.contracts.messages import Message
from portal.contracts.request import ChatRequest
from portal.contracts.responses import StreamEvent
from portal.providers.cohere import CohereAdapter
from portal.providers.mistral import MistralAdapter
from portal.providers.openai import OpenAIAdapter
from portal.providers.openai_compatible import OpenAICompatibleAdapter
from portal.providers.settings import ProviderSettings
from portal.secret import Secret
from portal.wire import WireReply
from tests.providers._cases import feed_all, fixture, reply

REQ = ChatRequest([Message("user", "Is 9.11 greater than 9.8?")], stream=True)
ANSWER = "No: 9.8 is greater than 9.11."
THOUGHT_1 = "Compare the integer parts: both are 9."
THOUGHT_2 = "Then the tenths: 8 > 1, so 9.8 is larger."


def mistral() -> MistralAdapter:
    return MistralAdapter(ProviderSettings("mistral", "mistral", api_key=Secret("mk")))


def deepseek() -> OpenAICompatibleAdapter:
    return OpenAICompatibleAdapter(
        ProviderSettings(
            "deepseek",
            "openai-compatible",
            base_url="https://api.deepseek.com/v1",
            api_key=Secret("dk"),
        )
    )


def groq() -> OpenAICompatibleAdapter:
    return OpenAICompatibleAdapter(
        ProviderSettings(
            "groq",
            "openai-compatible",
            base_url="https://api.groq.com/openai/v1",
            api_key=Secret("gk"),
        )
    )


def cohere() -> CohereAdapter:
    return CohereAdapter(ProviderSettings("cohere", "cohere", api_key=Secret("ck")))


def completion(message: dict[str, Any], model: str = "m") -> WireReply:
    body = {
        "id": "cmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 40, "total_tokens": 52},
    }
    return WireReply(200, {}, json.dumps(body).encode())


def sse(chunks: list[dict[str, Any]], done: bool = True) -> bytes:
    text = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks)
    return (text + ("data: [DONE]\n\n" if done else "")).encode()


def chunk(delta: dict[str, Any], finish: str | None = None, model: str = "m") -> dict[str, Any]:
    return {
        "id": "cmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def think(*texts: str) -> dict[str, Any]:
    """A Mistral ThinkChunk holding text chunks."""
    return {"type": "thinking", "thinking": [{"type": "text", "text": t} for t in texts]}


def joined(events: list[StreamEvent], kind: str) -> str:
    return "".join(e.text for e in events if e.type == kind)


def assert_reasoning_first(events: list[StreamEvent]) -> None:
    """Every reasoning event comes before the first text event (the one TTFT is timed on)."""
    kinds = [e.type for e in events if e.type in ("text", "reasoning")]
    first_text = kinds.index("text")
    assert "reasoning" not in kinds[first_text:]
    assert kinds[:first_text] and set(kinds[:first_text]) == {"reasoning"}


# ------------------------------------------------------------------------------- Mistral


def test_mistral_thinking_parts_are_reasoning_not_text() -> None:
    message = {
        "role": "assistant",
        "content": [
            think("Compare the integer parts: ", "both are 9."),
            {  # a thinking chunk may cite references: they carry no text
                "type": "thinking",
                "thinking": [
                    {"type": "reference", "reference_ids": [1]},
                    {"type": "text", "text": THOUGHT_2},
                ],
            },
            {"type": "text", "text": ANSWER},
        ],
    }
    resp = mistral().parse_chat(completion(message, "magistral-medium-2509"), "m")
    assert resp.text == ANSWER
    assert resp.reasoning == f"{THOUGHT_1}\n\n{THOUGHT_2}"
    assert "unknown_content" not in resp.provider_details
    assert resp.to_message().content == ANSWER  # reasoning is not part of the assistant turn


def test_thinking_part_of_an_undocumented_shape_is_kept_raw() -> None:
    """Only Mistral's documented ThinkChunk (``thinking`` is a list) is read as reasoning; a
    ``thinking`` string is not that shape: kept as sent, never guessed at."""
    odd = {"type": "thinking", "thinking": "free text"}
    message = {"role": "assistant", "content": [odd, {"type": "text", "text": ANSWER}]}
    resp = mistral().parse_chat(completion(message), "m")
    assert (resp.text, resp.reasoning) == (ANSWER, "")
    assert resp.provider_details["unknown_content"] == [odd]


def test_mistral_thinking_chunks_stream_as_reasoning_events() -> None:
    raw = sse(
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": [think("Compare the integer ")]}),
            chunk({"content": [think("parts: both are 9.")]}),
            # the switch: the closing thinking piece and the first answer piece in one list
            chunk({"content": [think(""), {"type": "text", "text": "No: 9.8 "}]}),
            chunk({"content": "is greater "}),
            chunk({"content": "than 9.11."}, finish="stop"),
            {
                "id": "cmpl-1",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "m",
                "choices": [],
                "usage": {"prompt_tokens": 12, "completion_tokens": 40, "total_tokens": 52},
            },
        ]
    )
    parser = mistral().stream_parser(REQ, "magistral-medium-2509")
    events = feed_all(parser, raw, size=5)
    assert joined(events, "reasoning") == THOUGHT_1
    assert joined(events, "text") == ANSWER
    assert_reasoning_first(events)
    resp = parser.finish()
    assert resp.text == ANSWER and resp.reasoning == THOUGHT_1
    assert "unknown_events" not in resp.provider_details


# ------------------------------------------------------------------------------ DeepSeek


def test_deepseek_reasoning_content_json() -> None:
    message = {
        "role": "assistant",
        "content": ANSWER,
        "reasoning_content": f"{THOUGHT_1} {THOUGHT_2}",
    }
    resp = deepseek().parse_chat(completion(message, "deepseek-reasoner"), "deepseek-reasoner")
    assert resp.text == ANSWER
    assert resp.reasoning == f"{THOUGHT_1} {THOUGHT_2}"
    assert resp.finish_reason == "stop"


def deepseek_stream() -> bytes:
    reasoning = ["Compare the ", "integer parts: ", "both are 9."]
    content = ["No: 9.8 ", "is greater ", "than 9.11."]
    chunks = [chunk({"role": "assistant", "content": None, "reasoning_content": ""})]
    chunks += [chunk({"content": None, "reasoning_content": r}) for r in reasoning]
    chunks += [chunk({"content": c, "reasoning_content": None}) for c in content]
    chunks.append(chunk({"content": "", "reasoning_content": None}, finish="stop"))
    chunks.append(
        {
            "id": "cmpl-1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "deepseek-reasoner",
            "choices": [],
            "usage": {
                "prompt_tokens": 12,
                "completion_tokens": 40,
                "total_tokens": 52,
                "completion_tokens_details": {"reasoning_tokens": 30},
            },
        }
    )
    return sse(chunks)


def test_deepseek_reasoning_content_stream() -> None:
    parser = deepseek().stream_parser(REQ, "deepseek-reasoner")
    events = feed_all(parser, deepseek_stream(), size=6)
    # text events (what TTFT and "delivered" count) carry the answer's content only
    assert [e.text for e in events if e.type == "text"] == ["No: 9.8 ", "is greater ", "than 9.11."]
    assert joined(events, "reasoning") == THOUGHT_1
    assert_reasoning_first(events)
    resp = parser.finish()
    assert resp.text == ANSWER and resp.reasoning == THOUGHT_1
    assert resp.usage.reasoning_tokens == 30


def test_groq_reasoning_field_json_and_stream() -> None:
    message = {"role": "assistant", "content": ANSWER, "reasoning": THOUGHT_1}
    resp = groq().parse_chat(completion(message), "qwen/qwen3-32b")
    assert (resp.text, resp.reasoning) == (ANSWER, THOUGHT_1)

    raw = sse(
        [
            chunk({"role": "assistant", "reasoning": "Compare the integer "}),
            chunk({"reasoning": "parts: both are 9."}),
            chunk({"content": ANSWER}, finish="stop"),
        ]
    )
    parser = groq().stream_parser(REQ, "qwen/qwen3-32b")
    events = feed_all(parser, raw, size=4)
    assert joined(events, "reasoning") == THOUGHT_1 and joined(events, "text") == ANSWER
    assert parser.finish().reasoning == THOUGHT_1


def test_both_reasoning_fields_are_read_once() -> None:
    """A server that fills ``reasoning_content`` and ``reasoning`` with the same text."""
    message = {
        "role": "assistant",
        "content": ANSWER,
        "reasoning_content": THOUGHT_1,
        "reasoning": THOUGHT_1,
    }
    assert deepseek().parse_chat(completion(message), "m").reasoning == THOUGHT_1
    raw = sse([chunk({"reasoning_content": THOUGHT_1, "reasoning": THOUGHT_1}, finish="stop")])
    parser = deepseek().stream_parser(REQ, "m")
    events = feed_all(parser, raw)
    assert joined(events, "reasoning") == THOUGHT_1
    assert parser.finish().reasoning == THOUGHT_1


def test_reasoning_after_answer_text_is_a_new_block() -> None:
    raw = sse(
        [
            chunk({"reasoning_content": THOUGHT_1}),
            chunk({"content": "Checking. "}),
            chunk({"reasoning_content": THOUGHT_2}),
            chunk({"content": ANSWER}, finish="stop"),
        ]
    )
    parser = deepseek().stream_parser(REQ, "m")
    events = feed_all(parser, raw)
    assert [e.text for e in events if e.type == "reasoning"] == [THOUGHT_1, THOUGHT_2]
    resp = parser.finish()
    assert resp.reasoning == f"{THOUGHT_1}\n\n{THOUGHT_2}"
    assert resp.text == f"Checking. {ANSWER}"


def test_deepseek_stream_through_the_client_keeps_ttft_on_the_answer() -> None:
    """The router passes reasoning events to the caller; TTFT is timed on the first answer
    text, which arrives after a pause that follows the reasoning."""
    pause = 0.15
    body = deepseek_stream()
    cut = body.index(b'"content": "No: 9.8 "')
    cut = body.rindex(b"data: ", 0, cut)

    def pieces() -> Iterator[bytes]:
        yield body[:cut]  # the reasoning
        time.sleep(pause)
        yield body[cut:]  # the answer

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=pieces(), headers={"content-type": "text/event-stream"})

    config = {
        "portal": {"ledger": "none"},
        "providers": {
            "ds": {
                "kind": "openai-compatible",
                "base_url": "https://api.deepseek.com/v1",
                "api_key": "sk-test",
            }
        },
        "features": {"f": {"primary": "ds:deepseek-reasoner", "retry": {"attempts": 1}}},
    }
    with portal.Client(config, ledger=None, transports={"ds": httpx2.MockTransport(handler)}) as c:
        events = list(c.stream(feature="f", messages=[portal.user("9.11 or 9.8?")]))
    assert joined(events, "reasoning") == THOUGHT_1
    assert joined(events, "text") == ANSWER
    assert_reasoning_first(events)
    final = events[-1].response
    assert final is not None
    assert (final.text, final.reasoning) == (ANSWER, THOUGHT_1)
    assert final.ttft_ms is not None and final.ttft_ms >= pause * 1000


# -------------------------------------------------------------------------------- Cohere


def test_cohere_thinking_items_json() -> None:
    body = {
        "id": "c-1",
        "finish_reason": "COMPLETE",
        "message": {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": THOUGHT_1},
                {"type": "thinking", "thinking": THOUGHT_2},
                {"type": "text", "text": ANSWER},
            ],
        },
        "usage": {
            "billed_units": {"input_tokens": 12, "output_tokens": 40},
            "tokens": {"input_tokens": 300, "output_tokens": 40},
        },
    }
    resp = cohere().parse_chat(
        WireReply(200, {}, json.dumps(body).encode()), "command-a-reasoning-08-2025"
    )
    assert resp.text == ANSWER
    assert resp.reasoning == f"{THOUGHT_1}\n\n{THOUGHT_2}"
    assert "unknown_content" not in resp.provider_details


def cohere_event(obj: dict[str, Any]) -> str:
    return f"event: {obj['type']}\ndata: {json.dumps(obj)}\n\n"


def content(value: dict[str, Any]) -> dict[str, Any]:
    return {"message": {"content": value}}


def test_cohere_thinking_stream() -> None:
    events_in = [
        {"type": "message-start", "id": "c-1", "delta": {"message": {"role": "assistant"}}},
        {"type": "content-start", "index": 0, "delta": content({"type": "thinking"})},
        {"type": "content-delta", "index": 0, "delta": content({"thinking": "Compare the "})},
        {"type": "content-delta", "index": 0, "delta": content({"thinking": "integer parts: "})},
        {"type": "content-delta", "index": 0, "delta": content({"thinking": "both are 9."})},
        {"type": "content-end", "index": 0},
        {"type": "content-start", "index": 1, "delta": content({"type": "thinking"})},
        {"type": "content-delta", "index": 1, "delta": content({"thinking": THOUGHT_2})},
        {"type": "content-end", "index": 1},
        {"type": "content-start", "index": 2, "delta": content({"type": "text", "text": ""})},
        {"type": "content-delta", "index": 2, "delta": content({"text": "No: 9.8 "})},
        {"type": "content-delta", "index": 2, "delta": content({"text": "is greater than 9.11."})},
        {"type": "content-end", "index": 2},
        {
            "type": "message-end",
            "delta": {
                "finish_reason": "COMPLETE",
                "usage": {"billed_units": {"input_tokens": 12, "output_tokens": 40}},
            },
        },
    ]
    raw = ("".join(cohere_event(e) for e in events_in) + "data: [DONE]\n\n").encode()
    parser = cohere().stream_parser(REQ, "command-a-reasoning-08-2025")
    events = feed_all(parser, raw, size=9)
    assert [e.text for e in events if e.type == "reasoning"] == [
        "Compare the ",
        "integer parts: ",
        "both are 9.",
        THOUGHT_2,
    ]
    assert joined(events, "text") == ANSWER
    assert_reasoning_first(events)
    resp = parser.finish()
    assert resp.text == ANSWER
    assert resp.reasoning == f"{THOUGHT_1}\n\n{THOUGHT_2}"
    assert "unknown_events" not in resp.provider_details


# -------------------------------------------------------------------- no reasoning at all


def test_plain_replies_have_no_reasoning() -> None:
    """Replies without reasoning (including vLLM's ``"reasoning_content": null``) leave
    ``Response.reasoning`` empty and stream no reasoning events."""
    openai = OpenAIAdapter(ProviderSettings("openai", "openai", api_key=Secret("sk")))
    assert openai.parse_chat(reply("openai", "reply_text.json"), "m").reasoning == ""
    vllm = deepseek().parse_chat(reply("openai-compatible", "reply_text.json"), "m")
    assert vllm.text and vllm.reasoning == ""
    assert cohere().parse_chat(reply("cohere", "text.json"), "m").reasoning == ""

    for adapter, kind, name in [
        (openai, "openai", "stream_text.sse"),
        (deepseek(), "openai-compatible", "stream_text.sse"),
        (cohere(), "cohere", "stream_text.sse"),
    ]:
        parser = adapter.stream_parser(REQ, "m")
        events = feed_all(parser, fixture(kind, name))
        assert "reasoning" not in {e.type for e in events}
        resp = parser.finish()
        assert resp.text and resp.reasoning == ""
    # a reasoning field that is present but empty or null adds nothing either
    raw = sse([chunk({"content": ANSWER, "reasoning": None, "reasoning_content": ""}, "stop")])
    parser = groq().stream_parser(REQ, "m")
    assert [e.type for e in feed_all(parser, raw)] == ["text"]
    assert parser.finish().reasoning == ""
