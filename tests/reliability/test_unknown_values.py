"""Values a vendor adds after portal shipped: an unknown finish reason is kept raw in
`raw_finish_reason` and mapped to the documented default ("stop" when text came back); an
unknown content block / part / output item is skipped (not mixed into the text), the known
parts still parse. One case per wire API."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from portal.providers.base import WireReply
from tests.reliability import _vendors as v

TEXT = "Your order 123 ships on Tuesday."
NEW = "brand_new_reason_2031"


def _openai(d: dict[str, Any]) -> None:
    d["choices"][0]["finish_reason"] = NEW


def _anthropic(d: dict[str, Any]) -> None:
    d["stop_reason"] = NEW
    d["content"].insert(0, {"type": "brand_new_block", "payload": {"x": 1}})


def _gemini(d: dict[str, Any]) -> None:
    d["candidates"][0]["finishReason"] = NEW
    d["candidates"][0]["content"]["parts"].insert(0, {"brandNewPart": {"x": 1}})


def _bedrock(d: dict[str, Any]) -> None:
    d["stopReason"] = NEW
    d["output"]["message"]["content"].insert(0, {"brandNewBlock": {"x": 1}})


def _cohere(d: dict[str, Any]) -> None:
    d["finish_reason"] = NEW
    d["message"]["content"].insert(0, {"type": "brand_new", "x": 1})


def _responses(d: dict[str, Any]) -> None:
    d["output"].insert(0, {"type": "brand_new_item", "id": "x1"})


MUTATE: dict[str, Callable[[dict[str, Any]], None]] = {
    "openai": _openai,
    "azure-openai": _openai,
    "mistral": _openai,
    "openai-compatible": _openai,
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
    MUTATE[kind](doc)
    resp = v.make_adapter(kind).parse_chat(
        WireReply(200, {}, json.dumps(doc).encode()), v.model_of(kind)
    )
    assert resp.text == TEXT
    assert resp.finish_reason == "stop"
    if kind != "openai-responses":  # its finish reason is derived from status, unchanged here
        assert resp.raw_finish_reason == NEW
