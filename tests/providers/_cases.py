"""Shared builders for the provider tests: the canonical conversation pieces and fixture I/O."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

from portal.contracts.messages import ImagePart, Message, TextPart, ToolCall
from portal.contracts.output import OutputSpec
from portal.contracts.request import ChatRequest
from portal.contracts.tools import ToolSpec
from portal.providers.adapter import Adapter
from portal.providers.streaming import StreamParser
from portal.wire import WireReply

FIXTURES = Path(__file__).parent / "fixtures"
PNG_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6"
    "kgAAAABJRU5ErkJggg=="
)
SYSTEM = "You are the ACME support agent."
TEXT = "Your order 123 ships on Tuesday."

LOOKUP = ToolSpec(
    "lookup_order",
    "Find an order by its id.",
    {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
)
WEATHER = ToolSpec(
    "get_weather",
    "Current weather in a city.",
    {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["c", "f"]},
        },
        "required": ["city"],
    },
)
ANSWER = OutputSpec(
    {
        "type": "object",
        "properties": {
            "answer": {"type": "string", "minLength": 1},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "note": {"type": "string"},
        },
        "required": ["answer", "confidence"],
    },
    "Answer",
)


def full_request(stream: bool = False) -> ChatRequest:
    """A system prompt, an image, two tools and structured output."""
    return ChatRequest(
        messages=[
            Message("system", SYSTEM),
            Message(
                "user",
                [
                    TextPart("Where is order 123? Here is the label."),
                    ImagePart(data=PNG_B64, media_type="image/png"),
                ],
            ),
        ],
        tools=[LOOKUP, WEATHER],
        output=ANSWER,
        max_tokens=256,
        temperature=0.2,
        stream=stream,
    )


def tool_history(
    id1: str = "call_a1B2c3D4e5F6g7H8i9J0k1L2", id2: str = "call_Z9y8X7w6V5u4T3s2R1q0P9o8"
) -> list[Message]:
    """A finished round of two parallel tool calls and their results."""
    return [
        Message("system", SYSTEM),
        Message("user", "Where is order 123, and what's the weather in Paris?"),
        Message(
            "assistant",
            None,
            [
                ToolCall(id1, "lookup_order", {"order_id": "123"}),
                ToolCall(id2, "get_weather", {"city": "Paris"}),
            ],
        ),
        Message(
            "tool", '{"status": "shipped", "eta": "Tuesday"}', tool_call_id=id1, name="lookup_order"
        ),
        Message("tool", '{"temp_c": 18}', tool_call_id=id2, name="get_weather"),
    ]


def fixture(kind: str, name: str) -> bytes:
    return (FIXTURES / kind / name).read_bytes()


def reply(
    kind: str, name: str, status: int = 200, headers: dict[str, str] | None = None
) -> WireReply:
    return WireReply(status, headers or {}, fixture(kind, name))


def error_reply(kind: str, name: str) -> WireReply:
    """``error_*.json`` fixtures hold ``{"status", "headers", "body"}``."""
    data: dict[str, Any] = json.loads(fixture(kind, name))
    body = data["body"]
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    return WireReply(
        int(data["status"]), {k.lower(): v for k, v in data.get("headers", {}).items()}, raw
    )


def feed_all(parser: StreamParser, raw: bytes, size: int = 7) -> list[Any]:
    events = []
    for i in range(0, len(raw), size):
        events.extend(parser.feed(raw[i : i + size]))
    return events


def body_of(adapter: Adapter, req: ChatRequest, model: str) -> dict[str, Any]:
    wire = adapter.build_chat(req, model)
    data: dict[str, Any] = wire.json()
    return data


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message (string headers only, value type 7), written from the
    framing spec: total length, headers length, prelude CRC, headers, payload, message CRC."""
    encoded = b"".join(
        bytes([len(k)]) + k.encode() + b"\x07" + struct.pack(">H", len(v.encode())) + v.encode()
        for k, v in headers.items()
    )
    prelude = struct.pack(">II", 12 + len(encoded) + len(payload) + 4, len(encoded))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))
